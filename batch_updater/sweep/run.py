"""A run of a sheet, as one function: read, validate, send (or not, for a dry run), keep the
evidence, and return how it went. `run()` is the data flow, each step a short function below it."""

from __future__ import annotations

import platform
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..errors import AuthError, InputError, ServerUnreachable
from ..tickets import Outcome, PlannedRow, RowResult, RunInfo, Sheet, count_text
from .common import MAX_PROBLEMS_SHOWN, _operator, _quoted
from .earlier import _create_journal, _follow_earlier_run, _journal_folder
from .evidence import Recorded, choose_outputs, write_evidence
from .looking import sheet_facts
from .outcome import ExitStatus, RunOutcome, RunRequest
from .sending import Prepared, Sent, send_rows

if TYPE_CHECKING:
    from ..journal import Journal
    from ..rollback import RollbackRow
    from ..settings import Settings
    from ..validate import Plan, ValidationRules
    from .console import Console

ROLLS_BACK = "Rolls back run"


def run(request: RunRequest, settings: Settings, console: Console) -> RunOutcome:
    """Read, validate, send and keep the evidence of one sheet; how it went comes back."""
    from ..validate import rules_from_settings

    timings: dict[str, float] = {}
    started = datetime.now(timezone.utc)
    rules = rules_from_settings(settings)
    with _timed(timings, "read"):
        sheet, input_sha256 = _read(request.file, settings, rules)
    with _timed(timings, "validate"):
        plan = _plan(sheet, rules, request, console)
        if not request.dry_run:
            _check_approval_rule(request, settings, plan)
        outputs = choose_outputs(request, settings, started)
        info = _run_info(request, settings, sheet, plan, input_sha256, started)
        decided = {r.row_number: r for r in planned_results(plan.rows, request.dry_run)}
    if request.dry_run:
        valid = sum(1 for row in plan.rows if row.is_valid)
        console.note(
            f"Dry run: {valid:,} of {count_text(len(plan.rows), 'row')} would be sent; "
            "nothing was sent."
        )
        recorded = Recorded(info, [decided[row.row_number] for row in plan.rows])
    else:
        with _timed(timings, "send"):
            sent = _send_sheet(request, settings, console, sheet, plan, info, decided)
        if isinstance(sent, RunOutcome):
            return sent
        recorded = sent
    with _timed(timings, "write"):
        outcome = write_evidence(request, settings, console, sheet, outputs, recorded)
    return replace(outcome, timings=timings)


@contextmanager
def _timed(timings: dict[str, float], step: str) -> Iterator[None]:
    began = time.perf_counter()
    try:
        yield
    finally:
        timings[step] = time.perf_counter() - began


def _read(file: Path, settings: Settings, rules: ValidationRules) -> tuple[Sheet, str]:
    """The sheet, and the SHA-256 of the bytes its rows came from."""
    from ..sheet import file_sha256, read_sheet

    # Hashed on both sides of the read, so the SHA-256 the evidence gives is that of the bytes
    # the rows came from: a file being saved meanwhile (Excel on a share) is refused, not mixed.
    input_sha256 = file_sha256(file)
    sheet = read_sheet(
        file, settings.sheet, is_header_row=rules.is_header_row, max_rows=settings.max_rows
    )
    if file_sha256(file) != input_sha256:
        raise InputError(
            f"{file.name}: the file changed while it was being read.",
            tip="wait until it has been saved (and closed in Excel), then run again.",
        )
    return sheet, input_sha256


def _plan(sheet: Sheet, rules: ValidationRules, request: RunRequest, console: Console) -> Plan:
    """Every row judged; the notices and the problems said."""
    from ..validate import plan_rows, sheet_location

    plan = plan_rows(sheet, rules)
    if request.exact is not None:
        exact = request.exact
        plan.rows = [_restoring(sheet, row, exact.get(row.row_number)) for row in plan.rows]
    if not plan.rows:
        raise InputError(
            f"{sheet_location(sheet)}: nothing to send: no rows under the header (row "
            f"{sheet.header_row}).",
            tip="add the ticket changes below the header row, or check that this is the right "
            "file and sheet (--sheet).",
        )
    for notice in [*sheet.notices, *plan.notices]:
        # Hidden rows are a safety warning: shown even on a quiet console.
        (console.warn if "hidden in Excel" in notice else console.note)(f"Note: {notice}")
    invalid = [row for row in plan.rows if not row.blank and not row.is_valid]
    _show_problems(sheet, invalid, console)
    return plan


def _run_info(
    request: RunRequest,
    settings: Settings,
    sheet: Sheet,
    plan: Plan,
    input_sha256: str,
    started: datetime,
) -> RunInfo:
    rolls_back = (
        [
            f"{ROLLS_BACK} {request.rolls_back}: each ticket is given the values it held before "
            "that run updated it, exactly as its journal captured them."
        ]
        if request.rolls_back
        else []
    )
    return RunInfo(
        input_path=str(request.file.resolve()),
        input_sha256=input_sha256,
        sheet_name=sheet.sheet_name,
        tool_version=__version__,
        operator=_operator(),
        started=started,
        rate=settings.rate,
        concurrency=settings.concurrency,
        dry_run=request.dry_run,
        simulated=request.simulate,
        notes=(*rolls_back, *plan.notices),  # the sheet's own notices come from sheet.notices
        capture_before=settings.capture_before and not request.dry_run,
        verify=settings.verify and not request.dry_run,
        settings=settings.describe(),
        python_version=platform.python_version(),
        plan=request.plan,
    )


def _check_approval_rule(request: RunRequest, settings: Settings, plan: Plan) -> None:
    """plan.require_approval: a live change is an approved plan's apply (a resume or retry is
    checked against the run it continues; the simulator is not live); an apply's rows are the
    plan's rows, and its changes theirs."""
    from ..errors import ConfigError
    from ..plans import check_against_rows, plan_of_record, record_text
    from .planning import rows_sha256

    if request.plan is not None:
        document = request.plan.get("document")
        made = document.get("input") if isinstance(document, Mapping) else None
        wanted = made.get("rows_sha256") if isinstance(made, Mapping) else None
        if wanted != rows_sha256(plan.rows):
            raise InputError(
                f"{request.file.name} is read into other rows than when "
                f"{record_text(request.plan, 'file')} was made (the same file, read with other "
                "settings: columns, priorities or the sheet). Nothing was sent.",
                tip="Apply with the configuration the plan was made with, or make a new plan.",
            )
        check_against_rows(
            plan_of_record(request.plan), {r.row_number: r.update for r in plan.rows}
        )
        return
    if settings.require_approval and not (request.resume or request.retry_of or request.simulate):
        what = f"a rollback of run {request.rolls_back}" if request.rolls_back else "a live run"
        raise ConfigError(
            f"plan.require_approval is on: {what} must go through plan and approve. Nothing "
            "was sent.",
            tip=f"batch-update plan {_quoted(request.file)}, then batch-update approve PLAN (a "
            "second CCS account), then batch-update apply PLAN.",
        )


def _send_sheet(
    request: RunRequest,
    settings: Settings,
    console: Console,
    sheet: Sheet,
    plan: Plan,
    info: RunInfo,
    decided: dict[int, RowResult],
) -> Recorded | RunOutcome:
    """The earlier runs consulted, the valid rows sent, and each row's result as journaled."""
    folder = _journal_folder(request.file, settings=settings)
    valid = [row for row in plan.rows if row.is_valid]
    batch, info = _follow_earlier_run(
        folder,
        request,
        info,
        valid,
        console,
        server_url=None if request.simulate else settings.url,
    )
    decided.update(batch.carried)

    def start_journal(facts: RunInfo) -> tuple[Journal, RunInfo]:
        rows: list[PlannedRow | RowResult] = [
            *batch.send,
            *(decided[row.row_number] for row in plan.rows if row.row_number in decided),
        ]
        return _create_journal(folder, facts, rows, sheet, batch)

    checks = [row for row in valid if row.row_number in batch.verify_carried]
    prepared = Prepared(start_journal, batch, sheet_facts(sheet))
    try:
        sent = send_rows([*batch.send, *checks], settings, info, prepared, request, console)
    except (AuthError, ServerUnreachable) as error:
        # The login failed: no request for a ticket was made, so there is no run to report.
        return RunOutcome(
            ExitStatus.STOPPED,
            sheet,
            error=error,
            warnings=[
                f"The run stopped early: {error.message.rstrip('.')}.",
                "Nothing was sent; no results workbook was written.",
            ],
        )
    decided.update(sent.results)
    results = [decided[row.row_number] for row in plan.rows]
    return _as_journaled(results, sent, folder)


def _as_journaled(results: list[RowResult], sent: Sent, folder: Path) -> Recorded:
    """One record: the workbook is written from the journal, as `batch-update report` writes
    it, so that the two cannot disagree; what the send loop returned is checked against it.
    (When the journal could not be written, they differ where it could not: those rows are
    what the journal holds, Unknown, and a resume reads them back.)"""
    journal = sent.journal
    recorded = journal.results(include_pending=True)  # read once: thousands of rows
    disagreements = [] if sent.record_failed else _reconcile(recorded, results)
    return Recorded(
        sent.info,
        [recorded.get(r.row_number) or r for r in results],
        journal=journal,
        folder=folder,
        record_failed=sent.record_failed,
        stopped=sent.stopped,
        interrupted=sent.interrupted,
        disagreements=disagreements,
    )


def planned_results(plan_rows: Sequence[PlannedRow], dry_run: bool) -> Iterator[RowResult]:
    """The results that validation alone decides: Invalid, Skipped, and Valid in a dry run."""
    for row in plan_rows:
        if row.blank:
            yield RowResult(row.row_number, Outcome.SKIPPED, message="blank row")
        elif not row.is_valid:
            yield RowResult(
                row.row_number,
                Outcome.INVALID,
                ticket_number=row.ticket_number or "",
                message="; ".join(str(p) for p in row.problems),
            )
        elif dry_run:
            yield RowResult(
                row.row_number,
                Outcome.VALID,
                ticket_number=row.ticket_number,
                message="would be sent",
                request_json=row.update.to_json_text() if row.update else None,
            )


def _reconcile(recorded: Mapping[int, RowResult], results: Sequence[RowResult]) -> list[str]:
    """Rows on which the send loop's results and the journal's (recorded, by row number)
    disagree: outcome or HTTP status."""
    disagreements = []
    for result in results:
        entry = recorded.get(result.row_number)
        if entry is None:
            disagreements.append(f"row {result.row_number} is missing from the journal")
        elif (entry.outcome, entry.status) != (result.outcome, result.status):
            disagreements.append(
                f"row {result.row_number}: send loop {result.outcome.value} {result.status or ''}, "
                f"journal {entry.outcome.value} {entry.status or ''}".replace("  ", " ")
            )
    extra = set(recorded) - {r.row_number for r in results}
    disagreements += [f"row {n} is in the journal only" for n in sorted(extra)]
    return disagreements


def _show_problems(sheet: Sheet, invalid: Sequence[PlannedRow], console: Console) -> None:
    from ..validate import format_problem

    shown = 0
    for row in invalid:
        for problem in row.problems:
            if shown < MAX_PROBLEMS_SHOWN:
                console.warn(format_problem(sheet, row.row_number, problem))
            shown += 1
    if shown > MAX_PROBLEMS_SHOWN:
        console.warn(
            f"... and {shown - MAX_PROBLEMS_SHOWN:,} more problems; the results workbook lists every one."
        )
    if invalid:
        console.note(
            f"{len(invalid):,} row{'s' if len(invalid) != 1 else ''} will not be sent (Invalid)."
        )


def _restoring(sheet: Sheet, planned: PlannedRow, restoring: RollbackRow | None) -> PlannedRow:
    """The rollback workbook's row as sent: the journal's captured values, or why not."""
    from ..tickets import Problem
    from ..validate import sheet_location

    if restoring is None:
        raise InputError(
            f"{sheet_location(sheet)}, row {planned.row_number}: not a row of the rollback."
        )
    update = restoring.update
    if update is None:
        return PlannedRow(
            planned.row_number,
            problems=(
                Problem(
                    None,
                    "cannot be restored: " + ("; ".join(restoring.notes) or "nothing to put back"),
                ),
            ),
        )
    return PlannedRow(planned.row_number, update=update)
