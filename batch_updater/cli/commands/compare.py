"""`batch-update compare [RUN_A] RUN_B`: this sweep against the last one, ticket by ticket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..common import ExitStatus
from ..guard import CONTEXT, guarded
from ..options import (
    config_option,
    connection_options,
    debug_option,
    log_options,
    pace_options,
    quiet_option,
)


@click.command("compare", context_settings=CONTEXT)
@click.argument("runs", metavar="[RUN_A] RUN_B", nargs=-1, required=True)
@click.option(
    "--offline",
    is_flag=True,
    help="Do not read the tickets from CCS (Changed in CCS is then not known); send nothing.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Workbook to write [default: <input stem>.compare-<UTC time>.xlsx in the current folder].",
)
@connection_options
@pace_options
@config_option
@quiet_option
@log_options
@debug_option
@guarded
def compare_command(runs: tuple[str, ...], **options: Any) -> ExitStatus:
    """Compare run B with run A (by default the run before B of the same input).

    RUN is a run id, its journal file or its results workbook. Both runs are read from their
    journals, keyed by ticket number, and every ticket is sorted into: failed again (with how
    many runs in a row), newly failed, now succeeding, not reached in B, unchanged outcome,
    left the scope, new in B; and, read from CCS through the same pacing (unless --offline),
    changed in CCS since our last write. A short table is printed and a comparison workbook
    written. Exit 0 when it ran, whatever it found; nothing is sent.
    """
    from ..records import compare_two_runs

    if len(runs) > 2:
        raise click.UsageError("Give one or two runs: [RUN_A] RUN_B.")
    return compare_two_runs(runs, options)
