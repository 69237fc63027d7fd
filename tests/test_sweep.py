"""The run as a function: sweep.run(request, settings, console) in-process, with a fake console
and the simulator. The decisions of a run (what a resume sends, what the guard says, when the
user is asked, what is said before the progress starts) are tested here; signals, kill -9 and
the installed command are in test_e2e.py and test_resume.py."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from helpers import (
    ADMIN,
    FakeConsole,
    patched,
    read_results,
    settings_for,
    ticket_rows,
    write_sheet,
)

from batch_updater.errors import ConfigError, InputError
from batch_updater.journal import list_runs
from batch_updater.settings import load_settings, user_state_folder
from batch_updater.sweep import ExitStatus, NothingToSend, RunRequest, run
from batch_updater.tickets import Outcome


@pytest.fixture
def sheet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return write_sheet(tmp_path / "tickets.xlsx", ticket_rows(6))


def test_a_dry_run_returns_every_rows_verdict_and_touches_no_server(sheet: Path) -> None:
    console = FakeConsole()
    outcome = run(RunRequest(sheet, dry_run=True), settings_for(None), console)

    assert outcome.status is ExitStatus.OK
    assert [r.outcome for r in outcome.results] == [Outcome.VALID] * 6
    assert outcome.workbook is not None and outcome.workbook.exists()
    assert [r["Outcome"] for r in read_results(outcome.workbook)] == ["Valid (dry run)"] * 6
    assert console.texts("note")[-1] == "Dry run: 6 of 6 rows would be sent; nothing was sent."
    assert console.asked == [] and ("progress", "6") not in console.said
    assert set(outcome.timings) == {"read", "validate", "write"}


def test_a_run_says_what_it_sends_before_its_progress_starts(sheet: Path, simulator) -> None:
    console = FakeConsole()
    outcome = run(RunRequest(sheet, yes=True), settings_for(simulator), console)

    assert outcome.status is ExitStatus.OK
    kinds = [kind for kind, _ in console.said]
    sending = next(i for i, (k, t) in enumerate(console.said) if t.startswith("Sending 6 updates"))
    assert sending < kinds.index("progress") < kinds.index("progress closed")
    assert sorted(patched(simulator, 204)) == [row[0] for row in ticket_rows(6)]
    assert [r.outcome for r in outcome.results] == [Outcome.UPDATED] * 6
    assert outcome.manifest is not None and outcome.manifest.exists()
    assert set(outcome.timings) == {"read", "validate", "send", "write"}


def test_missing_credentials_are_asked_of_the_console_when_it_can_ask(
    sheet: Path, simulator
) -> None:
    settings = load_settings(cli={"url": simulator.url, "rate": 200.0}, env={}, config_path=None)
    console = FakeConsole(can_ask=True)

    outcome = run(RunRequest(sheet), settings, console)

    assert outcome.status is ExitStatus.OK
    assert console.asked[:2] == ["user name", f"password of {ADMIN}"]
    assert console.asked[2] == (
        f"About to update 6 tickets on {simulator.url} as {ADMIN} at 200 requests/s. Continue?"
    )


def test_without_anyone_to_ask_a_run_that_needs_a_yes_is_refused_before_any_request(
    sheet: Path, simulator
) -> None:
    console = FakeConsole(can_ask=False)
    with pytest.raises(ConfigError) as refused:
        run(RunRequest(sheet), settings_for(simulator), console)

    assert refused.value.message.endswith("Refusing without a terminal to confirm.")
    assert refused.value.tip == "Add --yes to confirm in advance (for scheduled or scripted runs)."
    assert console.asked == [] and simulator.requests == []


def test_a_no_at_the_confirmation_sends_nothing(sheet: Path, simulator) -> None:
    console = FakeConsole(can_ask=True, confirm=False)
    with pytest.raises(ConfigError, match=r"Cancelled; nothing was sent\."):
        run(RunRequest(sheet), settings_for(simulator), console)
    assert patched(simulator) == []


def test_refused_credentials_stop_the_run_before_any_ticket_with_no_workbook(
    sheet: Path, simulator
) -> None:
    settings = load_settings(
        cli={"url": simulator.url, "username": ADMIN, "rate": 200.0},
        env={"CCS_PASSWORD": "wrong"},
        config_path=None,
    )
    outcome = run(RunRequest(sheet, yes=True), settings, FakeConsole())

    assert outcome.status is ExitStatus.STOPPED
    assert outcome.error is not None and outcome.workbook is None
    assert outcome.warnings[-1] == "Nothing was sent; no results workbook was written."
    assert patched(simulator) == []


def test_the_guard_refuses_a_sheet_already_applied_and_again_runs_it(
    sheet: Path, simulator
) -> None:
    first = run(RunRequest(sheet, yes=True), settings_for(simulator), FakeConsole())
    assert first.status is ExitStatus.OK

    with pytest.raises(InputError) as refused:
        run(RunRequest(sheet, yes=True), settings_for(simulator), FakeConsole())
    assert "was already applied by run" in refused.value.message
    assert refused.value.tip is not None and f"batch-update retry {sheet} " in refused.value.tip
    assert len(patched(simulator)) == 6

    # --again runs the sheet anew, but the tool now reads the tickets first: every one already
    # holds its row's values, so each row is Unchanged and nothing is sent a second time.
    seen = len(simulator.requests)
    again = run(RunRequest(sheet, yes=True, again=True), settings_for(simulator), FakeConsole())
    assert again.status is ExitStatus.OK and len(patched(simulator)) == 6
    assert [
        (r.outcome, r.status, r.message, r.request_json, r.attempts) for r in again.results
    ] == [
        (
            Outcome.UNCHANGED,
            None,
            "the ticket already holds these values; nothing was sent",
            None,
            0,
        )
    ] * 6
    # The second run's requests: the login and one page of every ticket (6 rows: a budget of 1).
    assert [(r.method, r.endpoint, r.query, r.ticket) for r in simulator.requests[seen:]] == [
        ("POST", "tokens", "", None),
        ("GET", "tickets", "Page=0&PageSize=500", None),
    ]


def test_a_resume_sends_only_what_the_stopped_run_did_not(sheet: Path, simulator) -> None:
    # The first run is stopped (as by Ctrl-C) once two rows are done, one request at a time.
    settings = settings_for(simulator, concurrency="1")
    stopped = run(RunRequest(sheet, yes=True), settings, FakeConsole(stop_after=2))
    assert stopped.status is ExitStatus.INTERRUPTED
    counts = Counter(r.outcome for r in stopped.results)
    assert counts[Outcome.NOT_SENT] >= 1 and counts[Outcome.UPDATED] >= 2
    updated_first = {r.ticket_number for r in stopped.results if r.outcome is Outcome.UPDATED}

    console = FakeConsole()
    resumed = run(RunRequest(sheet, yes=True, resume=True), settings, console)

    assert resumed.status is ExitStatus.OK
    assert any(text.startswith("Continuing run ") for text in console.texts("note"))
    by_ticket = {r.ticket_number: r for r in resumed.results}
    assert {t for t, r in by_ticket.items() if r.outcome is Outcome.SKIPPED} == updated_first
    assert all(r.outcome is Outcome.UPDATED for t, r in by_ticket.items() if t not in updated_first)
    # Every ticket was sent exactly once over the two runs.
    assert Counter(patched(simulator)) == {row[0]: 1 for row in ticket_rows(6)}


def test_a_retry_of_a_run_with_nothing_to_retry_sends_nothing(sheet: Path, simulator) -> None:
    first = run(RunRequest(sheet, yes=True), settings_for(simulator), FakeConsole())
    assert first.status is ExitStatus.OK
    (record,) = list_runs([user_state_folder() / "journals"])
    with pytest.raises(NothingToSend, match="Nothing to retry"):
        run(
            RunRequest(sheet, yes=True, retry_of=record.run_id),
            settings_for(simulator),
            FakeConsole(),
        )
    assert len(patched(simulator)) == 6


def test_the_commands_over_recorded_runs_are_core_functions_too(sheet: Path, simulator) -> None:
    from batch_updater.sweep.history import prepare_rollback, rebuild_report, recent_runs

    plain = run(RunRequest(sheet, yes=True), settings_for(simulator), FakeConsole())
    notes: list[str] = []
    listing = recent_runs(sheet, None, notes.append)
    (record,) = listing.runs
    assert record.results_path == str(plain.workbook)

    rebuilt = rebuild_report(record.run_id, sheet, sheet.parent / "again.xlsx", None, notes.append)
    assert rebuilt.workbook == sheet.parent / "again.xlsx" and rebuilt.manifest.exists()
    # No rollback: the run read the tickets first (in pages) but, without --capture-before, it
    # does not offer their before values as evidence to undo it by.
    assert rebuilt.rollback is None
    # The rebuilt workbook says what the run's own said, row for row.
    assert read_results(rebuilt.workbook) == read_results(plain.workbook)

    with pytest.raises(InputError, match="was made without --capture-before"):
        prepare_rollback(record.run_id, sheet, None, False, notes.append)
    assert notes == []


def test_a_rollback_is_made_ready_from_the_journal_and_refused_twice(
    sheet: Path, simulator
) -> None:
    from batch_updater.sweep.history import prepare_rollback

    before = {n: simulator.ticket(f"INCA{n:07d}") for n in range(1, 7)}
    first = run(
        RunRequest(sheet, yes=True), settings_for(simulator, capture_before=True), FakeConsole()
    )
    assert first.status is ExitStatus.OK
    (record,) = list_runs([user_state_folder() / "journals"])
    run_id = record.run_id

    ready = prepare_rollback(run_id, sheet, None, False, None)
    assert ready.workbook is not None and ready.workbook.exists()
    assert sorted(ready.rows) == list(range(2, 8))  # the rollback workbook's rows 2-7
    seen = len(simulator.requests)
    undo = run(
        RunRequest(ready.workbook, yes=True, again=True, exact=ready.rows, rolls_back=run_id),
        settings_for(simulator, verify=True),
        FakeConsole(),
    )
    assert undo.status is ExitStatus.OK
    # A rollback sends exactly what was captured: it does not read the tickets in pages first.
    undo_requests = simulator.requests[seen:]
    assert [r for r in undo_requests if r.method == "GET" and r.ticket is None] == []
    assert sorted(r.ticket for r in undo_requests if r.method == "PATCH") == [
        f"INCA{n:07d}" for n in sorted(before)
    ]
    for n, ticket in before.items():
        held = simulator.ticket(f"INCA{n:07d}")
        assert {k: held[k] for k in ("TicketState", "Priority", "AssignedTo")} == {
            k: ticket[k] for k in ("TicketState", "Priority", "AssignedTo")
        }
    with pytest.raises(InputError, match="was rolled back already"):
        prepare_rollback(run_id, sheet, None, False, None)
