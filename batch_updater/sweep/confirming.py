"""The read-back of --verify in pages, once every row is sent (DESIGN, data flow: "confirm").

The rows whose tickets were read in pages before sending are read back the same way: the same
query, and the queries the changed tickets match now (a ticket whose state moved from 1 to 2
has left an export of the open tickets; state 2 may have moved on to 3 or 4, the verification
job's doing). A ticket none of the pages holds is read with a GET. Each updated row gets its
Verification from what was read, and the journal records it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..errors import BatchUpdateError
from ..tickets import (
    Field,
    Outcome,
    RowResult,
    TicketState,
    TicketUpdate,
    count_text,
    ticket_field,
)
from .common import log

if TYPE_CHECKING:
    from ..ccs import CcsClient, Reply
    from ..journal import Journal
    from ..runner import CurrentState, SendReport
    from ..runner.pages import PageReader
    from ..settings import Settings
    from .console import Console
    from .looking import SheetFacts

_FIELD_OF_UPDATE = {
    Field.TICKET_STATE.value: "state",
    Field.PRIORITY.value: "priority",
    Field.ASSIGNED_TO.value: "assigned_to",
    Field.TICKET_DESCRIPTION.value: "description",
}


def queries_after(
    base: tuple[tuple[str, str], ...], updates: Sequence[TicketUpdate]
) -> list[tuple[tuple[str, str], ...]]:
    """The queries the updated tickets match now: the base query with each filtered field the
    update changed set to its new value (and state 2 also as 3 and 4), the base query first."""
    queries = [base]
    for update in updates:
        variants = [base]
        for name, _value in base:
            attribute = _FIELD_OF_UPDATE.get(name)
            sent = getattr(update, attribute) if attribute else None
            if sent is None:
                continue
            values = [str(int(sent)) if name == Field.TICKET_STATE.value else str(sent)]
            if name == Field.TICKET_STATE.value and sent == TicketState.REMEDIATION_PERFORMED:
                values += [str(int(TicketState.VERIFIED)), str(int(TicketState.FAILED))]
            variants = [
                tuple((n, new if n == name else v) for n, v in variant)
                for variant in variants
                for new in values
            ]
        queries += [variant for variant in variants if variant not in queries]
    return queries


@dataclass(frozen=True)
class ReadBack:
    """What the read-back left: each row's result (the updated rows with their Verification),
    how it went in words, whether the user stopped it (Ctrl-C), and why the journal could not
    record it, if it could not."""

    results: dict[int, RowResult]
    said: str = ""
    interrupted: bool = False
    record_failed: str = ""


def verify_in_pages(
    client: CcsClient,
    settings: Settings,
    report: SendReport,
    current: CurrentState,
    facts: SheetFacts,
    journal: Journal,
    console: Console,
) -> ReadBack:
    """The updated rows read back in pages (a GET for any the pages miss), their Verification
    recorded; the results, and how the read-back went in words. A run that was stopped (Ctrl-C,
    the stop policy) reads nothing: each updated row says it was not checked.

    Every row was sent by now: nothing here may lose the run. A read-back that fails (the token
    refused, the server gone) leaves the rows it did not check Not checked, and says why; a
    journal that cannot take a Verification is `record_failed`; a Ctrl-C during it makes the
    run interrupted."""
    from ..pacing import RateLimiter
    from ..runner.pages import PageReader
    from .looking import pages_budget
    from .sending import retry_policy

    results, stopped = report.results, report.stopped
    sent = _updated_in_pages(results, current)
    if not sent:
        return ReadBack(dict(results))
    if facts.query is not None:
        reading = _Reading(queries_after(facts.query, list(sent.values())), None)
    else:  # every ticket the account sees (a hand-made sheet): no more pages than the look read
        reading = _Reading([()], pages_budget(len(current.known)))
    with console.sending() as stops:
        if stopped:
            stops.cancel.set()
        reader = PageReader(
            client, RateLimiter(settings.rate), retry_policy(settings), halt=stops.cancel
        )
        try:
            _read_back(reader, sent, reading)
        except BatchUpdateError as error:  # AuthError, ServerUnreachable: the rows are sent
            reading.failed = error.message.rstrip(".")
            log.warning("the read-back failed: %s", reading.failed)
            console.warn(
                f"Note: the read-back failed: {reading.failed}. Every row was sent; the updated "
                "rows it did not check are Not checked."
            )
        # Set by the console (a Ctrl-C) during the read-back, not by a run stopped before it.
        interrupted = stops.cancel.is_set() and not stopped
    checked, record_failed = _record(results, sent, reading, journal)
    said = _said(sent, reading, stopped=stopped, interrupted=interrupted)
    if record_failed:
        said += f" The journal could not record the verifications: {record_failed}."
    return ReadBack(checked, said, interrupted, record_failed)


@dataclass
class _Reading:
    """The read-back as it goes: the queries, what each updated row's ticket holds now."""

    queries: list[tuple[tuple[str, str], ...]]
    budget: int | None  # pages of a query at most (None: every page)
    held: dict[int, Mapping[str, object] | Reply] = field(default_factory=dict)
    requests: int = 0
    singles: list[int] = field(default_factory=list)  # rows read one by one (GET)
    failed: str = ""  # why the read-back could not go on, if it could not


def _updated_in_pages(
    results: Mapping[int, RowResult], current: CurrentState
) -> dict[int, TicketUpdate]:
    """The rows updated whose ticket was read in pages, with the request each one sent."""
    sent: dict[int, TicketUpdate] = {}
    for number, result in results.items():
        if result.outcome is Outcome.UPDATED and number in current.known and result.request_json:
            update = TicketUpdate.from_json_text(result.request_json)
            if update is not None:
                sent[number] = update
    return sent


def _read_back(reader: PageReader, sent: Mapping[int, TicketUpdate], reading: _Reading) -> None:
    """Each query in pages until every updated ticket is found; the rest one by one (GET)."""
    by_ticket = {update.ticket_number.strip().upper(): row for row, update in sent.items()}
    for query in reading.queries:
        missing = [n for n, row in by_ticket.items() if row not in reading.held]
        if reader.halt.is_set() or not missing:
            break
        read = reader.read(query, wanted=missing, max_pages=reading.budget)
        reading.requests += read.requests
        for ticket in read.tickets:
            key = str(ticket_field(ticket, "TicketNumber")[1] or "").strip().upper()
            if key in by_ticket and by_ticket[key] not in reading.held:
                reading.held[by_ticket[key]] = ticket
    reading.singles = [row for row in sent if row not in reading.held and not reader.halt.is_set()]
    for row in reading.singles:
        one = reader.read_one(sent[row].ticket_number)
        reading.requests += 1
        if one is not None:
            reading.held[row] = one


def _record(
    results: Mapping[int, RowResult],
    sent: Mapping[int, TicketUpdate],
    reading: _Reading,
    journal: Journal,
) -> tuple[dict[int, RowResult], str]:
    """Each updated row with its Verification, recorded in the journal; the results, and why
    the journal could not take them, if it could not."""
    from ..runner.policy import _verification

    checked = dict(results)
    record_failed = ""
    for row, update in sent.items():
        found = reading.held.get(row)
        if found is None and reading.failed:
            verification = f"Not checked: the read-back failed: {reading.failed}"
        else:
            verification = _verification(
                update, dict(found) if isinstance(found, Mapping) else found
            )
        checked[row] = replace(results[row], verification=verification)
        try:
            journal.record(checked[row], verified=verification)
        except BatchUpdateError as error:  # a full disk: the workbook still says it all
            log.warning("row %d: the verification could not be recorded: %s", row, error)
            record_failed = record_failed or error.message.rstrip(".")
    return checked, record_failed


def _said(
    sent: Mapping[int, TicketUpdate], reading: _Reading, *, stopped: bool, interrupted: bool
) -> str:
    """How the read-back went, in words, for the run's notes."""
    read_back = sum(1 for row in sent if isinstance(reading.held.get(row), Mapping))
    of = f"{read_back:,} of {count_text(len(sent), 'updated ticket')}"
    requests = count_text(reading.requests, "request")
    if stopped:
        return "Read-back: not done, the run stopped first."
    if reading.failed:
        return (
            f"Read-back: not done: {reading.failed}; {of} read back before it failed "
            f"({requests}); the others are Not checked."
        )
    if interrupted:
        return f"Read-back: stopped (Ctrl-C) after {of} read back ({requests}); the others are Not checked."
    singles = f"; {len(reading.singles):,} of them one by one" if reading.singles else ""
    return (
        f"Read-back: {count_text(len(sent), 'updated ticket')} read back in pages "
        f"({requests}{singles})."
    )
