"""Two runs compared, ticket by ticket: what failed again, what is newly failing, what now
succeeds, what left the scope or is new, and what someone changed in CCS since our last write.

Nothing here does I/O: the runs' rows come from their journals, the tickets' current values
from the caller (`sweep.comparing`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from .tickets import Outcome, RowResult, TicketUpdate, compare_ticket, quoted_value

# The outcomes that need a look (the ones that make a run's exit status 1).
FAILING = frozenset({Outcome.FAILED, Outcome.UNKNOWN, Outcome.INVALID, Outcome.CONFLICT})
# The outcomes of a ticket that holds what the run asked for.
SUCCEEDING = frozenset({Outcome.UPDATED, Outcome.UNCHANGED, Outcome.SKIPPED})


class Category(str, Enum):
    """Where a ticket stands between run A (the baseline) and run B."""

    FAILED_AGAIN = "Failed again"
    NEWLY_FAILED = "Newly failed"
    NOW_SUCCEEDING = "Now succeeding"
    NOT_REACHED = "Not reached in B"
    SAME = "Unchanged outcome"
    CHANGED_IN_CCS = "Changed in CCS"
    LEFT_SCOPE = "Left the scope"
    NEW = "New in B"

    def __str__(self) -> str:
        return self.value


CATEGORY_MEANINGS: Mapping[Category, str] = {
    Category.FAILED_AGAIN: "failed (Failed, Unknown, Invalid or Conflict) in both runs; "
    "'Runs in a row' counts the runs of this input, up to B, in which it failed",
    Category.NEWLY_FAILED: "failed in B, not in A",
    Category.NOW_SUCCEEDING: "failed in A; in B it was updated, already held its values, or "
    "was carried as done",
    Category.NOT_REACHED: "B stopped before sending it (Not sent); A's outcome is shown",
    Category.SAME: "failed in neither run, and B reached it (each run's outcome is shown: "
    "Updated in A and Unchanged in B is a change that held; Valid is a dry run's)",
    Category.CHANGED_IN_CCS: "the ticket holds something else now than what our last write "
    "sent (read from CCS as this comparison ran; the verification job's 2 -> 3 or 4 is not "
    "a change); a ticket here is also in one of the other sheets",
    Category.LEFT_SCOPE: "in A's sheet, not in B's",
    Category.NEW: "in B's sheet, not in A's",
}


def ticket_key(number: str) -> str:
    return number.strip().upper()


def by_ticket(results: Iterable[RowResult]) -> dict[str, RowResult]:
    """A run's rows by ticket number (a row without one cannot be compared). A ticket on two
    rows (refused as duplicates) is kept by its first row."""
    keyed: dict[str, RowResult] = {}
    for result in sorted(results, key=lambda r: r.row_number):
        key = ticket_key(result.ticket_number or "")
        if key and key not in keyed:
            keyed[key] = result
    return keyed


@dataclass(frozen=True)
class Compared:
    """One ticket in the comparison: its rows in both runs and where it stands."""

    ticket: str
    category: Category
    a: RowResult | None
    b: RowResult | None
    in_a_row: int = 0  # Failed again: how many runs in a row (up to B) it failed in
    written: str = ""  # Changed in CCS: what our last write sent, field by field
    now: str = ""  # ... and what differs now


@dataclass
class Comparison:
    """Every ticket of both runs, each in its category (Changed in CCS in addition)."""

    tickets: list[Compared] = field(default_factory=list)
    changed: list[Compared] = field(default_factory=list)
    not_keyed: int = 0  # rows without a ticket number (blank or invalid), in either run

    def of(self, category: Category) -> list[Compared]:
        if category is Category.CHANGED_IN_CCS:
            return self.changed
        return [item for item in self.tickets if item.category is category]

    def counts(self) -> dict[Category, int]:
        return {category: len(self.of(category)) for category in Category}


def _category(a: RowResult | None, b: RowResult | None) -> Category:
    if b is None:
        return Category.LEFT_SCOPE
    if a is None:
        return Category.NEW
    failed_a, failed_b = a.outcome in FAILING, b.outcome in FAILING
    if failed_a and failed_b:
        return Category.FAILED_AGAIN
    if failed_b:
        return Category.NEWLY_FAILED
    if b.outcome is Outcome.NOT_SENT:
        return Category.NOT_REACHED
    if failed_a and b.outcome in SUCCEEDING:
        return Category.NOW_SUCCEEDING
    return Category.SAME


def compare(
    a: Sequence[RowResult],
    b: Sequence[RowResult],
    earlier: Sequence[Mapping[str, RowResult]] = (),
) -> Comparison:
    """Sort every ticket of A and B into its category.

    earlier: the rows by ticket of the sweeps of the same input before B (one run a sweep, the
    newest of each; A's among them), newest first: how many runs in a row a ticket failed in, B
    and those before it, goes back through them.
    """
    rows_a, rows_b = by_ticket(a), by_ticket(b)
    comparison = Comparison(not_keyed=_unkeyed(a) + _unkeyed(b))
    for key in sorted(set(rows_a) | set(rows_b)):
        row_a, row_b = rows_a.get(key), rows_b.get(key)
        category = _category(row_a, row_b)
        streak = 0
        if category is Category.FAILED_AGAIN:
            streak = 1
            for run in earlier:
                if run.get(key) is None or run[key].outcome not in FAILING:
                    break
                streak += 1
        shown = (row_b or row_a).ticket_number  # type: ignore[union-attr]
        comparison.tickets.append(Compared(shown, category, row_a, row_b, streak))
    return comparison


def _unkeyed(results: Sequence[RowResult]) -> int:
    """Rows that name no ticket and are not blank (a blank row is no row of the sweep)."""
    return sum(
        1 for r in results if not ticket_key(r.ticket_number or "") and r.message != "blank row"
    )


def last_write(item: Compared) -> TicketUpdate | None:
    """What our last write to the ticket sent: B's update, else A's (a ticket B left as it
    was, or did not hold)."""
    for row in (item.b, item.a):
        if row is not None and row.outcome in (Outcome.UPDATED, Outcome.SKIPPED) and row.status:
            update = TicketUpdate.from_json_text(row.request_json or "")
            if update is not None and 200 <= row.status < 300:
                return update
    return None


def changed_since(
    comparison: Comparison, current: Mapping[str, Mapping[str, object]]
) -> list[Compared]:
    """The tickets whose values now (by ticket number) differ from our last write to them."""
    changed = []
    for item in comparison.tickets:
        update = last_write(item)
        held = current.get(ticket_key(item.ticket))
        if update is None or held is None:
            continue
        differences = compare_ticket(update, dict(held))
        if differences:
            changed.append(
                Compared(
                    item.ticket,
                    Category.CHANGED_IN_CCS,
                    item.a,
                    item.b,
                    written="; ".join(
                        f"{name} {quoted_value(value)}"
                        for name, value in update.to_json().items()
                        if name != "TicketNumber"
                    ),
                    now="; ".join(differences),
                )
            )
    comparison.changed = changed
    return changed


def written_tickets(comparison: Comparison) -> list[str]:
    """The tickets our last write can be compared with now (the ones to read)."""
    return [item.ticket for item in comparison.tickets if last_write(item) is not None]
