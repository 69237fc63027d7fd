"""What `plan`, `approve` and `apply` print: the core function called with the terminal as its
console, and its outcome told."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from .common import ExitStatus, _echo, _fail
from .exporting import _transport, _typed
from .running import command_settings, on_terminal, print_safely, tell_run

# The order the plan's counts are told in (the plan workbook's Summary uses the same).
_COUNTS = (
    ("Change", "Will change"),
    ("Unchanged", "Unchanged"),
    ("Conflict", "Conflict"),
    ("Failed", "Failed"),
    ("Invalid", "Invalid"),
    ("Skipped", "Skipped"),
)


def plan_sheet(file: Path, options: Mapping[str, Any]) -> ExitStatus:
    """Plan FILE as the command's options say; returns the exit status."""
    from ..sweep import PlanRequest, make_plan

    given, console, verbose, config_path = on_terminal(options)
    request = PlanRequest(
        file,
        out=given.pop("out", None),
        simulate=bool(given.pop("simulate", False)),
        overwrite_conflicts=bool(given.pop("overwrite_conflicts", False)),
        transport=_transport(given),
    )
    settings = command_settings(given, config_path, verbose, file, console)
    outcome = make_plan(request, settings, console)
    if outcome.error is not None:
        _fail(outcome.error)
        _echo(outcome.message)
        return outcome.status
    print_safely(lambda: _tell_plan(outcome, file, console))
    return outcome.status


def _tell_plan(outcome: Any, file: Path, console: Any) -> None:
    total = sum(outcome.counts.values())
    sheet = f' (sheet "{outcome.sheet_name}")' if outcome.sheet_name else ""
    click.echo(f"Plan of {total:,} row{'s' if total != 1 else ''} in {file.name}{sheet}:")
    for key, label in _COUNTS:
        click.echo(f"  {label:<16}{outcome.counts.get(key, 0):>7,}")
    click.echo(outcome.message)
    click.echo(f"Plan file:        {outcome.plan_path}")
    click.echo(f"Plan workbook:    {outcome.workbook}")
    click.echo(f"Plan SHA-256:     {outcome.sha256}")
    click.echo(f"Expires:          {outcome.expires_at}")
    console.note(
        "Have a second CCS account review the workbook and approve the plan: batch-update "
        f"approve {_typed(outcome.plan_path)}; then apply it: batch-update apply "
        f"{_typed(outcome.plan_path)}"
    )


def approve_plan(plan: Path, options: Mapping[str, Any]) -> ExitStatus:
    """Approve (or reject) PLAN as the command's options say; returns the exit status."""
    from ..sweep import ApproveRequest, approve

    given, console, verbose, config_path = on_terminal(options)
    request = ApproveRequest(
        plan,
        reject=given.pop("reject", None),
        yes=bool(given.pop("yes", False)),
        simulate=bool(given.pop("simulate", False)),
        transport=_transport(given),
    )
    settings = command_settings(given, config_path, verbose, plan, console)
    outcome = approve(request, settings, console)
    if outcome.error is not None:
        _fail(outcome.error)
        _echo(outcome.message)
        return outcome.status
    click.echo(outcome.message)
    if outcome.approval is not None:
        label = "Rejection:" if request.reject is not None else "Approval:"
        click.echo(f"{label:<18}{outcome.approval}")
    return outcome.status


def apply_plan_file(plan: Path, options: Mapping[str, Any]) -> ExitStatus:
    """Apply PLAN as the command's options say; returns the exit status."""
    from ..sweep import ApplyRequest, apply_plan

    given, console, verbose, config_path = on_terminal(options)
    request = ApplyRequest(
        plan,
        yes=bool(given.pop("yes", False)),
        simulate=bool(given.pop("simulate", False)),
        out=given.pop("out", None),
        transport=_transport(given),
    )
    settings = command_settings(given, config_path, verbose, plan, console)
    return tell_run(apply_plan(request, settings, console))
