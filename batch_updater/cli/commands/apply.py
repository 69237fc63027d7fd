"""`batch-update apply PLAN`: send exactly what a plan holds, to tickets that have not moved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..common import ExitStatus
from ..guard import CONTEXT, SAME_EXIT_CODES, guarded
from ..options import debug_option, evidence_options, sending_options


@click.command("apply", context_settings=CONTEXT, epilog=SAME_EXIT_CODES)
@click.argument("plan", metavar="PLAN", type=click.Path(path_type=Path, dir_okay=False))
@evidence_options
@sending_options
@debug_option
@guarded
def apply_command(plan: Path, **options: Any) -> ExitStatus:
    """Apply PLAN: send exactly the PATCH bodies it holds.

    Refused, with nothing sent, when the plan file or its input changed, the plan expired, it
    was applied already, or it was rejected (or is not approved while plan.require_approval is
    on). A ticket whose values moved since the plan ends Conflict, not sent. Otherwise it is a
    run like any other: journal, resume, retry, evidence and manifest, naming the plan, the
    planner and the approver.
    """
    from ..planning import apply_plan_file

    return apply_plan_file(plan, options)
