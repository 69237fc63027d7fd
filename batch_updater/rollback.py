"""What undoes a run: for each update it applied, the ticket's values exactly as they were read.

A run with `--capture-before` keeps, in its journal, each ticket's fields as CCS held them just
before the PATCH. `rollback_rows()` turns the results of such a run into the rows that restore
those values: only the fields the run changed (and Priority, which CCS wants on every update),
each exactly as captured, byte for byte, with no trimming or other clean-up meant for hand-made
input. What cannot be restored says why (an empty field: the API has no way to empty a field,
an absent field means "leave as it is").

The rollback workbook is the readable record of these rows (`report.write_rollback`);
`batch-update rollback RUN` sends them from the journal, so that what is sent is what was there.
Nothing here does I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from .tickets import RowResult, TicketState, TicketUpdate

# The fields a rollback restores, with the rollback workbook's column for each.
ROLLBACK_FIELDS: tuple[tuple[str, str], ...] = (
    ("TicketState", "State"),
    ("Priority", "Priority"),
    ("AssignedTo", "Assigned To"),
    ("TicketDescription", "Description"),
)


@dataclass(frozen=True)
class RollbackRow:
    """One applied update and what restores it: the captured values, and what cannot be."""

    rolls_back_row: int  # the row of the run being rolled back, as Excel showed it
    ticket_number: str
    values: dict[str, object]  # field -> the value captured before the update, exactly
    notes: tuple[str, ...] = ()  # what cannot be restored, and why

    @property
    def update(self) -> TicketUpdate | None:
        """The PATCH that restores the captured values; None when nothing can be restored."""
        if not self.values or "Priority" not in self.values:
            return None
        state = self.values.get("TicketState")
        return TicketUpdate(
            self.ticket_number,
            state=TicketState(int(state)) if state is not None else None,  # type: ignore[call-overload]
            description=_text(self.values.get("TicketDescription")),
            priority=self.values["Priority"],  # type: ignore[arg-type]
            assigned_to=_text(self.values.get("AssignedTo")),
        )

    def cell(self, field_name: str) -> object:
        """The value of a field for the rollback workbook (None: left as it is)."""
        return self.values.get(field_name)


def undoable(result: RowResult) -> bool:
    """The row's update was applied (by this run, or by the run it resumed) and its before
    values were captured: a rollback row can undo it."""
    return result.applied and bool(result.before) and bool(result.request_json)


def rollback_rows(results: Iterable[RowResult]) -> list[RollbackRow]:
    """For each applied update with captured before values, the row that undoes it."""
    rows: list[RollbackRow] = []
    for result in results:
        if not undoable(result) or result.before is None or result.request_json is None:
            continue
        try:
            sent = json.loads(result.request_json)
        except ValueError:
            continue
        values: dict[str, object] = {}
        notes: list[str] = []
        for field_name, header in ROLLBACK_FIELDS:
            if field_name not in sent and field_name != "Priority":
                continue
            held = result.before.get(field_name)
            if held is None or held == "":
                if field_name in sent:
                    notes.append(
                        f"{header} was empty before; an empty cell cannot restore that, so clear "
                        "it in CCS by hand if needed"
                    )
                elif field_name == "Priority":
                    notes.append(
                        "Priority was not in the ticket as read, and CCS requires it on "
                        "every update: this row cannot be sent"
                    )
                continue
            if field_name == "TicketState" and not _is_state(held):
                notes.append(f"State was {held!r} before, which is not a state the API takes")
                continue
            values[field_name] = held
        if not any(name != "Priority" for name in values) and "Priority" not in sent:
            values = {}  # only Priority would be sent, and Priority was not changed
        rows.append(RollbackRow(result.row_number, result.ticket_number, values, tuple(notes)))
    return rows


def _is_state(value: object) -> bool:
    try:
        TicketState(int(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False
    return not isinstance(value, bool) and str(value).strip() == str(int(value))  # type: ignore[call-overload]


def _text(value: object) -> str | None:
    """A text field's captured value as sent: exactly as held (numbers as CCS showed them)."""
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)
