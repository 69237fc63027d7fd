"""What the simulator was asked and what it answered: one small record per request, for tests.

The log is what lets a test check the client from the server's side: how many times a ticket was
sent, how many requests arrived in any one second, what the body of each PATCH was. Appending is
one lock and one deque append, so the log costs the hot path next to nothing.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from typing import Any

# Enough for a long benchmark; beyond it the oldest records go (and the counts with them).
DEFAULT_LOG_LIMIT = 1_000_000

logger = logging.getLogger(__name__)


class Endpoint:
    """The names the log gives the simulator's endpoints."""

    TOKENS = "tokens"
    TICKETS = "tickets"
    OTHER = "other"


@dataclass(frozen=True)
class RequestRecord:
    """One request: when it arrived, what it asked for, who asked, and the status it got."""

    t: float  # arrival, time.monotonic()
    wall: float  # arrival, time.time()
    method: str
    path: str  # without the query string
    query: str
    endpoint: str  # an Endpoint name
    ticket: str | None  # the ticket number as sent (PATCH body or GET query)
    user: str | None  # the authenticated user, or the name a token request gave
    status: int | None  # None: the connection was dropped without an answer
    body: dict[str, Any] | None = None  # a PATCH body that was a JSON object
    fault: str | None = None  # the injected fault, if one replaced the normal answer
    elapsed: float = 0.0  # seconds from arrival to the answer

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON-ready dict."""
        return asdict(self)


class RequestLog:
    """A thread-safe, append-only list of RequestRecord, with the questions tests ask of it."""

    def __init__(
        self,
        on_record: Callable[[RequestRecord], None] | None = None,
        limit: int = DEFAULT_LOG_LIMIT,
    ) -> None:
        self._lock = threading.Lock()
        self._records: deque[RequestRecord] = deque(maxlen=limit)
        self._on_record = on_record

    def append(self, record: RequestRecord) -> None:
        """Add one record (and tell the listener, outside the lock)."""
        with self._lock:
            self._records.append(record)
        if self._on_record is not None:
            try:
                self._on_record(record)
            except Exception:
                # A broken listener must not cost the client its answer.
                logger.exception("ccs-sim: the request listener failed")

    def snapshot(self) -> list[RequestRecord]:
        """Every record so far, in order of arrival."""
        with self._lock:
            records = list(self._records)
        # Records are appended when answered, so a slow request lands after faster later ones.
        records.sort(key=lambda record: record.t)
        return records

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._records.clear()

    def patch_count(self, ticket: str, status: int | None = None) -> int:
        """How many PATCH requests named `ticket` (in any case), optionally with one status."""
        wanted = ticket.upper()
        return sum(
            1
            for record in self.snapshot()
            if record.method == "PATCH"
            and isinstance(record.ticket, str)
            and record.ticket.upper() == wanted
            and (status is None or record.status == status)
        )

    def max_in_window(
        self,
        seconds: float = 1.0,
        method: str | None = None,
        *,
        statuses: Collection[int | None] | None = None,
        include_tokens: bool = False,
    ) -> int:
        """The most requests arriving in any half-open window [t, t + seconds).

        Only API requests count (not the token endpoint, unless `include_tokens`), only those of
        `method` if given, and only those answered with one of `statuses` if given.
        """
        times = [
            record.t
            for record in self.snapshot()
            if (include_tokens or record.endpoint != Endpoint.TOKENS)
            and (method is None or record.method == method.upper())
            and (statuses is None or record.status in statuses)
        ]
        best = start = 0
        # The busiest window can always be taken to start at an arrival: slide over them.
        for end, arrival in enumerate(times):
            while times[start] <= arrival - seconds:
                start += 1
            best = max(best, end - start + 1)
        return best

    def counts(self) -> dict[str, Any]:
        """Totals: by method, by status ('dropped' for no answer), and PATCHes by ticket number."""
        records = self.snapshot()
        by_status = Counter(
            "dropped" if record.status is None else str(record.status) for record in records
        )
        patches = Counter(
            record.ticket.upper()
            for record in records
            if record.method == "PATCH" and isinstance(record.ticket, str)
        )
        return {
            "total": len(records),
            "by_method": dict(Counter(record.method for record in records)),
            "by_status": dict(by_status),
            "patches_by_ticket": dict(patches),
        }
