"""What an export is: the tickets as CCS gave them, and the facts that identify the export.

Nothing here does I/O. The export command builds these from Search answers; the export workbook
is written from them; a sweep of an exported sheet reads them back to know what each ticket held
when the sheet was made.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from .tickets import Field, TicketState, ticket_field

# The sheet a person edits, and the (hidden) sheet that says where it came from.
TICKETS_SHEET = "Tickets"
EXPORT_SHEET = "Export"

# The columns the reader recognises, in the order the export writes them.
EDITABLE_COLUMNS: tuple[tuple[Field, str], ...] = (
    (Field.TICKET_NUMBER, "Ticket Number"),
    (Field.TICKET_STATE, "State"),
    (Field.PRIORITY, "Priority"),
    (Field.ASSIGNED_TO, "Assigned To"),
    (Field.TICKET_DESCRIPTION, "Description"),
)
# The hidden columns that keep each changeable field as it was exported ("exported" is a word
# that tells validation the column holds context, never a value to send).
AS_EXPORTED_COLUMNS: tuple[tuple[Field, str], ...] = (
    (Field.TICKET_STATE, "Exported State"),
    (Field.PRIORITY, "Exported Priority"),
    (Field.ASSIGNED_TO, "Exported Assigned To"),
    (Field.TICKET_DESCRIPTION, "Exported Description"),
)
_KNOWN_KEYS = frozenset(fld.value.casefold() for fld, _ in EDITABLE_COLUMNS)


def state_text(value: object) -> str:
    """A state as the export shows it: its name ("Open"), or the value itself if not a state."""
    if value is None:
        return ""
    try:
        number = int(str(value).strip())
    except ValueError:
        return str(value)
    try:
        return TicketState(number).label
    except ValueError:
        return str(value)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def context_value(value: object) -> object:
    """A context value as a cell holds it: scalars as they are, anything nested as JSON text."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class ExportedTicket:
    """One ticket as a Search answer gave it: the fields a sheet edits, and every other key."""

    number: str
    state: str  # the state's name, e.g. "Open" (what the server sent, if it is not a state)
    priority: str
    assigned_to: str
    description: str
    # (key as the server spelled it, value) for every key that is not one of the fields above.
    context: tuple[tuple[str, object], ...] = ()

    @classmethod
    def from_answer(cls, ticket: Mapping[str, object]) -> ExportedTicket | None:
        """The ticket from one answer's object (keys in any case); None without a number."""
        number = _text(ticket_field(ticket, Field.TICKET_NUMBER.value)[1]).strip()
        if not number:
            return None
        return cls(
            number=number,
            state=state_text(ticket_field(ticket, Field.TICKET_STATE.value)[1]),
            priority=_text(ticket_field(ticket, Field.PRIORITY.value)[1]),
            assigned_to=_text(ticket_field(ticket, Field.ASSIGNED_TO.value)[1]),
            description=_text(ticket_field(ticket, Field.TICKET_DESCRIPTION.value)[1]),
            context=tuple(
                (key, context_value(value))
                for key, value in ticket.items()
                if isinstance(key, str) and key.casefold() not in _KNOWN_KEYS
            ),
        )

    def value(self, fld: Field) -> str:
        """The exported value of one field, as the sheet shows it."""
        return {
            Field.TICKET_NUMBER: self.number,
            Field.TICKET_STATE: self.state,
            Field.PRIORITY: self.priority,
            Field.ASSIGNED_TO: self.assigned_to,
            Field.TICKET_DESCRIPTION: self.description,
        }[fld]


def context_keys(tickets: Iterable[ExportedTicket]) -> list[str]:
    """Every context key of these tickets, in the order first seen, each spelling once."""
    seen: dict[str, str] = {}
    for ticket in tickets:
        for key, _ in ticket.context:
            seen.setdefault(key.casefold(), key)
    return list(seen.values())


def rows_sha256(tickets: Sequence[ExportedTicket]) -> str:
    """The SHA-256 of the exported rows, in their order: every field and every context value."""
    digest = hashlib.sha256()
    for ticket in tickets:
        line = [
            ticket.number,
            ticket.state,
            ticket.priority,
            ticket.assigned_to,
            ticket.description,
            # Keys as the columns name them: a server's key spelling does not change the rows.
            [[key.casefold(), value] for key, value in ticket.context],
        ]
        digest.update(json.dumps(line, ensure_ascii=False, default=str).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass(frozen=True)
class ExportIdentity:
    """What an export was: where from, as whom, which query, when, how many rows, their hash."""

    server_url: str
    ccs_user: str
    query: tuple[tuple[str, str], ...]  # the Search fields, e.g. (("TicketState", "1"),)
    exported_at: datetime  # aware, UTC
    count: int
    rows_sha256: str
    tool_version: str
    operator: str
    page_size: int
    requests: int
    simulated: bool = False

    @property
    def query_text(self) -> str:
        """The query as Search's Fields parameter reads, e.g. "TicketState=1"; "" for all."""
        return ",".join(f"{name}={value}" for name, value in self.query)

    def items(self) -> list[tuple[str, str]]:
        """The identity as (label, text) pairs, for the export's sheet and the terminal."""
        return [
            ("Server", self.server_url + (" (simulated)" if self.simulated else "")),
            ("CCS account", self.ccs_user),
            ("Query", self.query_text or "(every ticket the account may see)"),
            ("Query (JSON)", json.dumps([list(pair) for pair in self.query], ensure_ascii=False)),
            ("Exported at (UTC)", self.exported_at.strftime("%Y-%m-%d %H:%M:%S")),
            ("Exported at (ISO 8601)", self.exported_at.isoformat()),
            ("Tickets", str(self.count)),
            ("SHA-256 of the rows", self.rows_sha256),
            ("Page size", str(self.page_size)),
            ("Search requests", str(self.requests)),
            ("Exported by (OS user)", self.operator),
            ("Tool version", self.tool_version),
        ]
