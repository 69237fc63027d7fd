"""The batch run, end to end: the installed batch-update command against a simulator in the test.

Each test runs the command as a subprocess, the way an administrator or a scheduler does, with a
scrubbed environment, the password in CCS_PASSWORD only, and the current folder in tmp_path; and
checks the exit code, what the terminal showed, the results workbook and the simulator's side.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from helpers import (
    ADMIN,
    ADMIN_PASSWORD,
    AUDITOR,
    AUDITOR_PASSWORD,
    FAST_RETRIES_YAML,
    POSIX_ONLY,
    RESULT_COLUMNS,
    TIMEOUT,
    all_text,
    answers_for,
    base64_of,
    by_row,
    clean_env,
    closed_port,
    command_path,
    copy_sample,
    double_ctrl_c,
    finish,
    formula_cells,
    live_args,
    live_env,
    outcome_counts,
    patched,
    pick,
    read_results,
    read_summary,
    results_files,
    run_command,
    signal_after_patches,
    start_command,
    ticket_rows,
    wait_until,
    write_sheet,
)

from batch_updater.cli import ExitStatus

MSG_FORBIDDEN = "You are not authorized to perform this task. Access is denied."
# A refusal met by the read of a ticket that the tool makes before changing it.
FOUND_BY_THE_READ = " (found when the ticket was read before sending; nothing was sent)"
SEARCH = "Page=0&PageSize=500"  # one page of every ticket the account sees
STOPPING = (
    "Stopping: no new requests will be sent; waiting for the ones in flight "
    "(press Ctrl-C again to stop waiting)."
)
INTERRUPTED = "The run stopped early: interrupted (Ctrl-C or a stop signal)."
NOT_SENT_INTERRUPTED = "not sent: the run was interrupted (Ctrl-C) before this row was sent"
UNKNOWN = (
    "interrupted while the request was in flight: no answer was seen, so the outcome is "
    "unknown; a resume (batch-update resume) reads the ticket back before deciding"
)
FIRST_ROW = 2  # write_sheet() puts the header on row 1 unless given lead rows


@pytest.fixture
def sheet(tmp_path: Path):
    """Write tmp_path/tickets.xlsx with the given rows (header on row 1) and return its name."""

    def make(rows, **options) -> str:
        write_sheet(tmp_path / "tickets.xlsx", rows, **options)
        return "tickets.xlsx"

    return make


@pytest.fixture
def fast_retries(tmp_path: Path) -> str:
    (tmp_path / "fast.yaml").write_text(FAST_RETRIES_YAML, encoding="utf-8")
    return "fast.yaml"


def the_workbook(folder: Path) -> Path:
    (workbook,) = results_files(folder)
    return workbook


def check_complete(results, sim, rows: int) -> None:
    """Every row once; the PATCHes the simulator answered 204 are exactly the Updated rows."""
    numbers = by_row(results)
    assert list(numbers) == list(range(FIRST_ROW, FIRST_ROW + rows))
    updated = sorted(r["Ticket Number"] for r in results if r["Outcome"] == "Updated")
    assert sorted(patched(sim, 204)) == updated


# --- dry run --------------------------------------------------------------------------------------


def test_dry_run_sends_nothing_and_judges_every_row(tmp_path: Path, simulator) -> None:
    copy_sample("tickets.xlsx", tmp_path)
    # A real server and a password are at hand: a dry run must still not touch them.
    done = run_command(
        ["tickets.xlsx", "--dry-run", *live_args(simulator)],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )

    assert done.returncode == ExitStatus.ROWS_FAILED == 1, done.stderr
    assert simulator.requests == []
    workbook = the_workbook(tmp_path)
    results = read_results(workbook)
    assert outcome_counts(results) == {"Valid (dry run)": 30, "Invalid": 5, "Skipped": 2}
    for result in results:
        if result["Outcome"] == "Valid (dry run)":
            assert pick(result, "Message", "Attempts", "HTTP Status") == ("would be sent", 0, None)
            assert json.loads(result["Request"])["TicketNumber"] == result["Ticket Number"]
            assert result["Sent At"] is None
    assert read_summary(workbook)["Mode"] == "Dry run, no network"
    assert "Dry run: 30 of 37 rows would be sent; nothing was sent." in done.stderr.splitlines()
    assert formula_cells(workbook) == []


@pytest.mark.parametrize("url", [None, "http://127.0.0.1:1"], ids=["no-url", "closed-port"])
def test_dry_run_of_a_clean_sheet_needs_no_server_and_exits_0(
    tmp_path: Path, sheet, url: str | None
) -> None:
    name = sheet(ticket_rows(3) + [[], ["INCA0000004", "Verified", "low", "", ""]])
    args = [name, "--dry-run"] + (["--url", url] if url else [])

    done = run_command(args, tmp_path)

    assert done.returncode == ExitStatus.OK == 0, done.stderr
    results = read_results(the_workbook(tmp_path))
    assert [(r["Row"], r["Outcome"]) for r in results] == [
        (2, "Valid (dry run)"),
        (3, "Valid (dry run)"),
        (4, "Valid (dry run)"),
        (5, "Skipped"),
        (6, "Valid (dry run)"),
    ]
    assert json.loads(results[-1]["Request"]) == {
        "TicketNumber": "INCA0000004",
        "TicketState": 3,
        "Priority": "Low",
    }
    assert done.stdout.splitlines() == [
        '5 rows in tickets.xlsx (sheet "Tickets"):',
        "  Invalid               0",
        "  Skipped               1",
        "  Valid (dry run)       4",
        f"Results workbook: {the_workbook(tmp_path).name}",
        f"Manifest:         {the_workbook(tmp_path).with_suffix('.manifest.json').name}",
    ]


# --- a clean live run -----------------------------------------------------------------------------


def test_live_run_updates_exactly_what_the_sheet_asks(tmp_path: Path, sheet, simulator) -> None:
    before = {ticket["TicketNumber"]: ticket for ticket in simulator.tickets()}
    rows = [
        ["INCA0000011", 2, "High", "corp\\jsmith", "Patched and rebooted"],
        ["INCA0000012", "Verified", "low", "", ""],
        ["INCA0000013", "", "MEDIUM", "a.khan@corp.example", ""],
        ["INCA0000014", 5.0, "Low", "", "=SUM(A1:A2) stays text"],
        ["INCA0000015", "not applicable", "High", "corp\\svc-ccs", "Zürich, ünïcode"],
        ["INCA0000016", "", "Medium", "", ""],
        # The tool reads the tickets before changing them: this ticket already holds every value
        # its row asks for (Open, Medium, corp\oadeyemi), so nothing is sent for it ...
        ["INCA0000017", "Open", "medium", "corp\\oadeyemi", ""],
        # ... and this one already has its assignee: the PATCH leaves AssignedTo out.
        ["INCA0000018", 2, "High", "corp\\pnovak", ""],
    ]
    held = ("TicketState", "Priority", "AssignedTo")
    assert pick(before["INCA0000017"], *held) == (1, "Medium", "corp\\oadeyemi")
    assert pick(before["INCA0000018"], *held) == (1, "High", "corp\\pnovak")

    done = run_command(
        [sheet(rows), *live_args(simulator, "--rate", "100")],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )

    assert done.returncode == ExitStatus.OK == 0, done.stderr
    results = read_results(the_workbook(tmp_path))
    assert [(r["Row"], r["Outcome"], r["HTTP Status"], r["Attempts"]) for r in results] == [
        *[(row, "Updated", 204, 1) for row in range(2, 8)],
        (8, "Unchanged", None, 0),
        (9, "Updated", 204, 1),
    ]
    unchanged = results[6]
    assert pick(unchanged, "Message", "Request", "Sent At") == (
        "the ticket already holds these values; nothing was sent",
        None,
        None,
    )
    expected = {
        "INCA0000011": {
            "TicketState": 2,
            "Priority": "High",
            "AssignedTo": "corp\\jsmith",
            "TicketDescription": "Patched and rebooted",
        },
        "INCA0000012": {"TicketState": 3, "Priority": "Low"},
        "INCA0000013": {"Priority": "Medium", "AssignedTo": "a.khan@corp.example"},
        "INCA0000014": {
            "TicketState": 5,
            "Priority": "Low",
            "TicketDescription": "=SUM(A1:A2) stays text",
        },
        "INCA0000015": {
            "TicketState": 5,
            "Priority": "High",
            "AssignedTo": "corp\\svc-ccs",
            "TicketDescription": "Zürich, ünïcode",
        },
        "INCA0000016": {"Priority": "Medium"},
    }
    fields = ("TicketState", "Priority", "AssignedTo", "TicketDescription")
    now_held = {**expected, "INCA0000018": {"TicketState": 2, "Priority": "High"}}
    for number, old in before.items():
        now = simulator.ticket(number)
        # Empty cells are left out of the request, so those fields keep what the server had.
        want = {name: now_held.get(number, {}).get(name, old[name]) for name in fields}
        assert {name: now[name] for name in fields} == want, number
    # One Search (every ticket the account sees, one page of 500) before any PATCH; then one
    # PATCH per row that changes its ticket, none for the row whose ticket holds its values.
    log = simulator.requests
    assert [(r.method, r.endpoint, r.query) for r in log[:2]] == [
        ("POST", "tokens", ""),
        ("GET", "tickets", SEARCH),
    ]
    assert [r.status for r in log[:2]] == [200, 200]
    assert {r.method for r in log[2:]} == {"PATCH"}
    assert simulator.counts()["by_method"] == {"POST": 1, "GET": 1, "PATCH": 7}
    bodies = {r.ticket: r.body for r in log if r.method == "PATCH"}
    assert len(bodies) == 7  # one PATCH per ticket
    # Each body holds only the fields that differ from what the ticket held, and Priority
    # (INCA0000015 already held High: it is sent all the same, CCS wants it in every PATCH).
    assert bodies == {
        **{number: {"TicketNumber": number, **changed} for number, changed in expected.items()},
        "INCA0000018": {"TicketNumber": "INCA0000018", "TicketState": 2, "Priority": "High"},
    }
    requests = {
        r["Ticket Number"]: json.loads(r["Request"]) for r in results if r["Outcome"] == "Updated"
    }
    assert requests == bodies
    summary = read_summary(the_workbook(tmp_path))
    assert pick(summary, "Updated", "Unchanged", "Failed") == (7, 1, 0)
    current = (
        "Current state: read in pages of 500 (every ticket the account sees): 1 Search request, "
        "8 rows found."
    )
    assert summary["Note 1"] == current
    lines = done.stderr.splitlines()
    # Said before sending: how the tickets were read, what was found, then what is sent.
    (said,) = [i for i, line in enumerate(lines) if line.startswith(current + " 1 already ")]
    assert lines[said + 1].startswith(f"Sending 7 updates to {simulator.url} as corp\\ccsadmin ")
    assert read_results(the_workbook(tmp_path))[3]["Description"] == "=SUM(A1:A2) stays text"
    assert formula_cells(the_workbook(tmp_path)) == []


# --- a 401 in the middle of a run -----------------------------------------------------------------


def test_a_server_restart_mid_run_costs_no_row(tmp_path: Path, sheet, simulator) -> None:
    rows = 40

    def restart_after_some_patches() -> None:
        wait_until(lambda: len(patched(simulator)) >= 10)
        simulator.restart()  # every access token stops working

    restarter = threading.Thread(target=restart_after_some_patches, daemon=True)
    restarter.start()
    done = run_command(
        [sheet(ticket_rows(rows)), *live_args(simulator, "--rate", "20")],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )
    restarter.join(TIMEOUT)

    assert done.returncode == ExitStatus.OK, done.stderr
    results = read_results(the_workbook(tmp_path))
    assert outcome_counts(results) == {"Updated": rows}
    check_complete(results, simulator, rows)
    log = simulator.requests
    refused = [r for r in log if r.status == 401]
    assert refused, "the restart produced at least one 401"
    assert [r.endpoint for r in log if r.t > refused[0].t].count("tokens") == 1, "one new token"
    for record in refused:
        # The refused request was sent again, and went through.
        after = [r for r in log if r.t > record.t]
        assert any(r.ticket == record.ticket and r.status == 204 for r in after), record.ticket
    for result in results:
        assert result["Attempts"] == len(answers_for(simulator, result["Ticket Number"])), result
    summary = read_summary(the_workbook(tmp_path))
    # The tickets were read (one Search, before the restart) before any was changed: that note
    # comes first now, the token's renewal after it.
    assert [r.query for r in log if r.method == "GET"] == [SEARCH]
    assert next(r.method for r in log if r.endpoint == "tickets") == "GET"
    assert summary["Note 1"] == (
        "Current state: read in pages of 500 (every ticket the account sees): 1 Search request, "
        "40 rows found."
    )
    assert summary["Note 2"] == "The access token was renewed 1 time(s) during the run."
    assert "Note 3" not in summary


def test_a_row_sent_again_after_a_401_says_so(tmp_path: Path, sheet, simulator) -> None:
    def restart_after_some_patches() -> None:
        wait_until(lambda: len(patched(simulator)) >= 5)
        simulator.restart()

    restarter = threading.Thread(target=restart_after_some_patches, daemon=True)
    restarter.start()
    done = run_command(
        [sheet(ticket_rows(20)), *live_args(simulator, "--rate", "20")],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )
    restarter.join(TIMEOUT)

    assert done.returncode == ExitStatus.OK, done.stderr
    resent = [r for r in read_results(the_workbook(tmp_path)) if r["Attempts"] == 2]
    assert resent
    for result in resent:
        assert result["Message"] == "updated on attempt 2 after HTTP 401", result


# --- throttling and server errors -----------------------------------------------------------------


def test_a_429_storm_and_injected_500s_still_update_every_row(
    tmp_path: Path, sheet, make_simulator
) -> None:
    rows = 20
    sim = make_simulator(rate_limit=10, error_rate=0.2)
    # Patient enough that no row runs out of tries on 500s by bad luck (0.2 ** 10).
    patient = FAST_RETRIES_YAML + "  max_attempts: 10\n"
    (tmp_path / "patient.yaml").write_text(patient, encoding="utf-8")

    done = run_command(
        [sheet(ticket_rows(rows)), *live_args(sim, "--rate", "20", "--config", "patient.yaml")],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )

    assert done.returncode == ExitStatus.OK, done.stderr
    results = read_results(the_workbook(tmp_path))
    assert outcome_counts(results) == {"Updated": rows}
    check_complete(results, sim, rows)
    statuses = sim.counts()["by_status"]
    assert statuses.get("429", 0) >= 1 and statuses.get("500", 0) >= 1, statuses
    retried = 0
    for result in results:
        answers = answers_for(sim, result["Ticket Number"])
        assert answers[-1] == 204 and 204 not in answers[:-1], answers
        assert result["Attempts"] == len(answers), result
        if len(answers) > 1:
            retried += 1
            assert result["Message"] == (
                f"updated on attempt {len(answers)} after "
                + ", ".join(f"HTTP {status}" for status in answers[:-1])
            ), result
        else:
            assert result["Message"] is None, result
    assert retried >= 2
    # That retries take their slots from the same limiter, so the ceiling holds with them, is
    # tested on the limiter's grant times (test_runner.py), not on arrivals at the server.


# --- pacing ---------------------------------------------------------------------------------------


def test_the_command_keeps_to_the_rate(tmp_path: Path, sheet, make_simulator) -> None:
    # The exact rule (never more than the rate in any second where requests leave) is tested on
    # the limiter's own grant times in test_runner.py; where requests arrive also depends on the
    # machine's load, so here only what holds under any load: 60 requests at 20/s, 8 at a time,
    # cannot all leave in less than two seconds (the server would take them in 0.2 s).
    rows = 60
    sim = make_simulator(latency_ms=20)

    done = run_command(
        [sheet(ticket_rows(rows)), *live_args(sim, "--rate", "20", "--concurrency", "8")],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )

    assert done.returncode == ExitStatus.OK, done.stderr
    assert outcome_counts(read_results(the_workbook(tmp_path))) == {"Updated": rows}
    assert len(patched(sim)) == rows
    arrivals = sorted(r.t for r in sim.requests if r.method == "PATCH")
    assert arrivals[-1] - arrivals[0] >= (rows - 20) / 20
    assert "at 20 requests/s (8 at a time); run " in done.stderr


# --- stop policies --------------------------------------------------------------------------------


def test_an_account_without_the_role_stops_the_run(tmp_path: Path, sheet, simulator) -> None:
    rows = 30

    done = run_command(
        [sheet(ticket_rows(rows)), *live_args(simulator, "--rate", "50", user=AUDITOR)],
        tmp_path,
        env=live_env(tmp_path / "home", password=AUDITOR_PASSWORD),
    )

    assert done.returncode == ExitStatus.STOPPED == 3, done.stderr
    reason = (
        "the first 5 requests were all refused with HTTP 403: the account probably lacks the "
        "Remediation Administrator role in CCS"
    )
    assert done.stderr.splitlines()[-1] == f"The run stopped early: {reason}."
    results = read_results(the_workbook(tmp_path))
    assert list(by_row(results)) == list(range(FIRST_ROW, FIRST_ROW + rows))
    failed = [r for r in results if r["Outcome"] == "Failed"]
    not_sent = [r for r in results if r["Outcome"] == "Not sent"]
    assert 5 <= len(failed) <= 5 + 3  # the five, and at most the other three in flight
    assert len(failed) + len(not_sent) == rows
    # The tool reads before it changes: the Search was refused (403), so each ticket was read
    # with a GET before its PATCH; those GETs were refused, so no PATCH was ever sent, and the
    # stop policy counted the refused reads.
    for result in failed:
        assert pick(result, "HTTP Status", "Message", "Attempts", "Request") == (
            403,
            MSG_FORBIDDEN + FOUND_BY_THE_READ,
            1,
            None,
        )
        assert result["Row"] < FIRST_ROW + 12, "the first rows sent are the ones refused"
    for result in not_sent:
        assert pick(result, "Message", "Attempts", "HTTP Status") == (
            f"not sent: {reason}",
            0,
            None,
        )
    assert patched(simulator) == []
    log = [r for r in simulator.requests if r.endpoint == "tickets"]
    assert {(r.method, r.status) for r in log} == {("GET", 403)}
    assert (log[0].query, log[0].ticket) == (SEARCH, None)
    assert sorted(r.ticket for r in log[1:]) == sorted(r["Ticket Number"] for r in failed)
    assert [r.query for r in log[1:]] == [f"TicketNumber={r.ticket}" for r in log[1:]]
    assert any(
        line.startswith(
            f"Current state: the tickets could not be read in pages (HTTP 403: {MSG_FORBIDDEN}), "
            "so "
        )
        and line.endswith("read one by one (GET), each right before its update.")
        for line in done.stderr.splitlines()
    ), done.stderr
    summary = read_summary(the_workbook(tmp_path))
    assert summary["CCS user"] == AUDITOR
    assert summary["Stopped early"] == reason


def test_a_wrong_password_stops_before_anything_is_sent(
    tmp_path: Path, simulator, state_folder: Path
) -> None:
    wrong = "Wr0ng+Pass/word="
    copy_sample("tickets.xlsx", tmp_path)

    done = run_command(
        ["tickets.xlsx", *live_args(simulator)],
        tmp_path,
        env=live_env(tmp_path / "home", password=wrong),
    )

    assert done.returncode == ExitStatus.STOPPED, done.stderr
    refusal = (
        "The CCS server refused the user name or password for corp\\ccsadmin "
        "(HTTP 400: invalid_grant: The user name or password is incorrect.)."
    )
    lines = done.stderr.splitlines()
    assert f"Error: {refusal}" in lines
    assert (
        "Tip: Check CCS_USERNAME and CCS_PASSWORD, and auth.password_encoding in the config "
        "(base64 or plain: the server expects one of them)."
    ) in lines
    assert lines[-2:] == [
        f"The run stopped early: {refusal}",
        "Nothing was sent; no results workbook was written.",
    ]
    # Logged in first: nothing was sent, so there is no run to report and nothing to resume.
    assert results_files(tmp_path) == []
    assert list(state_folder.glob("journals/*.journal.sqlite")) == []
    assert patched(simulator) == []
    for secret in (wrong, base64_of(wrong)):
        assert secret not in done.stdout + done.stderr


def test_an_unreachable_server_stops_the_run(tmp_path: Path, sheet) -> None:
    url = f"http://127.0.0.1:{closed_port()}"

    done = run_command(
        [sheet(ticket_rows(5)), "--url", url, "--user", ADMIN, "--yes"],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )

    assert done.returncode == ExitStatus.STOPPED, done.stderr
    lines = done.stderr.splitlines()
    assert f"Error: Could not connect to {url}: connection refused." in lines
    assert lines[-2:] == [
        f"The run stopped early: Could not connect to {url}: connection refused.",
        "Nothing was sent; no results workbook was written.",
    ]
    assert results_files(tmp_path) == []
    assert "Traceback" not in done.stderr


def test_a_dead_server_stops_the_run_after_a_streak(
    tmp_path: Path, sheet, make_simulator, fast_retries: str
) -> None:
    rows = 30
    sim = make_simulator(unavailable_rate=1.0)

    done = run_command(
        [sheet(ticket_rows(rows)), *live_args(sim, "--rate", "100", "--config", fast_retries)],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )

    assert done.returncode == ExitStatus.STOPPED, done.stderr
    reason = (
        "10 rows in a row failed on server or network errors after every retry: the server "
        "looks unavailable"
    )
    assert done.stderr.splitlines()[-1] == f"The run stopped early: {reason}."
    results = read_results(the_workbook(tmp_path))
    assert list(by_row(results)) == list(range(FIRST_ROW, FIRST_ROW + rows))
    counts = outcome_counts(results)
    assert set(counts) == {"Failed", "Not sent"}
    assert counts["Failed"] >= 10 and counts["Not sent"] >= 1, counts
    # The tool reads before it changes: the Search failed after every retry, so each ticket was
    # read with a GET before its PATCH, and those reads failed too. A row whose ticket could not
    # be read is not sent (what the ticket holds is not known), and the streak counts it.
    gets = [r for r in sim.requests if r.method == "GET"]
    for result in results:
        if result["Outcome"] == "Failed":
            assert pick(result, "HTTP Status", "Message", "Request") == (
                503,
                "the ticket could not be read before sending (HTTP 503: Service Unavailable), "
                "so what it holds is not known; nothing was sent",
                None,
            ), result
            tries = [r for r in gets if r.ticket == result["Ticket Number"]]
            assert result["Attempts"] == len(tries) == 4, result  # retries.max_attempts
        else:
            assert result["Message"] == f"not sent: {reason}"
    assert patched(sim) == []  # nothing was changed: no PATCH went out at all
    searches = [r for r in gets if r.ticket is None]
    assert [r.query for r in searches] == [SEARCH] * 4  # tried as often as any request
    assert gets[:4] == searches, "the pages were tried before any ticket was read alone"
    assert {r.status for r in sim.requests if r.endpoint == "tickets"} == {503}
    assert any(
        line.startswith(
            "Current state: the tickets could not be read in pages (HTTP 503: Service "
            "Unavailable), so "
        )
        and line.endswith("read one by one (GET), each right before its update.")
        for line in done.stderr.splitlines()
    ), done.stderr


# --- signals --------------------------------------------------------------------------------------


@POSIX_ONLY
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_ends_the_run_with_a_complete_workbook(
    tmp_path: Path, sheet, simulator, signum: int
) -> None:
    rows = 200
    process = start_command(
        [sheet(ticket_rows(rows)), *live_args(simulator, "--rate", "10")],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )
    code, out, err = signal_after_patches(process, simulator, 3, signum)

    assert code == ExitStatus.INTERRUPTED == 130, err
    assert STOPPING in err.splitlines()
    assert err.splitlines()[-1] == INTERRUPTED
    results = read_results(the_workbook(tmp_path))
    check_complete(results, simulator, rows)
    counts = outcome_counts(results)
    # Requests in flight were waited for: each row was either answered or never sent.
    assert set(counts) == {"Updated", "Not sent"}, counts
    assert counts["Updated"] >= 3 and counts["Not sent"] >= rows // 2, counts
    assert len(patched(simulator)) == counts["Updated"]
    for result in results:
        if result["Outcome"] == "Not sent":
            assert pick(result, "Message", "Attempts", "Sent At") == (NOT_SENT_INTERRUPTED, 0, None)
    summary = read_summary(the_workbook(tmp_path))
    assert summary["Not sent"] == counts["Not sent"]
    assert summary["Stopped early"] == "interrupted (Ctrl-C or a stop signal)"
    assert f"  Not sent         {counts['Not sent']:>6,}" in out.splitlines()
    # The progress lines count the rows the stop settled as done, not as sent.
    assert err.splitlines()[-2] == (
        f"  {rows}/{rows} done: {counts['Updated']} updated, 0 failed, "
        f"{counts['Not sent']} not sent"
    )


@POSIX_ONLY
def test_a_second_sigint_stops_waiting_for_requests_in_flight(
    tmp_path: Path, sheet, simulator
) -> None:
    rows = 50
    process = start_command(
        [sheet(ticket_rows(rows)), *live_args(simulator, "--rate", "10")],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )
    code, _out, err = double_ctrl_c(process, simulator)

    assert code == ExitStatus.INTERRUPTED, err
    assert STOPPING in err.splitlines()
    assert err.splitlines()[-1] == INTERRUPTED
    results = read_results(the_workbook(tmp_path))
    assert list(by_row(results)) == list(range(FIRST_ROW, FIRST_ROW + rows))
    unknown = [r for r in results if r["Outcome"] == "Unknown"]
    assert unknown, "the rows in flight were not waited for"
    for result in unknown:
        assert pick(result, "Message", "HTTP Status", "Attempts") == (UNKNOWN, None, 1)
        assert result["Sent At"] is not None
    updated = [r for r in results if r["Outcome"] == "Updated"]
    assert len(updated) >= 2
    assert len(unknown) + len(updated) + outcome_counts(results)["Not sent"] == rows


# --- confirmation ---------------------------------------------------------------------------------


def test_a_live_run_without_a_terminal_needs_yes(tmp_path: Path, sheet, simulator) -> None:
    name = sheet(ticket_rows(3))
    args = [name, "--url", simulator.url, "--user", ADMIN, "--rate", "50"]

    refused = run_command(args, tmp_path, env=live_env(tmp_path / "home"))

    assert refused.returncode == ExitStatus.USAGE == 2
    assert refused.stderr.splitlines() == [
        f"Error: About to update 3 tickets on {simulator.url} as corp\\ccsadmin at 50 requests/s. "
        "Refusing without a terminal to confirm.",
        "Tip: Add --yes to confirm in advance (for scheduled or scripted runs).",
    ]
    assert refused.stdout == ""
    assert simulator.requests == []
    assert results_files(tmp_path) == []

    confirmed = run_command([*args, "--yes"], tmp_path, env=live_env(tmp_path / "home"))

    assert confirmed.returncode == ExitStatus.OK, confirmed.stderr
    assert sorted(patched(simulator, 204)) == ["INCA0000001", "INCA0000002", "INCA0000003"]


def asleep(pid: int) -> bool:
    """Whether the process is sleeping (waiting in a system call): Linux; elsewhere, after 0.3 s."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        time.sleep(0.3)
        return True
    # The state follows the command name in parentheses, which may itself hold spaces.
    state = stat.rsplit(")", 1)[1].split()[0]
    if state != "S":
        return False
    time.sleep(0.05)  # and still asleep a moment later: in the read, not between two steps
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "S"


def _process_state(pid: int) -> str:
    """What Linux says of a process: its state, signal masks, where it waits (for a failure)."""
    lines = []
    for name in ("status", "wchan", "stack"):
        try:
            text = Path(f"/proc/{pid}/{name}").read_text()
        except OSError as exc:
            text = f"({exc})"
        if name == "status":
            text = "\n".join(
                line
                for line in text.splitlines()
                if line.split(":")[0]
                in ("State", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt", "Threads")
            )
        lines.append(f"{name}: {text}")
    try:
        for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
            lines.append(
                f"task {task.name}: "
                + (task / "wchan").read_text()
                + " "
                + (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
            )
    except OSError:
        pass
    return "\n".join(lines)


def run_in_terminal(
    args: list[str], cwd: Path, env: dict[str, str], prompt: str, answer: bytes | int
) -> tuple[int, str, str]:
    """Run batch-update with a pseudo-terminal on stdin; once `prompt` is shown, type `answer`
    (bytes) or send it (a signal number).

    Typing only after the prompt matters: getpass flushes what was typed before it asked.
    """
    import pty

    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [command_path(), *args],
        cwd=cwd,
        env=env,
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # no controlling terminal: getpass uses this stdin
    )
    os.close(terminal)
    errors: list[bytes] = []
    reader = threading.Thread(
        target=lambda: errors.extend(iter(lambda: process.stderr.read1(256), b"")), daemon=True
    )
    reader.start()
    try:
        wait_until(lambda: prompt.encode() in b"".join(errors) or process.poll() is not None)
        if not isinstance(answer, bytes):
            # A signal sent between the prompt being written and the read that waits for the
            # answer is handled before that read starts, and the read then waits regardless (a
            # race inside CPython that no person at a keyboard is fast enough to hit): send it
            # once the process is asleep in that read.
            wait_until(lambda: asleep(process.pid) or process.poll() is not None)
        if isinstance(answer, bytes):
            os.write(controller, answer)
        else:
            process.send_signal(answer)
            try:
                process.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                raise AssertionError(
                    "the command did not end on the signal; its state:\n"
                    + _process_state(process.pid)
                    + "\nstderr so far:\n"
                    + b"".join(errors).decode("utf-8", "replace")
                ) from None
        process.wait(TIMEOUT)  # the little it prints fits in the pipe
        out = process.stdout.read()
        reader.join(TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    return process.returncode, out.decode("utf-8"), b"".join(errors).decode("utf-8")


@POSIX_ONLY
@pytest.mark.parametrize("answer, code", [(b"y\n", 0), (b"n\n", 2)], ids=["yes", "no"])
def test_a_person_at_a_terminal_confirms_the_run(
    tmp_path: Path, sheet, simulator, answer: bytes, code: int
) -> None:
    name = sheet(ticket_rows(3))
    # The tickets are read before the question (the tool knows them before changing them), and
    # the question counts the rows that will change them.
    read = (
        "Current state: read in pages of 500 (every ticket the account sees): 1 Search request, "
        "3 rows found.\n"
    )
    question = (
        f"About to update 3 tickets on {simulator.url} as corp\\ccsadmin at 50 requests/s. "
        "Continue? [y/N]: "
    )

    status, _out, err = run_in_terminal(
        [name, "--url", simulator.url, "--user", ADMIN, "--rate", "50"],
        tmp_path,
        live_env(tmp_path / "home"),
        question,
        answer,
    )

    assert status == code, err
    assert err.startswith(read + question)
    if code == 0:
        assert len(patched(simulator, 204)) == 3
        assert err[len(read + question) :].startswith(f"Sending 3 updates to {simulator.url} ")
    else:
        # The answer and its newline were echoed by the terminal, not written to stderr.
        assert err == read + question + "Error: Cancelled; nothing was sent.\n"
        # Logged in and the tickets read before asking (a refused login is found before the
        # question): one Search, and nothing changed.
        assert [(r.endpoint, r.method, r.query) for r in simulator.requests] == [
            ("tokens", "POST", ""),
            ("tickets", "GET", SEARCH),
        ]
        assert results_files(tmp_path) == []


@POSIX_ONLY
@pytest.mark.parametrize("answer", [signal.SIGINT, b"\x04"], ids=["ctrl-c", "end-of-input"])
def test_giving_up_at_the_prompt_sends_nothing(
    tmp_path: Path, sheet, simulator, answer: bytes | int
) -> None:
    question = "Continue? [y/N]: "

    status, _out, err = run_in_terminal(
        [sheet(ticket_rows(3)), "--url", simulator.url, "--user", ADMIN],
        tmp_path,
        live_env(tmp_path / "home"),
        question,
        answer,
    )

    assert status == ExitStatus.INTERRUPTED, err
    assert err.endswith(question + "\nInterrupted; nothing was sent.\n")
    # The login, and the tickets read before the question (one Search): no ticket was changed.
    assert err.startswith("Current state: read in pages of 500 (every ticket the account sees)")
    assert [(r.endpoint, r.method, r.query) for r in simulator.requests] == [
        ("tokens", "POST", ""),
        ("tickets", "GET", SEARCH),
    ]
    assert results_files(tmp_path) == []


@POSIX_ONLY
def test_a_password_typed_at_the_prompt_is_used_and_never_shown(
    tmp_path: Path, sheet, simulator
) -> None:
    name = sheet(ticket_rows(2))
    prompt = f"Password for corp\\ccsadmin on {simulator.url}: "

    status, out, err = run_in_terminal(
        [name, "--url", simulator.url, "--user", ADMIN, "--rate", "50", "--yes"],
        tmp_path,
        clean_env(tmp_path / "home"),
        prompt,
        f"{ADMIN_PASSWORD}\n".encode(),
    )

    assert status == ExitStatus.OK, err
    assert err.startswith(prompt)
    assert ADMIN_PASSWORD not in out + err
    assert len(patched(simulator, 204)) == 2


# --- usage, config and input errors ---------------------------------------------------------------


def test_no_password_without_a_terminal_is_a_usage_error(tmp_path: Path, sheet, simulator) -> None:
    done = run_command(
        [sheet(ticket_rows(2)), "--url", simulator.url, "--user", ADMIN, "--yes"], tmp_path
    )

    assert done.returncode == ExitStatus.USAGE
    assert done.stderr.splitlines() == [
        "Error: No password for corp\\ccsadmin.",
        "Tip: Set the CCS_PASSWORD environment variable (it is never read from the config file "
        "or the command line), or run in a terminal to be asked.",
    ]
    assert simulator.requests == []
    assert results_files(tmp_path) == []


def test_an_existing_out_file_is_refused_and_kept(tmp_path: Path, sheet, simulator) -> None:
    keep = tmp_path / "results.xlsx"
    keep.write_bytes(b"last month's evidence")

    done = run_command(
        [sheet(ticket_rows(2)), "--out", "results.xlsx", *live_args(simulator)],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )

    assert done.returncode == ExitStatus.USAGE
    assert done.stderr.splitlines() == [
        "Error: results.xlsx exists already; batch-update will not overwrite it.",
        "Tip: Move it away, or choose another name with --out.",
    ]
    assert keep.read_bytes() == b"last month's evidence"
    assert simulator.requests == []


def test_a_mistake_in_the_user_config_file_is_named(tmp_path: Path, sheet) -> None:
    """The per-user config file is read from the (scrubbed) home folder, and its errors named."""
    home = tmp_path / "home"
    config = home / "batch-update" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("pacing:\n  rat: 5\n", encoding="utf-8")

    done = run_command([sheet(ticket_rows(1)), "--dry-run"], tmp_path, env=clean_env(home))

    assert done.returncode == ExitStatus.USAGE
    shown = Path("home", "batch-update", "config.yaml")  # relative to the current folder
    assert done.stderr.splitlines() == [
        f'Error: {shown}: unknown key "pacing.rat"; did you mean "pacing.rate"?',
        'Tip: The keys under "pacing" are rate, concurrency.',
    ]


# --- Excel row numbers ----------------------------------------------------------------------------


def test_row_numbers_are_the_sheets_own(tmp_path: Path, sheet, simulator) -> None:
    name = sheet(
        [
            ["INCA0000021", 2, "High", "", "ok"],
            ["INCA0000022", 2, "High", "", "ok"],
            [],
            ["INCA0000023", "Done", "High", "", "bad state"],
            ["INCA0000024", 3, "Urgent", "", "bad priority"],
            [],
            ["INCA0009999", 2, "Low", "", "no such ticket"],
        ],
        lead_rows=[["November sweep"], ["exported from CCS"], []],
    )

    done = run_command(
        [name, *live_args(simulator, "--rate", "50")], tmp_path, env=live_env(tmp_path / "home")
    )

    assert done.returncode == ExitStatus.ROWS_FAILED, done.stderr
    results = read_results(the_workbook(tmp_path))
    assert [(r["Row"], r["Ticket Number"], r["Outcome"], r["HTTP Status"]) for r in results] == [
        (5, "INCA0000021", "Updated", 204),
        (6, "INCA0000022", "Updated", 204),
        (7, None, "Skipped", None),
        (8, "INCA0000023", "Invalid", None),
        (9, "INCA0000024", "Invalid", None),
        (10, None, "Skipped", None),
        (11, "INCA0009999", "Failed", 404),
    ]
    where = 'tickets.xlsx, sheet "Tickets"'
    assert [line for line in done.stderr.splitlines() if line.startswith(where)] == [
        f'{where}, row 8, column "State": "Done" is not a ticket state; use 1-5 or a name: '
        "1 Open, 2 Remediation Performed, 3 Verified, 4 Failed, 5 Not Applicable.",
        f'{where}, row 9, column "Priority": "Urgent" is not a priority; use one of Low, Medium, '
        "High.",
    ]
    assert read_summary(the_workbook(tmp_path))["Header row"] == 4


# --- where the results go -------------------------------------------------------------------------


def test_default_results_name_beside_the_input_with_csv(tmp_path: Path, sheet) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    source = write_sheet(inbox / "november.xlsx", ticket_rows(3))
    before = source.read_bytes()
    started = datetime.now(timezone.utc).replace(microsecond=0)

    done = run_command(["inbox/november.xlsx", "--dry-run", "--csv"], tmp_path)

    finished = datetime.now(timezone.utc)
    assert done.returncode == ExitStatus.OK, done.stderr
    assert source.read_bytes() == before
    (workbook,) = results_files(inbox)
    match = re.fullmatch(r"november\.results-(\d{8}-\d{6})\.xlsx", workbook.name)
    assert match, workbook.name
    stamp = datetime.strptime(match.group(1), "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc)
    assert started <= stamp <= finished
    csv_path = workbook.with_suffix(".csv")
    assert sorted(p.name for p in inbox.iterdir()) == sorted(
        ["november.xlsx", workbook.name, csv_path.name, workbook.with_suffix(".manifest.json").name]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "inbox"]
    text = csv_path.read_text(encoding="utf-8-sig").splitlines()
    assert text[0] == "Ticket Number,State,Priority,Assigned To,Description," + ",".join(
        RESULT_COLUMNS
    )
    assert text[1].startswith(
        "INCA0000001,2,High,corp\\user1,Patched ticket 1,2,Valid (dry run),,would be sent,0,"
    )
    assert done.stdout.splitlines()[-3:] == [
        f"Results workbook: {Path('inbox', workbook.name)}",
        f"Results CSV:      {Path('inbox', csv_path.name)}",
        f"Manifest:         {Path('inbox', workbook.with_suffix('.manifest.json').name)}",
    ]


def test_out_is_honoured_for_the_workbook_and_the_csv(tmp_path: Path, sheet, simulator) -> None:
    (tmp_path / "reports").mkdir()
    name = sheet(ticket_rows(2))
    before = (tmp_path / name).read_bytes()

    done = run_command(
        [name, "--out", "reports/sweep.xlsx", "--csv", *live_args(simulator, "--rate", "50")],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )

    assert done.returncode == ExitStatus.OK, done.stderr
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [
        "sweep.csv",
        "sweep.journal.sqlite",
        "sweep.manifest.json",
        "sweep.xlsx",
    ]
    assert results_files(tmp_path) == []
    results = read_results(tmp_path / "reports" / "sweep.xlsx")
    assert [r["Outcome"] for r in results] == ["Updated"] * 2
    assert (tmp_path / name).read_bytes() == before
    assert done.stdout.splitlines()[-3:] == [
        f"Results workbook: {Path('reports', 'sweep.xlsx')}",
        f"Results CSV:      {Path('reports', 'sweep.csv')}",
        f"Manifest:         {Path('reports', 'sweep.manifest.json')}",
    ]


@pytest.mark.parametrize(
    ("name", "tip"),
    [
        ("results.csv", "use --out results.xlsx, and add --csv for a CSV copy beside it."),
        ("results", "use --out results.xlsx."),
        ("results.xls", "use --out results.xlsx."),
        ("results.xlsm", "use --out results.xlsx."),
    ],
)
def test_an_out_name_that_is_not_an_xlsx_is_refused_before_sending(
    tmp_path: Path, sheet, simulator, name: str, tip: str
) -> None:
    done = run_command(
        [sheet(ticket_rows(3)), "--out", name, "--csv", *live_args(simulator)],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )

    assert done.returncode == ExitStatus.USAGE
    assert done.stderr.splitlines() == [
        f"Error: --out {name}: the results workbook is an Excel .xlsx file; its name must end in .xlsx.",
        f"Tip: {tip}",
    ]
    assert simulator.requests == []  # exit 2 means nothing was sent
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "tickets.xlsx"]


def test_results_are_kept_when_the_out_file_appears_during_the_run(
    tmp_path: Path, sheet, simulator
) -> None:
    rows = 10
    process = start_command(
        [sheet(ticket_rows(rows)), "--out", "results.xlsx", *live_args(simulator, "--rate", "10")],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )
    try:
        wait_until(lambda: len(patched(simulator)) >= 1)
        (tmp_path / "results.xlsx").write_bytes(b"another run's results")
    finally:
        code, _out, err = finish(process)

    assert len(patched(simulator, 204)) == rows
    assert code == ExitStatus.OK, err  # not USAGE: that says nothing was sent
    assert (tmp_path / "results.xlsx").read_bytes() == b"another run's results"
    kept = [p for p in tmp_path.glob("*.xlsx") if p.name not in ("results.xlsx", "tickets.xlsx")]
    assert len(kept) == 1
    assert outcome_counts(read_results(kept[0])) == {"Updated": rows}


# --- logs and secrets -----------------------------------------------------------------------------


def test_verbose_and_log_file_log_every_request_and_no_secret(
    tmp_path: Path, sheet, make_simulator, fast_retries: str
) -> None:
    sim = make_simulator(fail_tickets={"INCA0000003"})
    name = sheet(ticket_rows(4) + [["INCA0009999", 2, "Low", "", ""]])

    done = run_command(
        [
            name,
            "--verbose",
            "--log-file",
            "run.log",
            *live_args(sim, "--rate", "50", "--config", fast_retries),
        ],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )

    assert done.returncode == ExitStatus.ROWS_FAILED, done.stderr
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d INFO "
    request_line = re.compile(
        stamp + r"row (\d+) (INCA\d+) -> (\d+) (\w+)(: .*)? \((\d+) attempts?, \d+ ms\)"
    )
    retry_line = re.compile(stamp + r"row 4 INCA0000003: HTTP 500, retrying in \d+\.\d s")
    log_text = (tmp_path / "run.log").read_text(encoding="utf-8")
    for text in (done.stderr, log_text):
        found = {
            int(m.group(1)): (m.group(2), int(m.group(3)), m.group(4), int(m.group(6)))
            for m in map(request_line.fullmatch, text.splitlines())
            if m
        }
        assert found == {
            2: ("INCA0000001", 204, "Updated", 1),
            3: ("INCA0000002", 204, "Updated", 1),
            4: ("INCA0000003", 500, "Failed", 4),
            5: ("INCA0000004", 204, "Updated", 1),
            6: ("INCA0009999", 404, "Failed", 1),
        }
        assert len([line for line in text.splitlines() if retry_line.fullmatch(line)]) == 3
    # Whatever the server handed out, and whatever was typed, never reaches a file or a screen.
    # (The simulator keeps no public list of the tokens it issued; its token book is read here.)
    tokens = [*sim._tokens._access, *sim._tokens._refresh]
    assert tokens
    workbook_text = all_text(the_workbook(tmp_path))
    for secret in (ADMIN_PASSWORD, base64_of(ADMIN_PASSWORD), *tokens):
        for where, text in (
            ("stdout", done.stdout),
            ("stderr", done.stderr),
            ("log", log_text),
            ("workbook", workbook_text),
        ):
            assert secret not in text, where


# --- --help ---------------------------------------------------------------------------------------


def test_help_of_the_installed_command(tmp_path: Path) -> None:
    done = run_command(["--help"], tmp_path)

    assert done.returncode == 0
    assert done.stdout.startswith("Usage: batch-update FILE [OPTIONS] ")
    assert "\nCommands:\n  run " in done.stdout
    exit_codes = done.stdout.split("Exit codes:\n", 1)[1]
    codes = re.findall(r"^    (\d+) {2,}\S", exit_codes, flags=re.M)
    assert codes == [str(status.value) for status in ExitStatus]


# --- stop signals end every wait at once ------------------------------------------------------------


@POSIX_ONLY
def test_ctrl_c_during_an_hour_long_retry_after_acts_at_once(
    tmp_path: Path, sheet, make_simulator
) -> None:
    import time

    # The server takes one request a second and asks the rest to come back in an hour.
    sim = make_simulator(rate_limit=1.0, retry_after=3600)
    process = start_command(
        [sheet(ticket_rows(6)), *live_args(sim, "--rate", "10")],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )
    wait_until(lambda: any(r.status == 429 for r in sim.requests) or process.poll() is not None)
    asked = time.monotonic()
    process.send_signal(signal.SIGINT)
    code, _, err = finish(process, timeout=30)  # minutes before the fix; seconds now

    assert code == ExitStatus.INTERRUPTED, err
    assert time.monotonic() - asked < 20
    results = read_results(the_workbook(tmp_path))
    assert len(results) == 6
    patches = len([r for r in sim.requests if r.method == "PATCH"])
    assert patches == sum(1 for r in results if r["Attempts"]), (patches, results)


@POSIX_ONLY
def test_a_closed_terminal_sighup_stops_the_run_like_sigterm(
    tmp_path: Path, sheet, simulator
) -> None:
    process = start_command(
        [sheet(ticket_rows(20)), *live_args(simulator, "--rate", "10")],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )
    wait_until(lambda: len(patched(simulator)) >= 2 or process.poll() is not None)
    process.send_signal(signal.SIGHUP)
    code, _, err = finish(process)

    assert code == ExitStatus.INTERRUPTED, err
    results = read_results(the_workbook(tmp_path))
    assert len(results) == 20
    assert "Not sent" in {r["Outcome"] for r in results}
    assert sorted(patched(simulator)) == sorted(
        r["Ticket Number"] for r in results if r["Outcome"] != "Not sent"
    )


def test_throttling_is_shown_on_the_terminal_once_per_pause(
    tmp_path: Path, sheet, make_simulator
) -> None:
    # The server takes two requests a second and asks the rest to wait a second.
    sim = make_simulator(rate_limit=2.0, retry_after=1)
    done = run_command(
        [sheet(ticket_rows(8)), *live_args(sim, "--rate", "20", "--concurrency", "2")],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )

    assert done.returncode == ExitStatus.OK, done.stderr
    lines = [line for line in done.stderr.splitlines() if "throttling" in line]
    throttled = sum(1 for r in sim.requests if r.status == 429)
    assert throttled >= 1
    assert lines, done.stderr
    assert lines[0] == (
        "  The server is throttling (HTTP 429): every request waits 1 s (Retry-After), "
        "then the pace is lowered."
    )
    # Once per pause, not once per answer: a pause lasts at least the 10 s between lines here.
    assert len(lines) <= 1 + int(
        (max(r.t for r in sim.requests) - min(r.t for r in sim.requests)) // 10
    )
    assert "429" in done.stderr and "Traceback" not in done.stderr


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MiB file system of its own (tmpfs, mounted as root on Linux), to be filled mid-run."""
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root on Linux")
    folder = tmp_path / "small-disk"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _fill(folder: Path) -> Path:
    """Write into `folder` until its disk is full; the file that filled it."""
    filler = folder / "filler"
    handle = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(handle, b"x" * 4096)
    except OSError:
        pass
    finally:
        os.close(handle)
    return filler


def test_a_full_journal_disk_stops_sending_writes_the_workbook_and_the_resume_finishes(
    tmp_path: Path, sheet, make_simulator, small_disk: Path
) -> None:
    sim = make_simulator()
    (tmp_path / "small.yaml").write_text(
        f"output:\n  journal_dir: '{small_disk}'\n", encoding="utf-8"
    )
    args = [sheet(ticket_rows(60)), "--config", "small.yaml"]
    env = live_env(tmp_path / "home")
    process = start_command(
        [*args, *live_args(sim, "--rate", "10", "--concurrency", "2")], tmp_path, env=env
    )
    wait_until(lambda: len(patched(sim)) >= 10)
    filler = _fill(small_disk)
    code, _out, err = finish(process)

    # Stopped early (exit 3), not "nothing was sent" (2); no traceback; how to go on.
    assert code == ExitStatus.STOPPED, err
    assert "Traceback" not in err and "Exception in thread" not in err
    assert (
        "The run stopped early: the run journal could not be written: Cannot write to the journal"
        in err
    )
    assert "the disk is full" in err
    assert (
        "Free some space on the journal's disk, then resume: batch-update resume tickets.xlsx"
        in err
    )
    # The workbook was written (its folder has room) and tells the truth: every row claimed
    # Updated got a 204, no row claimed Not sent got a PATCH, Unknown rows are those in flight.
    [workbook] = results_files(tmp_path)
    results = by_row(read_results(workbook))
    accepted = set(patched(sim, 204))
    claimed = {r["Ticket Number"] for r in results.values() if r["Outcome"] == "Updated"}
    assert claimed <= accepted
    assert not {r["Ticket Number"] for r in results.values() if r["Outcome"] == "Not sent"} & set(
        patched(sim)
    )
    assert set(outcome_counts(results.values())) <= {"Updated", "Unknown", "Not sent"}
    assert outcome_counts(results.values()).get("Not sent", 0) >= 30
    assert read_summary(workbook)  # a complete workbook, with its Summary

    # Space freed, the resume sends the rest, and reads back the rows whose answer was lost.
    filler.unlink()
    resumed = run_command(["resume", *args, *live_args(sim, "--rate", "50")], tmp_path, env=env)
    assert resumed.returncode == ExitStatus.OK, resumed.stderr
    assert sorted(set(patched(sim, 204))) == [row[0] for row in ticket_rows(60)]
    # No ticket was accepted twice.
    assert len(patched(sim, 204)) == 60


@POSIX_ONLY
@pytest.mark.parametrize("args", [["runs"], ["compare", "--offline", "x"]])
def test_a_command_whose_reader_has_gone_ends_quietly(tmp_path: Path, args: list[str]) -> None:
    """`batch-update runs | head`: the reader gone before anything is printed is no bug."""
    process = start_command(args, tmp_path)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader goes away at once
    try:
        code = process.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError("the command hung once its output could not be written") from None
    said = process.stderr.read()
    assert "Internal error" not in said and "Traceback" not in said, said
    assert code in (ExitStatus.OK, ExitStatus.USAGE), said  # compare of no run: a usage error


@POSIX_ONLY
def test_a_reader_of_the_output_that_goes_away_does_not_stop_the_run(tmp_path: Path) -> None:
    """`batch-update ... | head`: once the reader has gone, every line written is a broken pipe;
    the run still sends every row, records it and writes its evidence, and ends."""
    copy_sample("tickets.xlsx", tmp_path)
    process = start_command(["tickets.xlsx", "--simulate", "--rate", "20"], tmp_path)
    assert process.stderr is not None and process.stdout is not None
    for line in process.stderr:  # read until sending has started, then go away
        if line.startswith("Sending"):
            break
    process.stderr.close()
    process.stdout.close()
    try:
        code = process.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError("the run hung once its output could not be written") from None
    assert code == ExitStatus.ROWS_FAILED  # as the sample ends: some rows Failed or Invalid
    (workbook,) = results_files(tmp_path)
    assert outcome_counts(read_results(workbook)) == {
        "Updated": 25,
        "Failed": 5,
        "Invalid": 5,
        "Skipped": 2,
    }
