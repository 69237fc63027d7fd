"""`apply`: a plan sent exactly as it was made (and approved), or refused before anything is sent.

Refused (exit 2, nothing sent) when the plan file changed since it was made, the input changed,
the plan expired, it was applied already, or it is rejected, or not approved while
plan.require_approval is on. Otherwise it is a run of the plan's input (`sweep.run`) in which
every row is decided by the plan: the planned body is sent to a ticket that still has the planned
fingerprint, and any other row is not sent (`plans.decide_planned`). Everything else is a normal
run: the journal, resume, retry, the evidence, the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, InputError
from ..plans import Approval, Plan, check_expiry, plan_record, read_approval, read_plan
from .common import _quoted, _when
from .outcome import RunOutcome, RunRequest, Transport
from .server import plan_server

if TYPE_CHECKING:
    from ..settings import Settings
    from .console import Console


@dataclass(frozen=True)
class ApplyRequest:
    """An apply of a plan file, as the user asked for it."""

    plan: Path
    yes: bool = False
    simulate: bool = False
    out: Path | None = None
    transport: Transport = field(default_factory=Transport)


def apply_plan(request: ApplyRequest, settings: Settings, console: Console) -> RunOutcome:
    """Check the plan, then run its input with the plan deciding every row."""
    from ..manifest import sha256_of
    from .earlier import _journal_folder
    from .run import run

    plan = read_plan(request.plan)
    approval = _approval(plan, settings)
    check_expiry(plan)
    settings = plan_server(plan, request, settings, "apply it")
    sheet = plan.text("input", "sheet")
    settings = replace(settings, sheet=sheet or settings.sheet)  # the sheet the plan read
    file = _input(plan)
    _check_not_applied(plan, _journal_folder(file, settings=settings), file)
    if approval is None:
        console.warn(
            f"Warning: {plan.path.name} has not been approved (plan.require_approval is off): "
            "it is applied on your confirmation alone, and its results say so."
        )
    else:
        console.note(f"{plan.path.name} was approved by {approval.approver} at {approval.at}.")
    evidence = plan.document.get("settings")
    if isinstance(evidence, dict):
        # The evidence the approver saw in the plan is kept: a flag may add to it, never drop it.
        settings = replace(
            settings,
            capture_before=settings.capture_before or evidence.get("capture_before") is True,
            verify=settings.verify or evidence.get("verify") is True,
        )
    return run(
        RunRequest(
            file,
            simulate=request.simulate,
            yes=request.yes,
            out=request.out,
            transport=request.transport,
            plan=plan_record(
                plan,
                approval,
                file_sha256=sha256_of(plan.path),
                approval_file_sha256=sha256_of(approval.path) if approval else "",
            ),
        ),
        settings,
        console,
    )


def _approval(plan: Plan, settings: Settings) -> Approval | None:
    """The plan's approval; refused when it is rejected, or missing and required."""
    approval = read_approval(plan)
    if approval is not None and not approval.approved:
        raise InputError(
            f"{plan.path.name} was rejected by {approval.approver} at {approval.at}: "
            f"{approval.reason or 'no reason given'}. Nothing was sent.",
            tip="Change the sheet as asked, make a new plan and have it approved.",
        )
    if approval is None and (settings.require_approval or plan.requires_approval):
        where = "" if settings.require_approval else " (as it was when the plan was made)"
        raise ConfigError(
            f"{plan.path.name} has not been approved, and plan.require_approval is on{where}. "
            "Nothing was sent.",
            tip=f"Ask a second CCS account to run: batch-update approve {_quoted(plan.path)}",
        )
    return approval


def _input(plan: Plan) -> Path:
    """The plan's input: where it was, else beside the plan (a plan moved with its sheet);
    refused unless one of them is the sheet the plan was made from (its SHA-256)."""
    from ..sheet import file_sha256

    recorded = Path(plan.text("input", "path"))
    candidates = [recorded, plan.path.parent / plan.text("input", "name")]
    if candidates[1].resolve() == recorded.resolve():
        candidates.pop()
    found = [(path, file_sha256(path)) for path in candidates if path.is_file()]
    for path, sha in found:
        if sha == plan.text("input", "sha256"):
            return path
    if not found:
        raise InputError(
            f"The input of {plan.path.name} is not found at "
            + " or at ".join(str(path) for path in candidates)
            + ". Nothing was sent.",
            tip="Put the sheet the plan was made from back where it was, or beside the plan.",
        )
    said = "; ".join(f"{path}: SHA-256 now {sha[:16]}..." for path, sha in found)
    raise InputError(
        f"{plan.text('input', 'name')} has changed since {plan.path.name} was made ({said}; "
        f"the plan's {plan.text('input', 'sha256')[:16]}...): the plan is not a plan of this "
        "sheet any more. Nothing was sent.",
        tip="Restore the sheet the plan was made from, or make a new plan of the changed "
        "sheet and have it approved.",
    )


def _check_not_applied(plan: Plan, folder: Path, file: Path) -> None:
    """A plan is applied once: refused when a run of it is in the journals."""
    from ..journal import RunEnd, runs_of_plan
    from .earlier import _searched_folders

    runs = runs_of_plan(_searched_folders(folder, file), plan.sha256)
    if not runs:
        return
    earlier = runs[0]
    if earlier.ended in (RunEnd.RUNNING, RunEnd.INTERRUPTED, RunEnd.FAILED):
        raise InputError(
            f"{plan.path.name} is being applied by run {earlier.run_id} (started "
            f"{_when(earlier.started)}), which did not finish. Nothing was sent.",
            tip=f"Continue it with batch-update resume {_quoted(file)}; it sends only the "
            "planned rows not yet done, and checks the ones that were in flight.",
        )
    results = f" (results: {Path(earlier.results_path).name})" if earlier.results_path else ""
    raise InputError(
        f"{plan.path.name} was already applied by run {earlier.run_id} on "
        f"{_when(earlier.started)}{results}; a plan is applied once. Nothing was sent.",
        tip=f"batch-update retry {_quoted(file)} {earlier.run_id} sends the planned rows that "
        "failed; for anything else, make a new plan.",
    )
