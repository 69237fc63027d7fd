"""`batch-update retry FILE RUN`: send again only the rows that failed in RUN."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..common import ExitStatus
from ..guard import CONTEXT, SAME_EXIT_CODES, guarded
from ..options import (
    debug_option,
    evidence_options,
    file_argument,
    overwrite_option,
    run_argument,
    sending_options,
    sheet_option,
)


@click.command("retry", context_settings=CONTEXT, epilog=SAME_EXIT_CODES)
@file_argument
@run_argument
@sheet_option
@evidence_options
@overwrite_option
@sending_options
@debug_option
@guarded
def retry_command(file: Path, run_ref: str, **options: Any) -> ExitStatus:
    """Send again only the rows of FILE that Failed or were Not sent in RUN.

    RUN is a run id (`batch-update runs` lists them) or that run's results workbook. Rows it
    left Unknown are read back first.
    """
    from ..running import run_sheet

    return run_sheet(file, options, retry_of=run_ref)
