"""One row's requests: the read first (a resume's, the before values), the PATCH, the read-back,
and the one retry step that every request kind (PATCH and GET) goes through."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from ..ccs import Reply, ticket_in_answer
from ..changes import Verdict
from ..errors import AuthError
from ..pacing import RateLimiter, backoff_delay
from ..tickets import Outcome, PlannedRow, RowResult, TicketUpdate, compare_ticket
from .policy import (
    THROTTLED,
    UNANSWERED,
    RetryPolicy,
    _answer,
    _unknown_message,
    _utc_now,
    _verification,
    answer_text,
    reply_failure,
    retryable,
)

if TYPE_CHECKING:
    from .pool import Sender

# What a read of a ticket found: its fields, the last Reply when it could not be read, or None
# when the run stopped first.
Read = dict[str, object] | Reply | None


@dataclass
class Tries:
    """How often one request has been tried again, by cause."""

    transient: int = 0  # a 5xx that may pass, or no answer
    throttled: int = 0  # HTTP 429


def _unread_message(reply: Reply) -> str:
    """Why a row was not sent when its ticket could not be read first."""
    if reply.status in (403, 404):
        said = reply.message or f"HTTP {reply.status}"
        return f"{said} (found when the ticket was read before sending; nothing was sent)"
    return (
        f"the ticket could not be read before sending ({answer_text(reply)}), so what it holds "
        "is not known; nothing was sent"
    )


def retry_step(sender: Sender, row: PlannedRow, reply: Reply, tries: Tries, attempt: int) -> bool:
    """The one retry step of a row's requests (PATCH and GET), for a retryable answer.

    True: send the request again (the wait it needs is over). False: the row's tries are used up.
    """

    def tell(reason: str, delay: float) -> None:
        sender._notify_retry(row, attempt, reason, delay)

    return wait_to_retry(
        reply, tries, sender.policies.retry, sender.limiter, sender._rng, sender._halt, tell
    )


def wait_to_retry(
    reply: Reply,
    tries: Tries,
    retry: RetryPolicy,
    limiter: RateLimiter,
    rng: random.Random,
    halt: threading.Event,
    tell: Callable[[str, float], None],
) -> bool:
    """The one retry step of every request kind (PATCH, GET, Search page), for a retryable
    answer (see `retryable`).

    True: send the request again (the wait it needs is over: the limiter's after a 429, the
    backoff after anything else). False: the tries are used up.
    """
    if reply.status == THROTTLED:
        tries.throttled += 1
        limiter.throttled(reply.retry_after)
        if tries.throttled > retry.max_throttled:
            return False
        tell("HTTP 429 (throttled)", reply.retry_after or 0.0)
        return True
    limiter.succeeded()
    tries.transient += 1
    if tries.transient >= retry.max_attempts:
        return False
    delay = backoff_delay(tries.transient, retry.backoff_base, retry.backoff_cap, rng)
    if reply.retry_after:
        delay = max(delay, min(reply.retry_after, retry.backoff_cap))
    tell(_answer(reply), delay)
    halt.wait(delay)
    return True


def read_ticket(sender: Sender, row: PlannedRow, pace: Callable[[], bool]) -> tuple[Read, int]:
    """GET one ticket through the same limiter and retry step as the PATCHes.

    Returns what was read (see `Read`) and how many requests went out. AuthError propagates:
    it stops the run.
    """
    sends = 0
    tries = Tries()
    try:
        while not sender._halting():
            reply = sender.client.get_ticket(row.ticket_number, pace=pace)
            sender._answered_now(reply)
            sends += reply.sends
            if reply.sends == 0:
                return None, sends
            if reply.ok:
                held = ticket_in_answer(reply.body, row.ticket_number)
                if held is not None:
                    return dict(held), sends
                return Reply(reply.status, f"the answer held no ticket {row.ticket_number}"), sends
            if not retryable(reply) or not retry_step(sender, row, reply, tries, sends):
                return reply, sends
        return None, sends
    finally:
        with sender._lock:
            sender._in_flight.pop(row.row_number, None)


def verify_carried(sender: Sender, row: PlannedRow, carried: RowResult) -> RowResult:
    """Read back a row an earlier run updated; its result with the Verification it earns."""
    assert row.update is not None
    try:
        held, sends = read_ticket(sender, row, lambda: sender._pace(row, announce=False))
    except AuthError as exc:
        sender._stop(str(exc), auth=True)
        return carried
    if held is None:  # the run stopped before the read
        return carried
    return replace(
        carried, attempts=carried.attempts + sends, verification=_verification(row.update, held)
    )


class RowSend:
    """The requests of one row, and what they saw, to its RowResult."""

    def __init__(self, sender: Sender, row: PlannedRow) -> None:
        assert row.update is not None, "only valid rows are sent"
        self.sender = sender
        self.row = row
        self.update: TicketUpdate = row.update
        self.request_json: str | None = row.update.to_json_text()
        self.note = ""  # what the decision on what to send said (an overwritten conflict)
        self.attempts = 0
        self.tries = Tries()
        self.history: list[str] = []  # the answers retried, for the message
        self.sent_at: datetime | None = None
        self.started = 0.0
        self.reply: Reply | None = None  # the latest answer to the PATCH
        self.before: dict[str, object] | None = None
        self.before_problem = ""
        # Whether a PATCH may have been applied without its answer coming back (a timeout, a
        # connection dropped after sending): then giving up is not "Failed".
        self.unanswered = False

    # -- the steps ------------------------------------------------------------------------------

    def send(self) -> RowResult:
        sender = self.sender
        held: Read = None
        if self.row.row_number in sender.earlier.read_back_first and not sender._halting():
            done, held = self._read_first()
            if done is not None:
                return done
        if sender.current.looks_at(self.row.row_number) and not sender._halting():
            done = self._look(held)
            if done is not None:
                return done
        elif sender.policies.capture_before and not sender._halting():
            done = self._capture_before()
            if done is not None:
                return done
        return self._patch()

    def _read_first(self) -> tuple[RowResult | None, Read]:
        """A row an earlier run may have applied: read it, and send nothing if it holds the
        update; else what was read, for the decision on what to send."""
        sender = self.sender
        held = self._read()  # credentials refused: the run stops, and _patch says Not sent
        # What the earlier run sent (only the fields that differed then), else the whole row.
        sent = sender.earlier.known_sent.get(self.row.row_number, self.update)
        if not isinstance(held, dict) or compare_ticket(sent, held):
            return None, held
        self.update, self.request_json = sent, sent.to_json_text()
        self.reply = Reply(200, "")
        if sender.policies.capture_before:
            self.before = sender.earlier.known_before.get(self.row.row_number)
            if self.before is None:
                self.before_problem = (
                    "before values not captured: the earlier run applied the update "
                    "without recording them"
                )
        return self._result(
            Outcome.UPDATED,
            "the ticket already held these values when read back (GET), so it was not "
            "sent again (verified by read-back)",
            "Verified",
        ), held

    def _look(self, held: Read) -> RowResult | None:
        """The ticket's current values (read in pages before the run, or now with a GET), and
        the decision they make: Unchanged, Conflict, or only the fields that differ sent."""
        sender = self.sender
        number = self.row.row_number
        # `held`: read just now (a resumed row's read-back), fresher than any page.
        if held is None and number in sender.current.known:
            held = dict(sender.current.known[number])
        elif held is None:
            held = self._read()  # credentials refused: the run stops, and _patch says Not sent
        if held is None:
            return None
        if isinstance(held, Reply):
            self.reply = held
            self.request_json = None
            return self._result(Outcome.FAILED, _unread_message(held))
        decision = sender.current.decide(number, self.update, held)
        if decision.verdict is not Verdict.CHANGE or decision.update is None:
            self.request_json = None
            if sender.policies.capture_before:
                self.before = held
            outcome = (
                Outcome.UNCHANGED if decision.verdict is Verdict.UNCHANGED else Outcome.CONFLICT
            )
            return self._result(outcome, decision.message)
        self.update = decision.update
        self.request_json = decision.update.to_json_text()
        # From here on the row is what is sent: the journal's intent and a row abandoned in
        # flight record the PATCH that left, not the row as the sheet asked for it.
        self.row = replace(self.row, update=decision.update)
        with sender._lock:
            sender._taken[number] = self.row
        self.note = decision.message
        # The before values are evidence the run was asked for (--capture-before) or not.
        return self._keep_before(held) if sender.policies.capture_before else None

    def _capture_before(self) -> RowResult | None:
        """Read the ticket's values before the PATCH, and hand them to the journal first."""
        held = self._read()  # credentials refused: the run stops, and _patch says Not sent
        if isinstance(held, Reply):
            self.before_problem = (
                f"before values not captured: {_answer(held)} {held.message}".strip()
            )
            return None
        if not isinstance(held, dict):
            return None
        return self._keep_before(held)

    def _keep_before(self, held: dict[str, object]) -> RowResult | None:
        """The before values kept, and handed to the journal before the PATCH (so that a run
        killed mid-request can still be undone); Not sent if the journal cannot take them."""
        sender = self.sender
        self.before = held
        if sender.hooks.on_before is None:
            return None
        with sender._lock:  # not once the run is over: its record is closed
            if sender._finished:
                return sender._not_sent(self.row)
            failed: Exception | None = None
            try:
                sender.hooks.on_before(self.row, held)
            except Exception as exc:  # nothing is sent that the journal does not know
                failed = exc
        if failed is not None:
            with sender._lock:
                sender._record_failed(failed)
            return sender._not_sent(self.row)
        return None

    def _patch(self) -> RowResult:
        """PATCH until an answer is final, the tries are used up, or the run stops."""
        sender = self.sender
        while True:
            if sender._halting():
                if self.reply is None:  # no PATCH was answered: the reads do not count
                    return sender._not_sent(self.row)
                return self._gave_up(
                    f"{self.reply.message} (not retried: {sender._report.stopped_reason})",
                    may_settle=False,
                )
            try:
                answer = sender.client.update(self.update, pace=self._pace)
                sender._answered_now(answer)
            except AuthError as exc:
                self.attempts += exc.sends or 2
                sender._stop(str(exc), auth=True)
                self.reply = Reply(401, "Unauthorized")
                return self._result(
                    Outcome.FAILED,
                    "HTTP 401 twice, even with a new token: credentials refused; the run stopped",
                )
            finally:
                with sender._lock:
                    sender._in_flight.pop(self.row.row_number, None)
            self.attempts += answer.sends
            if answer.sends:
                with sender._lock:
                    sender._last_answer[self.row.row_number] = answer
            if answer.sends == 2:
                self.history.append("HTTP 401")  # refused, new token, sent again (ccs)
            if answer.sends == 0:
                if self.reply is None:
                    return sender._not_sent(self.row)
                continue  # the halt check at the top ends the row with its last answer
            self.reply = answer
            self.unanswered = self.unanswered or answer.maybe_applied
            done = self._answered(answer)
            if done is not None:
                return done

    def _answered(self, reply: Reply) -> RowResult | None:
        """The row's result from a PATCH's answer, or None to send it again."""
        sender = self.sender
        failure = reply_failure(reply)
        if failure:
            sender.limiter.succeeded()
            if not sender.policies.verify:
                return self._result(Outcome.UNKNOWN, _unknown_message(reply, failure))
            said = f'HTTP {reply.status}, but the answer says the update failed: "{failure}"'
            settled, held = self._settle(said)
            if settled is not None:
                return settled
            return self._result(
                Outcome.UNKNOWN, _unknown_message(reply, failure), _verification(self.update, held)
            )
        if reply.ok:
            sender.limiter.succeeded()
            return self._updated(reply)
        if not retryable(reply):
            sender.limiter.succeeded()
            return self._result(Outcome.FAILED, reply.message or f"HTTP {reply.status}")
        self.history.append("HTTP 429" if reply.status == THROTTLED else _answer(reply))
        if retry_step(sender, self.row, reply, self.tries, self.attempts):
            return None
        if reply.status == THROTTLED:
            return self._result(
                Outcome.FAILED,
                f"throttled (HTTP 429) {self.tries.throttled} times; gave up. {reply.message}".strip(),
            )
        return self._gave_up(
            f"{reply.message} (gave up after {self.tries.transient} attempts: "
            + ", ".join(self.history)
            + ")",
            may_settle=True,
        )

    def _updated(self, reply: Reply) -> RowResult:
        message = ""
        if reply.status != 204:
            message = f"HTTP {reply.status} where 204 was expected; treated as updated" + (
                f": {reply.message}" if reply.message else ""
            )
        if self.history:
            message = (message + "; " if message else "") + (
                f"updated on attempt {self.attempts} after " + ", ".join(self.history)
            )
        verification = ""
        current = self.sender.current
        if self.sender.policies.verify and not (
            current.verify_in_pages and self.row.row_number in current.known
        ):
            verification = _verification(self.update, self._read_back())
        return self._result(Outcome.UPDATED, message, verification)

    def _gave_up(self, message: str, *, may_settle: bool) -> RowResult:
        if not self.unanswered:
            return self._result(Outcome.FAILED, message)
        if may_settle and self.sender.policies.verify:
            settled, held = self._settle(message)
            if settled is not None:
                return settled
            return self._result(
                Outcome.UNKNOWN, f"{message}; {UNANSWERED}", _verification(self.update, held)
            )
        return self._result(Outcome.UNKNOWN, f"{message}; {UNANSWERED}")

    def _settle(self, said: str) -> tuple[RowResult | None, Read]:
        """--verify: read the ticket back to settle an update its answer left in doubt."""
        held = self._read_back()
        if not isinstance(held, dict):
            return None, held
        differences = compare_ticket(self.update, held)
        if not differences:
            message = f"{said}; the read-back (GET) shows the ticket holds the update"
            return self._result(Outcome.UPDATED, message, "Verified"), held
        message = f"{said}; the read-back (GET) shows the update was not applied"
        return self._result(Outcome.FAILED, message, "Mismatch: " + "; ".join(differences)), held

    # -- requests and the result ------------------------------------------------------------------

    def _pace(self, announce: bool = True) -> bool:
        if not self.sender._pace(self.row, announce=announce):
            return False
        if self.sent_at is None:
            self.sent_at, self.started = _utc_now(), time.perf_counter()
        return True

    def _read(self) -> Read:
        """GET the ticket with retries; None when the run stopped first, or stops now because
        the credentials were refused (AuthError stops the whole run)."""
        try:
            answer, sends = read_ticket(self.sender, self.row, lambda: self._pace(False))
        except AuthError as exc:
            self.sender._stop(str(exc), auth=True)
            return None
        self.attempts += sends
        return answer

    def _read_back(self) -> Read:
        """The ticket read after its PATCH was answered; the row's status stays the PATCH's."""
        patched = self.reply
        held = self._read()
        self.reply = patched
        return held

    def _result(self, outcome: Outcome, message: str, verification: str = "") -> RowResult:
        if self.note:
            message = f"{self.note}; {message}" if message else self.note
        if self.before_problem:
            message = f"{message}; {self.before_problem}" if message else self.before_problem
        return RowResult(
            row_number=self.row.row_number,
            outcome=outcome,
            ticket_number=self.update.ticket_number,
            status=self.reply.status if self.reply else None,
            message=message,
            attempts=self.attempts,
            sent_at=self.sent_at,
            duration_ms=round((time.perf_counter() - self.started) * 1000)
            if self.sent_at
            else None,
            request_json=self.request_json,
            before=self.before,
            verification=verification,
        )
