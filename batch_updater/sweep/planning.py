"""`plan`: what a run of a sheet would send, decided against every ticket's current state, written
as a plan file (JSON, with its hashes) and a plan workbook for the approver; nothing is sent.

The tickets are read as a run reads them (`looking.look`: pages where that is cheaper), and the
rest one by one (GET) through the same limiter and retry step; each row is decided by
`changes.decide`, as a run would decide it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..changes import Verdict, decide
from ..errors import AuthError, BatchUpdateError, ConfigError, ServerUnreachable
from ..plans import (
    FORMAT_VERSION,
    PLAN_FORMAT,
    PlanVerdict,
    canonical_json,
    change_lines,
    current_values,
    fingerprint,
    item,
    now_iso,
)
from ..tickets import PlannedRow, PriorityFormat, count_text
from .common import _who_here, write_document_file
from .looking import Looked, SheetFacts, look, page_reader, sheet_facts
from .outcome import ExitStatus, RunRequest, Transport
from .server import logged_in

if TYPE_CHECKING:
    from ..ccs import CcsClient, Reply
    from ..settings import Settings
    from ..validate import Plan
    from .console import Console


@dataclass(frozen=True)
class PlanRequest:
    """A plan of a sheet, as the user asked for it (the settings come separately)."""

    file: Path
    out: Path | None = None  # the plan file; its workbook goes beside it
    simulate: bool = False
    overwrite_conflicts: bool = False
    transport: Transport = field(default_factory=Transport)
    exact: None = None  # a plan is never a rollback's exact rows (`run._plan` asks)


@dataclass(frozen=True)
class PlanOutcome:
    """How a plan went: what the command line prints, and the exit status."""

    status: ExitStatus
    message: str
    plan_path: Path | None = None
    workbook: Path | None = None
    sha256: str = ""
    counts: Mapping[str, int] = field(default_factory=dict)
    how_read: str = ""
    expires_at: str = ""
    sheet_name: str = ""
    error: BatchUpdateError | None = None


def rows_sha256(rows: Sequence[PlannedRow]) -> str:
    """The SHA-256 of the rows as validation made them: what `apply` checks the input against,
    besides its bytes (a config that reads the sheet differently makes other rows)."""
    normalised = [
        {
            "row": row.row_number,
            "blank": row.blank,
            "body": row.update.to_json() if row.update is not None else None,
            "problems": [str(problem) for problem in row.problems],
        }
        for row in rows
    ]
    return hashlib.sha256(canonical_json({"rows": normalised}).encode("utf-8")).hexdigest()


def make_plan(request: PlanRequest, settings: Settings, console: Console) -> PlanOutcome:
    """Read, validate, read every ticket, decide each row; write the plan and its workbook."""
    from ..validate import rules_from_settings
    from .run import _plan, _read
    from .sending import warn_if_exported_elsewhere

    made = datetime.now(timezone.utc).replace(microsecond=0)
    rules = rules_from_settings(settings)
    sheet, input_sha256 = _read(request.file, settings, rules)
    validated = _plan(sheet, rules, RunRequest(request.file), console)
    plan_path, workbook = _outputs(request, settings, made)
    valid = [row for row in validated.rows if row.is_valid]
    facts = sheet_facts(sheet)
    try:
        with ExitStack() as stack:
            login, client = logged_in(stack, settings, request, console)
            warn_if_exported_elsewhere(facts, client, request, console)
            looked = look(
                client,
                settings,
                valid,
                facts,
                console,
                overwrite_conflicts=request.overwrite_conflicts,
            )
            how = looked.how.replace(", each right before its update", "")
            console.note(how + ".")
            read = _read_the_rest(client, settings, valid, looked, console)
    except (AuthError, ServerUnreachable) as error:
        return PlanOutcome(ExitStatus.STOPPED, "Nothing was planned.", error=error)
    rows = _decided(validated, read, facts, settings, request.overwrite_conflicts)
    expires = made + timedelta(days=settings.plan_expiry_days)
    document: dict[str, object] = {
        "format": PLAN_FORMAT,
        "format_version": FORMAT_VERSION,
        "tool_version": __version__,
        "made_at": now_iso(made),
        "expires_at": now_iso(expires),
        "server": login.url,
        "simulated": request.simulate,
        "ccs_account": login.username,
        "planner": _who_here(),
        "input": {
            "path": str(request.file.resolve()),
            "name": request.file.name,
            "sheet": sheet.sheet_name,
            "sha256": input_sha256,
            "rows_sha256": rows_sha256(validated.rows),
        },
        "settings": {
            **settings.describe(),
            "overwrite_conflicts": request.overwrite_conflicts,
        },
        "how_read": how,
        "counts": {str(v): sum(1 for r in rows if r["verdict"] == v.value) for v in PlanVerdict},
        "rows": rows,
    }
    return _write(plan_path, workbook, document, console)


def _outputs(request: PlanRequest, settings: Settings, made: datetime) -> tuple[Path, Path]:
    """The plan file and its workbook: `<input stem>.plan-<UTC time>.json` and `.xlsx`."""
    from ..plans import approval_path
    from ..report import check_output_path, free_path

    if request.out is not None:
        plan_path = request.out
        if plan_path.suffix.casefold() != ".json":
            raise ConfigError(
                f"--out {plan_path}: a plan file is JSON; give a name ending in .json (its "
                "workbook is written beside it, with .xlsx)."
            )
    else:
        folder = settings.output_dir or request.file.resolve().parent
        stamp = made.strftime("%Y%m%d-%H%M%S")
        plan_path = free_path(
            folder / f"{request.file.stem}.plan-{stamp}.json",
            companion=lambda path: path.with_suffix(".xlsx"),
        )
    workbook = plan_path.with_suffix(".xlsx")
    for path in (plan_path, workbook, approval_path(plan_path)):
        check_output_path(path, input_path=request.file)
    return plan_path, workbook


def _read_the_rest(
    client: CcsClient,
    settings: Settings,
    rows: Sequence[PlannedRow],
    looked: Looked,
    console: Console,
) -> dict[int, Mapping[str, object] | Reply]:
    """Every valid row's ticket: from the pages, or read now (GET) through the same limiter."""
    read: dict[int, Mapping[str, object] | Reply] = dict(looked.current.known)
    missing = [row for row in rows if row.row_number not in read]
    if not missing:
        return read
    with console.sending() as stops:
        reader = page_reader(client, settings, stops.cancel, console)
        for row in missing:
            held = reader.read_one(row.ticket_number)
            if held is None:
                raise KeyboardInterrupt  # Ctrl-C while reading: nothing was sent or written
            read[row.row_number] = held
    return read


def _decided(
    validated: Plan,
    read: Mapping[int, Mapping[str, object] | Reply],
    facts: SheetFacts,
    settings: Settings,
    overwrite_conflicts: bool,
) -> list[dict[str, object]]:
    """Each row of the sheet as the plan holds it."""
    integer = str(settings.priority_format) == PriorityFormat.INTEGER.value
    priorities = tuple(settings.priorities) if integer else ()
    rows: list[dict[str, object]] = []
    for row in validated.rows:
        entry: dict[str, object] = {
            "row": row.row_number,
            "ticket": row.ticket_number or "",
            "verdict": "",
            "status": None,
            "changes": [],
            "body": None,
            "current": None,
            "fingerprint": None,
            "message": "",
        }
        rows.append(entry)
        if row.blank:
            entry.update(verdict=PlanVerdict.SKIPPED.value, message="blank row")
            continue
        if row.update is None:
            entry.update(
                verdict=PlanVerdict.INVALID.value,
                message="; ".join(str(problem) for problem in row.problems),
            )
            continue
        held = read[row.row_number]
        if not isinstance(held, Mapping):
            said = held.message or f"HTTP {held.status}"
            entry.update(
                verdict=PlanVerdict.FAILED.value,
                status=held.status,
                message=f"{said} (found when the ticket was read; nothing will be sent)",
            )
            continue
        decision = decide(
            row.update,
            held,
            facts.exported.get(row.row_number),
            overwrite_conflicts=overwrite_conflicts,
            priorities=priorities,
        )
        entry.update(current=current_values(held), fingerprint=fingerprint(held))
        if decision.verdict is Verdict.CHANGE and decision.update is not None:
            entry.update(
                verdict=PlanVerdict.CHANGE.value,
                body=decision.update.to_json(),
                changes=change_lines(decision.update, held, priorities),
                message=decision.message,
            )
        elif decision.verdict is Verdict.UNCHANGED:
            entry.update(
                verdict=PlanVerdict.UNCHANGED.value,
                message="the ticket already holds these values; nothing will be sent",
            )
        else:
            entry.update(verdict=PlanVerdict.CONFLICT.value, message=decision.message)
    return rows


def _write(
    plan_path: Path, workbook: Path, document: dict[str, object], console: Console
) -> PlanOutcome:
    """The workbook first (from the document, with the SHA-256 the plan will have), then the
    plan file: a plan file on disk always has its workbook beside it."""
    from ..plans import document_sha256
    from ..report import write_plan_book

    sha = document_sha256(document, "plan_sha256")
    with console.writing():
        write_plan_book(workbook, document, sha, plan_file_name=plan_path.name)
        written = write_document_file(plan_path, document, "plan_sha256", "the plan file")
    assert written == sha
    counts = document["counts"]
    assert isinstance(counts, dict)
    changes = counts.get(PlanVerdict.CHANGE.value, 0)
    return PlanOutcome(
        ExitStatus.OK,
        f"Planned {count_text(changes, 'change')}; nothing was sent.",
        plan_path,
        workbook,
        sha,
        counts,
        str(document["how_read"]),
        str(document["expires_at"]),
        item(document, "input", "sheet"),
    )
