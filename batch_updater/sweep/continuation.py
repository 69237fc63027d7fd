"""Carrying a run forward (resume, retry): what is sent again, read back or carried."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..journal import Journal, JournalRow, Phase
from ..tickets import (
    Outcome,
    PlannedRow,
    RowResult,
    TicketUpdate,
    update_applied,
)

# -- carrying a run forward (resume, retry) ------------------------------------------------------


@dataclass
class Continuation:
    """What a run that continues an earlier one does with each valid row of the input.

    send: rows to send again; read_back: those of them whose earlier request may have been
    applied without its answer reaching us (caught in flight, or timed out), to be read back
    before any re-send; carried: rows the earlier run already updated, Skipped with the evidence.
    """

    send: list[PlannedRow] = field(default_factory=list)
    read_back: set[int] = field(default_factory=set)
    carried: dict[int, RowResult] = field(default_factory=dict)
    # Before values the earlier run captured for rows it was sending when it died: if the
    # read-back finds the update applied, they are still the ticket's values before it.
    known_before: dict[int, dict[str, object]] = field(default_factory=dict)
    # The request the earlier run sent for such a row (only the fields that differed then).
    known_sent: dict[int, TicketUpdate] = field(default_factory=dict)
    # Rows the earlier run saw refused with HTTP 403 (the account may not change that ticket).
    known_forbidden: set[int] = field(default_factory=set)
    # Carried rows to read back without sending (the continuing run verifies; they were not).
    verify_carried: dict[int, RowResult] = field(default_factory=dict)
    resumed_from: str | None = None  # the run id this run resumes ...
    retry_of: str | None = None  # ... or whose failed rows it retries


def continue_run(previous: Journal, planned: Iterable[PlannedRow]) -> Continuation:
    """Decide, row by row, what a resume or a retry of `previous` sends again.

    Rows the earlier run updated (or carried from a run before it) are not sent again; rows that
    failed, were not sent, or were never reached are; a row whose outcome is unknown is read
    back first. Row numbers are the link, so the input must be the same file (same SHA-256).
    """
    earlier = {row.row_number: row for row in previous.rows()}
    run_id = previous.run_id
    plan = Continuation()
    for row in planned:
        before = earlier.get(row.row_number)
        if before is not None and _already_applied(before):
            plan.carried[row.row_number] = _carried(before, run_id, row)
            continue
        plan.send.append(row)
        if before is not None and before.outcome is Outcome.FAILED and before.status == 403:
            plan.known_forbidden.add(row.row_number)
        if before is not None and (
            before.phase is Phase.SENDING
            or before.outcome is Outcome.UNKNOWN
            or (before.outcome is Outcome.FAILED and before.status is None and before.sent_at)
        ):
            plan.read_back.add(row.row_number)
            if before.before is not None:
                plan.known_before[row.row_number] = before.before
            sent = TicketUpdate.from_json_text(before.request_json or "")
            if sent is not None:
                plan.known_sent[row.row_number] = sent
    return plan


def _already_applied(row: JournalRow) -> bool:
    # Updated, or carried forward from an earlier run of the chain with its 2xx evidence.
    return row.phase is Phase.DONE and update_applied(row.outcome, row.status)


def _carried(before: JournalRow, run_id: str, row: PlannedRow) -> RowResult:
    if before.outcome is Outcome.SKIPPED:
        message = before.message  # already names the run that updated it
    else:
        when = (
            before.sent_at.strftime("%Y-%m-%d %H:%M:%S UTC")
            if before.sent_at
            else "an earlier time"
        )
        message = f"updated in run {run_id} at {when}; not sent again"
    return RowResult(
        row_number=row.row_number,
        outcome=Outcome.SKIPPED,
        ticket_number=row.ticket_number,
        status=before.status,
        message=message,
        attempts=0,
        sent_at=before.sent_at,
        duration_ms=None,
        request_json=before.request_json,
        before=before.before,  # the evidence travels with the row: Before values ...
        verification=before.verified or "",  # ... and how the update was verified
    )
