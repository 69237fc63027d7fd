"""The simulated server's remediation tickets: generated or from a seed file, updated atomically.

Generated tickets are a pure function of their index, so `INCA0000042` looks the same in every
run and on every machine; a seed file (YAML or CSV) gives exact fixtures instead. The value rules
(what a ticket state or a priority may be) live here once and serve both the seed-file loader and
the API's request checks.

The Remediation Verification job that CCS runs for a ticket set to 2 is played without threads:
the store notes when the job will have finished and what it will leave behind, and every read,
search, snapshot and update applies the moves that are due first, under the same lock. So a
reader never sees a ticket the job should already have moved, and a test can move the store's
clock instead of sleeping.
"""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from enum import IntEnum
from pathlib import Path
from typing import Any

DEFAULT_TICKETS = 1000
TICKET_PREFIX = "INCA"
PRIORITIES = ("Low", "Medium", "High")
RESTRICTED_STANDARD = "SOX Finance (restricted)"
# The default tickets that belong to the restricted standard (by index), so that a default
# simulator shows per-ticket 403s without any configuration.
RESTRICTED_INDEXES = range(990, 1000)

# The fields a ticket has, in the order the API and the seed files use.
TICKET_FIELDS = (
    "TicketNumber",
    "TicketState",
    "TicketDescription",
    "Priority",
    "AssignedTo",
    "Standard",
    "Asset",
)
SEED_FIELDS = TICKET_FIELDS + ("LastModified",)

_MAX_INDEX = 9_999_999
_BASE_TIME = datetime(2025, 1, 6, 8, 0, tzinfo=timezone.utc)

# (standard, asset prefix, findings) profiles the generated tickets cycle through.
_PROFILES = (
    (
        "CIS Microsoft Windows Server 2022 Benchmark",
        "WINSRV",
        (
            "Password must meet complexity requirements is disabled",
            "Minimum password length is below 14 characters",
            "SMBv1 server is enabled",
            "Guest account is enabled",
        ),
    ),
    (
        "CIS Red Hat Enterprise Linux 9 Benchmark",
        "RHEL",
        (
            "SSH permits root login",
            "World-writable files found in system directories",
            "auditd is not enabled at boot",
        ),
    ),
    (
        "PCI DSS 4.0",
        "POS",
        (
            "TLS 1.0 is enabled for Schannel",
            "Audit account logon events is not configured",
            "Antivirus definitions are older than 7 days",
        ),
    ),
    (
        "NIST SP 800-53 Rev. 5",
        "SQL",
        (
            "Windows Firewall domain profile is off",
            "Remote Desktop allows unencrypted sessions",
        ),
    ),
)
_ASSIGNEES = (
    "corp\\jsmith",
    "corp\\mgarcia",
    "corp\\akumar",
    "corp\\lchen",
    "corp\\oadeyemi",
    "corp\\pnovak",
)


class TicketState(IntEnum):
    """The ticket states CCS knows, by the integer the API takes."""

    OPEN = 1
    REMEDIATION_PERFORMED = 2
    VERIFIED = 3
    FAILED = 4
    NOT_APPLICABLE = 5

    @property
    def status(self) -> str:
        """The status name the console shows, e.g. 'Remediation Performed'."""
        return self.name.replace("_", " ").title()


class SeedFileError(ValueError):
    """A seed file cannot be used; str() says which file, which entry and what is wrong."""


def ticket_number(index: int) -> str:
    """The ticket number of the generated ticket `index`, e.g. 42 -> 'INCA0000042'."""
    return f"{TICKET_PREFIX}{index:07d}"


def utc_now_iso() -> str:
    """The current time as ISO 8601 UTC with a Z, to the second (what LastModified holds)."""
    return _iso(datetime.now(timezone.utc))


def iso_at(timestamp: float) -> str:
    """A POSIX timestamp as LastModified holds it (ISO 8601 UTC with a Z, to the second)."""
    return _iso(datetime.fromtimestamp(timestamp, timezone.utc))


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def as_ticket_state(value: Any) -> int | None:
    """The ticket state an API value names (1..5, or a string of one), else None."""
    number = as_int(value)
    return number if number is not None and 1 <= number <= 5 else None


def as_int(value: Any) -> int | None:
    """An int, or a string of ASCII digits, as an int; anything else (bool, float...) is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            return int(text)
    return None


def as_priority(value: Any) -> str | None:
    """The priority name an API value stands for (a name in any case, or 1..3), else None."""
    if isinstance(value, str):
        for name in PRIORITIES:
            if value.lower() == name.lower():
                return name
    number = as_int(value)
    if number is not None and 1 <= number <= len(PRIORITIES):
        return PRIORITIES[number - 1]
    return None


def generate_tickets(count: int = DEFAULT_TICKETS) -> list[dict[str, Any]]:
    """The tickets INCA0000001..INCA<count>, each a pure function of its number."""
    if not 0 <= count <= _MAX_INDEX:
        raise ValueError(f"tickets must be between 0 and {_MAX_INDEX}, not {count}.")
    return [_generated_ticket(index) for index in range(1, count + 1)]


def _generated_ticket(index: int) -> dict[str, Any]:
    standard, prefix, findings = _PROFILES[index % len(_PROFILES)]
    finding = findings[(index // len(_PROFILES)) % len(findings)]
    asset = f"{prefix}-{index:04d}"
    if index in RESTRICTED_INDEXES:
        standard, asset = RESTRICTED_STANDARD, f"FIN-LEDGER-{index:04d}"
        finding = "Database audit trail is disabled"
    return {
        "TicketNumber": ticket_number(index),
        "TicketState": int(TicketState.OPEN),
        "TicketDescription": f"{finding} on {asset}",
        "Priority": PRIORITIES[(index - 1) % len(PRIORITIES)],
        "AssignedTo": _ASSIGNEES[(index - 1) % len(_ASSIGNEES)],
        "Standard": standard,
        "Asset": asset,
        "LastModified": _iso(_BASE_TIME + timedelta(minutes=7 * index)),
    }


def load_seed_file(path: str | Path) -> list[dict[str, Any]]:
    """The tickets of a seed file: YAML (a list of mappings) or CSV (a header of field names)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        entries = _read_yaml(path)
    elif suffix == ".csv":
        entries = _read_csv(path)
    else:
        raise SeedFileError(f"{path.name}: a seed file must be .yaml, .yml or .csv.")
    tickets = [_seed_ticket(path.name, number, entry) for number, entry in enumerate(entries, 1)]
    seen: set[str] = set()
    for number, ticket in enumerate(tickets, 1):
        key = ticket["TicketNumber"].upper()
        if key in seen:
            raise SeedFileError(
                f"{path.name}, entry {number}: ticket {ticket['TicketNumber']} appears twice."
            )
        seen.add(key)
    return tickets


def _read_yaml(path: Path) -> list[Mapping[str, Any]]:
    # Imported here so that the simulator itself runs on the standard library alone.
    import yaml

    with path.open(encoding="utf-8-sig") as stream:
        data = yaml.safe_load(stream)
    if isinstance(data, Mapping) and "tickets" in data:
        data = data["tickets"]
    if data is None:
        return []
    if not isinstance(data, list) or not all(isinstance(entry, Mapping) for entry in data):
        raise SeedFileError(
            f"{path.name}: expected a list of tickets "
            "(mappings with TicketNumber, TicketState, ...)."
        )
    return data


def _read_csv(path: Path) -> list[Mapping[str, Any]]:
    # utf-8-sig: Excel writes a byte-order mark in front of the header.
    with path.open(encoding="utf-8-sig", newline="") as stream:
        return list(csv.DictReader(stream))


def _seed_ticket(source: str, entry: int, raw: Mapping[str, Any]) -> dict[str, Any]:
    where = f"{source}, entry {entry}"
    canonical = {name.lower(): name for name in SEED_FIELDS}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = canonical.get(str(key).strip().lower())
        if name is None:
            raise SeedFileError(f"{where}: unknown field {key!r}; use {', '.join(SEED_FIELDS)}.")
        if value is not None and not (isinstance(value, str) and not value.strip()):
            values[name] = value
    number = str(values.get("TicketNumber", "")).strip()
    if not number:
        raise SeedFileError(f"{where}: TicketNumber is missing.")
    state = as_ticket_state(values.get("TicketState", 1))
    if state is None:
        raise SeedFileError(
            f"{where}: TicketState {values['TicketState']!r} is not a ticket state; use 1 to 5."
        )
    priority = as_priority(values.get("Priority", "Medium"))
    if priority is None:
        raise SeedFileError(
            f"{where}: Priority {values['Priority']!r} is not a priority; "
            f"use {', '.join(PRIORITIES)} or 1 to {len(PRIORITIES)}."
        )
    return {
        "TicketNumber": number,
        "TicketState": state,
        "TicketDescription": str(values.get("TicketDescription", "")),
        "Priority": priority,
        "AssignedTo": str(values.get("AssignedTo", "")),
        "Standard": str(values.get("Standard", "")),
        "Asset": str(values.get("Asset", "")),
        "LastModified": str(values.get("LastModified", _iso(_BASE_TIME))),
    }


class TicketStore:
    """The tickets by number (in any case); every read is a copy, every write atomic.

    `clock` (POSIX seconds, time.time by default) stamps LastModified and times the
    verification job; a test passes its own to move time on without sleeping.
    """

    def __init__(
        self, tickets: Iterable[Mapping[str, Any]], *, clock: Callable[[], float] = time.time
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._tickets: dict[str, dict[str, Any]] = {}
        # Verification jobs still running: ticket key -> (when it finishes, the state it sets).
        self._verifying: dict[str, tuple[float, int]] = {}
        for ticket in tickets:
            key = ticket["TicketNumber"].upper()
            if key in self._tickets:
                raise ValueError(f"ticket {ticket['TicketNumber']} appears twice.")
            # VerificationJobs counts how often setting state 2 started the verification job:
            # the one visible cost of sending the same row twice.
            self._tickets[key] = {"VerificationJobs": 0, **ticket}

    def __len__(self) -> int:
        return len(self._tickets)

    def __contains__(self, number: object) -> bool:
        return isinstance(number, str) and number.upper() in self._tickets

    def get(self, number: str) -> dict[str, Any] | None:
        """A copy of the ticket, or None if there is no such ticket."""
        with self._lock:
            self._settle()
            ticket = self._tickets.get(number.upper())
            return dict(ticket) if ticket is not None else None

    def numbers(self) -> list[str]:
        """Every ticket number, in the order the tickets were loaded."""
        with self._lock:
            return [ticket["TicketNumber"] for ticket in self._tickets.values()]

    def snapshot(self) -> list[dict[str, Any]]:
        """A copy of every ticket, in load order."""
        with self._lock:
            self._settle()
            return [dict(ticket) for ticket in self._tickets.values()]

    def find(
        self, match: Callable[[Mapping[str, Any]], bool], offset: int, limit: int
    ) -> list[dict[str, Any]]:
        """Copies of the matching tickets from the `offset`-th match on, at most `limit` of them."""
        return self._find(match, offset, limit, count_all=False)[0]

    def search(
        self, match: Callable[[Mapping[str, Any]], bool], offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of matches (as find() gives it) and the number of matches in all pages.

        Both under one lock, so that the total a wrapped Search answer gives fits its page.
        """
        return self._find(match, offset, limit, count_all=True)

    def _find(
        self,
        match: Callable[[Mapping[str, Any]], bool],
        offset: int,
        limit: int,
        *,
        count_all: bool,
    ) -> tuple[list[dict[str, Any]], int]:
        found: list[dict[str, Any]] = []
        total = 0
        with self._lock:
            self._settle()
            for ticket in self._tickets.values():
                if not match(ticket):
                    continue
                if offset <= total < offset + limit:
                    found.append(dict(ticket))
                elif total >= offset + limit and not count_all:
                    break  # the page is full and nobody wants the total
                total += 1
        return found, total

    def verification_due(self, number: str) -> tuple[float, int] | None:
        """When the ticket's running verification job finishes and the state it then sets.

        None when no job is running for it (never started, or finished and applied).
        """
        with self._lock:
            self._settle()
            return self._verifying.get(number.upper())

    def update(
        self,
        number: str,
        changes: Mapping[str, Any],
        sticky: frozenset[str] = frozenset(),
        *,
        verification: tuple[int, float] | None = None,
    ) -> dict[str, Any] | None:
        """Apply `changes` (not the `sticky` fields) at once; the new ticket, or None if unknown.

        `verification` is (the state the job leaves, its duration in seconds), when setting
        state 2 makes the job move the ticket on; None leaves a ticket set to 2 at 2. A later
        change of the state takes the place of a running job: the job does not move a ticket
        that someone has meanwhile set to something else.
        """
        with self._lock:
            self._settle()
            key = number.upper()
            ticket = self._tickets.get(key)
            if ticket is None:
                return None
            now = self._clock()
            for name, value in changes.items():
                if name not in sticky:
                    ticket[name] = value
            if "TicketState" in changes and "TicketState" not in sticky:
                self._verifying.pop(key, None)
                if changes["TicketState"] == TicketState.REMEDIATION_PERFORMED:
                    ticket["VerificationJobs"] += 1
                    if verification is not None:
                        outcome, delay = verification
                        self._verifying[key] = (now + delay, outcome)
            ticket["LastModified"] = iso_at(now)
            return dict(ticket)

    def _settle(self) -> None:
        """Apply the verification jobs that have finished by now (the lock is held)."""
        if not self._verifying:
            return
        now = self._clock()
        for key, (due, outcome) in list(self._verifying.items()):
            if due > now:
                continue
            del self._verifying[key]
            ticket = self._tickets[key]
            if ticket["TicketState"] == TicketState.REMEDIATION_PERFORMED:
                ticket["TicketState"] = outcome
                # Stamped when the job finished, not when someone happened to look.
                ticket["LastModified"] = iso_at(due)
