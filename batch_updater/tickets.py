"""The domain types: ticket states, the update to send, row outcomes and the result of a row.

Nothing here does I/O. Every other module speaks in these types, so that the sheet reader, the
validator, the sender and the report writer agree on what a row is and what became of it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum, IntEnum
from pathlib import PurePath

_encode_json = json.JSONEncoder(ensure_ascii=False).encode


def count_text(n: int, noun: str) -> str:
    """'1 row', '2 rows', '1,000 rows': a count and its noun, for messages."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


class TicketState(IntEnum):
    """The states CCS knows, by the integer the API takes."""

    OPEN = 1
    REMEDIATION_PERFORMED = 2
    VERIFIED = 3
    FAILED = 4
    NOT_APPLICABLE = 5

    @property
    def label(self) -> str:
        """The status name as the CCS console shows it, e.g. 'Remediation Performed'."""
        return self.name.replace("_", " ").title()

    @classmethod
    def labels(cls) -> str:
        """'1 Open, 2 Remediation Performed, ...' for messages."""
        return ", ".join(f"{state.value} {state.label}" for state in cls)


class TextEnum(str, Enum):
    """A string enum that prints as its value ("Updated", not "Outcome.UPDATED")."""

    def __str__(self) -> str:
        return str(self.value)


class Outcome(TextEnum):
    """What became of one row of the input."""

    UPDATED = "Updated"
    # The ticket already held every value the row asks for: nothing was sent.
    UNCHANGED = "Unchanged"
    # The ticket changed in CCS since the export the row was made from: nothing was sent.
    CONFLICT = "Conflict"
    FAILED = "Failed"
    # The request left, but no answer was seen (interrupted in flight, or an answer that says
    # the update failed although its status is 2xx): a resume reads the ticket back before deciding.
    UNKNOWN = "Unknown"
    INVALID = "Invalid"
    SKIPPED = "Skipped"
    NOT_SENT = "Not sent"
    VALID = "Valid (dry run)"


class Field(TextEnum):
    """The API fields a column can map to, by their documented spelling."""

    TICKET_NUMBER = "TicketNumber"
    TICKET_STATE = "TicketState"
    TICKET_DESCRIPTION = "TicketDescription"
    PRIORITY = "Priority"
    ASSIGNED_TO = "AssignedTo"


class PriorityFormat(TextEnum):
    """How Priority is sent: the name from the priorities list, or an integer."""

    NAME = "name"
    INTEGER = "integer"


@dataclass(frozen=True, slots=True)
class TicketUpdate:
    """One PATCH: the ticket and the fields to change. None means 'leave as it is'."""

    ticket_number: str
    state: TicketState | None = None
    description: str | None = None
    priority: str | int | None = None
    assigned_to: str | None = None

    def to_json(self) -> dict[str, object]:
        """The request body with the documented field names; unchanged fields are left out."""
        # Plain string keys, not Field members: this runs once per row, 100,000 times a sweep.
        body: dict[str, object] = {"TicketNumber": self.ticket_number}
        if self.state is not None:
            body["TicketState"] = int(self.state)
        if self.description is not None:
            body["TicketDescription"] = self.description
        if self.priority is not None:
            body["Priority"] = self.priority
        if self.assigned_to is not None:
            body["AssignedTo"] = self.assigned_to
        return body

    def to_json_text(self) -> str:
        """The request body exactly as sent on the wire."""
        return _encode_json(self.to_json())

    @classmethod
    def from_json_text(cls, text: str) -> TicketUpdate | None:
        """The update a request body (as `to_json_text` wrote it) sent; None if it is not one."""
        try:
            body = json.loads(text)
            state = body.get("TicketState")
            return cls(
                str(body["TicketNumber"]),
                state=TicketState(int(state)) if state is not None else None,
                description=body.get("TicketDescription"),
                priority=body.get("Priority"),
                assigned_to=body.get("AssignedTo"),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def changed_fields(self) -> list[Field]:
        """The fields this update sets, in request order."""
        return [Field(name) for name in self.to_json() if name != Field.TICKET_NUMBER.value]


@dataclass(frozen=True, slots=True)
class SheetRow:
    """One data row as read: its spreadsheet row number (as Excel shows it) and its cell values.

    values are aligned with Sheet.headers; an empty cell is None. Numbers stay numbers (an integral
    float such as 2.0 becomes the int 2), dates stay dates, text stays exactly as written.
    """

    row_number: int
    values: tuple[object, ...]
    # A text file's row with more fields than its header, by how many (an unquoted delimiter
    # inside a value shifts every field after it): such a row is Invalid, never sent.
    extra_fields: int = 0


@dataclass(frozen=True)
class FormulaWithoutValue:
    """A cell holding a formula whose result was never saved (no cached value in the file).

    Excel saves every formula with its last result; files written by scripts and some export
    tools save the formula alone. Its value is unknown, so a column that is sent must not use it.
    str() is the formula as Excel shows it ("=A1*2"), which is how it appears in the results.
    """

    formula: str
    cell: str = ""  # the cell's reference as Excel shows it, e.g. "C5"

    def __str__(self) -> str:
        return "=" + self.formula


@dataclass(frozen=True)
class CellError:
    """A cell holding an error value (#N/A, #DIV/0!, #REF! ...), usually a formula's result.

    The workbook reader sees such a cell as empty, which would quietly leave that field as it is
    on the server; it is marked instead, so that a column that is sent can refuse it. str() is
    the error as Excel shows it.
    """

    error: str
    formula: str = ""  # the formula that gave it, without "=", if the cell has one
    cell: str = ""  # the cell's reference as Excel shows it, e.g. "C5"

    def __str__(self) -> str:
        return self.error


@dataclass
class Sheet:
    """A sheet read from the input file: where it came from, its header row and its data rows."""

    path: str
    sheet_name: str
    header_row: int
    headers: list[str]
    rows: list[SheetRow]
    notices: list[str] = field(default_factory=list)
    # Each kept column's letter in the spreadsheet (A, B, ... AA): columns empty from top to
    # bottom are dropped, so a header's position is not always its column.
    column_letters: list[str] = field(default_factory=list)
    # The (item, value) rows of the workbook's Export sheet, if a sheet made by `export`.
    export_items: tuple[tuple[str, str], ...] = ()

    @property
    def file_name(self) -> str:
        """The input's file name as it is shown in messages."""
        return PurePath(self.path).name


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one cell (or with the row, when column is None)."""

    column: str | None
    message: str

    def __str__(self) -> str:
        if self.column is None:
            return self.message
        return f'column "{self.column}": {self.message}'


@dataclass(frozen=True, slots=True)
class PlannedRow:
    """The verdict of validation on one spreadsheet row."""

    row_number: int
    update: TicketUpdate | None = None
    problems: tuple[Problem, ...] = ()
    blank: bool = False
    ticket_text: str = ""  # the ticket number as written, also for an Invalid row

    @property
    def ticket_number(self) -> str:
        return self.update.ticket_number if self.update else self.ticket_text

    @property
    def is_valid(self) -> bool:
        return self.update is not None and not self.problems and not self.blank


@dataclass(frozen=True, slots=True)
class RowResult:
    """What became of one row: the outcome and the evidence for it."""

    row_number: int
    outcome: Outcome
    ticket_number: str = ""
    status: int | None = None
    message: str = ""
    attempts: int = 0
    sent_at: datetime | None = None
    duration_ms: int | None = None
    request_json: str | None = None
    # The ticket as the server held it just before the update (--capture-before), or None.
    before: Mapping[str, object] | None = None
    # The read-back after a 204 (--verify): "Verified", "Mismatch: ...", "Not checked: ...", or "".
    verification: str = ""

    @property
    def applied(self) -> bool:
        """The server took this row's update: in this run, or in the run it continues."""
        return update_applied(self.outcome, self.status)


def update_applied(outcome: Outcome | None, status: int | None) -> bool:
    """Updated, or Skipped as carried by a resume from the run that updated it (with its 2xx)."""
    if outcome is Outcome.UPDATED:
        return True
    return outcome is Outcome.SKIPPED and status is not None and 200 <= status < 300


@dataclass(frozen=True)
class RunInfo:
    """Facts about the run for the Summary sheet and the terminal summary; the journal records
    them as the run starts (Journal.create) and gives them back (RunRecord.to_run_info).

    Frozen: each step of a run that learns a fact (the server, the run id, how it ended) makes
    the next value with dataclasses.replace(), so that what a record was given cannot change
    behind it.
    """

    input_path: str
    input_sha256: str
    sheet_name: str
    tool_version: str
    operator: str
    started: datetime
    finished: datetime | None = None
    server_url: str = ""
    ccs_user: str = ""
    rate: float | None = None
    concurrency: int | str | None = None  # a number, or "auto"
    workers: int | None = None  # with "auto": the most requests in flight at once
    dry_run: bool = False
    simulated: bool = False
    stopped_reason: str = ""
    notes: tuple[str, ...] = ()
    capture_before: bool = False
    verify: bool = False
    settings: Mapping[str, object] = field(default_factory=dict)  # as used, never secrets
    python_version: str = ""
    run_id: str = ""
    follows: str = ""  # "resumes run R" or "retries the failed rows of run R"
    journal_path: str = ""
    # The plan a run applies (`batch-update apply`): its SHA-256, file, who planned and who
    # approved it, and the plan and approval documents themselves (see plans.plan_record).
    plan: Mapping[str, object] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.notes, tuple):
            object.__setattr__(self, "notes", tuple(self.notes))

    def noting(self, *notes: str) -> RunInfo:
        """The same facts with these notes added."""
        return replace(self, notes=(*self.notes, *notes))


def ticket_field(ticket: Mapping[str, object], name: str) -> tuple[bool, object]:
    """A field of a ticket as the server returned it, its key matched case-insensitively."""
    wanted = name.casefold()
    for key, value in ticket.items():
        if isinstance(key, str) and key.casefold() == wanted:
            return True, value
    return False, None


def state_number(value: object) -> int | None:
    """A state by its number (2, "2", 2.0) or its name ("Remediation Performed", any case), as
    its number; None for anything else (None, "", 2.5, "x", True). Never raises."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return int(text)
    for state in TicketState:
        if state.label.casefold() == text.casefold():
            return int(state)
    return None


def _text_of(value: object) -> str:
    return "" if value is None else str(value)


def same_value(field_name: str, sent: object, held: object) -> bool:
    """Whether the server's value of a field is the value sent (or asked for): a state by its
    number or name, a priority in any case, anything else exactly (an absent value is "").

    Total: it never raises. A value that is not a state compares with the other as text."""
    if field_name == "TicketState":
        sent_state, held_state = state_number(sent), state_number(held)
        if sent_state is not None and held_state is not None:
            return sent_state == held_state
        return _text_of(held).strip().casefold() == _text_of(sent).strip().casefold()
    if field_name == "Priority":
        return _text_of(held).strip().casefold() == _text_of(sent).strip().casefold()
    try:
        return bool((held if held is not None else "") == sent)
    except Exception:  # an odd value's __eq__: not the same
        return False


# What CCS's Remediation Verification job makes of state 2 (Remediation Performed) when it
# finishes (API-CONTRACT, "Reading tickets"): the ticket moves on to 3 or 4.
_JOB_MOVES = {
    int(TicketState.VERIFIED): "verified by CCS (its verification job moved the ticket on to 3 "
    "Verified)",
    int(TicketState.FAILED): "failed verification (CCS's verification job moved the ticket on "
    "to 4 Failed)",
}


def moved_on_by_job(field_name: str, sent: object, held: object) -> str:
    """What the verification job did, when the server holds 3 or 4 where 2 was sent; else ""."""
    if field_name != "TicketState" or state_number(sent) != TicketState.REMEDIATION_PERFORMED:
        return ""
    held_state = state_number(held)
    return "" if held_state is None else _JOB_MOVES.get(held_state, "")


def holds_value(field_name: str, sent: object, held: object) -> bool:
    """The server holds what was sent, or what the verification job made of it: for reading
    back what was sent (`compare_ticket`), never for deciding what to send (`changes.decide`
    compares with `same_value`: a 2 asked of a ticket at 3 or 4 is sent again)."""
    return same_value(field_name, sent, held) or bool(moved_on_by_job(field_name, sent, held))


def job_note(update: TicketUpdate, ticket: Mapping[str, object]) -> str:
    """What the verification job did to this update's state, as the ticket shows; else ""."""
    if update.state is None:
        return ""
    return moved_on_by_job("TicketState", int(update.state), ticket_field(ticket, "TicketState")[1])


def compare_ticket(update: TicketUpdate, ticket: Mapping[str, object]) -> list[str]:
    """What the server holds that differs from what the update set; empty when every field matches.

    Each difference reads like 'Priority is "Low", expected "High"', for a Verification column or
    a resume decision. Only the fields the update set are compared. State 3 or 4 where 2 was
    sent is the verification job's doing, not a difference (see `job_note`).
    """
    differences = []
    for name, sent in update.to_json().items():
        if name == "TicketNumber":
            continue
        found, held = ticket_field(ticket, name)
        if not found:
            differences.append(f"{name} is missing from the server's answer")
        elif not holds_value(name, sent, held):
            differences.append(f"{name} is {quoted_value(held)}, expected {quoted_value(sent)}")
    return differences


def quoted_value(value: object) -> str:
    """A value in a message: text in double quotes as it is (a `domain\\user` keeps its one
    backslash), anything else as JSON."""
    return f'"{value}"' if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
