"""The send loop: a pool of workers, the retry policy, the stop policy, and cancellation.

Rows are fed to the workers through a small bounded queue, so memory stays flat however long
the sheet is. With automatic concurrency (the default) the pool starts small and grows while
the server's response time needs more requests in flight to keep the rate (Little's law:
rate x response time); the rate limiter, not the pool, is what keeps the server's load down.
Every attempt (first try or retry) takes a slot from the one shared RateLimiter.
Each row's outcome is handed to `on_result` (the journal, the progress bar) the moment it is
known, from one place and under one lock, so that those listeners never race.

Retry only what can succeed: 429 (paced down, after Retry-After), 5xx, timeouts and resets are
retried with backoff; 400, 403, 404 and any other answer are recorded and the run moves on.
Stop early when the run is hopeless: credentials refused (AuthError), the first requests all
refused with 403 (the account lacks the role), or a long streak of rows that failed on transient
errors (the server is down). What was not sent by then is recorded as Not sent.
"""

from __future__ import annotations

import logging
import math
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Protocol

from .ccs import Reply
from .errors import AuthError
from .pacing import RateLimiter, backoff_delay
from .tickets import Outcome, PlannedRow, RowResult, TicketUpdate, compare_ticket

log = logging.getLogger(__name__)

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
    """Callbacks the CLI attaches (a progress bar, a log). All optional to implement."""

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


class _Halted(Exception):
    """The run is stopping; the row in hand ends without another attempt."""


class Sender:
    """One send run. Use `send_updates()` unless you need the object (tests, the CLI's signals)."""

    def __init__(
        self,
        client: UpdateClient,
        limiter: RateLimiter,
        *,
        concurrency: int | None = None,
        retry: RetryPolicy | None = None,
        stop_policy: StopPolicy | None = None,
        progress: Progress | None = None,
        on_result: Callable[[RowResult], None] | None = None,
        on_sending: Callable[[PlannedRow], None] | None = None,
        cancel: threading.Event | None = None,
        abandon: threading.Event | None = None,
        rng: random.Random | None = None,
        read_back_first: Collection[int] = (),
        known_before: Mapping[int, dict[str, object]] | None = None,
        known_forbidden: Collection[int] = (),
        check_carried: Mapping[int, RowResult] | None = None,
        capture_before: bool = False,
        verify: bool = False,
        on_before: Callable[[PlannedRow, dict[str, object]], None] | None = None,
    ) -> None:
        self.client = client
        self.limiter = limiter
        # None: automatic, from AUTO_START_WORKERS up to AUTO_MAX_WORKERS as the response time
        # needs. A number: exactly that many workers.
        self.concurrency = None if concurrency is None else max(1, concurrency)
        self.retry = retry or RetryPolicy()
        self.stop_policy = stop_policy or StopPolicy()
        self.progress = progress
        self.on_result = on_result
        # Called with the slot in hand, right before each request goes out (the journal commits
        # its intent there). If it fails, the request is not sent and the run stops.
        self.on_sending = on_sending
        # Rows whose earlier request may or may not have been applied (a run killed while it
        # was in flight): read the ticket first, and send only if it does not hold the values.
        self.read_back_first = frozenset(read_back_first)
        # Before values an earlier run captured for such rows (the values before its PATCH).
        self.known_before = dict(known_before or {})
        # Rows an earlier run already saw refused with 403 (a retry sends them again): another
        # 403 for one of them says nothing new about the account's role, so the stop policy
        # "the first requests all refused with 403" does not count them.
        self.known_forbidden = frozenset(known_forbidden)
        # Rows an earlier run already updated, carried into this one, whose update was never
        # read back (that run stopped first, or did not verify): with verify, they are read back
        # (GET) and compared, never sent; each keeps its carried result, with its Verification.
        self.check_carried = dict(check_carried or {})
        # Evidence for auditors: the ticket read before its PATCH, and read back after a 204.
        self.capture_before = capture_before
        self.verify = verify
        # Called with the before values as soon as they are read, ahead of the PATCH (the
        # journal keeps them there, so that a run killed mid-request can still be undone).
        self.on_before = on_before
        # cancel: stop dispatching, let requests in flight finish (first Ctrl-C, SIGTERM).
        self.cancel = cancel or threading.Event()
        # abandon: stop waiting for requests in flight too (second Ctrl-C).
        self.abandon = abandon or threading.Event()
        self._rng = rng or random.Random()
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._report = SendReport()
        self._finished = False
        self._answered = 0
        self._forbidden = 0
        self._transient_streak = 0
        # Rows with a request out: (row, when it took its slot, whether that request is a PATCH).
        self._in_flight: dict[int, tuple[PlannedRow, datetime]] = {}
        self._taken: dict[int, PlannedRow] = {}  # rows a worker took from the queue
        self._given: dict[int, PlannedRow] = {}  # rows put in the queue (by the feeding thread)
        # The latest answer to each row's PATCH: None while one is out without an answer.
        self._last_answer: dict[int, Reply | None] = {}
        self._first_sent: dict[int, datetime] = {}
        self._heard: set[int] = set()  # rows whose result the listeners have been told
        # Seconds from taking a slot to the answer, for the latest requests (automatic concurrency).
        self._response_times: deque[float] = deque(maxlen=AUTO_SAMPLES)
        self._times_lock = threading.Lock()
        self._local = threading.local()

    # -- the run ------------------------------------------------------------------------------

    def run(self, rows: Iterable[PlannedRow]) -> SendReport:
        """Send every row (each must have an update); return one result per row."""
        start = self.concurrency or AUTO_START_WORKERS
        work: queue.Queue[PlannedRow | None] = queue.Queue(maxsize=start * 2)
        workers: list[threading.Thread] = []
        self._add_workers(workers, work, start)
        for row in rows:
            if self._halting():
                self._record(self._not_sent(row))
                continue
            self._grow(workers, work)
            while not self._put(work, row):
                self._grow(workers, work)
                if self._halting():
                    self._record(self._not_sent(row))
                    break
        for _ in workers:
            while not self._put(work, None):
                self._halting()  # a stop ends the workers' waits (pacing, Retry-After, backoff)
                if self.abandon.is_set():
                    break
        for worker in workers:
            while worker.is_alive():
                worker.join(0.1)
                self._halting()
                if self.abandon.is_set():
                    break
            if self.abandon.is_set():
                break
        return self._finish(work)

    def _add_workers(
        self, workers: list[threading.Thread], work: queue.Queue[PlannedRow | None], count: int
    ) -> None:
        for _ in range(count):
            worker = threading.Thread(
                target=self._work, args=(work,), name=f"sender-{len(workers)}", daemon=True
            )
            workers.append(worker)
            worker.start()
        self._report.workers = len(workers)

    def workers_wanted(self) -> int:
        """How many workers keep the pace at the response time seen lately (automatic mode)."""
        if self.concurrency is not None:
            return self.concurrency
        with self._times_lock:
            samples = sorted(self._response_times)
        if not samples:
            return AUTO_START_WORKERS
        upper_quartile = samples[(len(samples) * 3) // 4]
        wanted = math.ceil(self.limiter.current_rate * upper_quartile * AUTO_HEADROOM) + 1
        return min(AUTO_MAX_WORKERS, max(AUTO_START_WORKERS, wanted))

    def _grow(self, workers: list[threading.Thread], work: queue.Queue[PlannedRow | None]) -> None:
        """Automatic concurrency: start more workers when the response time needs them."""
        if self.concurrency is None:
            missing = self.workers_wanted() - len(workers)
            if missing > 0:
                self._add_workers(workers, work, missing)

    def _halting(self) -> bool:
        if self.cancel.is_set() and not self._halt.is_set():
            with self._lock:
                self._report.interrupted = True
                if not self._report.stopped_reason:
                    self._report.stopped_reason = "interrupted"
            self._halt.set()
        return self._halt.is_set()

    def _put(self, work: queue.Queue[PlannedRow | None], item: PlannedRow | None) -> bool:
        try:
            work.put(item, timeout=0.1)
        except queue.Full:
            return False
        if item is not None:
            self._given[item.row_number] = item
        return True

    def _finish(self, work: queue.Queue[PlannedRow | None]) -> SendReport:
        with self._lock:
            self._finished = True
            report = self._report
            # Rows still in the queue (abandoned) were never sent.
            while True:
                try:
                    row = work.get_nowait()
                except queue.Empty:
                    break
                if row is not None and row.row_number not in report.results:
                    report.results[row.row_number] = self._not_sent(row)
            # Rows a worker held when the run was abandoned: each ends with what was seen of
            # its PATCH. One in flight may or may not have been applied (Unknown, read back by a
            # resume); one whose PATCH had not left (its before values were being read) was not
            # sent; one whose PATCH was answered keeps that answer.
            abandoned = [
                self._abandoned(row, self._last_answer.get(row.row_number, _NO_PATCH))
                for number, row in sorted(self._taken.items())
                if number not in report.results
            ]
            self._in_flight.clear()
            # A row a worker had just taken from the queue, not yet counted as taken, when the
            # run was abandoned: it had not been sent (the worker sees the halt before sending).
            for number, row in self._given.items():
                if number not in report.results and number not in self._taken:
                    abandoned.append(self._not_sent(row))
            # Every row given to the send loop gets its result from here, and the listeners
            # (the journal) hear of each one, so that the journal and the report are one record.
            for result in abandoned:
                report.results[result.row_number] = result
            for number in sorted(set(report.results) - self._heard):
                self._tell(report.results[number])
        return report

    # -- one worker ---------------------------------------------------------------------------

    def _work(self, work: queue.Queue[PlannedRow | None]) -> None:
        while True:
            row = work.get()
            if row is None:
                return
            with self._lock:
                self._taken[row.row_number] = row
            if self._halting():
                self._record(self._not_sent(row))
                continue
            self._record(self._send_row(row))

    def _send_row(self, row: PlannedRow) -> RowResult:
        assert row.update is not None, "only valid rows are sent"
        carried = self.check_carried.get(row.row_number)
        if carried is not None:
            return self._verify_carried(row, carried)
        update = row.update
        request_json = update.to_json_text()
        attempts = transient = throttled = 0
        history: list[str] = []
        sent_at: datetime | None = None
        started = 0.0
        reply: Reply | None = None
        before: dict[str, object] | None = None
        before_problem = ""

        def result(outcome: Outcome, message: str, verification: str = "") -> RowResult:
            if before_problem:
                message = f"{message}; {before_problem}" if message else before_problem
            return RowResult(
                row_number=row.row_number,
                outcome=outcome,
                ticket_number=update.ticket_number,
                status=reply.status if reply else None,
                message=message,
                attempts=attempts,
                sent_at=sent_at,
                duration_ms=round((time.perf_counter() - started) * 1000) if sent_at else None,
                request_json=request_json,
                before=before,
                verification=verification,
            )

        def pace(announce: bool = True) -> bool:
            nonlocal sent_at, started
            if not self._pace(row, announce=announce):
                return False
            if sent_at is None:
                sent_at, started = _utc_now(), time.perf_counter()
            return True

        def read() -> dict[str, object] | Reply | None:
            """GET the ticket with retries; its fields, or the last Reply, or None if stopped."""
            nonlocal attempts
            answer, sends = self._read_ticket(row, lambda: pace(False))
            attempts += sends
            return answer

        def read_back() -> dict[str, object] | Reply | None:
            """The ticket read after its PATCH was answered; the row's status stays the PATCH's."""
            nonlocal reply
            patched = reply
            try:
                held = read()
            except AuthError as exc:
                self._stop(str(exc), auth=True)
                held = None
            reply = patched
            return held

        if row.row_number in self.read_back_first and not self._halting():
            try:
                held = read()
            except AuthError as exc:
                self._stop(str(exc), auth=True)
                return self._not_sent(row)
            if isinstance(held, dict) and not compare_ticket(update, held):
                reply = Reply(200, "")
                if self.capture_before:
                    before = self.known_before.get(row.row_number)
                    if before is None:
                        before_problem = (
                            "before values not captured: the earlier run applied the update "
                            "without recording them"
                        )
                return result(
                    Outcome.UPDATED,
                    "the ticket already held these values when read back (GET), so it was not "
                    "sent again (verified by read-back)",
                    "Verified",
                )

        if self.capture_before and not self._halting():
            try:
                held = read()
            except AuthError as exc:
                self._stop(str(exc), auth=True)
                return self._not_sent(row)
            if isinstance(held, dict):
                before = held
                if self.on_before is not None:
                    with self._lock:  # not once the run is over: its record is closed
                        if self._finished:
                            return self._not_sent(row)
                        failed: Exception | None = None
                        try:
                            self.on_before(row, held)
                        except Exception as exc:  # nothing is sent that the journal does not know
                            failed = exc
                    if failed is not None:
                        with self._lock:
                            self._record_failed(failed)
                        return self._not_sent(row)
            elif isinstance(held, Reply):
                before_problem = (
                    f"before values not captured: {_answer(held)} {held.message}".strip()
                )

        # Whether a PATCH of this row may have been applied without its answer coming back
        # (a timeout, a connection dropped after sending): then giving up is not "Failed".
        unanswered = False

        def settle(said: str) -> tuple[RowResult | None, dict[str, object] | Reply | None]:
            """--verify: read the ticket back to settle an update its answer left in doubt."""
            held = read_back()
            if not isinstance(held, dict):
                return None, held
            differences = compare_ticket(update, held)
            if not differences:
                message = f"{said}; the read-back (GET) shows the ticket holds the update"
                return result(Outcome.UPDATED, message, "Verified"), held
            message = f"{said}; the read-back (GET) shows the update was not applied"
            return result(Outcome.FAILED, message, "Mismatch: " + "; ".join(differences)), held

        def gave_up(message: str, *, may_settle: bool) -> RowResult:
            if not unanswered:
                return result(Outcome.FAILED, message)
            if may_settle and self.verify:
                settled, held = settle(message)
                if settled is not None:
                    return settled
                return result(
                    Outcome.UNKNOWN, f"{message}; {UNANSWERED}", _verification(update, held)
                )
            return result(Outcome.UNKNOWN, f"{message}; {UNANSWERED}")

        while True:
            if self._halting():
                if reply is None:  # no PATCH was answered: the reads do not count
                    return self._not_sent(row)
                return gave_up(
                    f"{reply.message if reply else ''} (not retried: {self._report.stopped_reason})",
                    may_settle=False,
                )
            try:
                answer = self.client.update(update, pace=pace)
                self._answered_now(answer)
            except AuthError as exc:
                attempts += 2
                self._stop(str(exc), auth=True)
                reply = Reply(401, "Unauthorized")
                return result(
                    Outcome.FAILED,
                    "HTTP 401 twice, even with a new token: credentials refused; the run stopped",
                )
            finally:
                with self._lock:
                    self._in_flight.pop(row.row_number, None)
            attempts += answer.sends
            if answer.sends:
                with self._lock:
                    self._last_answer[row.row_number] = answer
            if answer.sends == 2:
                history.append("HTTP 401")  # refused, new token, sent again (ccs.py)
            if answer.sends == 0:
                if reply is None:
                    return self._not_sent(row)
                continue  # the halt check at the top ends the row with its last answer
            reply = answer
            unanswered = unanswered or reply.maybe_applied
            status = reply.status
            failure = reply_failure(reply)
            if failure:
                self.limiter.succeeded()
                if not self.verify:
                    return result(Outcome.UNKNOWN, _unknown_message(reply, failure))
                said = f'HTTP {status}, but the answer says the update failed: "{failure}"'
                settled, held = settle(said)
                if settled is not None:
                    return settled
                return result(
                    Outcome.UNKNOWN, _unknown_message(reply, failure), _verification(update, held)
                )
            if reply.ok:
                self.limiter.succeeded()
                message = reply.message if status != 204 else ""
                if status != 204:
                    message = f"HTTP {status} where 204 was expected; treated as updated" + (
                        f": {reply.message}" if reply.message else ""
                    )
                if history:
                    message = (message + "; " if message else "") + (
                        f"updated on attempt {attempts} after " + ", ".join(history)
                    )
                verification = ""
                if self.verify:
                    verification = _verification(update, read_back())
                return result(Outcome.UPDATED, message, verification)
            if status == THROTTLED:
                throttled += 1
                history.append("HTTP 429")
                self.limiter.throttled(reply.retry_after)
                if throttled > self.retry.max_throttled:
                    return result(
                        Outcome.FAILED,
                        f"throttled (HTTP 429) {throttled} times; gave up. {reply.message}".strip(),
                    )
                self._notify_retry(row, attempts, "HTTP 429 (throttled)", reply.retry_after or 0.0)
                continue
            self.limiter.succeeded()
            if status is None or status in RETRYABLE_STATUSES:
                transient += 1
                history.append(_answer(reply))
                if transient >= self.retry.max_attempts:
                    return gave_up(
                        f"{reply.message} (gave up after {transient} attempts: "
                        + ", ".join(history)
                        + ")",
                        may_settle=True,
                    )
                delay = backoff_delay(
                    transient, self.retry.backoff_base, self.retry.backoff_cap, self._rng
                )
                if reply.retry_after:
                    delay = max(delay, min(reply.retry_after, self.retry.backoff_cap))
                self._notify_retry(row, attempts, _answer(reply), delay)
                self._halt.wait(delay)
                continue
            return result(Outcome.FAILED, reply.message or f"HTTP {status}")

    def _read_ticket(
        self, row: PlannedRow, pace: Callable[[], bool]
    ) -> tuple[dict[str, object] | Reply | None, int]:
        """GET one ticket through the same limiter and retry policy as the PATCHes.

        Returns (its fields, or the last Reply when it could not be read, or None when the run
        stopped first) and how many requests went out. AuthError propagates: it stops the run.
        """
        sends = transient = throttled = 0
        try:
            while not self._halting():
                reply = self.client.get_ticket(row.ticket_number, pace=pace)
                self._answered_now(reply)
                sends += reply.sends
                if reply.sends == 0:
                    return None, sends
                if reply.ok:
                    held = (
                        reply.body[0] if isinstance(reply.body, list) and reply.body else reply.body
                    )
                    if isinstance(held, dict):
                        return held, sends
                    return Reply(reply.status, "the answer held no ticket"), sends
                if reply.status == THROTTLED:
                    throttled += 1
                    self.limiter.throttled(reply.retry_after)
                    if throttled > self.retry.max_throttled:
                        return reply, sends
                    continue
                if reply.status is None or reply.status in RETRYABLE_STATUSES:
                    transient += 1
                    if transient >= self.retry.max_attempts:
                        return reply, sends
                    self._halt.wait(
                        backoff_delay(
                            transient, self.retry.backoff_base, self.retry.backoff_cap, self._rng
                        )
                    )
                    continue
                return reply, sends
            return None, sends
        finally:
            with self._lock:
                self._in_flight.pop(row.row_number, None)

    def _pace(self, row: PlannedRow, *, announce: bool = True) -> bool:
        """Wait for a slot from the shared limiter; the row is in flight from then on."""
        if not self.limiter.acquire(self._halt) or self._halting():
            return False
        if announce and self.on_sending is not None:
            try:
                self.on_sending(row)
            except Exception as exc:  # nothing is sent that the journal does not know about
                with self._lock:
                    self._record_failed(exc)
                return False
        with self._lock:
            # The last look before the request leaves, under the lock the end of the run takes:
            # once the stop is known (the notice is printed after it is set), nothing new leaves.
            if self._finished or self.cancel.is_set() or self._halt.is_set():
                return False
            now = _utc_now()
            self._in_flight[row.row_number] = (row, now)
            if announce:
                self._last_answer[row.row_number] = None
                self._first_sent.setdefault(row.row_number, now)
        self._local.slot_taken = time.perf_counter()
        return True

    def _answered_now(self, reply: Reply) -> None:
        """Note how long the request took from its slot to its answer (automatic concurrency)."""
        taken = getattr(self._local, "slot_taken", None)
        if reply.sends and taken is not None:
            with self._times_lock:
                self._response_times.append(time.perf_counter() - taken)
        self._local.slot_taken = None

    def _notify_retry(self, row: PlannedRow, attempt: int, reason: str, delay: float) -> None:
        if self.progress is not None and hasattr(self.progress, "retrying"):
            self.progress.retrying(row.row_number, row.ticket_number, attempt, reason, delay)

    def _abandoned(self, row: PlannedRow, answer: Reply | object | None) -> RowResult:
        """The result of a row a worker still held when the run was abandoned (second Ctrl-C)."""
        if answer is _NO_PATCH:
            return self._not_sent(row)
        request_json = row.update.to_json_text() if row.update else None
        sent_at = self._first_sent.get(row.row_number)
        if not isinstance(answer, Reply) or (answer.ok and reply_failure(answer)):
            return RowResult(
                row_number=row.row_number,
                outcome=Outcome.UNKNOWN,
                ticket_number=row.ticket_number,
                status=answer.status if isinstance(answer, Reply) else None,
                message=UNKNOWN_IN_FLIGHT
                if not isinstance(answer, Reply)
                else _unknown_message(answer, reply_failure(answer)),
                attempts=1,
                sent_at=sent_at,
                request_json=request_json,
            )
        if answer.ok:
            return RowResult(
                row_number=row.row_number,
                outcome=Outcome.UPDATED,
                ticket_number=row.ticket_number,
                status=answer.status,
                message="" if answer.status == 204 else answer.message,
                attempts=1,
                sent_at=sent_at,
                request_json=request_json,
                verification="Not checked: the run stopped before the read-back"
                if self.verify
                else "",
            )
        return RowResult(
            row_number=row.row_number,
            outcome=Outcome.FAILED,
            ticket_number=row.ticket_number,
            status=answer.status,
            message=f"{answer.message} (not retried: the run was interrupted)".lstrip(),
            attempts=1,
            sent_at=sent_at,
            request_json=request_json,
        )

    def _verify_carried(self, row: PlannedRow, carried: RowResult) -> RowResult:
        """Read back a row an earlier run updated; its result with the Verification it earns."""
        assert row.update is not None
        try:
            held, sends = self._read_ticket(row, lambda: self._pace(row, announce=False))
        except AuthError as exc:
            self._stop(str(exc), auth=True)
            return carried
        if held is None:  # the run stopped before the read
            return carried
        return replace(
            carried,
            attempts=carried.attempts + sends,
            verification=_verification(row.update, held),
        )

    def _not_sent(self, row: PlannedRow) -> RowResult:
        carried = self.check_carried.get(row.row_number)
        if carried is not None:  # only to be read back: it keeps what the earlier run did
            return carried
        reason = self._report.stopped_reason or "the run stopped"
        if reason == "interrupted":
            reason = "the run was interrupted (Ctrl-C) before this row was sent"
        return RowResult(
            row_number=row.row_number,
            outcome=Outcome.NOT_SENT,
            ticket_number=row.ticket_number,
            message=f"not sent: {_first_sentence(reason)}",
            request_json=row.update.to_json_text() if row.update else None,
        )

    # -- results and the stop policy ----------------------------------------------------------

    def _stop(self, reason: str, *, auth: bool = False) -> None:
        with self._lock:
            self._stop_locked(reason, auth=auth)

    def _stop_locked(self, reason: str, *, auth: bool = False) -> None:
        if not self._report.stopped_reason or self._report.stopped_reason == "interrupted":
            self._report.stopped_reason = reason
        self._report.auth_failed = self._report.auth_failed or auth
        self._halt.set()

    def _record_failed(self, exc: Exception) -> None:
        """The journal refused a write (under the lock): stop, and say why once."""
        if not self._report.record_failed:
            self._report.record_failed = str(exc).rstrip(".")
            self._stop_locked(f"the run journal could not be written: {self._report.record_failed}")

    def _tell(self, result: RowResult) -> None:
        """Hand one result to the listeners (the journal, the progress bar); under the lock.

        A journal that cannot take it (a full disk) stops the run: nothing more is sent that
        could not be recorded. The row stays as the journal last had it ("sending": Unknown,
        read back by a resume), and the other rows still get their turn to be recorded.
        """
        self._heard.add(result.row_number)
        if self.on_result is not None:
            try:
                self.on_result(result)
            except Exception as exc:
                log.warning("row %d: the outcome could not be recorded: %s", result.row_number, exc)
                self._record_failed(exc)
        if self.progress is not None and hasattr(self.progress, "row_done"):
            self.progress.row_done(result)

    def _record(self, result: RowResult) -> None:
        stop_reason = ""
        with self._lock:
            if self._finished:
                return
            self._report.results[result.row_number] = result
            forbidden_again = (
                result.status == FORBIDDEN and result.row_number in self.known_forbidden
            )
            if result.outcome is not Outcome.NOT_SENT:
                if not forbidden_again:
                    self._answered += 1
                    if result.status == FORBIDDEN:
                        self._forbidden += 1
                if _is_transient_failure(result):
                    self._transient_streak += 1
                else:
                    self._transient_streak = 0
                limit = self.stop_policy.forbidden_at_start
                if limit and self._answered == self._forbidden == limit:
                    stop_reason = (
                        f"the first {limit} requests were all refused with HTTP 403: the account "
                        "probably lacks the Remediation Administrator role in CCS"
                    )
                limit = self.stop_policy.transient_streak
                if limit and self._transient_streak >= limit:
                    stop_reason = (
                        f"{self._transient_streak} rows in a row failed on server or network "
                        "errors after every retry: the server looks unavailable"
                    )
            self._tell(result)
        if stop_reason:
            self._stop(stop_reason)


def _verification(update: TicketUpdate, held: dict[str, object] | Reply | None) -> str:
    """The Verification text of an updated row from what the read-back found."""
    if isinstance(held, dict):
        differences = compare_ticket(update, held)
        return "Mismatch: " + "; ".join(differences) if differences else "Verified"
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


def send_updates(
    rows: Iterable[PlannedRow],
    client: UpdateClient,
    limiter: RateLimiter,
    **options: object,
) -> SendReport:
    """Send every row's update through a pool of workers; one RowResult per row comes back."""
    return Sender(client, limiter, **options).run(rows)  # type: ignore[arg-type]
