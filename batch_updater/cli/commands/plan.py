"""`batch-update plan FILE`: what a run of FILE would send, for a second person to approve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..common import ExitStatus
from ..guard import CONTEXT, SAME_EXIT_CODES, guarded
from ..options import (
    config_option,
    debug_option,
    file_argument,
    log_options,
    overwrite_option,
    pace_options,
    quiet_option,
    reading_options,
    sheet_option,
)


@click.command("plan", context_settings=CONTEXT, epilog=SAME_EXIT_CODES)
@file_argument
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Plan file to write [default: <FILE stem>.plan-<UTC time>.json beside FILE]; its "
    "workbook is written beside it (.xlsx).",
)
@sheet_option
@overwrite_option
@reading_options
@pace_options
@config_option
@quiet_option
@log_options
@debug_option
@guarded
def plan_command(file: Path, **options: Any) -> ExitStatus:
    """Plan the changes FILE would make, for a second person to approve; send nothing.

    Every row is checked and every ticket read (in pages where that is cheaper), and each row
    decided as a run would decide it. The plan file (JSON) holds the exact PATCH of every
    change, a fingerprint of each ticket's current values, the SHA-256 of the input and its
    own; the plan workbook shows each change as `Field: current -> new` and every row that
    will not be sent, with why. Then: batch-update approve PLAN, batch-update apply PLAN.
    """
    from ..planning import plan_sheet

    return plan_sheet(file, options)
