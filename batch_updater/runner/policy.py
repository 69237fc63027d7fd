"""What the sender is told and tells: its policies, hooks and report, and how answers read.

Retry only what can succeed: 429 (paced down, after Retry-After), 5xx, timeouts and resets are
retried with backoff; 400, 403, 404 and any other answer are recorded and the run moves on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

from ..ccs import Reply
from ..changes import Decision, Verdict, decide
from ..plans import PlanRow, decide_planned
from ..tickets import (
    Field,
    Outcome,
    PlannedRow,
    RowResult,
    TicketUpdate,
    compare_ticket,
    job_note,
)

RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
THROTTLED = 429
FORBIDDEN = 403
# Automatic concurrency (the default): start with this many workers ...
AUTO_START_WORKERS = 4
# ... and add workers, up to this many, when the server's response time needs them: by Little's
# law, keeping `rate` requests a second going at a response time of L seconds takes rate * L
# requests in flight. The response time used is the upper quartile of the latest answers, with
# room to spare, so that one slow answer (a timeout) does not start a crowd of workers.
AUTO_MAX_WORKERS = 32
AUTO_HEADROOM = 1.25
AUTO_SAMPLES = 64
_NO_PATCH = object()  # a row whose PATCH never left
UNKNOWN_IN_FLIGHT = (
    "interrupted while the request was in flight: no answer was seen, so the outcome is "
    "unknown; a resume (batch-update resume) reads the ticket back before deciding"
)


class UpdateClient(Protocol):
    """What the runner needs of a CCS client."""

    def update(self, update: TicketUpdate, pace: Callable[[], bool] | None = None) -> Reply: ...

    def get_ticket(self, ticket_number: str, pace: Callable[[], bool] | None = None) -> Reply: ...


class Progress(Protocol):
    """Told of every row as it is done, and of every retry (a progress bar, a log)."""

    def row_done(self, result: RowResult) -> None: ...

    def retrying(
        self, row_number: int, ticket: str, attempt: int, reason: str, delay: float
    ) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently one row is retried."""

    max_attempts: int = 4
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    max_throttled: int = 20


@dataclass(frozen=True)
class StopPolicy:
    """When the whole run is judged hopeless and stops sending."""

    forbidden_at_start: int = 5
    transient_streak: int = 10


@dataclass(frozen=True)
class SendPolicies:
    """What the sender does, decided before it starts: how many requests at once, how each row
    is retried, when the run stops, and what evidence each row gathers."""

    # None: automatic, from AUTO_START_WORKERS up to AUTO_MAX_WORKERS as the response time
    # needs. A number: exactly that many workers.
    concurrency: int | None = None
    retry: RetryPolicy = RetryPolicy()
    stop: StopPolicy = StopPolicy()
    # Evidence for auditors: the ticket read before its PATCH, and read back after a 204.
    capture_before: bool = False
    verify: bool = False


@dataclass(frozen=True)
class EarlierRows:
    """What an earlier run (resumed or retried) leaves to this one, by row number."""

    # Rows whose earlier request may or may not have been applied (a run killed while it was
    # in flight): read the ticket first, and send only if it does not hold the values.
    read_back_first: frozenset[int] = frozenset()
    # Before values the earlier run captured for such rows (the values before its PATCH).
    known_before: Mapping[int, dict[str, object]] = field(default_factory=dict)
    # The request such a row's earlier run sent (only the fields that differed then): what the
    # read-back compares with, since the rest of the row was never sent.
    known_sent: Mapping[int, TicketUpdate] = field(default_factory=dict)
    # Rows the earlier run already saw refused with 403 (a retry sends them again): another
    # 403 for one of them says nothing new about the account's role, so the stop policy
    # "the first requests all refused with 403" does not count them.
    known_forbidden: frozenset[int] = frozenset()
    # Rows the earlier run already updated, carried into this one, whose update was never read
    # back (that run stopped first, or did not verify): with verify, they are read back (GET)
    # and compared, never sent; each keeps its carried result, with its Verification.
    check_carried: Mapping[int, RowResult] = field(default_factory=dict)


@dataclass(frozen=True)
class CurrentState:
    """What the run knows of each ticket before it sends anything (DESIGN, "The one idea").

    A row in `known` or `look_first` is sent only if its ticket does not already hold what it
    asks for, and then only the fields that differ (plus Priority); otherwise it ends Unchanged,
    or Conflict when the ticket changed in CCS since the export the sheet was made from.
    """

    # Rows whose ticket was read in pages before sending: its values as the server gave them.
    known: Mapping[int, Mapping[str, object]] = field(default_factory=dict)
    # Rows whose ticket is read (GET) right before its PATCH, and decided then.
    look_first: frozenset[int] = frozenset()
    # The "as exported" values of each row of a sheet made by `export`, by row number.
    exported: Mapping[int, Mapping[Field, object]] = field(default_factory=dict)
    overwrite_conflicts: bool = False
    # The configured priority names, in order, when Priority is sent as a number: the server's
    # name of a priority is then that number (see changes.decide).
    priorities: tuple[str, ...] = ()
    # --verify: the rows in `known` are read back in pages once every row is sent (the caller
    # does it), not with a GET each.
    verify_in_pages: bool = False
    # The plan the run applies (`batch-update apply`), by row number: each row is then decided
    # by the plan (its body sent only to a ticket that still has the planned fingerprint).
    planned: Mapping[int, PlanRow] | None = None

    def looks_at(self, row_number: int) -> bool:
        return row_number in self.known or row_number in self.look_first

    def decide(self, row_number: int, update: TicketUpdate, held: Mapping[str, object]) -> Decision:
        """What to do with a row, from its ticket's values now: by the plan the run applies,
        else by what the row asks and what the ticket held at export."""
        if self.planned is None:
            return decide(
                update,
                held,
                self.exported.get(row_number),
                overwrite_conflicts=self.overwrite_conflicts,
                priorities=self.priorities,
            )
        planned = self.planned.get(row_number)
        if planned is None:
            return Decision(Verdict.CONFLICT, None, "not a row of the plan; nothing was sent")
        return decide_planned(planned, held)


@dataclass(frozen=True)
class SenderHooks:
    """Who hears of the run as it goes, and the events that stop it."""

    progress: Progress | None = None
    # Each row's outcome, the moment it is known (the journal), from one place under one lock.
    on_result: Callable[[RowResult], None] | None = None
    # Called with the slot in hand, right before each request goes out (the journal commits
    # its intent there). If it fails, the request is not sent and the run stops.
    on_sending: Callable[[PlannedRow], None] | None = None
    # Called with the before values as soon as they are read, ahead of the PATCH (the journal
    # keeps them there, so that a run killed mid-request can still be undone).
    on_before: Callable[[PlannedRow, dict[str, object]], None] | None = None
    # cancel: stop dispatching, let requests in flight finish (first Ctrl-C, SIGTERM).
    cancel: threading.Event = field(default_factory=threading.Event)
    # abandon: stop waiting for requests in flight too (second Ctrl-C).
    abandon: threading.Event = field(default_factory=threading.Event)


@dataclass
class SendReport:
    """What the send loop did: one result per row it was given, and why it stopped, if it did."""

    results: dict[int, RowResult] = field(default_factory=dict)
    stopped_reason: str = ""
    auth_failed: bool = False
    interrupted: bool = False
    workers: int = 0  # how many workers were started: the most requests in flight at once
    # Why the run's record (the journal) could not be written, if it could not: sending stopped
    # there, and a row whose outcome could not be recorded stays "sending" in it (Unknown).
    record_failed: str = ""

    @property
    def stopped(self) -> bool:
        return bool(self.stopped_reason)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _answer(reply: Reply) -> str:
    """'HTTP 500' or 'timeout' for a retry history."""
    if reply.status is None:
        return reply.message.split(":")[0] if reply.message else "no answer"
    return f"HTTP {reply.status}"


def answer_text(reply: Reply) -> str:
    """A refused or failed request in words: 'HTTP 403: You are not authorized...', or why no
    answer came."""
    if reply.status is None:
        return reply.message or "no answer"
    if reply.message.startswith(f"HTTP {reply.status}"):
        return reply.message  # it says its status itself (a web page in the API's place)
    return f"HTTP {reply.status}: {reply.message}" if reply.message else f"HTTP {reply.status}"


def retryable(reply: Reply) -> bool:
    """An answer worth another try: throttled (429), a 5xx that may pass, or no answer."""
    return reply.status is None or reply.status == THROTTLED or reply.status in RETRYABLE_STATUSES


def _verification(update: TicketUpdate, held: dict[str, object] | Reply | None) -> str:
    """The Verification text of an updated row from what the read-back found."""
    if isinstance(held, dict):
        differences = compare_ticket(update, held)
        if differences:
            return "Mismatch: " + "; ".join(differences)
        moved = job_note(update, held)
        return f"Verified: {moved}" if moved else "Verified"
    if isinstance(held, Reply):
        return f"Not checked: the read-back got {_answer(held)} {held.message}".rstrip()
    return "Not checked: the run stopped before the read-back"


_FAILURE_WORDS = ("error", "failed", "failure", "fail")
_EMPTY: tuple[object, ...] = (None, False, "", [], {})


def reply_failure(reply: Reply) -> str:
    """The server's text when a 2xx answer's body says the update failed; "" otherwise.

    The rule (README, "2xx answers that report a failure"): the body is a JSON object (or a list
    whose first item is one) with a member `success` (any case) that is false or "false", or a
    member `error` or `errors` (any case) that is not empty; or the body is text, not JSON,
    whose first word is ERROR, FAILED, FAILURE or FAIL (any case), e.g. "ERROR: ticket locked".
    """
    if not reply.ok:
        return ""
    body = reply.body
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]
    if isinstance(body, dict):
        for key, value in body.items():
            name = str(key).casefold()
            if name == "success" and (value is False or str(value).strip().casefold() == "false"):
                return reply.message or f"{key}: false"
            if name in ("error", "errors") and value not in _EMPTY:
                return reply.message or str(value)
        return ""
    text = body if isinstance(body, str) else reply.message if body is None else ""
    first = text.strip().split(None, 1)[0].rstrip(":;,.!-").casefold() if text.strip() else ""
    return text.strip() if first in _FAILURE_WORDS else ""


def _unknown_message(reply: Reply, failure: str) -> str:
    return (
        f'HTTP {reply.status}, but the answer says the update failed: "{failure}"; the ticket '
        "may or may not have changed; a resume (batch-update resume) reads it back before deciding"
    )


# Why a row whose requests went unanswered is Unknown rather than Failed.
UNANSWERED = (
    "a request may have reached the server without its answer coming back, so the ticket may or "
    "may not have changed; a resume or retry (batch-update resume, batch-update retry) reads it back before "
    "deciding"
)


def _is_transient_failure(result: RowResult) -> bool:
    """Failed (or Unknown) after every retry on a network error, a 5xx or throttling."""
    return result.outcome in (Outcome.FAILED, Outcome.UNKNOWN) and (
        result.status is None or result.status in RETRYABLE_STATUSES or result.status == THROTTLED
    )


def _first_sentence(text: str) -> str:
    return text.split("\n")[0].rstrip(".")
