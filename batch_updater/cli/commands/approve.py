"""`batch-update approve PLAN`: a second CCS account signs off a plan (or rejects it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..common import ExitStatus
from ..guard import CONTEXT, SAME_EXIT_CODES, guarded
from ..options import config_option, debug_option, log_options, quiet_option, server_options


@click.command("approve", context_settings=CONTEXT, epilog=SAME_EXIT_CODES)
@click.argument("plan", metavar="PLAN", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--reject",
    metavar="REASON",
    help="Record a refusal of the plan, with this reason, instead of an approval.",
)
@server_options
@config_option
@quiet_option
@log_options
@debug_option
@guarded
def approve_command(plan: Path, **options: Any) -> ExitStatus:
    """Approve PLAN (made by batch-update plan) with your own CCS account.

    The plan's summary is shown and confirmed (--yes for scripts); you log in to the plan's
    server with your own account (an account that may read tickets is enough), which records
    who approved. Refused when your CCS account made the plan. The approval, beside the plan
    (.approval.json), names the plan's SHA-256, your CCS account, OS user, host and the time.
    """
    from ..planning import approve_plan

    return approve_plan(plan, options)
