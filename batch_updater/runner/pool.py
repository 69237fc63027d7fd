"""The send loop: a pool of workers, the retry policy, the stop policy, and cancellation.

Rows are fed to the workers through a small bounded queue, so memory stays flat however long
the sheet is. With automatic concurrency (the default) the pool starts small and grows while
the server's response time needs more requests in flight to keep the rate (Little's law:
rate x response time); the rate limiter, not the pool, is what keeps the server's load down.
Every attempt (first try or retry) takes a slot from the one shared RateLimiter.
Each row's outcome is handed to `on_result` (the journal, the progress bar) the moment it is
known, from one place and under one lock, so that those listeners never race. One row's
requests, and the retry step they share, are in `row`; the policies and the report in `policy`.

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
from collections.abc import Callable, Iterable
from datetime import datetime

from ..ccs import Reply
from ..pacing import RateLimiter
from ..tickets import Outcome, PlannedRow, RowResult
from .policy import (
    _NO_PATCH,
    AUTO_HEADROOM,
    AUTO_MAX_WORKERS,
    AUTO_SAMPLES,
    AUTO_START_WORKERS,
    FORBIDDEN,
    UNKNOWN_IN_FLIGHT,
    CurrentState,
    EarlierRows,
    Progress,
    SenderHooks,
    SendPolicies,
    SendReport,
    UpdateClient,
    _first_sentence,
    _is_transient_failure,
    _unknown_message,
    _utc_now,
    reply_failure,
)
from .row import RowSend, verify_carried

log = logging.getLogger("batch_updater.runner")


class Sender:
    """One send run: `Sender(client, limiter, policies, hooks, earlier, current).run(rows)`."""

    def __init__(
        self,
        client: UpdateClient,
        limiter: RateLimiter,
        policies: SendPolicies | None = None,
        hooks: SenderHooks | None = None,
        earlier: EarlierRows | None = None,
        current: CurrentState | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.limiter = limiter
        self.policies = policies = policies or SendPolicies()
        self.hooks = hooks or SenderHooks()
        self.earlier = earlier or EarlierRows()
        self.current = current or CurrentState()
        self.concurrency = None if policies.concurrency is None else max(1, policies.concurrency)
        self.cancel = self.hooks.cancel
        self.abandon = self.hooks.abandon
        self._rng = rng or random.Random()
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._report = SendReport()
        self._finished = False
        self._answered = 0
        self._forbidden = 0
        self._transient_streak = 0
        # Rows with a request out: (row, when it took its slot).
        self._in_flight: dict[int, tuple[PlannedRow, datetime]] = {}
        self._taken: dict[int, PlannedRow] = {}  # rows a worker took from the queue
        self._given: dict[int, PlannedRow] = {}  # rows put in the queue (by the feeding thread)
        # The latest answer to each row's PATCH: None while one is out without an answer.
        self._last_answer: dict[int, Reply | None] = {}
        self._first_sent: dict[int, datetime] = {}
        self._heard: set[int] = set()  # rows whose result the listeners have been told
        self._progress_failed = False  # the progress listener raised: it is told no more
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
            try:
                result = self._send_row(row)
            except Exception as exc:  # a bug: the row's fate is unknown, the run stops
                log.exception("internal error while sending row %d", row.row_number)
                result = self._broken(row, exc)
            self._record(result)

    def _send_row(self, row: PlannedRow) -> RowResult:
        carried = self.earlier.check_carried.get(row.row_number)
        if carried is not None:
            return verify_carried(self, row, carried)
        return RowSend(self, row).send()

    def _pace(self, row: PlannedRow, *, announce: bool = True) -> bool:
        """Wait for a slot from the shared limiter; the row is in flight from then on."""
        if not self.limiter.acquire(self._halt) or self._halting():
            return False
        if announce and self.hooks.on_sending is not None:
            try:
                self.hooks.on_sending(row)
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
        self._heard_by_progress(
            lambda progress: progress.retrying(
                row.row_number, row.ticket_number, attempt, reason, delay
            )
        )

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
                if self.policies.verify
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

    def _broken(self, row: PlannedRow, exc: Exception) -> RowResult:
        """A row whose sending met a bug of batch-update: what was seen of its PATCH (Unknown if
        one may have left, read back by a resume), and the run stops, saying so."""
        with self._lock:
            row = self._taken.get(row.row_number, row)
            answer = self._last_answer.get(row.row_number, _NO_PATCH)
            self._in_flight.pop(row.row_number, None)
        self._stop(
            f"internal error in batch-update while sending row {row.row_number} "
            f"({type(exc).__name__}: {exc}): a bug; please report it"
        )
        return self._abandoned(row, answer)

    def _not_sent(self, row: PlannedRow) -> RowResult:
        carried = self.earlier.check_carried.get(row.row_number)
        if carried is not None:  # only to be read back: it keeps what the earlier run did
            return carried
        # A Ctrl-C (cancel) may be seen by a worker's slot before its reason is written down.
        reason = self._report.stopped_reason or (
            "interrupted" if self.cancel.is_set() else "the run stopped"
        )
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
        if self.hooks.on_result is not None:
            try:
                self.hooks.on_result(result)
            except Exception as exc:
                log.warning("row %d: the outcome could not be recorded: %s", result.row_number, exc)
                self._record_failed(exc)
        self._heard_by_progress(lambda progress: progress.row_done(result))

    def _heard_by_progress(self, tell: Callable[[Progress], None]) -> None:
        """Tell the progress listener, which must never stop a worker: one that fails (the
        terminal gone, its output piped into a reader that closed) is told nothing more, and
        the run goes on to record every row."""
        progress = self.hooks.progress
        if progress is None or self._progress_failed:
            return
        try:
            tell(progress)
        except Exception as exc:
            self._progress_failed = True
            log.warning("the progress display failed (%s); the run goes on without it", exc)

    def _record(self, result: RowResult) -> None:
        stop_reason = ""
        with self._lock:
            if self._finished:
                return
            self._report.results[result.row_number] = result
            forbidden_again = (
                result.status == FORBIDDEN and result.row_number in self.earlier.known_forbidden
            )
            # A row that made no request (Unchanged or Conflict from the pages read first) says
            # nothing of the server: it neither counts towards the stop policies nor resets them.
            if result.outcome is not Outcome.NOT_SENT and result.attempts > 0:
                if not forbidden_again:
                    self._answered += 1
                    if result.status == FORBIDDEN:
                        self._forbidden += 1
                if _is_transient_failure(result):
                    self._transient_streak += 1
                else:
                    self._transient_streak = 0
                limit = self.policies.stop.forbidden_at_start
                if limit and self._answered == self._forbidden == limit:
                    stop_reason = (
                        f"the first {limit} requests were all refused with HTTP 403: the account "
                        "probably lacks the Remediation Administrator role in CCS"
                    )
                limit = self.policies.stop.transient_streak
                if limit and self._transient_streak >= limit:
                    stop_reason = (
                        f"{self._transient_streak} rows in a row failed on server or network "
                        "errors after every retry: the server looks unavailable"
                    )
            self._tell(result)
        if stop_reason:
            self._stop(stop_reason)
