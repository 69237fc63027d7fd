"""The send loop against the simulator: pacing, retries, stop policies, cancellation."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from helpers import make_sender

from batch_updater.ccs import CcsClient
from batch_updater.pacing import RateLimiter
from batch_updater.runner import (
    AUTO_MAX_WORKERS,
    AUTO_START_WORKERS,
    UNANSWERED,
    RetryPolicy,
    StopPolicy,
)
from batch_updater.settings import Secret
from batch_updater.tickets import Outcome, PlannedRow, TicketState, TicketUpdate

FAST_RETRY = RetryPolicy(max_attempts=10, backoff_base=0.01, backoff_cap=0.05, max_throttled=50)


def rows(count: int, first: int = 1, **fields) -> list[PlannedRow]:
    fields.setdefault("priority", "High")
    fields.setdefault("state", TicketState.REMEDIATION_PERFORMED)
    return [
        PlannedRow(row_number=n + 4, update=TicketUpdate(f"INCA{n:07d}", **fields))
        for n in range(first, first + count)
    ]


class RecordingLimiter(RateLimiter):
    """The tool's limiter, noting the moment each slot is granted: when a request may leave.

    That moment is what the client controls, whatever the load on the machine; where a request
    arrives at the server also depends on the scheduler and the network (benchmarks/ measures it).
    """

    def __init__(self, rate: float) -> None:
        super().__init__(rate)
        self.granted: list[float] = []

    def try_acquire(self) -> float:
        wait = super().try_acquire()
        if wait <= 0:
            self.granted.append(self._sent[-1])  # the grant instant the limiter itself keeps
        return wait


def sender_for(
    sim, *, rate=200.0, user="corp\\ccsadmin", password="Demo-Passw0rd!", limiter=None, **options
):
    client = CcsClient(sim.url, user, Secret(password), timeout=(5.0, 5.0))
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("concurrency", 4)
    client.login()
    return make_sender(client, limiter or RateLimiter(rate), **options)


def outcomes(report) -> dict[Outcome, int]:
    counts: dict[Outcome, int] = {}
    for result in report.results.values():
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    return counts


def test_every_row_updated_and_recorded_once(simulator) -> None:
    batch = rows(60)
    seen: list[int] = []
    report = sender_for(simulator, on_result=lambda r: seen.append(r.row_number)).run(batch)
    assert outcomes(report) == {Outcome.UPDATED: 60}
    assert sorted(seen) == [row.row_number for row in batch]
    for row in batch:
        result = report.results[row.row_number]
        assert (result.status, result.attempts, result.message) == (204, 1, "")
        assert result.sent_at is not None and result.duration_ms is not None
        assert result.request_json == row.update.to_json_text()
        assert simulator.ticket(row.ticket_number)["TicketState"] == 2
    assert not report.stopped


def test_refusals_are_recorded_without_retry(simulator) -> None:
    batch = [
        PlannedRow(5, update=TicketUpdate("INCA0099999", priority="Low")),
        PlannedRow(6, update=TicketUpdate("INCA0000995", priority="Low")),
        PlannedRow(7, update=TicketUpdate("INCA0000001", priority="Low")),
    ]
    report = sender_for(simulator).run(batch)
    assert [(r.outcome, r.status, r.attempts) for r in (report.results[n] for n in (5, 6, 7))] == [
        (Outcome.FAILED, 404, 1),
        (Outcome.FAILED, 403, 1),
        (Outcome.UPDATED, 204, 1),
    ]
    assert report.results[5].message == "Ticket not found. Provide valid ticket number."


def test_twenty_percent_server_errors_end_with_every_row_updated(simulator) -> None:
    simulator.configure(error_rate=0.2)
    report = sender_for(simulator).run(rows(100))
    assert outcomes(report) == {Outcome.UPDATED: 100}
    retried = [r for r in report.results.values() if r.attempts > 1]
    assert retried, "with 20% errors some rows must have needed a retry"
    for result in retried:
        assert f"updated on attempt {result.attempts} after HTTP 500" in result.message
    sent = sum(r.attempts for r in report.results.values())
    assert sent == len([r for r in simulator.requests if r.method == "PATCH"])


def test_a_429_storm_slows_down_and_ends_with_every_row_updated(simulator) -> None:
    simulator.configure(rate_limit=20, retry_after=1)
    sender = sender_for(simulator, rate=60)
    report = sender.run(rows(60))
    assert outcomes(report) == {Outcome.UPDATED: 60}
    assert sender.limiter.throttle_count > 0
    throttled_rows = [r for r in report.results.values() if "HTTP 429" in r.message]
    assert throttled_rows and all(r.attempts > 1 for r in throttled_rows)
    assert simulator.max_requests_in_window(1.0, "PATCH", statuses={204}) <= 20


def test_retry_after_as_an_http_date_is_honoured(simulator) -> None:
    simulator.configure(rate_limit=5, retry_after=1, retry_after_format="http-date")
    report = sender_for(simulator, rate=30).run(rows(15))
    assert outcomes(report) == {Outcome.UPDATED: 15}


class ExternalSimulator:
    """ccs-sim in its own process: its arrival times do not wait on the client's threads."""

    def __init__(self, *args: str) -> None:
        command = Path(sys.executable).parent / ("ccs-sim.exe" if os.name == "nt" else "ccs-sim")
        self.process = subprocess.Popen(
            [str(command), "--port", "0", "--quiet", "--seed", "5", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        line = self.process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match, f"ccs-sim did not print its address: {line!r}"
        self.url = match.group(0)

    def patch_times(self) -> list[float]:
        log = requests.get(self.url + "/_sim/requests", timeout=10).json()
        return sorted(r["t"] for r in log if r["method"] == "PATCH")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.process.stdout.close()


@pytest.fixture
def external_simulator():
    made: list[ExternalSimulator] = []

    def make(*args: str) -> ExternalSimulator:
        made.append(ExternalSimulator(*args))
        return made[-1]

    yield make
    for sim in made:
        sim.close()


def most_in_one_second(times: list[float]) -> int:
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


def test_the_rate_is_never_exceeded_where_requests_leave(external_simulator) -> None:
    sim = external_simulator("--latency-ms", "20", "--jitter-ms", "20")
    limiter = RecordingLimiter(25)
    report = sender_for(sim, limiter=limiter, concurrency=8).run(rows(75))
    assert outcomes(report) == {Outcome.UPDATED: 75}
    assert len(limiter.granted) == len(sim.patch_times()) == 75  # one slot per request sent
    assert most_in_one_second(limiter.granted) <= 25


def test_the_rate_holds_when_automatic_concurrency_adds_workers(external_simulator) -> None:
    sim = external_simulator("--latency-ms", "400", "--jitter-ms", "100")
    limiter = RecordingLimiter(25)
    report = sender_for(sim, limiter=limiter, concurrency=None).run(rows(100))
    assert outcomes(report) == {Outcome.UPDATED: 100}
    assert report.workers > AUTO_START_WORKERS  # 25/s at ~0.45 s needs more than 4 in flight
    assert len(limiter.granted) == 100
    assert most_in_one_second(limiter.granted) <= 25


def test_retries_take_slots_from_the_same_limiter(external_simulator) -> None:
    sim = external_simulator("--error-rate", "0.3")
    limiter = RecordingLimiter(20)
    report = sender_for(sim, limiter=limiter).run(rows(30))
    assert outcomes(report) == {Outcome.UPDATED: 30}
    sent = sum(r.attempts for r in report.results.values())
    assert len(sim.patch_times()) == len(limiter.granted) == sent > 30
    assert most_in_one_second(limiter.granted) <= 20


def test_restart_in_the_middle_of_a_run_loses_no_row(simulator) -> None:
    batch = rows(40)
    restarted = threading.Event()

    def restart_once(result) -> None:
        if result.row_number == 14 and not restarted.is_set():
            restarted.set()
            simulator.restart()

    sender = sender_for(simulator, rate=100, on_result=restart_once)
    report = sender.run(batch)
    assert restarted.is_set()
    assert outcomes(report) == {Outcome.UPDATED: 40}
    assert sender.client.token_renewals >= 1
    assert [r.status for r in simulator.requests if r.method == "PATCH"].count(401) >= 1


def test_role_less_account_stops_the_run_after_the_first_refusals(simulator) -> None:
    sender = sender_for(
        simulator,
        user="corp\\auditor",
        password="Audit-Passw0rd!",
        concurrency=1,
        stop_policy=StopPolicy(forbidden_at_start=5),
    )
    report = sender.run(rows(50))
    assert report.stopped and not report.auth_failed
    assert "lacks the Remediation Administrator role" in report.stopped_reason
    counts = outcomes(report)
    assert counts[Outcome.FAILED] == 5
    assert counts[Outcome.NOT_SENT] == 45
    assert len(report.results) == 50
    not_sent = next(r for r in report.results.values() if r.outcome is Outcome.NOT_SENT)
    assert not_sent.message.startswith("not sent: the first 5 requests were all refused")


def test_some_403s_among_successes_do_not_stop_the_run(simulator) -> None:
    batch = rows(3, first=993) + rows(20)
    report = sender_for(simulator, concurrency=1, stop_policy=StopPolicy(forbidden_at_start=3)).run(
        batch
    )
    # the first three are refused (restricted standard) -- exactly the threshold -- so the run stops;
    # that is the documented policy. With threshold 4 the run goes on.
    assert report.stopped
    report = sender_for(simulator, concurrency=1, stop_policy=StopPolicy(forbidden_at_start=4)).run(
        batch
    )
    assert not report.stopped
    assert outcomes(report) == {Outcome.FAILED: 3, Outcome.UPDATED: 20}


def test_a_dead_server_stops_the_run_after_a_streak_of_failures(simulator) -> None:
    simulator.configure(unavailable_rate=1.0)
    sender = sender_for(
        simulator,
        retry=RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_cap=0.01),
        stop_policy=StopPolicy(transient_streak=5),
        concurrency=1,
    )
    report = sender.run(rows(30))
    assert report.stopped
    assert "failed on server or network errors" in report.stopped_reason
    counts = outcomes(report)
    assert counts[Outcome.FAILED] == 5
    assert counts[Outcome.NOT_SENT] == 25
    failed = [r for r in report.results.values() if r.outcome is Outcome.FAILED]
    assert all(r.attempts == 2 and r.status == 503 for r in failed)
    assert "gave up after 2 attempts: HTTP 503, HTTP 503" in failed[0].message


def test_tokens_that_die_before_the_server_reads_them_do_not_stop_the_run_as_refused(
    make_simulator,
) -> None:
    sim = make_simulator(access_token_lifetime=0.05)
    sender = sender_for(sim, concurrency=1, retry=RetryPolicy(max_attempts=2, backoff_base=0.01))
    sim.configure(latency_ms=120)  # every token expires before the server reads it
    report = sender.run(rows(3))
    # The token endpoint keeps issuing tokens: the credentials are fine, so the run is not
    # stopped for them; each row is Failed with what happened, after its retries.
    assert not report.auth_failed
    assert outcomes(report) == {Outcome.FAILED: 3}
    assert all(
        r.message.startswith("HTTP 401 3 times: each new token ran out")
        for r in report.results.values()
    )


def test_cancel_stops_dispatching_and_marks_the_rest_not_sent(simulator) -> None:
    cancel = threading.Event()

    def cancel_after_ten(result) -> None:
        if sum(1 for _ in [result]) and result.row_number >= 14:
            cancel.set()

    sender = sender_for(simulator, rate=50, cancel=cancel, on_result=cancel_after_ten)
    report = sender.run(rows(200))
    assert report.interrupted
    counts = outcomes(report)
    assert len(report.results) == 200
    assert counts[Outcome.NOT_SENT] > 150
    assert counts[Outcome.UPDATED] + counts[Outcome.NOT_SENT] == 200
    patched = {r.ticket for r in simulator.requests if r.method == "PATCH"}
    updated = {r.ticket_number for r in report.results.values() if r.outcome is Outcome.UPDATED}
    assert patched == updated


def test_abandon_does_not_wait_for_requests_in_flight(simulator) -> None:
    simulator.configure(latency_ms=3000)
    cancel, abandon = threading.Event(), threading.Event()
    sender = sender_for(simulator, rate=100, cancel=cancel, abandon=abandon)
    threading.Timer(0.5, cancel.set).start()
    threading.Timer(0.7, abandon.set).start()
    started = time.monotonic()
    report = sender.run(rows(20))
    assert time.monotonic() - started < 2.5
    in_flight = [r for r in report.results.values() if "outcome is unknown" in r.message]
    assert in_flight and all(r.outcome is Outcome.UNKNOWN for r in in_flight)
    assert len(report.results) == 20


def test_memory_stays_flat_the_queue_is_bounded(simulator) -> None:
    produced = 0

    def generate():
        nonlocal produced
        for row in rows(300):
            produced += 1
            yield row

    seen_ahead: list[int] = []
    sender = sender_for(
        simulator,
        rate=1000,
        concurrency=2,
        on_result=lambda r: seen_ahead.append(produced - len(seen_ahead)),
    )
    report = sender.run(generate())
    assert len(report.results) == 300
    # the feeder never runs more than the queue plus the workers ahead of the results
    assert max(seen_ahead) <= 2 * 2 + 2 + 1


def test_automatic_concurrency_adds_workers_when_the_server_is_slow(simulator) -> None:
    # 250 ms answers at 40 requests/s need 10 requests in flight; 4 workers would manage 16/s.
    simulator.configure(latency_ms=250)
    report = sender_for(simulator, rate=40, concurrency=None).run(rows(80))
    assert outcomes(report) == {Outcome.UPDATED: 80}
    # 40/s x 0.25 s x 1.25 headroom + 1 = 14 (a little more where the machine adds delay).
    assert 12 <= report.workers <= AUTO_MAX_WORKERS


def test_automatic_concurrency_stays_small_when_the_server_is_quick(simulator) -> None:
    # At 40 requests/s, more than 4 workers are wanted only for answers slower than ~60 ms: a
    # loopback simulator stays well below that even on a loaded machine (at 200/s, 12 ms of
    # scheduling delay was enough to add workers, and the test failed under load).
    report = sender_for(simulator, rate=40, concurrency=None).run(rows(60))
    assert outcomes(report) == {Outcome.UPDATED: 60}
    assert report.workers == AUTO_START_WORKERS


def test_a_fixed_concurrency_is_never_exceeded(simulator) -> None:
    simulator.configure(latency_ms=250)
    report = sender_for(simulator, rate=40, concurrency=3).run(rows(12))
    assert outcomes(report) == {Outcome.UPDATED: 12}
    assert report.workers == 3


class _Pace:
    current_rate = 20.0


def _wanted(times: list[float], concurrency: int | None = None, rate: float = 20.0) -> int:
    pace = _Pace()
    pace.current_rate = rate
    sender = make_sender(None, pace, concurrency=concurrency)
    sender._response_times.extend(times)
    return sender.workers_wanted()


@pytest.mark.parametrize(
    ("times", "rate", "wanted"),
    [
        ([], 20.0, AUTO_START_WORKERS),  # nothing answered yet
        ([0.01] * 50, 20.0, AUTO_START_WORKERS),  # quick answers: never fewer than the start
        ([0.2] * 50, 20.0, 6),  # 20 x 0.2 x 1.25 + 1
        ([0.2] * 50, 10.0, 4),  # a slowed pace (after a 429) needs fewer
        ([1.0] * 50, 20.0, 26),  # 20 x 1.0 x 1.25 + 1
        ([5.0] * 50, 50.0, AUTO_MAX_WORKERS),  # never more than the ceiling
        ([0.2] * 60 + [60.0] * 4, 20.0, 6),  # a few timeouts do not start a crowd
    ],
)
def test_workers_wanted_follows_the_response_time(times, rate, wanted) -> None:
    assert _wanted(times, rate=rate) == wanted


def test_workers_wanted_is_the_fixed_number_when_one_is_set() -> None:
    assert _wanted([1.0] * 50, concurrency=2) == 2


def test_on_sending_comes_before_every_request_and_a_failure_stops_the_run(simulator) -> None:
    announced: list[tuple[int, int]] = []

    def announce(row) -> None:
        announced.append(
            (row.row_number, len([r for r in simulator.requests if r.method == "PATCH"]))
        )
        if len(announced) == 6:
            raise OSError("disk full")

    sender = sender_for(simulator, concurrency=1, on_sending=announce)
    report = sender.run(rows(10))
    # each announcement came before its own PATCH reached the server
    assert [count for _, count in announced] == list(range(6))
    assert (
        report.stopped
        and report.stopped_reason == "the run journal could not be written: disk full"
    )
    assert report.record_failed == "disk full"
    counts = outcomes(report)
    assert counts[Outcome.UPDATED] == 5 and counts[Outcome.NOT_SENT] == 5
    assert len([r for r in simulator.requests if r.method == "PATCH"]) == 5


def test_read_back_first_skips_rows_the_server_already_holds(simulator) -> None:
    batch = rows(3)
    client = CcsClient(simulator.url, "corp\\ccsadmin", Secret("Demo-Passw0rd!"))
    assert client.update(batch[0].update).status == 204  # applied before a "crash"
    simulator.clear_requests()
    announced: list[int] = []
    sender = sender_for(
        simulator,
        read_back_first={batch[0].row_number, batch[1].row_number},
        on_sending=lambda row: announced.append(row.row_number),
    )
    report = sender.run(batch)
    first, second, third = (report.results[row.row_number] for row in batch)
    assert first.outcome is Outcome.UPDATED and first.status == 200
    assert "verified by read-back" in first.message and first.attempts == 1
    assert (second.outcome, second.status, second.attempts) == (Outcome.UPDATED, 204, 2)
    assert (third.outcome, third.status, third.attempts) == (Outcome.UPDATED, 204, 1)
    patched = [r.ticket for r in simulator.requests if r.method == "PATCH"]
    assert sorted(patched) == [batch[1].ticket_number, batch[2].ticket_number]
    assert sorted(announced) == [batch[1].row_number, batch[2].row_number]


def test_capture_before_and_verify_record_the_evidence(simulator) -> None:
    batch = rows(3, description="Patched in November")
    originals = {row.ticket_number: simulator.ticket(row.ticket_number) for row in batch}
    simulator.configure(sticky_fields={batch[1].ticket_number: {"Priority"}})
    report = sender_for(simulator, capture_before=True, verify=True).run(batch)
    first, second, third = (report.results[row.row_number] for row in batch)
    for result in (first, second, third):
        assert result.outcome is Outcome.UPDATED and result.status == 204
        assert result.attempts == 3  # GET before, PATCH, GET after
        original = originals[result.ticket_number]
        assert {
            k: result.before[k]
            for k in ("TicketState", "Priority", "AssignedTo", "TicketDescription")
        } == {
            k: original[k] for k in ("TicketState", "Priority", "AssignedTo", "TicketDescription")
        }
    assert first.verification == "Verified"
    assert (
        second.verification
        == f'Mismatch: Priority is "{originals[batch[1].ticket_number]["Priority"]}", expected "High"'
    )
    methods = [r.method for r in simulator.requests if r.ticket == batch[0].ticket_number]
    assert methods == ["GET", "PATCH", "GET"]


def test_reads_go_through_the_retry_policy_and_a_missing_ticket_is_not_fatal(simulator) -> None:
    batch = [PlannedRow(5, update=TicketUpdate("INCA0099999", priority="Low"))]
    report = sender_for(simulator, capture_before=True, verify=True).run(batch)
    result = report.results[5]
    assert (result.outcome, result.status, result.before) == (Outcome.FAILED, 404, None)
    assert result.message == (
        "Ticket not found. Provide valid ticket number.; before values not captured: HTTP 404 "
        "Ticket not found. Provide valid ticket number."
    )
    simulator.configure(unavailable_rate=1.0)
    report = sender_for(
        simulator,
        capture_before=True,
        retry=RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_cap=0.01),
    ).run(rows(1))
    assert report.results[5].attempts == 4  # two GETs, two PATCHes


def test_an_outcome_the_journal_cannot_take_stops_the_run_without_killing_a_worker(
    simulator,
) -> None:
    recorded: list[int] = []
    crashed: list[BaseException] = []
    previous_hook = threading.excepthook
    threading.excepthook = lambda args: crashed.append(args.exc_value)

    def record(result) -> None:
        if len(recorded) >= 5:
            raise OSError(28, "No space left on device")
        recorded.append(result.row_number)

    try:
        sender = sender_for(simulator, rate=50, concurrency=2, on_result=record)
        report = sender.run(rows(40))
    finally:
        threading.excepthook = previous_hook
    assert crashed == []  # no worker died with a traceback
    assert report.record_failed == "[Errno 28] No space left on device"
    assert report.stopped_reason == (
        "the run journal could not be written: [Errno 28] No space left on device"
    )
    # Sending stopped at once: at most the rows already in flight were sent after the failure.
    sent = [r for r in simulator.requests if r.method == "PATCH"]
    assert len(sent) <= 5 + 1 + 2
    assert outcomes(report)[Outcome.NOT_SENT] >= 40 - len(sent)
    # Every row still got its result in the report, and was offered to the journal once.
    assert sorted(report.results) == [row.row_number for row in rows(40)]


# --- requests that went unanswered -------------------------------------------------------------


def test_a_patch_applied_whose_answer_was_lost_is_unknown_not_failed(make_simulator) -> None:
    sim = make_simulator(lost_answer_tickets={"INCA0000001"})
    report = sender_for(sim, retry=RetryPolicy(max_attempts=2, backoff_base=0.01)).run(rows(2))
    lost, fine = report.results[5], report.results[6]
    # The server applied it both times, but no answer came back: the tool cannot know.
    assert (lost.outcome, lost.status, lost.attempts) == (Outcome.UNKNOWN, None, 2)
    assert lost.message.endswith(f"; {UNANSWERED}")
    assert sim.ticket("INCA0000001")["TicketState"] == 2
    assert (fine.outcome, fine.status) == (Outcome.UPDATED, 204)
    assert not report.stopped


def test_with_verify_the_read_back_settles_an_unanswered_patch(make_simulator) -> None:
    sim = make_simulator(
        lost_answer_tickets={"INCA0000001", "INCA0000002"},
        # The server takes the state but keeps ticket 2's priority: not what was asked.
        sticky_fields={"INCA0000002": {"Priority"}},
    )
    batch = rows(2, priority="Low")
    report = sender_for(sim, verify=True, retry=RetryPolicy(max_attempts=1)).run(batch)
    held, refused = report.results[5], report.results[6]
    assert (held.outcome, held.verification) == (Outcome.UPDATED, "Verified")
    assert held.message.endswith("; the read-back (GET) shows the ticket holds the update")
    assert refused.outcome is Outcome.FAILED
    assert refused.message.endswith("; the read-back (GET) shows the update was not applied")


def test_a_refused_connection_is_failed_it_cannot_have_been_applied(simulator) -> None:
    sender = sender_for(simulator, retry=RetryPolicy(max_attempts=2, backoff_base=0.01))
    simulator.close()  # logged in; now nothing listens on the port
    report = sender.run(rows(1))
    (result,) = report.results.values()
    assert (result.outcome, result.status) == (Outcome.FAILED, None)
    assert "connection refused" in result.message and UNANSWERED not in result.message


def test_a_get_goes_through_the_same_retry_step_as_a_patch(simulator) -> None:
    # The server is down: the read before the update (--capture-before) is retried as a PATCH
    # would be, and the progress hears of each retry, the GET's first.
    simulator.configure(unavailable_rate=1.0)
    retries: list[tuple[int, str]] = []

    class Progress:
        def row_done(self, result) -> None:
            pass

        def retrying(self, row_number, ticket, attempt, reason, delay) -> None:
            retries.append((attempt, reason))

        def close(self) -> None:
            pass

    retry = RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_cap=0.02)
    sender = sender_for(
        simulator, retry=retry, concurrency=1, capture_before=True, progress=Progress()
    )
    report = sender.run(rows(1))

    (result,) = report.results.values()
    methods = [record.method for record in simulator.requests if record.method != "POST"]
    assert methods == ["GET", "GET", "PATCH", "PATCH"]
    # One retry of the GET (after its first 503), one of the PATCH.
    assert [reason for _, reason in retries] == ["HTTP 503", "HTTP 503"]
    assert result.outcome is Outcome.FAILED and result.attempts == 4
    assert "before values not captured: HTTP 503" in result.message


def test_a_resumed_rows_own_read_back_decides_what_is_sent_not_an_older_page(simulator) -> None:
    from batch_updater.runner import CurrentState

    client = CcsClient(simulator.url, "corp\\ccsadmin", Secret("Demo-Passw0rd!"))
    row = PlannedRow(5, TicketUpdate("INCA0000005", assigned_to="corp\\new", priority="High"))
    # The pages, read before sending, said the ticket already held the row's values; someone
    # changed it since. The row's own read (a resume reads an in-flight row back) is newer.
    older_page = {**simulator.ticket("INCA0000005"), "AssignedTo": "corp\\new", "Priority": "High"}
    sender = make_sender(client, RateLimiter(1000), read_back_first={5})
    sender.current = CurrentState(known={5: older_page})

    report = sender.run([row])

    assert report.results[5].outcome is Outcome.UPDATED
    assert [r.method for r in simulator.requests if r.ticket == "INCA0000005"] == ["GET", "PATCH"]
    assert simulator.ticket("INCA0000005")["AssignedTo"] == "corp\\new"


def test_a_resumed_row_is_compared_with_what_its_earlier_run_sent_not_the_whole_row(
    simulator,
) -> None:
    from batch_updater.runner import CurrentState

    client = CcsClient(simulator.url, "corp\\ccsadmin", Secret("Demo-Passw0rd!"))
    ticket = simulator.ticket("INCA0000003")
    whole = TicketUpdate(
        "INCA0000003",
        state=TicketState.REMEDIATION_PERFORMED,
        priority=ticket["Priority"],
        assigned_to=ticket["AssignedTo"],
        description=ticket["TicketDescription"],
    )
    sent = TicketUpdate(
        "INCA0000003", state=TicketState.REMEDIATION_PERFORMED, priority=ticket["Priority"]
    )
    # The earlier run's PATCH (state only) was applied without its answer being seen; then a
    # colleague reassigned the ticket. The row as the sheet has it no longer matches the ticket.
    assert client.update(sent).status == 204
    assert (
        client.update(
            TicketUpdate("INCA0000003", assigned_to="corp\\colleague", priority=ticket["Priority"])
        ).status
        == 204
    )
    simulator.clear_requests()
    sender = make_sender(client, RateLimiter(1000), read_back_first={7}, known_sent={7: sent})
    sender.current = CurrentState(look_first=frozenset({7}))

    report = sender.run([PlannedRow(7, whole)])

    result = report.results[7]
    assert (result.outcome, result.verification) == (Outcome.UPDATED, "Verified")
    assert result.request_json == sent.to_json_text()  # the evidence names what was sent
    assert [r.method for r in simulator.requests] == ["GET"]  # read back, not sent again
    assert simulator.ticket("INCA0000003")["AssignedTo"] == "corp\\colleague"


def test_the_intent_recorded_before_a_patch_is_the_patch_that_leaves(simulator) -> None:
    from batch_updater.runner import CurrentState

    client = CcsClient(simulator.url, "corp\\ccsadmin", Secret("Demo-Passw0rd!"))
    ticket = simulator.ticket("INCA0000004")
    row = PlannedRow(
        9,
        TicketUpdate(
            "INCA0000004",
            state=TicketState.REMEDIATION_PERFORMED,
            priority=ticket["Priority"],
            assigned_to=ticket["AssignedTo"],  # already so: not sent
        ),
    )
    intents: list[str] = []
    sender = make_sender(
        client,
        RateLimiter(1000),
        on_sending=lambda sent: intents.append(sent.update.to_json_text()),
    )
    sender.current = CurrentState(look_first=frozenset({9}))

    report = sender.run([row])

    body = {"TicketNumber": "INCA0000004", "TicketState": 2, "Priority": ticket["Priority"]}
    assert [r.body for r in simulator.requests if r.method == "PATCH"] == [body]
    # The journal's intent (and a row abandoned in flight) name the same body.
    assert [json.loads(text) for text in intents] == [body]
    assert json.loads(report.results[9].request_json) == body


def test_rows_decided_without_a_request_do_not_hide_a_dead_server(simulator) -> None:
    from batch_updater.runner import CurrentState

    client = CcsClient(simulator.url, "corp\\ccsadmin", Secret("Demo-Passw0rd!"))
    rows, known = [], {}
    for n in range(1, 41):
        ticket = simulator.ticket(f"INCA{n:07d}")
        changes = n % 4 == 0  # one row in four changes; the others hold their values already
        state = TicketState.REMEDIATION_PERFORMED if changes else TicketState(ticket["TicketState"])
        rows.append(
            PlannedRow(
                n, TicketUpdate(ticket["TicketNumber"], state=state, priority=ticket["Priority"])
            )
        )
        known[n] = ticket
    simulator.configure(unavailable_rate=1.0)  # the server is gone once sending starts
    sender = make_sender(
        client,
        RateLimiter(1000),
        retry=FAST_RETRY,
        concurrency=1,
        stop_policy=StopPolicy(transient_streak=3),
    )
    sender.current = CurrentState(known=known)

    report = sender.run(rows)

    # The Unchanged rows between the failing ones do not reset the streak: three failures stop it.
    assert report.stopped_reason.startswith("3 rows in a row failed on server or network errors")
    assert sum(1 for r in report.results.values() if r.outcome is Outcome.FAILED) == 3


def test_a_bug_while_sending_a_row_stops_the_run_and_loses_no_row() -> None:
    class BrokenClient:
        """A client with a bug: its update raises once the request may have left."""

        def update(self, update, pace=None):
            if pace is not None and not pace():
                from batch_updater.ccs import Reply

                return Reply(None, "not sent", sends=0)
            raise RuntimeError("a bug")

        def get_ticket(self, ticket_number, pace=None):  # pragma: no cover - not read
            raise AssertionError("no read expected")

    sender = make_sender(BrokenClient(), RateLimiter(1000), concurrency=1)

    report = sender.run(rows(5))

    assert report.stopped_reason.startswith("internal error in batch-update while sending row")
    assert "RuntimeError: a bug" in report.stopped_reason
    assert sorted(report.results) == [5, 6, 7, 8, 9]  # every row has its result
    first = report.results[5]
    assert first.outcome is Outcome.UNKNOWN  # its PATCH may have left: a resume reads it back
    assert {r.outcome for n, r in report.results.items() if n != 5} == {Outcome.NOT_SENT}
