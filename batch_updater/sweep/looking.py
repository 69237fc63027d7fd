"""The look: what each ticket holds now, read before anything is sent (DESIGN, "The one idea").

A sheet made by `export` re-runs its export's query in pages; a hand-made sheet is read in pages
too when that is cheaper (the tickets the account sees, page by page, until every ticket of the
sheet has been seen or the pages would cost more than one read per ticket). A ticket the pages
did not give is read (GET) right before its PATCH. The sender then decides row by row: Unchanged,
Conflict, or only the fields that differ sent (`changes.decide`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..changes import Verdict
from ..exported import AS_EXPORTED_COLUMNS
from ..tickets import Field, PlannedRow, PriorityFormat, Sheet, count_text, ticket_field
from .common import log

if TYPE_CHECKING:
    from ..ccs import CcsClient
    from ..plans import PlanRow
    from ..runner import CurrentState
    from ..runner.pages import PageRead, PageReader
    from ..settings import Settings
    from .console import Console

# Below this many rows, a hand-made sheet's tickets are read one by one: a page costs as much.
PAGES_FROM_ROWS = 2
# A hand-made sheet is read in pages only while the pages cost no more than a quarter of the
# reads one by one: the rest of the tickets are read with a GET each.
PAGES_PER_ROW = 0.25


def pages_budget(rows: int) -> int:
    """How many pages of every ticket are worth reading for this many rows of a hand-made sheet."""
    return max(1, int(rows * PAGES_PER_ROW))


@dataclass(frozen=True)
class SheetFacts:
    """What the sheet says of its tickets as they were when it was made (by `export`)."""

    exported: Mapping[int, Mapping[Field, object]] = field(default_factory=dict)
    query: tuple[tuple[str, str], ...] | None = None  # the export's Search, if it is known
    export_server: str = ""  # the server the export read ("" when simulated, or not known)
    exported_at: str = ""

    @property
    def from_export(self) -> bool:
        return bool(self.exported) or self.query is not None


def sheet_facts(sheet: Sheet) -> SheetFacts:
    """The "as exported" values of every row, and the export's query, from the sheet itself."""
    from ..validate import normalize_header

    columns = {normalize_header(header): index for index, header in enumerate(sheet.headers)}
    positions = {
        fld: columns[normalize_header(header)]
        for fld, header in AS_EXPORTED_COLUMNS
        if normalize_header(header) in columns
    }
    exported: dict[int, Mapping[Field, object]] = {}
    for row in sheet.rows if positions else ():
        values = {
            fld: row.values[index] if index < len(row.values) else None
            for fld, index in positions.items()
        }
        # A real ticket always has a state: a row without an Exported State was added to the
        # sheet by hand (its hidden cells are all empty), and is decided like a hand-made row,
        # with no conflict check. An empty Exported Priority, Assigned To or Description is
        # what the ticket held ("" is a real exported value).
        state = values.get(Field.TICKET_STATE, "-")
        if state is None or (isinstance(state, str) and not state.strip()):
            continue
        exported[row.row_number] = values
    items = dict(sheet.export_items)
    return SheetFacts(
        exported,
        _query(items.get("Query (JSON)")),
        # A simulated export's server is gone with it: no server to compare a run's with.
        "" if items.get("Server", "").endswith(" (simulated)") else items.get("Server", ""),
        items.get("Exported at (ISO 8601)", ""),
    )


def _query(text: str | None) -> tuple[tuple[str, str], ...] | None:
    if text is None:
        return None
    try:
        pairs = json.loads(text)
    except ValueError:
        return None
    if not isinstance(pairs, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair)
        for pair in pairs
    ):
        return None
    return tuple((name, value) for name, value in pairs)


@dataclass(frozen=True)
class Looked:
    """What the look found: the sender's CurrentState, and what it cost, in words."""

    current: CurrentState
    how: str  # how the current state was read, for the Summary and the terminal
    to_send: int  # rows that may be sent: known to change, or to be read first
    unchanged: int = 0  # rows whose ticket was read in pages and holds their values
    conflicts: int = 0
    requests: int = 0  # Search requests the pages took


def look(
    client: CcsClient,
    settings: Settings,
    rows: Sequence[PlannedRow],
    facts: SheetFacts,
    console: Console,
    *,
    overwrite_conflicts: bool = False,
    planned: Mapping[int, PlanRow] | None = None,
    read_back: Collection[int] = (),
) -> Looked:
    """Read what the rows' tickets hold now, in pages where that is cheaper than one GET each.

    planned: the rows of the plan a run applies, which decide each row instead (see
    `plans.decide_planned`). read_back: rows an earlier run may have applied (a resume reads
    them back before deciding): not counted as Unchanged or Conflict here, but as to be sent."""
    from ..runner import CurrentState

    numbers = {row.ticket_number.strip().upper(): row.row_number for row in rows}
    read = _pages(client, settings, rows, facts, console)
    if read is not None and read.stopped:
        raise KeyboardInterrupt  # Ctrl-C while reading: nothing was sent
    known: dict[int, Mapping[str, object]] = {}
    if read is not None and not read.failure:
        for ticket in read.tickets:
            number = str(ticket_field(ticket, "TicketNumber")[1] or "").strip().upper()
            if number in numbers:
                known[numbers[number]] = ticket
    look_first = frozenset(row.row_number for row in rows if row.row_number not in known)
    integer = str(settings.priority_format) == PriorityFormat.INTEGER.value
    priorities = tuple(settings.priorities) if integer else ()
    current = CurrentState(
        known, look_first, facts.exported, overwrite_conflicts, priorities, planned=planned
    )
    decided = [row for row in rows if row.row_number in known and row.row_number not in read_back]
    verdicts = [
        current.decide(row.row_number, row.update, known[row.row_number]).verdict
        for row in decided
        if row.update is not None
    ]
    changing = sum(1 for verdict in verdicts if verdict is Verdict.CHANGE)
    changing += sum(1 for row in rows if row.row_number in known and row.row_number in read_back)
    return Looked(
        current,
        _how(read, facts, len(known), len(look_first)),
        changing + len(look_first),
        sum(1 for verdict in verdicts if verdict is Verdict.UNCHANGED),
        sum(1 for verdict in verdicts if verdict is Verdict.CONFLICT),
        read.requests if read is not None else 0,
    )


def _pages(
    client: CcsClient,
    settings: Settings,
    rows: Sequence[PlannedRow],
    facts: SheetFacts,
    console: Console,
) -> PageRead | None:
    """The tickets read in pages: the export's query, or every ticket while it is cheaper."""
    if facts.query is None and len(rows) < PAGES_FROM_ROWS:
        return None
    with console.sending() as stops:
        reader = page_reader(client, settings, stops.cancel, console)
        if facts.query is not None:
            read = reader.read(facts.query)
        else:
            budget = pages_budget(len(rows))
            wanted = [row.ticket_number for row in rows]
            read = reader.read((), wanted=wanted, max_pages=budget)
    for note in read.notes:
        log.info("current state: %s", note)
    if read.failure:
        log.info("current state: the pages failed: %s", read.failure)
    return read


def page_reader(
    client: CcsClient, settings: Settings, halt: threading.Event, console: Console
) -> PageReader:
    """A reader of tickets (pages, or one GET) through a limiter at the configured rate and the
    retry step every request shares; each retry said on the console."""
    from ..pacing import RateLimiter
    from ..runner.pages import PageReader
    from .sending import retry_policy

    def tell(reason: str, delay: float) -> None:
        console.note(f"Retrying the read of {reason}, in {delay:.1f} s.")

    return PageReader(
        client, RateLimiter(settings.rate), retry_policy(settings), halt=halt, tell=tell
    )


def _how(read: PageRead | None, facts: SheetFacts, known: int, one_by_one: int) -> str:
    """How the current state was read, in words, for the Summary and the terminal."""
    singles = (
        f"{count_text(one_by_one, 'ticket')} read one by one (GET), each right before its update"
    )
    if read is None:
        return f"Current state: {singles}"
    if read.failure:
        return (
            f"Current state: the tickets could not be read in pages ({read.failure}), so {singles}"
        )
    query = (
        "the export's query ("
        + (",".join(f"{name}={value}" for name, value in facts.query) or "every ticket")
        + ")"
        if facts.query is not None
        else "every ticket the account sees"
    )
    said = (
        f"Current state: read in pages of {read.page_size} ({query}): "
        f"{count_text(read.requests, 'Search request')}, {count_text(known, 'row')} found"
    )
    return said + (f"; {singles}" if one_by_one else "")
