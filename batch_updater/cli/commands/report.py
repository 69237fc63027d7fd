"""`batch-update report RUN`: a run's workbook rebuilt from its journal."""

from __future__ import annotations

from pathlib import Path

import click

from ..common import ExitStatus
from ..guard import CONTEXT, guarded
from ..options import (
    config_option,
    debug_option,
    optional_file_argument,
    out_option,
    quiet_option,
    run_argument,
)


@click.command("report", context_settings=CONTEXT)
@run_argument
@optional_file_argument
@out_option
@config_option
@quiet_option
@debug_option
@guarded
def report_command(
    run_ref: str, file: Path | None, out: Path | None, config_path: Path | None, quiet: bool
) -> ExitStatus:
    """Write the results workbook of RUN from its journal; send nothing.

    RUN is a run id, its journal file or its results workbook. The workbook is the one the run
    wrote (or would have written, had it been able to), with a manifest of its own.
    """
    from ..records import report_from_journal

    return report_from_journal(run_ref, file, out=out, config_path=config_path, quiet=quiet)
