"""`batch-update resume FILE`: continue the last unfinished run of FILE."""

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
    sending_options,
    sheet_option,
)


@click.command("resume", context_settings=CONTEXT, epilog=SAME_EXIT_CODES)
@file_argument
@sheet_option
@evidence_options
@overwrite_option
@sending_options
@debug_option
@guarded
def resume_command(file: Path, **options: Any) -> ExitStatus:
    """Continue the last unfinished run of FILE.

    Rows the earlier run updated are not sent again (they are carried into the new workbook
    with their evidence); rows it was sending when it ended are read back first; the rest are
    sent. It keeps the evidence settings of the run it continues: --capture-before and --verify
    may add evidence, never drop it.
    """
    from ..running import run_sheet

    return run_sheet(file, options, resume=True)
