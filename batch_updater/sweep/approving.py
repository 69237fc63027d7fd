"""`approve`: a second person signs off a plan, or rejects it with a reason.

The approver logs in to the plan's CCS server with their own account (a token grant is enough:
an approver needs no right to change tickets), which proves who approved; the approval record,
beside the plan, names the plan's SHA-256, the approver's CCS account, OS user, host and time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..errors import AuthError, BatchUpdateError, ConfigError, InputError, ServerUnreachable
from ..plans import (
    APPROVAL_FORMAT,
    FORMAT_VERSION,
    Plan,
    PlanVerdict,
    approval_path,
    now_iso,
    read_approval,
    read_plan,
    same_account,
)
from .common import _quoted, _who_here, write_document_file
from .outcome import ExitStatus, Transport
from .server import logged_in, plan_server

if TYPE_CHECKING:
    from ..settings import Settings
    from .console import Console


@dataclass(frozen=True)
class ApproveRequest:
    """An approval (or, with a reason, a rejection) of a plan file."""

    plan: Path
    reject: str | None = None  # the reason, for a rejection
    yes: bool = False
    simulate: bool = False
    transport: Transport = field(default_factory=Transport)


@dataclass(frozen=True)
class ApproveOutcome:
    status: ExitStatus
    message: str
    approval: Path | None = None
    error: BatchUpdateError | None = None


def plan_summary(plan: Plan) -> Iterator[str]:
    """The lines that tell a plan: what it changes, where, who made it, against what."""
    counts = ", ".join(
        f"{plan.count(verdict):,} {verdict.value}"
        for verdict in PlanVerdict
        if verdict is not PlanVerdict.CHANGE and plan.count(verdict)
    )
    yield (
        f"Plan {plan.path.name} (SHA-256 {plan.sha256}): "
        f"{plan.count(PlanVerdict.CHANGE):,} ticket change(s)"
        + (f"; not sent: {counts}" if counts else "")
        + "."
    )
    yield f"  server:    {'the built-in simulator' if plan.simulated else plan.text('server')}"
    yield f"  planned by {plan.planner} at {plan.text('made_at')}; expires {plan.text('expires_at')}"
    yield f"  input:     {plan.text('input', 'path')} (SHA-256 {plan.text('input', 'sha256')})"
    yield f"  workbook:  {plan.path.with_suffix('.xlsx').name} lists every row and change"


def approve(request: ApproveRequest, settings: Settings, console: Console) -> ApproveOutcome:
    """Check the plan, log in as the approver, ask, and write the approval (or rejection)."""
    plan = read_plan(request.plan)
    rejecting = request.reject is not None
    if rejecting and not str(request.reject).strip():
        raise ConfigError(
            '--reject needs a reason, e.g. --reject "INCA0000140 is not ours": the planner '
            "reads it to know what to change."
        )
    decided = read_approval(plan)
    if decided is not None:
        raise InputError(
            f"{plan.path.name} was already {'approved' if decided.approved else 'rejected'} by "
            f"{decided.approver} at {decided.at} ({decided.path.name}). A plan is decided once.",
            tip="To decide again, make a new plan (batch-update plan FILE).",
        )
    expires = plan.expires_at
    if not rejecting and expires is not None and expires <= datetime.now(timezone.utc):
        raise InputError(
            f"{plan.path.name} expired at {plan.text('expires_at')}: the tickets may have "
            "moved since it was made, so it is not approved.",
            tip="Make a new plan (batch-update plan FILE); plan.expiry_days sets how long one "
            "stays valid.",
        )
    settings = plan_server(plan, request, settings, "approve it")
    _check_workbook(plan, console)
    for line in plan_summary(plan):
        console.note(line)
    try:
        with ExitStack() as stack:
            # The approver's identity: CCS grants this account a token.
            login, _ = logged_in(
                stack,
                settings,
                request,
                console,
                not_as=plan.ccs_account,
                before=None if rejecting else lambda login: _not_the_planner(login.username, plan),
            )
    except (AuthError, ServerUnreachable) as error:
        return ApproveOutcome(ExitStatus.STOPPED, "Nothing was approved.", error=error)
    console.note(f"Logged in to {login.url} as {login.username}.")
    _confirm(plan, request, console)
    document: dict[str, object] = {
        "format": APPROVAL_FORMAT,
        "format_version": FORMAT_VERSION,
        "decision": "rejected" if rejecting else "approved",
        "reason": request.reject or "",
        "plan_file": plan.path.name,
        "plan_sha256": plan.sha256,
        "server": login.url,
        "simulated": request.simulate,
        "ccs_account": login.username,
        "approver": _who_here(),
        "decided_at": now_iso(),
        "tool_version": __version__,
    }
    target = approval_path(plan.path)
    write_document_file(target, document, "approval_sha256", "the approval")
    if rejecting:
        return ApproveOutcome(
            ExitStatus.OK,
            f"Rejected {plan.path.name} as {login.username}: {request.reject}",
            target,
        )
    return ApproveOutcome(
        ExitStatus.OK,
        f"Approved {plan.path.name} as {login.username}. Apply it with: batch-update apply "
        f"{_quoted(plan.path.resolve())}",
        target,
    )


def _not_the_planner(username: str, plan: Plan) -> None:
    """Refused before any request: a plan is approved by a second CCS account."""
    if same_account(username, plan.ccs_account):
        raise InputError(
            f"{username} made this plan: a plan is approved by a second CCS account, not by "
            "the one that made it. Nothing was approved.",
            tip="Ask a colleague to run batch-update approve with their own account (--user); "
            "an account that may read tickets is enough.",
        )


def _check_workbook(plan: Plan, console: Console) -> None:
    """The workbook the approver reviews is the plan's own (its Summary names the plan's
    SHA-256); one that is missing is written again from the plan."""
    from ..report import plan_sha256_in, write_plan_book

    workbook = plan.path.with_suffix(".xlsx")
    if not workbook.exists():
        write_plan_book(workbook, plan.document, plan.sha256, plan_file_name=plan.path.name)
        console.note(f"Note: {workbook.name} was missing; it was written again from the plan.")
        return
    shown = plan_sha256_in(workbook)
    if shown != plan.sha256:
        raise InputError(
            f"{workbook.name} is not the workbook of {plan.path.name}: it shows the plan SHA-256 "
            f"{(shown or 'nothing')[:16]}..., the plan's is {plan.sha256[:16]}.... What it shows "
            "is not what would be approved. Nothing was approved.",
            tip=f"Move {workbook.name} away and run approve again: the plan's own workbook is "
            "written from the plan file.",
        )


def _confirm(plan: Plan, request: ApproveRequest, console: Console) -> None:
    verb = "Reject" if request.reject is not None else "Approve"
    question = (
        f"{verb} {plan.path.name}: {plan.count(PlanVerdict.CHANGE):,} ticket change(s) on "
        f"{'the simulator' if plan.simulated else plan.text('server')}, planned by "
        f"{plan.ccs_account}?"
    )
    if request.yes:
        return
    if not console.can_ask():
        raise ConfigError(
            question.rstrip("?") + ": refusing without a terminal to confirm.",
            tip="Add --yes to confirm in advance (for scripts).",
        )
    if not console.confirm(question):
        raise ConfigError(f"Cancelled; {plan.path.name} was not {verb.lower()}d.")
