"""`batch-update run FILE` (and `batch-update FILE`): a run of a sheet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..common import EXIT_CODES_HELP, ExitStatus
from ..guard import CONTEXT, guarded
from ..options import (
    again_option,
    debug_option,
    evidence_options,
    overwrite_option,
    sending_options,
    sheet_option,
)


@click.command("run", context_settings=CONTEXT, epilog=EXIT_CODES_HELP)
@click.argument(
    "file", metavar="FILE", type=click.Path(path_type=Path, dir_okay=False), required=False
)
@click.option(
    "--dry-run", is_flag=True, help="Validate every row and write the workbook; send nothing."
)
@sheet_option
@evidence_options
@overwrite_option
@again_option
@sending_options
@debug_option
@guarded
def run_command(file: Path | None, **options: Any) -> ExitStatus:
    """Update CCS remediation tickets from FILE (.xlsx, .xlsm, .xls, .ods or .csv).

    Every row is checked before anything is sent; then the tickets are read (in pages where
    that is cheaper), and one PATCH goes to the CCS server for each ticket that really changes,
    with only the fields that differ, at a steady pace. A results workbook records what
    happened to each row.
    `run` is the default command: `batch-update FILE` is `batch-update run FILE`.

    \b
    Examples:
      batch-update samples/tickets.xlsx --simulate     try it against the built-in simulator
      batch-update tickets.xlsx --dry-run              check the sheet, send nothing
      batch-update tickets.xlsx --url https://ccs01:12431 --user "corp\\svc-ccs"
    """
    from ..running import run_sheet

    if file is None:
        raise click.UsageError("Missing argument 'FILE': the spreadsheet of ticket changes.")
    return run_sheet(file, options)
