"""What a row changes: from what it asks for, what the ticket holds now and, for a sheet made by
`export`, what the ticket held when the sheet was made (DESIGN, "The one idea").

Nothing here does I/O. A row whose ticket already holds every value it asks for is Unchanged
(nothing sent); a row whose ticket changed in CCS since the export, in a field the row would
otherwise overwrite, is a Conflict (nothing sent unless the user overrides); any other row sends
only the fields that differ, with Priority in every PATCH because the vendor marks it mandatory
(the row's value, or the ticket's current one).

What to send is decided by what the ticket holds (`same_value`), not by what the verification
job makes of a 2: a row asking 2 of a ticket at 3 (Verified) or 4 (Failed) is sent again, which
starts the job again (a re-remediation). That allowance is the read-back's (`compare_ticket`).
A Description or Assigned To the ticket holds with surrounding white space holds the same value
without it (validation trims a row's values): an untouched value is never sent trimmed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum

from .tickets import Field, TicketState, TicketUpdate, same_value, state_number, ticket_field

# The fields a row can change, with the names the workbook and messages use.
FIELD_LABELS: Mapping[Field, str] = {
    Field.TICKET_STATE: "State",
    Field.PRIORITY: "Priority",
    Field.ASSIGNED_TO: "Assigned To",
    Field.TICKET_DESCRIPTION: "Description",
}


class Verdict(Enum):
    CHANGE = "change"
    UNCHANGED = "unchanged"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class Decision:
    """What to do with one row: send `update` (CHANGE), or nothing, and why in words."""

    verdict: Verdict
    update: TicketUpdate | None  # the PATCH to send: only the fields that differ, and Priority
    message: str = ""
    conflicts: tuple[Field, ...] = ()  # the fields changed in CCS since the export


def _wanted(update: TicketUpdate) -> dict[Field, object]:
    values: dict[Field, object] = {}
    if update.state is not None:
        values[Field.TICKET_STATE] = int(update.state)
    if update.priority is not None:
        values[Field.PRIORITY] = update.priority
    if update.assigned_to is not None:
        values[Field.ASSIGNED_TO] = update.assigned_to
    if update.description is not None:
        values[Field.TICKET_DESCRIPTION] = update.description
    return values


def exported_state(value: object) -> int | None:
    """A state as an export wrote it ("Open", or a number), as its number; None if not a state."""
    return state_number(value)


_STATE_LABELS = {int(state): state.label for state in TicketState}


def shown_value(fld: Field, value: object) -> str:
    """A value in a message: a state by its label, text in double quotes as it is (a
    `domain\\user` name keeps its one backslash), a number as it is, nothing as ""."""
    if fld is Field.TICKET_STATE:
        state = exported_state(value)
        if state in _STATE_LABELS:
            return f'"{_STATE_LABELS[state]}"'
    if isinstance(value, str) or value is None:
        return f'"{value or ""}"'
    return json.dumps(value, ensure_ascii=False)


def _exported_value(fld: Field, value: object, priorities: Sequence[str] = ()) -> object:
    if fld is Field.TICKET_STATE:
        state = exported_state(value)
        return state if state is not None else value
    if fld is Field.PRIORITY and priorities:
        return priority_number(value, priorities) or value
    return "" if value is None else value


def decide(
    update: TicketUpdate,
    current: Mapping[str, object],
    exported: Mapping[Field, object] | None = None,
    *,
    overwrite_conflicts: bool = False,
    priorities: Sequence[str] = (),
) -> Decision:
    """The decision for one row from the ticket's current values (as the server gave them).

    `exported`: the row's "as exported" values by field (a sheet made by `export`), or None.
    A field that changed in CCS since the export is a conflict only when the row would change
    it: a field the ticket already holds as the row asks is no conflict, whoever set it.
    `priorities`: the configured names, in order, when Priority is sent as a number
    (`priority_format: integer`): then 2 and the server's "Medium" are the same priority.
    """
    wanted = _wanted(update)
    held = {fld: ticket_field(current, fld.value) for fld in wanted}
    if priorities and Field.PRIORITY in held:
        found, value = held[Field.PRIORITY]
        held[Field.PRIORITY] = (found, priority_number(value, priorities) or value)
    differing = [fld for fld, value in wanted.items() if not _holds(fld, value, held[fld])]
    if not differing:
        return Decision(
            Verdict.UNCHANGED,
            None,
            "the ticket already holds these values; nothing was sent",
        )
    conflicts = tuple(
        fld
        for fld in wanted
        if exported is not None
        and fld in exported
        and not _unchanged_since(fld, _exported_value(fld, exported[fld], priorities), held[fld])
        and not _holds(fld, wanted[fld], held[fld])
    )
    change = _only(update, differing, current)
    if conflicts:
        said = "; ".join(
            f"{FIELD_LABELS[fld]} was {shown_value(fld, exported[fld])} when exported, is now "  # type: ignore[index]
            f"{shown_value(fld, held[fld][1])}"
            for fld in conflicts
        )
        if not overwrite_conflicts:
            return Decision(
                Verdict.CONFLICT,
                None,
                f"changed in CCS since the export: {said}; not sent "
                "(--overwrite-conflicts sends it anyway)",
                conflicts,
            )
        return Decision(
            Verdict.CHANGE,
            change,
            f"sent over a change made in CCS since the export (--overwrite-conflicts): {said}",
            conflicts,
        )
    return Decision(Verdict.CHANGE, change)


# The fields whose surrounding white space is not a difference (validation trims a row's).
_TRIMMED = frozenset({Field.TICKET_DESCRIPTION, Field.ASSIGNED_TO})


def priority_number(value: object, priorities: Sequence[str]) -> int | None:
    """The position (from 1) of a priority name in the configured list, in any case; None."""
    text = str(value).strip().casefold() if isinstance(value, str) else None
    for position, name in enumerate(priorities, start=1):
        if text == name.strip().casefold():
            return position
    return None


def _holds(fld: Field, value: object, held: tuple[bool, object]) -> bool:
    """Whether the ticket holds the value a row asks for: `same_value`, or for a Description or
    Assigned To the same text once the ticket's surrounding white space is stripped (the row's
    value was trimmed by validation; one a rollback sends with its white space must match it)."""
    return _matches(fld, value, held, both_trimmed=False)


def _unchanged_since(fld: Field, exported: object, held: tuple[bool, object]) -> bool:
    """Whether the ticket holds what it held when exported: `same_value`, or for a Description
    or Assigned To the same text once both sides' surrounding white space is stripped."""
    return _matches(fld, exported, held, both_trimmed=True)


def _matches(fld: Field, value: object, held: tuple[bool, object], *, both_trimmed: bool) -> bool:
    found, held_value = held
    if not found:
        return False
    if same_value(fld.value, value, held_value):
        return True
    if fld not in _TRIMMED or not isinstance(value, str):
        return False
    if both_trimmed:  # an exported empty cell is None on the server's side too
        held_value = "" if held_value is None else held_value
        value = value.strip()
    return isinstance(held_value, str) and held_value.strip() == value


def _only(
    update: TicketUpdate, differing: list[Field], current: Mapping[str, object]
) -> TicketUpdate:
    """The update with only the differing fields, and Priority (the row's, else the ticket's)."""
    priority = update.priority
    if priority is None:
        found, held = ticket_field(current, Field.PRIORITY.value)
        priority = held if found and isinstance(held, (str, int)) and held != "" else None
    return replace(
        update,
        state=update.state if Field.TICKET_STATE in differing else None,
        description=update.description if Field.TICKET_DESCRIPTION in differing else None,
        assigned_to=update.assigned_to if Field.ASSIGNED_TO in differing else None,
        priority=priority,
    )
