"""`batch-update check RESULTS`: a workbook, its input and its journal checked."""

from __future__ import annotations

from pathlib import Path

import click

from ..common import ExitStatus
from ..guard import CONTEXT, guarded
from ..options import (
    debug_option,
)


@click.command(
    "check",
    context_settings=CONTEXT,
    short_help="Check that a results workbook, its input and its journal are the run's own.",
    epilog="\b\nExit codes:\n  0    every file is the one the run produced\n"
    "  1    a file differs or is missing\n  2    RESULTS has no manifest, or it cannot be read",
)
@click.argument("results", metavar="RESULTS", type=click.Path(path_type=Path, dir_okay=False))
@debug_option
@guarded
def check_command(results: Path) -> ExitStatus:
    """Check that RESULTS (a results workbook or its manifest), its input and its journal are the
    files the run produced (their SHA-256 against the manifest); or that an export workbook is
    as the export wrote it."""
    from ..records import check_manifest_files

    return check_manifest_files(results)
