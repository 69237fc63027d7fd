"""One truth on every path: the outcome Unknown, and the workbook and journal as one record.

A row is never claimed Updated, Failed or Not sent unless that is what the server saw; a row
whose PATCH left without an answer is Unknown. Checked at random interrupt moments through the
installed command against the simulator, whose request log says what it received and answered.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from helpers import (
    POSIX_ONLY,
    by_row,
    finish,
    live_args,
    live_env,
    patched,
    read_results,
    results_files,
    run_command,
    start_command,
    ticket_rows,
    wait_until,
    write_sheet,
)

from batch_updater.ccs import Reply
from batch_updater.cli import ExitStatus
from batch_updater.journal import list_runs
from batch_updater.runner import reply_failure

FIRST_ROW = 2
LOCKED = "ERROR: ticket locked"
FIELDS = ("TicketState", "Priority", "AssignedTo", "TicketDescription")
READ_FIRST = "(found when the ticket was read before sending; nothing was sent)"


# --- the rule: a 2xx whose body says the update failed ------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(204, ""), ""),
        (Reply(200, ""), ""),
        (
            Reply(200, "ticket locked", body={"Success": False, "Message": "ticket locked"}),
            "ticket locked",
        ),
        (Reply(200, "", body={"success": "false"}), "success: false"),
        (Reply(200, "x", body=[{"SUCCESS": False, "Message": "x"}]), "x"),
        (Reply(200, "", body={"Success": True}), ""),
        (Reply(200, "ok", body={"Message": "ok"}), ""),
        (Reply(200, "locked", body={"Error": "locked"}), "locked"),
        (Reply(200, "", body={"errors": ["locked"]}), "['locked']"),
        (Reply(200, "", body={"errors": []}), ""),
        (Reply(200, "", body={"error": None}), ""),
        (Reply(200, LOCKED), LOCKED),
        (Reply(200, "error ticket locked"), "error ticket locked"),
        (Reply(202, "Failed: the ticket is locked"), "Failed: the ticket is locked"),
        (Reply(200, "FAILURE - locked"), "FAILURE - locked"),
        (Reply(200, "Errors are logged"), ""),  # not the word ERROR
        (Reply(200, "Updated; no errors"), ""),
        (Reply(200, LOCKED, body=LOCKED), LOCKED),  # a JSON string
        (Reply(500, LOCKED), ""),  # not a 2xx: an ordinary refusal
        (Reply(200, LOCKED, intercepted=True), ""),  # a web page: handled as such
    ],
)
def test_a_2xx_reports_failure_by_a_fixed_rule(reply: Reply, expected: str) -> None:
    assert reply_failure(reply) == expected


def test_a_200_that_says_it_failed_is_unknown_or_settled_by_the_read_back(
    tmp_path: Path, simulator, state_folder: Path
) -> None:
    simulator.configure(failure_body_tickets={"INCA0000002", "INCA0000004"})
    write_sheet(tmp_path / "tickets.xlsx", ticket_rows(4))
    env = live_env(tmp_path / "home")
    done = run_command(["tickets.xlsx", *live_args(simulator, "--rate", "50")], tmp_path, env=env)

    assert done.returncode == ExitStatus.ROWS_FAILED, done.stderr
    results = by_row(read_results(results_files(tmp_path)[-1]))
    unknown = (
        f'HTTP 200, but the answer says the update failed: "{LOCKED}"; the ticket may or may not '
        "have changed; a resume (batch-update resume) reads it back before deciding"
    )
    for n in (2, 4):
        assert (results[n + 1]["Outcome"], results[n + 1]["Message"]) == ("Unknown", unknown)
    assert [results[n + 1]["Outcome"] for n in (1, 3)] == ["Updated", "Updated"]
    assert f"  {'Unknown':<16}{2:>7}" in done.stdout.splitlines()
    assert done.stderr.splitlines()[-1] == "  4/4 done: 2 updated, 0 failed, 2 unknown"

    # With --verify the read-back settles it: the server did not apply it, so it is Failed.
    simulator.configure(failure_body_tickets={"INCA0000006"})
    write_sheet(tmp_path / "more.xlsx", ticket_rows(2, 5))
    done = run_command(
        ["more.xlsx", *live_args(simulator, "--rate", "50", "--verify")], tmp_path, env=env
    )
    assert done.returncode == ExitStatus.ROWS_FAILED, done.stderr
    (book,) = [p for p in results_files(tmp_path) if p.name.startswith("more.")]
    row = by_row(read_results(book))[3]
    assert row["Outcome"] == "Failed"
    assert row["Message"] == (
        f'HTTP 200, but the answer says the update failed: "{LOCKED}"; the read-back (GET) shows '
        "the update was not applied"
    )
    assert row["Verification"].startswith("Mismatch: ")
    # And a retry of the first run reads the Unknown rows back before deciding.
    simulator.configure(failure_body_tickets=set())
    (first,) = [r for r in list_runs(state_folder / "journals") if r.input_name == "tickets.xlsx"]
    resumed = run_command(
        ["retry", "tickets.xlsx", first.run_id, *live_args(simulator, "--rate", "50")],
        tmp_path,
        env=env,
    )
    assert "2 of them read back first (their outcome was unknown)." in resumed.stderr
    assert resumed.returncode == ExitStatus.OK, resumed.stderr


# --- the invariant at random interrupt moments --------------------------------------------------


def _settle(sim: Any, quiet_for: float = 1.5) -> None:
    """Wait until the simulator has answered every request it had (its log stops growing)."""
    last, since = -1, time.monotonic()
    while time.monotonic() - since < quiet_for:
        count = len(sim.requests)
        if count != last:
            last, since = count, time.monotonic()
        time.sleep(0.05)


def _cells(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    book = openpyxl.load_workbook(path)
    try:
        return {ws.title: [tuple(c.value for c in row) for row in ws.iter_rows()] for ws in book}
    finally:
        book.close()


TRIALS = [
    (seed, double, evidence)
    for seed, (double, evidence) in enumerate(
        [(False, False), (True, False), (False, True), (True, True)] * 2, start=1
    )
]


@POSIX_ONLY
@pytest.mark.parametrize(("seed", "double", "evidence"), TRIALS)
def test_every_outcome_is_what_the_server_saw_at_any_interrupt_moment(
    tmp_path: Path, simulator, state_folder: Path, seed: int, double: bool, evidence: bool
) -> None:
    rng = random.Random(seed)
    rows = 16
    missing = {rng.randrange(1, rows + 1)}  # a ticket the server refuses (404)
    sheet = ticket_rows(rows)
    for n in missing:
        sheet[n - 1][0] = f"INCA9{n:06d}"
    # A ticket that already holds its row's values: the tool reads first, and sends it nothing.
    held = rng.choice([n for n in range(1, rows + 1) if n not in missing])
    simulator.store.update(sheet[held - 1][0], dict(zip(FIELDS, sheet[held - 1][1:])))
    write_sheet(tmp_path / "tickets.xlsx", sheet)
    simulator.configure(latency_ms=250, jitter_ms=150)
    extra = ["--capture-before", "--verify"] if evidence else []
    env = live_env(tmp_path / "home")
    process = start_command(
        ["tickets.xlsx", *live_args(simulator, "--rate", "20", *extra)], tmp_path, env=env
    )
    try:
        wait_until(lambda: len(patched(simulator)) >= 1, timeout=30)
        time.sleep(rng.uniform(0.0, 0.6))
        process.send_signal(signal.SIGINT)
        if double:
            time.sleep(rng.uniform(0.02, 0.15))
            process.send_signal(signal.SIGINT)
    finally:
        code, out, err = finish(process)
    _settle(simulator)

    assert "INTERNAL ERROR" not in err
    assert results_files(tmp_path), err
    assert code in (ExitStatus.INTERRUPTED, ExitStatus.ROWS_FAILED, ExitStatus.OK), err
    results = by_row(read_results(results_files(tmp_path)[-1]))
    assert len(results) == rows
    answers: dict[str, list[int | None]] = {}
    reads: dict[str, list[int | None]] = {}  # the GETs of one ticket (a Search has no ticket)
    for record in simulator.requests:
        if record.method == "PATCH" and record.ticket:
            answers.setdefault(record.ticket, []).append(record.status)
        elif record.method == "GET" and record.endpoint == "tickets" and record.ticket:
            reads.setdefault(record.ticket, []).append(record.status)
    # The tool now reads the tickets before changing them: the account's tickets in pages (a
    # Search: a GET with no ticket) before the first PATCH, and a GET only for the ticket the
    # pages did not give (the one the server does not have).
    searches = [
        r
        for r in simulator.requests
        if r.method == "GET" and r.endpoint == "tickets" and not r.ticket
    ]
    first_patch = min(r.t for r in simulator.requests if r.method == "PATCH")
    assert searches and searches[0].t < first_patch, seed
    assert all("PageSize=500" in r.query for r in searches), seed
    assert set(reads) <= {f"INCA9{n:06d}" for n in missing}, (seed, reads)
    for number, result in results.items():
        got = answers.get(str(result["Ticket Number"]), [])
        read = reads.get(str(result["Ticket Number"]), [])
        outcome = result["Outcome"]
        where = (seed, number, outcome, result["Message"], got, read)
        if outcome == "Not sent":
            assert got == [], where
        elif outcome == "Updated":
            assert got and got[-1] == 204 and result["HTTP Status"] == 204, where
        elif outcome == "Failed" and str(result["Message"]).endswith(READ_FIRST):
            # The tool now reads each ticket before changing it: the ticket the Search pages did
            # not find is read (GET) before its PATCH, and the server's 404 there fails the row
            # with no PATCH sent. What the server saw is that GET and its answer.
            assert got == [], where
            assert read and read[-1] in (403, 404), where
            assert result["HTTP Status"] == read[-1], where
        elif outcome == "Unchanged":
            # Claimed only where the server holds the row's values, and was sent nothing.
            assert number == FIRST_ROW + held - 1 and got == [], where
            assert result["HTTP Status"] is None, where
            ticket = simulator.ticket(str(result["Ticket Number"]))
            assert [ticket[f] for f in FIELDS] == sheet[held - 1][1:], where
        elif outcome == "Failed":
            assert got and got[-1] is not None and got[-1] >= 400, where
            assert result["HTTP Status"] == got[-1], where
        else:
            assert outcome == "Unknown", where
            assert double, where  # only an abandoned request has no answer seen
            assert got, where  # its PATCH left (and reached the server)
            assert result["HTTP Status"] is None, where
    # The terminal says what the workbook says.
    counts: dict[str, int] = {}
    for result in results.values():
        counts[result["Outcome"]] = counts.get(result["Outcome"], 0) + 1
    for outcome, count in counts.items():
        lines = [
            line for line in out.splitlines() if line.startswith(f"  {outcome:<16}{count:>7,}")
        ]
        assert lines, (outcome, out)

    # The workbook rebuilt from the journal alone is the same, cell for cell.
    (run,) = list_runs(state_folder / "journals")
    original = results_files(tmp_path)[-1]
    rebuilt_path = tmp_path / "rebuilt.xlsx"
    rebuilt = run_command(["report", run.run_id, "--out", str(rebuilt_path)], tmp_path, env=env)
    assert rebuilt.returncode == ExitStatus.OK, rebuilt.stderr
    first, second = _cells(original), _cells(rebuilt_path)
    assert list(first) == list(second)
    for name in first:
        a, b = first[name], second[name]
        if name == "Summary":
            # The rebuilt Summary adds one note saying it was rebuilt; nothing else differs.
            b = [
                row
                for row in b
                if not any(isinstance(v, str) and v.startswith("Rebuilt from") for v in row)
            ]
            a = [
                row
                for row in a
                if not any(isinstance(v, str) and v.startswith("Rebuilt from") for v in row)
            ]
        differ = [
            (r, c, x[c], y[c])
            for r, (x, y) in enumerate(zip(a, b))
            for c in range(len(x))
            if x[c] != y[c]
        ]
        assert not differ, (name, differ[:2])
        assert len(a) == len(b), name
