"""Nothing is lost: kill -9 and resume, stop signals, the guards, retry-failed, report-only, --runs.

Every test runs the installed command as a subprocess against a simulator in the test (see
helpers.py), the way an administrator or a scheduler does, and checks the outcome from three
sides: the simulator's request log and ticket store (what the server saw and holds), the run
journals (SQLite files in the per-user state folder, a tmp folder in tests: see conftest.py) and
the results workbooks.

The sheets ask for values that differ from every generated ticket's (state 2, a sweeper as
assignee, a distinctive description), so that "the server already holds these values" is
observable, both for the read-back of a resume and for the final comparison with the store.
"""

from __future__ import annotations

import hashlib
import random
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timezone
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from helpers import (
    ADMIN_PASSWORD,
    FAST_RETRIES_YAML,
    POSIX_ONLY,
    SAMPLES,
    base64_of,
    by_row,
    double_ctrl_c,
    finish,
    live_args,
    live_env,
    outcome_counts,
    patched,
    read_results,
    read_summary,
    results_files,
    run_command,
    signal_after_patches,
    start_command,
    wait_until,
    write_sheet,
)

from batch_updater.cli import ExitStatus
from batch_updater.journal import Journal, JournalRow, Phase, RunEnd, RunRecord, list_runs
from batch_updater.settings import user_state_folder
from batch_updater.sim import Simulator
from batch_updater.tickets import Outcome

SHEET = "tickets.xlsx"
FIRST_ROW = 2  # write_sheet() puts the header on row 1
TRIAL_ROWS = 40
TRIAL_SEEDS = range(1, 11)
# Requests take 40-120 ms to answer: at 40 requests/s, 4 at a time, some are always in flight.
LATENCY = {"latency_ms": 80, "jitter_ms": 40}
PACE = ("--rate", "40", "--concurrency", "4")
SENT_AT = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
READ_BACK = (
    "the ticket already held these values when read back (GET), so it was not sent again "
    "(verified by read-back)"
)
UNKNOWN = (
    "interrupted while the request was in flight: no answer was seen, so the outcome is "
    "unknown; a resume (batch-update resume) reads the ticket back before deciding"
)
NOT_SENT_INTERRUPTED = "not sent: the run was interrupted (Ctrl-C) before this row was sent"


# --- the sheet and what it asks for -------------------------------------------------------------


def ticket(n: int) -> str:
    return f"INCA{n:07d}"


def wanted(n: int) -> dict[str, Any]:
    """What row n of a sweep sheet asks the server to hold (every generated ticket differs)."""
    return {
        "TicketState": 2,
        "Priority": "High",
        "AssignedTo": f"corp\\sweeper{n % 3}",
        "TicketDescription": f"Nothing lost ✓ sweep row {n}",
    }


def sweep_rows(count: int, first: int = 1) -> list[list[object]]:
    """The sheet's rows, in the columns of helpers.HEADERS."""
    rows: list[list[object]] = []
    for n in range(first, first + count):
        asked = wanted(n)
        rows.append(
            [
                ticket(n),
                *(
                    asked[name]
                    for name in ("TicketState", "Priority", "AssignedTo", "TicketDescription")
                ),
            ]
        )
    return rows


def write_sweep(folder: Path, count: int, *, extra: list[list[object]] | None = None) -> str:
    write_sheet(folder / SHEET, sweep_rows(count) + (extra or []))
    return SHEET


def holds(sim: Simulator, n: int) -> bool:
    """Whether the simulator's ticket n holds what the sheet asked for."""
    held = sim.ticket(ticket(n))
    return all(held[name] == value for name, value in wanted(n).items())


def is_search(record: Any) -> bool:
    """A Search (GET RemediationTickets?Fields=&Page=&PageSize=): a GET with no ticket."""
    return record.endpoint == "tickets" and record.method == "GET" and record.ticket is None


def searches(records: list[Any]) -> list[Any]:
    """The Search requests among `records` (the reads in pages before sending)."""
    return [r for r in records if is_search(r)]


def of_tickets(records: list[Any]) -> list[Any]:
    """The requests among `records` that name a ticket: its PATCHes and GETs, not Searches."""
    return [r for r in records if r.endpoint == "tickets" and not is_search(r)]


def row_of(n: int) -> int:
    return FIRST_ROW + n - 1


def number_of(row: int) -> int:
    return row - FIRST_ROW + 1


# --- runs, journals, the simulator's log ------------------------------------------------------


def journal_folder() -> Path:
    """Where the commands a test starts keep their journals (the test's own state folder)."""
    return user_state_folder() / "journals"


def runs(folder: Path | None = None) -> list[RunRecord]:
    """The runs journalled (in the test's state folder, wherever the input is), newest first."""
    return list_runs(journal_folder())


def journal_rows(record: RunRecord) -> dict[int, JournalRow]:
    with Journal.open(record.path) as journal:
        return {row.row_number: row for row in journal.rows()}


def settle(sim: Simulator, quiet_for: float = 0.5, timeout: float = 15.0) -> None:
    """Wait until every request that reached the simulator has been answered and logged.

    A killed client's last requests are still being answered (after their latency): the next run
    must not read a ticket back before the server has applied the request it is holding.
    """
    deadline = time.monotonic() + timeout
    count, since = len(sim.requests), time.monotonic()
    while time.monotonic() - since < quiet_for:
        if time.monotonic() > deadline:
            raise AssertionError(f"the simulator did not settle within {timeout:g} s")
        time.sleep(0.05)
        now = len(sim.requests)
        if now != count:
            count, since = now, time.monotonic()


def kill_after(process: subprocess.Popen[str], sim: Simulator, patches: int, pause: float) -> str:
    """SIGKILL the command once the simulator has answered `patches` more PATCHes; its stderr."""
    try:
        wait_until(lambda: len(patched(sim)) >= patches or process.poll() is not None, timeout=40)
        time.sleep(pause)
    finally:
        process.send_signal(signal.SIGKILL)
    code, _, err = finish(process)
    assert code == -signal.SIGKILL, f"the command ended on its own before the kill ({code}):\n{err}"
    return err


def sheet_cells(path: Path, name: str) -> list[list[Any]]:
    book = openpyxl.load_workbook(path)
    try:
        return [[cell.value for cell in row] for row in book[name].iter_rows()]
    finally:
        book.close()


def the_workbook(folder: Path) -> Path:
    (workbook,) = results_files(folder)
    return workbook


def newest_workbook(folder: Path) -> Path:
    """The results workbook of the newest run (names sort by time only to the second)."""
    return folder / Path(runs(folder)[0].results_path).name


def pick_outcome(result: dict[str, Any]) -> tuple[Any, ...]:
    return result["Outcome"], result["HTTP Status"], result["Attempts"]


# --- 1. kill -9 at random moments, then resume --------------------------------------------------


@pytest.fixture(scope="module")
def kill_figures() -> Iterator[list[dict[str, Any]]]:
    """Per-trial figures of the kill-and-resume trials; a summary line is printed at the end."""
    figures: list[dict[str, Any]] = []
    yield figures
    if figures:
        total = Counter()
        for trial in figures:
            total.update({k: v for k, v in trial.items() if isinstance(v, int) and k != "seed"})
        print(
            f"\nkill -9 and resume: {len(figures)} trials, {total['kills']} kills, "
            f"{total['rows']} rows, {total['resent']} rows PATCHed twice, {total['lost']} rows "
            f"lost, {total['read_back']} rows read back ({total['found_applied']} found applied "
            f"and not sent again, {total['read_back'] - total['found_applied']} sent), "
            f"{total['updated_before']} rows carried as Skipped (updated before a kill)"
        )
        for trial in figures:
            print(
                "  seed {seed}: killed after {kill_points} PATCHes; {updated_before} Updated and "
                "{sending} sending in the journal at the kill; {read_back} read back, "
                "{resent} re-sent, {lost} lost".format(**trial)
            )


@POSIX_ONLY
@pytest.mark.parametrize("seed", TRIAL_SEEDS)
def test_kill_9_at_a_random_moment_then_resume_loses_and_repeats_nothing(
    tmp_path: Path, make_simulator, kill_figures, seed: int
) -> None:
    rng = random.Random(seed)
    # Kill the first run after 1-25 answered PATCHes; in some trials kill the first resume too.
    kill_points = [rng.randint(1, 25)]
    if rng.random() < 0.4:
        kill_points.append(rng.randint(1, 8))
    sim = make_simulator(**LATENCY)
    write_sweep(tmp_path, TRIAL_ROWS)
    env = live_env(tmp_path / "home")

    applied_in: dict[int, tuple[str, int]] = {}  # row -> (run whose journal has its 2xx, status)
    frozen: dict[str, int] = {}  # ticket -> its PATCHes when a journal first showed it updated
    read_back: set[str] = set()
    found_applied: set[str] = set()
    sending_total = 0
    caught: set[int] = set()  # the rows the last killed run left "sending"
    previous: str | None = None

    def check_read_back(before: int, held_then: set[int], *, final: bool) -> None:
        """The rows caught sending were read back first; only those not applied were sent."""
        during = sim.requests[before:]
        gets = {r.ticket: r for r in during if r.method == "GET" and r.ticket}
        assert sorted(gets) == sorted(ticket(n) for n in caught), (
            "the resume must read back exactly the rows caught sending"
        )
        read_back.update(gets)
        for n in caught:
            sent = [r for r in during if r.method == "PATCH" and r.ticket == ticket(n)]
            if n in held_then:
                found_applied.add(ticket(n))
                assert sent == [], f"{ticket(n)} already held its values but was sent again"
            elif final:
                assert len(sent) == 1, f"{ticket(n)} was not applied: it must be sent once"
            if sent:
                assert gets[ticket(n)].t < sent[0].t, f"{ticket(n)} was sent before its read-back"

    for after in kill_points:
        before = len(sim.requests)
        held_then = {n for n in range(1, TRIAL_ROWS + 1) if holds(sim, n)}
        process = start_command(
            [*(["resume"] if previous else []), SHEET, *live_args(sim, *PACE)], tmp_path, env=env
        )
        kill_after(process, sim, len(patched(sim)) + after, pause=rng.uniform(0, 0.06))
        settle(sim)
        if previous:
            check_read_back(before, held_then, final=False)
        killed = runs(tmp_path)[0]
        assert (killed.ended, killed.results_path, killed.resumed_from) == (
            RunEnd.RUNNING,
            None,
            previous,
        )
        rows = journal_rows(killed)
        assert sorted(rows) == [row_of(n) for n in range(1, TRIAL_ROWS + 1)]
        for row in rows.values():
            if row.phase is Phase.DONE and row.outcome is Outcome.UPDATED:
                applied_in.setdefault(row.row_number, (killed.run_id, row.status))
            if row.phase is Phase.DONE and row.outcome in (Outcome.UPDATED, Outcome.SKIPPED):
                assert row.status is not None and 200 <= row.status < 300, row
                frozen.setdefault(row.ticket_number, sim.patch_count(row.ticket_number))
        caught = {number_of(r.row_number) for r in rows.values() if r.phase is Phase.SENDING}
        sending_total += len(caught)
        previous = killed.run_id
    carried = len(applied_in)

    # Resume until the run finishes (one resume does it, unless something is wrong).
    for attempt in range(3):
        before = len(sim.requests)
        held_then = {n for n in range(1, TRIAL_ROWS + 1) if holds(sim, n)}
        done = run_command(["resume", SHEET, *live_args(sim, *PACE)], tmp_path, env=env)
        assert done.returncode in (ExitStatus.OK, ExitStatus.ROWS_FAILED), done.stderr
        if attempt == 0:
            assert (
                f"Continuing run {previous}: {carried} rows already updated are not sent again; "
                f"{TRIAL_ROWS - carried} to send"
                + (
                    f", {len(caught)} of them read back first (their outcome was unknown)"
                    if caught
                    else ""
                )
                + "."
            ) in done.stderr.splitlines(), done.stderr
        check_read_back(before, held_then, final=True)
        if done.returncode == ExitStatus.OK:
            break
        caught = set()
        previous = runs(tmp_path)[0].run_id
    assert done.returncode == ExitStatus.OK, done.stderr

    final, killed = runs(tmp_path)[:2]
    assert (final.ended, final.exit_code, final.resumed_from) == (RunEnd.FINISHED, 0, previous)
    workbook = the_workbook(tmp_path)  # the killed runs never wrote one
    assert Path(final.results_path).name == workbook.name
    assert read_summary(workbook)["Follows"] == (
        f"resumes run {previous} (started {killed.started:%Y-%m-%d %H:%M} UTC)"
    )
    results = by_row(read_results(workbook))  # each row at most once...
    assert list(results) == [row_of(n) for n in range(1, TRIAL_ROWS + 1)]  # ...and every one

    # Nothing a journal recorded as updated was PATCHed again, then or later.
    for number, count in frozen.items():
        assert sim.patch_count(number) == count, f"{number} was PATCHed again after its 2xx"
    patches = Counter(patched(sim))
    resent = sorted(number for number, count in patches.items() if count > 1)
    lost = [ticket(n) for n in range(1, TRIAL_ROWS + 1) if not holds(sim, n)]
    for n in range(1, TRIAL_ROWS + 1):
        result = results[row_of(n)]
        if row_of(n) in applied_in:
            run_id, status = applied_in[row_of(n)]
            assert (result["Outcome"], result["HTTP Status"], result["Attempts"]) == (
                "Skipped",
                status,
                0,
            ), result
            assert re.fullmatch(
                rf"updated in run {run_id} at {SENT_AT}; not sent again", result["Message"]
            ), result
        elif ticket(n) in found_applied:
            assert (result["Outcome"], result["HTTP Status"], result["Message"]) == (
                "Updated",
                200,
                READ_BACK,
            ), result
        else:
            assert (result["Outcome"], result["HTTP Status"]) == ("Updated", 204), result
    kill_figures.append(
        {
            "seed": seed,
            "kill_points": "+".join(map(str, kill_points)),
            "kills": len(kill_points),
            "rows": TRIAL_ROWS,
            "updated_before": carried,
            "sending": sending_total,
            "read_back": len(read_back),
            "found_applied": len(found_applied),
            "resent": len(resent),
            "lost": len(lost),
        }
    )
    # The store holds what the sheet asked, and no ticket was sent twice.
    assert lost == [], f"tickets that do not hold what the sheet asked: {lost}"
    assert resent == [], f"tickets PATCHed more than once: {resent}"
    # Setting state 2 started each ticket's verification job once, never twice.
    assert {sim.ticket(ticket(n))["VerificationJobs"] for n in range(1, TRIAL_ROWS + 1)} == {1}


# --- 2. SIGTERM and a double Ctrl-C -------------------------------------------------------------


@POSIX_ONLY
def test_sigterm_is_a_first_ctrl_c_and_resume_sends_only_the_rest(
    tmp_path: Path, make_simulator
) -> None:
    rows = 40
    sim = make_simulator(**LATENCY)
    env = live_env(tmp_path / "home")
    process = start_command(
        [write_sweep(tmp_path, rows), *live_args(sim, "--rate", "10")], tmp_path, env=env
    )
    code, _, err = signal_after_patches(process, sim, 4, signal.SIGTERM)

    assert code == ExitStatus.INTERRUPTED == 130, err
    assert err.splitlines()[-1] == "The run stopped early: interrupted (Ctrl-C or a stop signal)."
    workbook = the_workbook(tmp_path)
    results = by_row(read_results(workbook))
    assert list(results) == [row_of(n) for n in range(1, rows + 1)]
    counts = outcome_counts(results.values())
    # Requests in flight were waited for: every row is either answered or never sent.
    assert set(counts) == {"Updated", "Not sent"} and counts["Updated"] >= 4, counts
    updated = sorted(r["Ticket Number"] for r in results.values() if r["Outcome"] == "Updated")
    assert sorted(patched(sim, 204)) == updated
    for result in results.values():
        if result["Outcome"] == "Not sent":
            assert (result["Message"], result["Attempts"], result["Sent At"]) == (
                NOT_SENT_INTERRUPTED,
                0,
                None,
            ), result
    (interrupted,) = runs(tmp_path)
    assert (interrupted.ended, interrupted.exit_code) == (RunEnd.INTERRUPTED, 130)
    assert Path(interrupted.results_path).name == workbook.name
    assert interrupted.stopped_reason == "interrupted (Ctrl-C or a stop signal)"
    phases = Counter((row.phase, row.outcome) for row in journal_rows(interrupted).values())
    assert phases == {
        (Phase.DONE, Outcome.UPDATED): counts["Updated"],
        (Phase.DONE, Outcome.NOT_SENT): counts["Not sent"],
    }

    before = len(sim.requests)
    # An interrupted run is continued with --resume, not retried, and a plain rerun is refused.
    retry = run_command(
        ["retry", SHEET, interrupted.run_id, *live_args(sim, *PACE)], tmp_path, env=env
    )
    assert retry.returncode == ExitStatus.USAGE, retry.stderr
    assert (
        f"Error: Run {interrupted.run_id} did not finish (interrupted); continue it with "
        f"batch-update resume {SHEET} instead, which also checks the rows it was sending when it "
        "ended."
    ) in retry.stderr.splitlines()
    plain = run_command([SHEET, *live_args(sim, *PACE)], tmp_path, env=env)
    assert plain.returncode == ExitStatus.USAGE, plain.stderr
    assert f"Run {interrupted.run_id} of {SHEET} did not finish (interrupted, " in plain.stderr
    assert len(sim.requests) == before and len(results_files(tmp_path)) == 1

    done = run_command(["resume", SHEET, *live_args(sim, *PACE)], tmp_path, env=env)

    assert done.returncode == ExitStatus.OK, done.stderr
    assert (
        f"Continuing run {interrupted.run_id}: {counts['Updated']} rows already updated are not "
        f"sent again; {counts['Not sent']} to send."
    ) in done.stderr.splitlines()
    during = [r for r in sim.requests[before:] if r.endpoint == "tickets"]
    not_sent = sorted(r["Ticket Number"] for r in results.values() if r["Outcome"] == "Not sent")
    # The resume now reads the tickets first: one Search page of 500 (every ticket the account
    # sees) holds all the rows to send, so no ticket is read alone, before the first PATCH.
    (search,) = searches(during)
    assert (search.status, search.query) == (200, "Page=0&PageSize=500")
    sends = of_tickets(during)
    assert search.t < min(r.t for r in sends)
    assert sorted(r.ticket for r in sends) == not_sent  # only the rest, once each, no GET
    assert {(r.method, r.status) for r in sends} == {("PATCH", 204)}
    final = by_row(read_results(newest_workbook(tmp_path)))
    for n in range(1, rows + 1):
        result = final[row_of(n)]
        if ticket(n) in updated:
            assert result["Outcome"] == "Skipped" and result["HTTP Status"] == 204, result
            assert re.fullmatch(
                rf"updated in run {interrupted.run_id} at {SENT_AT}; not sent again",
                result["Message"],
            )
        else:
            assert (result["Outcome"], result["HTTP Status"], result["Attempts"]) == (
                "Updated",
                204,
                1,
            ), result
        assert holds(sim, n)
    assert sim.counts()["patches_by_ticket"] == {ticket(n): 1 for n in range(1, rows + 1)}


FIELDS = ("TicketState", "Priority", "AssignedTo", "TicketDescription")


@POSIX_ONLY
def test_a_killed_capture_before_run_is_undone_by_the_rollback_of_its_resume(
    tmp_path: Path, make_simulator
) -> None:
    rows = 30
    sim = make_simulator(**LATENCY)
    originals = {n: {f: sim.ticket(ticket(n))[f] for f in FIELDS} for n in range(1, rows + 1)}
    env = live_env(tmp_path / "home")
    process = start_command(
        [write_sweep(tmp_path, rows), *live_args(sim, *PACE, "--capture-before")], tmp_path, env=env
    )

    def sending_now() -> bool:
        found = runs(tmp_path)
        return bool(found) and any(
            row.phase is Phase.SENDING for row in journal_rows(found[0]).values()
        )

    # Killed with a PATCH in flight: its before values were read, its outcome is unknown.
    try:
        wait_until(lambda: len(patched(sim)) >= 6 and sending_now(), timeout=40, step=0.005)
    finally:
        process.send_signal(signal.SIGKILL)
    finish(process)
    settle(sim)
    (killed,) = runs(tmp_path)
    assert not list(tmp_path.glob("tickets.rollback-*.xlsx"))  # the dead run wrote none
    in_flight = {n for n, row in journal_rows(killed).items() if row.phase is Phase.SENDING}
    assert in_flight
    # The journal kept each ticket's before values ahead of its PATCH, in flight ones included.
    for number, row in journal_rows(killed).items():
        if row.phase is not Phase.PLANNED:
            assert row.before is not None, number
            expected = originals[number_of(number)]
            assert {f: row.before[f] for f in FIELDS} == expected, number

    done = run_command(
        ["resume", SHEET, *live_args(sim, *PACE, "--capture-before")], tmp_path, env=env
    )
    assert done.returncode == ExitStatus.OK, done.stderr
    assert all(holds(sim, n) for n in range(1, rows + 1))
    final = by_row(read_results(newest_workbook(tmp_path)))
    for n in range(1, rows + 1):
        result = final[row_of(n)]
        before = (
            result["Before: State"],
            result["Before: Priority"],
            result["Before: Assigned To"],
        )
        assert before == (
            originals[n]["TicketState"],
            originals[n]["Priority"],
            originals[n]["AssignedTo"],
        ), (n, result["Outcome"], row_of(n) in in_flight)
    (rollback,) = tmp_path.glob("tickets.rollback-*.xlsx")
    assert len(sheet_cells(rollback, "Tickets")) == 1 + rows  # every row of both runs

    undone = run_command([rollback.name, *live_args(sim, "--rate", "100")], tmp_path, env=env)
    assert undone.returncode == ExitStatus.OK, undone.stderr
    for n in range(1, rows + 1):
        assert {f: sim.ticket(ticket(n))[f] for f in FIELDS} == originals[n], n


@POSIX_ONLY
def test_a_double_ctrl_c_leaves_rows_sending_and_resume_reads_them_back(
    tmp_path: Path, simulator
) -> None:
    rows = 30
    env = live_env(tmp_path / "home")
    process = start_command(
        [write_sweep(tmp_path, rows), *live_args(simulator, "--rate", "10")], tmp_path, env=env
    )
    code, _, err = double_ctrl_c(process, simulator)

    assert code == ExitStatus.INTERRUPTED, err
    results = by_row(read_results(the_workbook(tmp_path)))
    unknown = {number_of(r["Row"]) for r in results.values() if r["Outcome"] == "Unknown"}
    assert unknown, "no request was in flight at the second Ctrl-C"
    for n in unknown:
        assert results[row_of(n)]["Message"] == UNKNOWN
    (stopped,) = runs(tmp_path)
    assert stopped.ended is RunEnd.INTERRUPTED
    journal = journal_rows(stopped)
    sending = {number_of(r.row_number) for r in journal.values() if r.outcome is Outcome.UNKNOWN}
    assert sending == unknown  # the journal says Unknown too: one record
    for n in sending:
        row = journal[row_of(n)]
        assert (row.outcome, row.status, row.attempts) == (Outcome.UNKNOWN, None, 1) and row.sent_at
    updated = {number_of(r.row_number) for r in journal.values() if r.outcome is Outcome.UPDATED}

    # The server finishes the abandoned requests (their 3 s end) and applies them.
    simulator.configure(latency_ms=0)
    wait_until(lambda: all(holds(simulator, n) for n in sending), timeout=15)
    settle(simulator)
    assert all(holds(simulator, n) for n in sending)
    # Someone changes one of them in the console before the resume: it no longer holds the
    # sheet's values, so the read-back must lead to sending it again.
    changed = min(sending)
    simulator.store.update(ticket(changed), {"TicketDescription": "edited in the console"})
    before = len(simulator.requests)
    done = run_command(["resume", SHEET, *live_args(simulator, *PACE)], tmp_path, env=env)

    assert done.returncode == ExitStatus.OK, done.stderr
    assert f"{len(sending)} of them read back first (their outcome was unknown)." in done.stderr
    during = [r for r in simulator.requests[before:] if r.endpoint == "tickets"]
    # The resume now reads the tickets first, in one Search page of 500 that holds them all,
    # before any GET or PATCH; the rows caught sending are still each read back with a GET.
    (search,) = searches(during)
    assert (search.status, search.query) == (200, "Page=0&PageSize=500")
    assert search.t < min(r.t for r in of_tickets(during))
    gets = {r.ticket: r for r in of_tickets(during) if r.method == "GET"}
    assert sorted(gets) == sorted(map(ticket, sending))
    sent = {r.ticket: r for r in during if r.method == "PATCH"}
    rest = {ticket(n) for n in range(1, rows + 1) if n not in sending | updated}
    # The rows read back and found applied were not sent again; the changed one was, after it.
    assert sorted(sent) == sorted(rest | {ticket(changed)})
    assert gets[ticket(changed)].t < sent[ticket(changed)].t
    # It is sent knowing the ticket: only the field that differs (the description edited in
    # the console), with the Priority every PATCH carries.
    assert sent[ticket(changed)].body == {
        "TicketNumber": ticket(changed),
        "TicketDescription": wanted(changed)["TicketDescription"],
        "Priority": "High",
    }
    final = by_row(read_results(newest_workbook(tmp_path)))
    for n in sending - {changed}:
        assert (final[row_of(n)]["Outcome"], final[row_of(n)]["Message"]) == ("Updated", READ_BACK)
    # Two requests for it in this run: the GET that found it changed, then the PATCH.
    assert pick_outcome(final[row_of(changed)]) == ("Updated", 204, 2)
    for n in updated:
        assert final[row_of(n)]["Outcome"] == "Skipped"
    assert all(holds(simulator, n) for n in range(1, rows + 1))
    assert Counter(patched(simulator)) == {
        ticket(n): 2 if n == changed else 1 for n in range(1, rows + 1)
    }


# --- 3. a changed input ---------------------------------------------------------------------------


def start_and_kill(tmp_path: Path, sim: Simulator, rows: int, patches: int) -> RunRecord:
    """A live run of a sweep of `rows` rows, killed (SIGKILL) after `patches` answered PATCHes."""
    process = start_command(
        [write_sweep(tmp_path, rows), *live_args(sim, *PACE)],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )
    kill_after(process, sim, patches, pause=0.0)
    settle(sim)
    (killed,) = runs(tmp_path)
    return killed


@POSIX_ONLY
def test_a_changed_input_refuses_to_resume_naming_both_hashes(
    tmp_path: Path, make_simulator
) -> None:
    sim = make_simulator(**LATENCY)
    killed = start_and_kill(tmp_path, sim, 30, 3)
    old = hashlib.sha256((tmp_path / SHEET).read_bytes()).hexdigest()
    assert killed.input_sha256 == old
    rows = sweep_rows(30)
    rows[20][4] = "A different description, typed in after the crash"
    write_sheet(tmp_path / SHEET, rows)
    new = hashlib.sha256((tmp_path / SHEET).read_bytes()).hexdigest()
    before = len(sim.requests)

    done = run_command(
        ["resume", SHEET, *live_args(sim, *PACE)], tmp_path, env=live_env(tmp_path / "home")
    )

    assert done.returncode == ExitStatus.USAGE == 2, done.stderr
    assert (
        f"Error: {SHEET} has changed since run {killed.run_id} read it (SHA-256 then {old}, now "
        f"{new}); its rows may no longer be the same rows, so it cannot be continued."
    ) in done.stderr.splitlines()
    assert done.stderr.splitlines()[-1].startswith("Tip: Run the changed file as a new run")
    assert len(sim.requests) == before  # nothing sent, not even a token request
    assert [r.run_id for r in runs(tmp_path)] == [killed.run_id]  # no new journal
    assert results_files(tmp_path) == []


# --- 4. the duplicate-run guard -------------------------------------------------------------------


def test_a_second_run_of_an_applied_file_is_refused_unless_again(tmp_path: Path, simulator) -> None:
    env = live_env(tmp_path / "home")
    args = [write_sweep(tmp_path, 5), *live_args(simulator, "--rate", "100")]
    first = run_command(args, tmp_path, env=env)
    assert first.returncode == ExitStatus.OK, first.stderr
    (applied,) = runs(tmp_path)
    workbook = the_workbook(tmp_path)
    before = len(simulator.requests)

    second = run_command(args, tmp_path, env=env)

    assert second.returncode == ExitStatus.USAGE == 2, second.stderr
    lines = second.stderr.splitlines()
    assert (
        f"Error: {SHEET} was already applied by run {applied.run_id} on "
        f"{applied.started:%Y-%m-%d %H:%M} UTC (results: {workbook.name}). Running it again "
        "reads every ticket and sends each row whose ticket no longer holds its values: a "
        "change made in CCS since that run would be undone."
    ) in lines
    assert lines[-1] == (
        f"Tip: Add --again to run it anyway, or use batch-update retry {SHEET} {applied.run_id} "
        "to send only the rows that failed or were not sent."
    )
    assert len(simulator.requests) == before  # nothing sent, not even a token request
    assert len(runs(tmp_path)) == 1 and results_files(tmp_path) == [workbook]
    # Nor is there anything to resume.
    resume = run_command(["resume", *args], tmp_path, env=env)
    assert resume.returncode == ExitStatus.USAGE, resume.stderr
    assert (
        f"Error: There is no unfinished run of {SHEET} to resume in {journal_folder()}."
        in resume.stderr.splitlines()
    )
    assert len(simulator.requests) == before

    again = run_command([*args, "--again"], tmp_path, env=env)

    assert again.returncode == ExitStatus.OK, again.stderr
    # The tool now reads the tickets before changing them: the run --again reads them (one
    # Search page of every ticket) and, every ticket already holding its row's values, sends
    # nothing; each row is recorded Unchanged. The guard is a safety net.
    during = [r for r in simulator.requests[before:] if r.endpoint == "tickets"]
    assert [(r.method, r.ticket, r.status, r.query) for r in during] == [
        ("GET", None, 200, "Page=0&PageSize=500")
    ]
    assert simulator.counts()["patches_by_ticket"] == {ticket(n): 1 for n in range(1, 6)}
    assert len(results_files(tmp_path)) == 2
    newest = runs(tmp_path)[0]
    assert newest.run_id != applied.run_id and newest.ended is RunEnd.FINISHED
    unchanged = by_row(read_results(newest_workbook(tmp_path)))
    assert {
        n: (r["Outcome"], r["HTTP Status"], r["Attempts"], r["Message"])
        for n, r in unchanged.items()
    } == {
        row_of(n): (
            "Unchanged",
            None,
            0,
            "the ticket already holds these values; nothing was sent",
        )
        for n in range(1, 6)
    }
    assert all(holds(simulator, n) for n in range(1, 6))
    # The guard now names the newest run that applied the file.
    third = run_command(args, tmp_path, env=env)
    assert third.returncode == ExitStatus.USAGE
    assert f"was already applied by run {newest.run_id} on" in third.stderr


def test_the_readme_command_works_twice_in_a_row_in_the_same_folder(
    tmp_path: Path, simulator
) -> None:
    """`batch-update samples/tickets.xlsx --simulate`, twice: the guard ignores simulated runs."""
    (tmp_path / "samples").mkdir()
    sample = tmp_path / "samples" / "tickets.xlsx"
    sample.write_bytes((SAMPLES / "tickets.xlsx").read_bytes())
    # The folder's config only makes the demo quick (it paces at 5/s and backs off for seconds
    # on the sample's failing ticket); the command line is the README's, word for word.
    (tmp_path / "batch-update.yaml").write_text(
        "pacing:\n  rate: 200\n" + FAST_RETRIES_YAML, encoding="utf-8"
    )
    env = live_env(tmp_path / "home")
    command = ["samples/tickets.xlsx", "--simulate"]

    first = run_command(command, tmp_path, env=env)
    second = run_command(command, tmp_path, env=env)

    for done in (first, second):
        # The sample shows every outcome a sweep can have, Failed and Invalid included: exit 1.
        assert done.returncode == ExitStatus.ROWS_FAILED, done.stderr
        assert "already applied" not in done.stderr and "did not finish" not in done.stderr
    books = results_files(tmp_path / "samples")
    assert len(books) == 2, "each run writes its own workbook, even within the same second"
    assert [outcome_counts(read_results(book)) for book in books] == [
        {"Updated": 25, "Failed": 5, "Invalid": 5, "Skipped": 2}
    ] * 2
    journals = runs()
    assert [(r.ended, r.simulated) for r in journals] == [(RunEnd.FINISHED, True)] * 2
    # Nor do simulated runs count against a live run of the same file.
    live = run_command(["samples/tickets.xlsx", *live_args(simulator)], tmp_path, env=env)
    assert live.returncode != ExitStatus.USAGE, live.stderr
    assert patched(simulator)


# --- 5. the unfinished-run guard ------------------------------------------------------------------


@POSIX_ONLY
def test_a_plain_rerun_after_a_killed_run_points_to_resume(tmp_path: Path, make_simulator) -> None:
    sim = make_simulator(**LATENCY)
    killed = start_and_kill(tmp_path, sim, 30, 4)
    counts = Counter(row.outcome or row.phase for row in journal_rows(killed).values())
    assert counts[Outcome.UPDATED] + counts[Phase.SENDING] > 0, counts
    env = live_env(tmp_path / "home")
    before = len(sim.requests)

    done = run_command([SHEET, *live_args(sim, *PACE)], tmp_path, env=env)

    assert done.returncode == ExitStatus.USAGE == 2, done.stderr
    lines = done.stderr.splitlines()
    assert (
        f"Error: Run {killed.run_id} of {SHEET} did not finish (unfinished, started "
        f"{killed.started:%Y-%m-%d %H:%M} UTC) and had already updated tickets."
    ) in lines
    assert lines[-1] == (
        f"Tip: Continue it with batch-update resume {SHEET}, which does not send those rows "
        "again, or add --again to start over and send every row."
    )
    assert len(sim.requests) == before and len(runs(tmp_path)) == 1

    # --runs shows it for what it is; --report-only gives its evidence so far, every row once.
    listing = run_command(["runs"], tmp_path, env=env)
    assert listing.returncode == 0, listing.stderr
    (line,) = [line for line in listing.stdout.splitlines() if killed.run_id in line]
    assert line.split()[1:5] == [
        f"{killed.started:%Y-%m-%d}",
        f"{killed.started:%H:%M}",
        "unfinished",
        "30",
    ]
    rebuilt = run_command(["report", killed.run_id], tmp_path, env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    evidence = by_row(read_results(the_workbook(tmp_path)))
    assert list(evidence) == [row_of(n) for n in range(1, 31)]
    journal = journal_rows(killed)
    for row_number, result in evidence.items():
        row = journal[row_number]
        expected = {
            Phase.DONE: row.outcome and row.outcome.value,
            Phase.SENDING: "Unknown",
            Phase.PLANNED: "Not sent",
        }[row.phase]
        assert result["Outcome"] == expected, (row, result)

    # --again starts over: every row is sent, the ones already updated a second time.
    again = run_command([SHEET, *live_args(sim, *PACE), "--again"], tmp_path, env=env)
    assert again.returncode == ExitStatus.OK, again.stderr
    assert set(patched(sim)) == {ticket(n) for n in range(1, 31)}
    assert all(holds(sim, n) for n in range(1, 31))


@POSIX_ONLY
def test_a_run_killed_before_it_sent_anything_does_not_block_a_plain_rerun(
    tmp_path: Path, make_simulator
) -> None:
    # The login takes 3 s and comes before the journal: a run killed while logging in has sent
    # nothing and leaves no run behind.
    sim = make_simulator(latency_ms=3000)
    env = live_env(tmp_path / "home")
    process = start_command([write_sweep(tmp_path, 5), *live_args(sim, *PACE)], tmp_path, env=env)
    try:
        # Well within the 3-s login (or, on a slow machine, before it): nothing was sent either way.
        time.sleep(1.5)
    finally:
        process.send_signal(signal.SIGKILL)
    assert finish(process)[0] == -signal.SIGKILL
    assert patched(sim) == []
    assert runs(tmp_path) == []
    sim.configure(latency_ms=0)

    done = run_command([SHEET, *live_args(sim, *PACE)], tmp_path, env=env)

    assert done.returncode == ExitStatus.OK, done.stderr
    assert sorted(patched(sim, 204)) == [ticket(n) for n in range(1, 6)]
    assert [r.ended for r in runs(tmp_path)] == [RunEnd.FINISHED]


@POSIX_ONLY
def test_a_rehearsal_and_a_real_sweep_never_continue_each_other(
    tmp_path: Path, make_simulator
) -> None:
    env = live_env(tmp_path / "home")
    write_sweep(tmp_path, 30)

    def updated_rows() -> int:
        found = runs(tmp_path)
        if not found or found[0].ended is not RunEnd.RUNNING:
            return 0
        return sum(r.outcome is Outcome.UPDATED for r in journal_rows(found[0]).values())

    # A rehearsal against the built-in simulator, stopped halfway.
    process = start_command([SHEET, "--simulate", "--rate", "10"], tmp_path, env=env)
    try:
        wait_until(lambda: updated_rows() >= 3 or process.poll() is not None)
    finally:
        process.send_signal(signal.SIGTERM)
    assert finish(process)[0] == ExitStatus.INTERRUPTED
    (rehearsal,) = runs(tmp_path)
    assert rehearsal.simulated and rehearsal.ended is RunEnd.INTERRUPTED
    sim = make_simulator(**LATENCY)

    # A live --resume must not carry the rehearsal's "updated" rows to the real server.
    resume = run_command(["resume", SHEET, *live_args(sim, *PACE)], tmp_path, env=env)
    assert resume.returncode == ExitStatus.USAGE, resume.stderr
    assert (
        f"Error: There is no unfinished run of {SHEET} to resume in {journal_folder()}."
        in resume.stderr.splitlines()
    )
    retry = run_command(
        ["retry", SHEET, rehearsal.run_id, *live_args(sim, *PACE)], tmp_path, env=env
    )
    assert retry.returncode == ExitStatus.USAGE, retry.stderr
    assert (
        f"Error: Run {rehearsal.run_id} ran against the simulator and this run goes to a live "
        "server: the rows it updated there were not updated here, so it cannot be continued."
    ) in retry.stderr.splitlines()
    assert sim.requests == []

    # A real sweep, killed; then a rehearsal that finishes must not hide it from the guard.
    process = start_command([SHEET, *live_args(sim, *PACE)], tmp_path, env=env)
    kill_after(process, sim, 4, pause=0.0)
    settle(sim)
    killed = runs(tmp_path)[0]
    assert not killed.simulated
    rehearsed = run_command([SHEET, "--simulate", "--rate", "200", "--quiet"], tmp_path, env=env)
    assert rehearsed.returncode == ExitStatus.OK, rehearsed.stderr
    assert runs(tmp_path)[0].simulated and runs(tmp_path)[0].ended is RunEnd.FINISHED
    before = len(sim.requests)
    plain = run_command([SHEET, *live_args(sim, *PACE)], tmp_path, env=env)
    assert plain.returncode == ExitStatus.USAGE, plain.stderr
    assert f"Error: Run {killed.run_id} of {SHEET} did not finish (unfinished, " in plain.stderr
    assert len(sim.requests) == before

    done = run_command(["resume", SHEET, *live_args(sim, *PACE)], tmp_path, env=env)

    assert done.returncode == ExitStatus.OK, done.stderr
    assert f"Continuing run {killed.run_id}: " in done.stderr
    assert runs(tmp_path)[0].resumed_from == killed.run_id
    assert Counter(patched(sim)) == {ticket(n): 1 for n in range(1, 31)}
    assert all(holds(sim, n) for n in range(1, 31))


@POSIX_ONLY
def test_a_run_is_not_continued_against_another_server(tmp_path: Path, make_simulator) -> None:
    first = make_simulator(**LATENCY)
    killed = start_and_kill(tmp_path, first, 20, 3)
    other = make_simulator()
    env = live_env(tmp_path / "home")

    for args in (["resume", SHEET], ["retry", SHEET, killed.run_id]):
        done = run_command([*args, *live_args(other, *PACE)], tmp_path, env=env)
        assert done.returncode == ExitStatus.USAGE, done.stderr
        assert (
            f"Error: Run {killed.run_id} sent its updates to {first.url}; this run goes to "
            f"{other.url}: the rows it updated there were not updated here, so it cannot be "
            "continued."
        ) in done.stderr.splitlines()
        assert done.stderr.splitlines()[-1] == (
            f"Tip: Use --url {first.url} to continue it, or run the file as a new run against "
            "the other server (add --again if asked)."
        )
    assert other.requests == []


def test_latest_unfinished_keeps_rehearsals_and_real_sweeps_apart(tmp_path: Path) -> None:
    from datetime import datetime, timedelta, timezone

    from batch_updater.journal import latest_unfinished
    from batch_updater.tickets import PlannedRow, RunInfo, TicketState, TicketUpdate

    now = datetime(2026, 11, 30, 3, 0, tzinfo=timezone.utc)

    def make(minutes: int, *, simulated: bool, ended: RunEnd | None) -> str:
        start = RunInfo(
            input_path=str(tmp_path / SHEET),
            input_sha256="ab" * 32,
            sheet_name="Tickets",
            tool_version="",
            operator="",
            settings={"rate": 5},
            simulated=simulated,
            started=now + timedelta(minutes=minutes),
        )
        update = TicketUpdate(ticket(1), state=TicketState.REMEDIATION_PERFORMED, priority="High")
        with Journal.create(tmp_path, start, [PlannedRow(2, update=update)]) as journal:
            if ended is not None:
                journal.finish(ended, 0)
            return journal.run_id

    live = make(0, simulated=False, ended=None)  # killed
    rehearsal = make(1, simulated=True, ended=RunEnd.FINISHED)
    # Without the filter, the finished rehearsal hides the unfinished real sweep.
    assert latest_unfinished(tmp_path, SHEET) is None
    assert latest_unfinished(tmp_path, SHEET, simulated=False).run_id == live
    assert latest_unfinished(tmp_path, SHEET, simulated=True) is None
    stopped_rehearsal = make(2, simulated=True, ended=RunEnd.INTERRUPTED)
    assert latest_unfinished(tmp_path, SHEET, simulated=True).run_id == stopped_rehearsal
    assert latest_unfinished(tmp_path, SHEET, simulated=False).run_id == live
    assert rehearsal != live


# --- 6. retry only the failures -------------------------------------------------------------------

# Quick retries, and a run that stops after two rows in a row failed on server errors.
STOP_AFTER_TWO_YAML = FAST_RETRIES_YAML + "stop:\n  transient_streak: 2\n"
INVALID_ROW = ["INCA0000011", "Done", "High", "", "not a state"]


@pytest.mark.parametrize("reference", ["workbook", "run id"])
def test_retry_failed_sends_only_the_failed_and_not_sent_rows(
    tmp_path: Path, simulator, reference: str
) -> None:
    (tmp_path / "stop.yaml").write_text(STOP_AFTER_TWO_YAML, encoding="utf-8")
    env = live_env(tmp_path / "home")
    args = [
        write_sweep(tmp_path, 10, extra=[INVALID_ROW]),
        *live_args(simulator, "--rate", "100", "--concurrency", "1", "--config", "stop.yaml"),
    ]
    # Rows 1-3 are updated; 4 and 5 fail on HTTP 500 after every retry, which stops the run;
    # 6-10 are not sent; the last row is invalid.
    simulator.configure(fail_tickets={ticket(4), ticket(5)})
    first = run_command(args, tmp_path, env=env)
    assert first.returncode == ExitStatus.STOPPED, first.stderr
    (earlier,) = runs(tmp_path)
    assert earlier.ended is RunEnd.STOPPED
    book = the_workbook(tmp_path)
    outcomes = {r["Row"]: r["Outcome"] for r in read_results(book)}
    assert outcomes == {
        **{row_of(n): "Updated" for n in (1, 2, 3)},
        **{row_of(n): "Failed" for n in (4, 5)},
        **{row_of(n): "Not sent" for n in range(6, 11)},
        row_of(11): "Invalid",
    }
    # The server is fixed.
    simulator.configure(fail_tickets=set())
    before = len(simulator.requests)

    ref = book.name if reference == "workbook" else earlier.run_id
    done = run_command(["retry", args[0], ref, *args[1:]], tmp_path, env=env)

    assert done.returncode == ExitStatus.ROWS_FAILED, done.stderr  # the invalid row stays Invalid
    during = [r for r in simulator.requests[before:] if r.endpoint == "tickets"]
    # The retry now reads the tickets first: one Search page of every ticket (it holds all the
    # rows to send), then the failed and not sent rows' PATCHes, none read alone.
    assert [(r.method, r.ticket, r.status, r.query) for r in during] == [
        ("GET", None, 200, "Page=0&PageSize=500"),
        *(("PATCH", ticket(n), 204, "") for n in range(4, 11)),
    ]
    retry = runs(tmp_path)[0]
    assert (retry.retry_of, retry.resumed_from, retry.ended) == (
        earlier.run_id,
        None,
        RunEnd.FINISHED,
    )
    workbook = Path(retry.results_path)
    assert read_summary(tmp_path / workbook.name)["Follows"] == (
        f"retries the failed rows of run {earlier.run_id} (started "
        f"{earlier.started:%Y-%m-%d %H:%M} UTC)"
    )
    results = by_row(read_results(tmp_path / workbook.name))
    assert list(results) == [row_of(n) for n in range(1, 12)]
    earlier_results = by_row(read_results(book))
    for n in (1, 2, 3):
        result = results[row_of(n)]
        assert (result["Outcome"], result["HTTP Status"], result["Attempts"]) == ("Skipped", 204, 0)
        assert re.fullmatch(
            rf"updated in run {earlier.run_id} at {SENT_AT}; not sent again", result["Message"]
        ), result
        # The evidence is the earlier run's: when it was sent, and what.
        assert result["Sent At"] == earlier_results[row_of(n)]["Sent At"]
        assert result["Request"] == earlier_results[row_of(n)]["Request"]
    for n in range(4, 11):
        assert pick_outcome(results[row_of(n)]) == ("Updated", 204, 1)
    assert results[row_of(11)]["Outcome"] == "Invalid"
    assert all(holds(simulator, n) for n in range(1, 11))
    assert max(Counter(patched(simulator, 204)).values()) == 1


# --- 7. report-only and --runs ------------------------------------------------------------------

# Summary lines that say when the workbook was written, or note that it was rebuilt.
WRITTEN_WHEN = ("Finished (UTC)", "Duration")


def workbook_cells(path: Path) -> dict[str, Any]:
    """What a rebuilt workbook must reproduce: every Results and Legend cell, the Summary lines."""
    summary = read_summary(path)
    return {
        "Results": sheet_cells(path, "Results"),
        "Legend": sheet_cells(path, "Legend"),
        "Summary": {
            key: value
            for key, value in summary.items()
            if not str(key).startswith("Note") and key not in WRITTEN_WHEN
        },
        "Summary lines": [
            key for key in summary if not str(key).startswith("Note") and key not in WRITTEN_WHEN
        ],
    }


def differences(rebuilt: dict[str, Any], original: dict[str, Any]) -> list[str]:
    """What a rebuilt workbook says differently from the original, cell by cell."""
    found = []
    for part in ("Results", "Legend"):
        if len(rebuilt[part]) != len(original[part]):
            found.append(f"{part}: {len(rebuilt[part])} rows, not {len(original[part])}")
        pairs = zip(rebuilt[part], original[part], strict=False)
        for number, (new, old) in enumerate(pairs, start=1):
            if new != old:
                found.append(f"{part} row {number}: {new!r}, not {old!r}")
    if rebuilt["Summary lines"] != original["Summary lines"]:
        found.append(f"Summary lines: {rebuilt['Summary lines']}, not {original['Summary lines']}")
    for key, value in original["Summary"].items():
        if rebuilt["Summary"].get(key) != value:
            found.append(f"Summary {key}: {rebuilt['Summary'].get(key)!r}, not {value!r}")
    return found


def rebuild(tmp_path: Path, reference: str, env: dict[str, str]) -> Path:
    done = run_command(["report", reference], tmp_path, env=env)
    assert done.returncode == ExitStatus.OK, done.stderr
    match = re.match(r"Results workbook of run (\S+): (.+)", done.stdout)
    assert match, done.stdout
    rebuilt = tmp_path / match.group(2)
    # The rebuilt workbook has a manifest of its own, which checks.
    last = done.stdout.splitlines()[-1]
    assert last.startswith("Manifest: ") and (tmp_path / last[10:]) == rebuilt.with_suffix(
        ".manifest.json"
    )
    assert run_command(["check", str(rebuilt)], tmp_path, env=env).returncode == ExitStatus.OK
    return rebuilt


def test_report_only_rebuilds_a_deleted_workbook_from_the_journal(
    tmp_path: Path, simulator
) -> None:
    env = live_env(tmp_path / "home")
    extra = [
        ["INCA9999999", 2, "High", "", "no such ticket"],  # 404
        [],  # blank: Skipped
        INVALID_ROW,
        ["INCA0000012", "Verified", "low", "=1+1 stays text", ""],
    ]
    simulator.configure(denied_tickets={ticket(3)})  # 403
    done = run_command(
        [write_sweep(tmp_path, 6, extra=extra), *live_args(simulator, "--rate", "100")],
        tmp_path,
        env=env,
    )
    assert done.returncode == ExitStatus.ROWS_FAILED, done.stderr
    (record,) = runs(tmp_path)
    original = the_workbook(tmp_path)
    assert outcome_counts(read_results(original)) == {
        "Updated": 6,
        "Failed": 2,
        "Skipped": 1,
        "Invalid": 1,
    }
    # The run now reads the tickets first: its token request, then the pages of every ticket
    # (8 rows to send: a budget of 2 pages of 500), and a GET for each ticket the pages did not
    # give, right before it would be sent: the 403 and the 404 are found by those reads, and
    # their rows fail with no PATCH; the 6 others are PATCHed once each.
    log = simulator.requests
    after_run = len(log)
    assert [(r.method, r.endpoint) for r in log[:1]] == [("POST", "tokens")]
    assert [(r.status, r.query) for r in searches(log)] == [
        (200, "Page=0&PageSize=500"),
        (200, "Page=1&PageSize=500"),
    ]
    assert max(r.t for r in searches(log)) < min(r.t for r in of_tickets(log))
    assert sorted((r.method, r.ticket, r.status) for r in of_tickets(log)) == [
        ("GET", "INCA0000003", 403),
        ("GET", "INCA9999999", 404),
        *(("PATCH", ticket(n), 204) for n in (1, 2, 4, 5, 6, 12)),
    ]
    assert after_run == 1 + 2 + 2 + 6
    failed = by_row(read_results(original))
    for row, status in ((row_of(3), 403), (row_of(7), 404)):
        assert failed[row]["Outcome"] == "Failed" and failed[row]["HTTP Status"] == status
        assert failed[row]["Message"].endswith(
            " (found when the ticket was read before sending; nothing was sent)"
        ), failed[row]
    expected = workbook_cells(original)
    original.unlink()
    original.with_suffix(".manifest.json").unlink()  # lost together

    rebuilt = rebuild(tmp_path, record.run_id, env)

    assert rebuilt.name == original.name
    assert differences(workbook_cells(rebuilt), expected) == []
    notes = [str(v) for k, v in read_summary(rebuilt).items() if str(k).startswith("Note")]
    rebuilt_note = f"Rebuilt from the run journal {record.path.name}"
    assert any(note.startswith(rebuilt_note) for note in notes), notes
    # Nothing was sent for the rebuild: the log holds the run's requests only.
    assert len(simulator.requests) == after_run


@POSIX_ONLY
def test_report_only_of_an_interrupted_run_and_its_resume_and_the_runs_list(
    tmp_path: Path, simulator
) -> None:
    rows = 20
    env = live_env(tmp_path / "home")
    process = start_command(
        [write_sweep(tmp_path, rows), *live_args(simulator, "--rate", "10")], tmp_path, env=env
    )
    assert signal_after_patches(process, simulator, 3, signal.SIGTERM)[0] == ExitStatus.INTERRUPTED
    resumed = run_command(["resume", SHEET, *live_args(simulator, *PACE)], tmp_path, env=env)
    assert resumed.returncode == ExitStatus.OK, resumed.stderr
    final, interrupted = runs(tmp_path)
    books = {r.run_id: tmp_path / Path(r.results_path).name for r in (final, interrupted)}
    expected = {run_id: workbook_cells(path) for run_id, path in books.items()}
    assert expected[final.run_id]["Summary"]["Follows"].startswith(
        f"resumes run {interrupted.run_id} (started "
    )
    for path in books.values():
        path.unlink()
        path.with_suffix(".manifest.json").unlink()
    requests = len(simulator.requests)

    # By run id, and by journal file.
    references = {interrupted.run_id: interrupted.run_id, final.run_id: str(final.path)}
    for run_id, reference in references.items():
        rebuilt = rebuild(tmp_path, reference, env)
        assert rebuilt.name == books[run_id].name
        assert differences(workbook_cells(rebuilt), expected[run_id]) == []
    assert len(simulator.requests) == requests

    listing = run_command(["runs", SHEET], tmp_path, env=env)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0] == f"Runs in {journal_folder()} (newest first):"
    table = {line.split()[0]: line.split() for line in lines[2:]}
    assert list(table) == [final.run_id, interrupted.run_id]
    assert table[final.run_id][3:6] == ["finished", str(rows), SHEET]
    assert table[interrupted.run_id][3:6] == ["interrupted", str(rows), SHEET]
    assert table[final.run_id][6] == books[final.run_id].name


# --- 8. no secret in a journal --------------------------------------------------------------------


@POSIX_ONLY
def test_no_journal_holds_the_password_or_a_token(
    tmp_path: Path, make_simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = make_simulator(**LATENCY)
    tokens: list[str] = []
    issue = sim._tokens._issue  # every token the simulator hands out, access and refresh

    def recording_issue(*args: Any, **kwargs: Any) -> Any:
        grant = issue(*args, **kwargs)
        tokens.extend([grant.access_token, grant.refresh_token])
        return grant

    monkeypatch.setattr(sim._tokens, "_issue", recording_issue)
    folder = journal_folder()

    def journal_bytes() -> dict[str, bytes]:
        # The -wal file of a killed run holds its latest pages: read it as it was left.
        return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}

    process = start_command(
        [write_sweep(tmp_path, 20), *live_args(sim, *PACE)],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )
    kill_after(process, sim, 5, pause=0.0)
    after_kill = journal_bytes()  # before anything opens the journal (and checkpoints it)
    assert any(name.endswith("-wal") for name in after_kill)
    env = live_env(tmp_path / "home")
    done = run_command(["resume", SHEET, *live_args(sim, *PACE)], tmp_path, env=env)
    assert done.returncode == ExitStatus.OK, done.stderr
    rebuild(tmp_path, runs(tmp_path)[0].run_id, env)
    assert len(tokens) >= 4  # two runs, each with its own login

    secrets = [ADMIN_PASSWORD, base64_of(ADMIN_PASSWORD), *tokens]
    for files in (after_kill, journal_bytes()):
        for name, data in files.items():
            for secret in secrets:
                for encoding in ("utf-8", "utf-16-le"):
                    assert secret.encode(encoding) not in data, f"{name} holds a secret"


# --- one run of a sheet at a time -----------------------------------------------------------------

LOCK_TIP = (
    "Tip: Wait for that run to end, then use batch-update resume or batch-update retry if it "
    "did not send everything. If that process is no longer running, its lock went with it: run the command "
    "again."
)


def refusal_line(stderr: str) -> str:
    (line,) = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    return line


def when(moment: Any) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def accepted_once(sim: Simulator, rows: int) -> None:
    """Every ticket of the sweep got exactly one accepted PATCH."""
    accepted = Counter(patched(sim, 204))
    assert accepted == Counter({ticket(n): 1 for n in range(1, rows + 1)}), accepted


@POSIX_ONLY
def test_two_runs_of_one_sheet_started_together_send_each_ticket_once(
    tmp_path: Path, make_simulator
) -> None:
    sim = make_simulator(latency_ms=100)
    rows = 20
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_sweep(tmp_path / "a", rows)
    # A copy in another folder is the same sheet: the lock is keyed by the content.
    shutil.copyfile(tmp_path / "a" / SHEET, tmp_path / "b" / SHEET)
    env = live_env(tmp_path / "home")
    first = start_command([SHEET, *live_args(sim, "--rate", "10")], tmp_path / "a", env=env)
    second = start_command([SHEET, *live_args(sim, "--rate", "10")], tmp_path / "b", env=env)
    (code_a, _, err_a), (code_b, _, err_b) = finish(first), finish(second)
    assert sorted([code_a, code_b]) == [ExitStatus.OK, ExitStatus.USAGE], (err_a, err_b)
    refused, ran = (err_a, second) if code_a == ExitStatus.USAGE else (err_b, first)
    line = refusal_line(refused)
    assert re.fullmatch(
        rf"Error: {re.escape(SHEET)} is being run right now by (run \S+|another batch-update) "
        rf"of {re.escape(SHEET)} \(process {ran.pid} on this machine, started "
        r"\d{4}-\d\d-\d\d \d\d:\d\d UTC\): a second run, resume or retry of the same sheet "
        r"would send its rows a second time\. Nothing was sent\.",
        line,
    ), line
    assert LOCK_TIP in refused.splitlines()
    accepted_once(sim, rows)
    assert len(runs()) == 1  # the refused one left no journal


@POSIX_ONLY
def test_a_resume_or_a_rerun_while_the_run_is_alive_is_refused_naming_it(
    tmp_path: Path, make_simulator
) -> None:
    sim = make_simulator(latency_ms=50)
    rows = 100  # 10 s at 10 requests/s: alive while the four refused commands start
    write_sweep(tmp_path, rows)
    env = live_env(tmp_path / "home")
    process = start_command([SHEET, *live_args(sim, "--rate", "10")], tmp_path, env=env)
    try:
        wait_until(lambda: len(patched(sim)) >= 3)
        (alive,) = runs()
        expected = (
            f"Error: {SHEET} is being run right now by run {alive.run_id} of {SHEET} (process "
            f"{process.pid} on this machine, started {when(alive.started)}): a second run, resume "
            "or retry of the same sheet would send its rows a second time. Nothing was sent."
        )
        for extra in (
            ["resume", SHEET],
            [SHEET],
            [SHEET, "--again"],
            ["retry", SHEET, alive.run_id],
        ):
            refused = run_command([*extra, *live_args(sim, *PACE)], tmp_path, env=env)
            assert refused.returncode == ExitStatus.USAGE, (extra, refused.stderr)
            assert refusal_line(refused.stderr) == expected, extra
            assert LOCK_TIP in refused.stderr.splitlines()
        # A dry run sends nothing: it needs no lock.
        dry = run_command([SHEET, "--dry-run"], tmp_path, env=env)
        assert dry.returncode == ExitStatus.OK, dry.stderr
        assert process.poll() is None, "the run ended before the refusals were all tried"
    finally:
        code, _, err = finish(process)
    assert code == ExitStatus.OK, err
    accepted_once(sim, rows)
    assert [r.run_id for r in runs()] == [alive.run_id]


# --- journals on local disk, found again wherever the sheet is -------------------------------------


def test_a_copy_of_an_applied_sheet_in_another_folder_is_refused_too(
    tmp_path: Path, simulator
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_sweep(tmp_path / "a", 3)
    shutil.copyfile(tmp_path / "a" / SHEET, tmp_path / "b" / SHEET)
    env = live_env(tmp_path / "home")
    done = run_command([SHEET, *live_args(simulator, "--rate", "100")], tmp_path / "a", env=env)
    assert done.returncode == ExitStatus.OK, done.stderr
    (record,) = runs()
    assert Path(record.path).parent == journal_folder()  # not beside the input
    assert not (tmp_path / "a" / ".batch-update").exists()
    before = len(simulator.requests)
    copy = run_command([SHEET, *live_args(simulator, "--rate", "100")], tmp_path / "b", env=env)
    assert copy.returncode == ExitStatus.USAGE, copy.stderr
    assert refusal_line(copy.stderr).startswith(
        f"Error: {SHEET} was already applied by run {record.run_id} on "
    )
    assert len(simulator.requests) == before


def test_journals_of_earlier_versions_beside_the_input_are_still_found(
    tmp_path: Path, simulator
) -> None:
    write_sweep(tmp_path, 3)
    env = live_env(tmp_path / "home")
    # An earlier version kept its journals in .batch-update/ beside the input.
    config = tmp_path / "batch-update.yaml"
    config.write_text("output:\n  journal_dir: .batch-update\n", encoding="utf-8")
    done = run_command([SHEET, *live_args(simulator, "--rate", "100")], tmp_path, env=env)
    assert done.returncode == ExitStatus.OK, done.stderr
    (old,) = list_runs(tmp_path / ".batch-update")
    config.unlink()
    note = (
        f"Note: also reading the journals of earlier versions in .batch-update; new journals are "
        f"kept in {journal_folder()}."
    )
    again = run_command([SHEET, *live_args(simulator, "--rate", "100")], tmp_path, env=env)
    assert again.returncode == ExitStatus.USAGE, again.stderr
    assert again.stderr.splitlines().count(note) == 1
    assert refusal_line(again.stderr).startswith(
        f"Error: {SHEET} was already applied by run {old.run_id} "
    )
    listing = run_command(["runs", SHEET], tmp_path, env=env)
    assert old.run_id in listing.stdout
    rebuilt = run_command(["report", old.run_id, "--out", "rebuilt.xlsx", SHEET], tmp_path, env=env)
    assert rebuilt.returncode == ExitStatus.OK, rebuilt.stderr
    assert outcome_counts(read_results(tmp_path / "rebuilt.xlsx")) == {"Updated": 3}


# --- item 9: a retry with nothing to retry, a resume of a run that reached no ticket --------------


def test_retry_failed_with_nothing_to_retry_says_so_and_sends_nothing(
    tmp_path: Path, simulator
) -> None:
    write_sweep(tmp_path, 3)
    env = live_env(tmp_path / "home")
    done = run_command([SHEET, *live_args(simulator, "--rate", "100")], tmp_path, env=env)
    assert done.returncode == ExitStatus.OK, done.stderr
    (record,) = runs()
    books = results_files(tmp_path)
    before = len(simulator.requests)
    retry = run_command(["retry", SHEET, record.run_id, *live_args(simulator)], tmp_path, env=env)
    assert retry.returncode == ExitStatus.OK, retry.stderr
    assert retry.stderr.splitlines()[-1] == (
        f"Nothing to retry: run {record.run_id} of {SHEET} has no row that Failed or was Not sent "
        f"(3 rows it updated are done). Nothing was sent and no workbook was written. Its results: "
        f"{record.results_path}."
    )
    assert retry.stdout == ""
    assert len(simulator.requests) == before
    assert results_files(tmp_path) == books and len(runs()) == 1


def test_a_retry_of_rows_already_refused_with_403_is_not_taken_for_a_missing_role(
    tmp_path: Path, make_simulator
) -> None:
    # Rows 5-10 are tickets this account may not change: the first run updates 1-4 and gets
    # 403 for those six. Their retry gets 403 six times in a row, which says nothing new about
    # the account's role: every retried row ends Failed 403, and the run is not stopped.
    denied = {ticket(n) for n in range(5, 11)}
    sim = make_simulator(denied_tickets=denied)
    write_sweep(tmp_path, 10)
    env = live_env(tmp_path / "home")
    first = run_command([SHEET, *live_args(sim, "--rate", "100")], tmp_path, env=env)
    assert first.returncode == ExitStatus.ROWS_FAILED, first.stderr
    (record,) = runs()

    retry = run_command(
        [
            "retry",
            SHEET,
            record.run_id,
            *live_args(sim, "--rate", "100", "--concurrency", "1"),
        ],
        tmp_path,
        env=env,
    )

    assert retry.returncode == ExitStatus.ROWS_FAILED, retry.stderr
    assert "stopped early" not in retry.stderr and "lacks the Remediation" not in retry.stderr
    results = by_row(read_results(newest_workbook(tmp_path)))
    assert {number_of(row): (r["Outcome"], r["HTTP Status"]) for row, r in results.items()} == {
        **{n: ("Skipped", 204) for n in range(1, 5)},  # updated by the first run, with its 204
        **{n: ("Failed", 403) for n in range(5, 11)},
    }
    # The tool now reads each ticket before changing it: the six the account may not see are
    # not in its Search pages, so each run reads each of them with a GET, whose 403 fails the
    # row with nothing sent; none of them is ever PATCHed.
    refused = Counter(r.ticket for r in of_tickets(sim.requests) if r.method == "GET")
    assert refused == {ticket(n): 2 for n in range(5, 11)}
    assert {r.status for r in of_tickets(sim.requests) if r.method == "GET"} == {403}
    assert [r.ticket for r in sim.requests if r.method == "PATCH" and r.ticket in denied] == []
    for n in range(5, 11):
        assert results[row_of(n)]["Message"].endswith(
            " (found when the ticket was read before sending; nothing was sent)"
        ), results[row_of(n)]


def test_a_retry_still_stops_when_new_rows_are_all_refused_with_403(
    tmp_path: Path, make_simulator
) -> None:
    # The rule only spares the rows already known to be refused: a retry whose first requests
    # are rows refused for the first time (the role was taken away since) still stops.
    sim = make_simulator(unavailable_rate=1.0)
    (tmp_path / "batch-update.yaml").write_text(
        "retries:\n  max_attempts: 1\nstop:\n  transient_streak: 0\n",
        encoding="utf-8",
    )
    write_sweep(tmp_path, 8)
    env = live_env(tmp_path / "home")
    first = run_command([SHEET, *live_args(sim, "--rate", "100")], tmp_path, env=env)
    assert first.returncode == ExitStatus.ROWS_FAILED, first.stderr  # every row Failed 503
    (record,) = runs()
    sim.configure(unavailable_rate=0.0, denied_tickets={ticket(n) for n in range(1, 9)})

    retry = run_command(
        [
            "retry",
            SHEET,
            record.run_id,
            *live_args(sim, "--rate", "100", "--concurrency", "1"),
        ],
        tmp_path,
        env=env,
    )

    assert retry.returncode == ExitStatus.STOPPED, retry.stderr
    assert (
        "The run stopped early: the first 5 requests were all refused with HTTP 403: the account "
        "probably lacks the Remediation Administrator role in CCS."
    ) in retry.stderr


def test_a_lost_answer_is_unknown_and_the_retry_reads_it_back_instead_of_sending_again(
    tmp_path: Path, make_simulator
) -> None:
    # The server applies ticket 2's update each time, and each time the answer is lost.
    sim = make_simulator(lost_answer_tickets={ticket(2)})
    (tmp_path / "batch-update.yaml").write_text(FAST_RETRIES_YAML, encoding="utf-8")
    write_sweep(tmp_path, 3)
    env = live_env(tmp_path / "home")
    first = run_command([SHEET, *live_args(sim, "--rate", "100")], tmp_path, env=env)

    assert first.returncode == ExitStatus.ROWS_FAILED, first.stderr
    (record,) = runs()
    results = by_row(read_results(the_workbook(tmp_path)))
    assert [results[row_of(n)]["Outcome"] for n in (1, 2, 3)] == ["Updated", "Unknown", "Updated"]
    assert results[row_of(2)]["Message"].endswith(
        "a resume or retry (batch-update resume, batch-update retry) reads it back before deciding"
    )
    sent = len(patched(sim))
    assert sent == 2 + 4  # tickets 1 and 3 once, ticket 2 on each of its 4 attempts

    sim.configure(lost_answer_tickets=set())
    retry = run_command(
        ["retry", SHEET, record.run_id, *live_args(sim, "--rate", "100")],
        tmp_path,
        env=env,
    )

    assert retry.returncode == ExitStatus.OK, retry.stderr
    retried = by_row(read_results(newest_workbook(tmp_path)))
    assert (retried[row_of(2)]["Outcome"], retried[row_of(2)]["HTTP Status"]) == ("Updated", 200)
    assert retried[row_of(2)]["Message"] == READ_BACK
    assert len(patched(sim)) == sent  # read back (GET), not sent again
    assert holds(sim, 2)


def test_a_resume_of_a_run_that_reached_no_ticket_goes_to_the_server_given_now(
    tmp_path: Path, simulator, make_simulator
) -> None:
    write_sweep(tmp_path, 3)
    (tmp_path / "batch-update.yaml").write_text(
        FAST_RETRIES_YAML + "stop:\n  transient_streak: 2\n", encoding="utf-8"
    )
    env = live_env(tmp_path / "home")
    # A server that takes the login and then answers every ticket with 503: the run stops
    # after a streak, having updated nothing there.
    dead = make_simulator(unavailable_rate=1.0)
    wrong = dead.url
    first = run_command([SHEET, *live_args(dead, "--rate", "100")], tmp_path, env=env)
    assert first.returncode == ExitStatus.STOPPED, first.stderr
    (stopped,) = runs()
    resume = run_command(
        ["resume", SHEET, *live_args(simulator, "--rate", "100")], tmp_path, env=env
    )
    assert resume.returncode == ExitStatus.OK, resume.stderr
    assert (
        f"Note: run {stopped.run_id} went to {wrong} and updated no ticket there; this run sends "
        f"its rows to {simulator.url}."
    ) in resume.stderr.splitlines()
    assert "--url" not in resume.stderr
    assert all(holds(simulator, n) for n in (1, 2, 3))


@POSIX_ONLY
def test_a_resume_keeps_the_evidence_of_the_run_it_continues(tmp_path: Path, simulator) -> None:
    rows = 20
    env = live_env(tmp_path / "home")
    process = start_command(
        [
            write_sweep(tmp_path, rows),
            *live_args(simulator, "--rate", "10", "--capture-before", "--verify"),
        ],
        tmp_path,
        env=env,
    )
    assert signal_after_patches(process, simulator, 4, signal.SIGTERM)[0] == ExitStatus.INTERRUPTED
    (interrupted,) = runs(tmp_path)

    # The resume repeats neither --capture-before nor --verify: it keeps them all the same.
    done = run_command(["resume", SHEET, *live_args(simulator, "--rate", "100")], tmp_path, env=env)

    assert done.returncode == ExitStatus.OK, done.stderr
    assert (
        f"Note: run {interrupted.run_id} was made with --capture-before and --verify; this run "
        "keeps them, so the evidence covers the rows of both runs."
    ) in done.stderr.splitlines()
    final = by_row(read_results(newest_workbook(tmp_path)))
    assert len(final) == rows
    for n in range(1, rows + 1):
        result = final[row_of(n)]
        assert result["Before: Priority"] is not None, (n, result["Outcome"])
        if result["Outcome"] == "Updated":  # sent (or read back) by the resume: verified now
            assert str(result["Verification"]).startswith("Verified"), (n, result["Verification"])
        else:  # carried with the interrupted run's evidence, read back now if it was not
            assert result["Outcome"] == "Skipped", n
            assert str(result["Verification"]).startswith("Verified"), (n, result["Verification"])
    assert sum(final[row_of(n)]["Outcome"] == "Updated" for n in range(1, rows + 1)) >= rows - 8
    # The resume's rollback workbook (the newest) undoes the rows of both runs.
    rollback = max(tmp_path.glob("tickets.rollback-*.xlsx"), key=lambda p: p.stat().st_mtime_ns)
    assert len(sheet_cells(rollback, "Tickets")) == 1 + rows
    (resumed, _) = runs(tmp_path)
    assert resumed.to_run_info().capture_before and resumed.to_run_info().verify


def test_verify_added_on_resume_reads_back_the_rows_the_earlier_run_updated(
    tmp_path: Path, simulator
) -> None:
    rows = 16
    env = live_env(tmp_path / "home")
    process = start_command(
        [write_sweep(tmp_path, rows), *live_args(simulator, "--rate", "10")], tmp_path, env=env
    )
    assert signal_after_patches(process, simulator, 4, signal.SIGTERM)[0] == ExitStatus.INTERRUPTED
    (_interrupted,) = runs(tmp_path)
    updated_before = set(patched(simulator, 204))

    done = run_command(
        ["resume", SHEET, "--verify", *live_args(simulator, "--rate", "100")], tmp_path, env=env
    )

    assert done.returncode == ExitStatus.OK, done.stderr
    assert "of them read back to verify them); " in done.stderr
    final = by_row(read_results(newest_workbook(tmp_path)))
    carried = [n for n in range(1, rows + 1) if final[row_of(n)]["Outcome"] == "Skipped"]
    assert {ticket(n) for n in carried} == updated_before
    for n in range(1, rows + 1):  # every row of both runs is verified, none sent twice
        assert str(final[row_of(n)]["Verification"]).startswith("Verified"), n
    assert Counter(patched(simulator, 204)) == {ticket(n): 1 for n in range(1, rows + 1)}
    gets = [r.ticket for r in simulator.requests if r.method == "GET"]
    assert {ticket(n) for n in carried} <= set(gets)
    # A carried row's Attempts count the read-back of this run.
    assert all(final[row_of(n)]["Attempts"] == 1 for n in carried)
