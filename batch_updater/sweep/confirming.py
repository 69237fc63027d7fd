"""The read-back of --verify in pages, once every row is sent (DESIGN, data flow: "confirm").

The rows whose tickets were read in pages before sending are read back the same way: the same
query, and the queries the changed tickets match now (a ticket whose state moved from 1 to 2
has left an export of the open tickets; state 2 may have moved on to 3 or 4, the verification
job's doing). A ticket none of the pages holds is read with a GET. Each updated row gets its
Verification from what was read, and the journal records it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from ..tickets import (
    Field,
    Outcome,
    RowResult,
    TicketState,
    TicketUpdate,
    count_text,
    ticket_field,
)

if TYPE_CHECKING:
    from ..ccs import CcsClient, Reply
    from ..journal import Journal
    from ..runner import CurrentState, SendReport
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


def verify_in_pages(
    client: CcsClient,
    settings: Settings,
    report: SendReport,
    current: CurrentState,
    facts: SheetFacts,
    journal: Journal,
    console: Console,
) -> tuple[dict[int, RowResult], str]:
    """The updated rows read back in pages (a GET for any the pages miss), their Verification
    recorded; the results, and how the read-back went in words. A run that was stopped (Ctrl-C,
    the stop policy) reads nothing: each updated row says it was not checked."""
    from ..pacing import RateLimiter
    from ..runner.pages import PageReader
    from ..runner.policy import _verification
    from .looking import pages_budget
    from .sending import retry_policy

    results, stopped = report.results, report.stopped
    sent: dict[int, TicketUpdate] = {}
    for number, result in results.items():
        if result.outcome is Outcome.UPDATED and number in current.known and result.request_json:
            update = TicketUpdate.from_json_text(result.request_json)
            if update is not None:
                sent[number] = update
    if not sent:
        return dict(results), ""
    by_ticket = {update.ticket_number.strip().upper(): row for row, update in sent.items()}
    held: dict[int, Mapping[str, object] | Reply] = {}
    requests = 0
    singles: list[int] = []
    with console.sending() as stops:
        if stopped:
            stops.cancel.set()
        reader = PageReader(
            client, RateLimiter(settings.rate), retry_policy(settings), halt=stops.cancel
        )
        if facts.query is not None:
            queries = queries_after(facts.query, list(sent.values()))
        else:
            queries = [()]
        for query in queries:
            if stops.cancel.is_set():
                break
            missing = [n for n, row in by_ticket.items() if row not in held]
            if not missing:
                break
            # Every ticket the account sees (a hand-made sheet): no more pages than the look read.
            budget = None if facts.query is not None else pages_budget(len(current.known))
            read = reader.read(query, wanted=missing, max_pages=budget)
            requests += read.requests
            for ticket in read.tickets:
                key = str(ticket_field(ticket, "TicketNumber")[1] or "").strip().upper()
                if key in by_ticket and by_ticket[key] not in held:
                    held[by_ticket[key]] = ticket
        singles = [row for row in sent if row not in held and not stops.cancel.is_set()]
        for row in singles:
            one = reader.read_one(sent[row].ticket_number)
            requests += 1
            if one is not None:
                held[row] = one
    checked = dict(results)
    for row, update in sent.items():
        found = held.get(row)
        verification = _verification(update, dict(found) if isinstance(found, Mapping) else found)
        checked[row] = replace(results[row], verification=verification)
        journal.record(checked[row], verified=verification)
    if stopped:
        return checked, "Read-back: not done, the run stopped first."
    how = (
        f"Read-back: {count_text(len(sent), 'updated ticket')} read back in pages "
        f"({count_text(requests, 'request')}"
        + (f"; {len(singles):,} of them one by one" if singles else "")
        + ")."
    )
    return checked, how
