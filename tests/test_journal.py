"""The run journal: round trips, phases, threads, a killed writer, finding and pruning runs."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from dataclasses import replace
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest

import batch_updater.journal as journal_module
import batch_updater.journal.files as journal_files
from batch_updater.errors import BatchUpdateError
from batch_updater.journal import (
    Journal,
    JournalError,
    Phase,
    RunEnd,
    canonical_settings_json,
    find_run,
    finished_run_with_input,
    journal_file_name,
    latest_unfinished,
    list_runs,
    prune,
    safe_stem,
    settings_digest,
)
from batch_updater.tickets import (
    Outcome,
    PlannedRow,
    RowResult,
    RunInfo,
    Sheet,
    SheetRow,
    TicketState,
    TicketUpdate,
)

SHA_A = hashlib.sha256(b"input a").hexdigest()
SHA_B = hashlib.sha256(b"input b").hexdigest()
NOW = datetime.now(timezone.utc)
SETTINGS = {"url": "https://ccs.example.com", "rate": 5.0, "concurrency": 4, "password": "********"}
NAME_PATTERN = re.compile(r"^tickets\.\d{8}-\d{6}-[0-9a-f]{4}\.journal\.sqlite$")


def start(**changes: object) -> RunInfo:
    """The facts of a run as it starts, as Journal.create is given them."""
    values: dict[str, object] = dict(
        input_path="/data/sweeps/tickets.xlsx",
        input_sha256=SHA_A,
        sheet_name="Changes",
        settings=SETTINGS,
        server_url="https://ccs.example.com",
        ccs_user="corp\\jsmith",
        operator="corp\\jsmith on LAPTOP-7",
        tool_version="0.1.0",
        started=datetime.now(timezone.utc),
    )
    values.update(changes)
    return RunInfo(**values)  # type: ignore[arg-type]


def planned(count: int, first: int = 2) -> list[PlannedRow]:
    return [
        PlannedRow(
            n,
            update=TicketUpdate(
                f"INCA{n:07d}", state=TicketState.REMEDIATION_PERFORMED, priority="High"
            ),
        )
        for n in range(first, first + count)
    ]


def make_run(folder: Path, ended: RunEnd | None = None, **changes: object) -> Journal:
    """A closed journal with two rows, ended as asked (None: left running); resumed_from and
    retry_of name the run it continues, the other changes are the run's facts."""
    continues = {key: changes.pop(key) for key in ("resumed_from", "retry_of") if key in changes}
    journal = Journal.create(
        folder,
        start(**changes),
        planned(2),
        **continues,  # type: ignore[arg-type]
    )
    if ended is not None:
        finished = changes.get("started")
        at = finished + timedelta(minutes=5) if finished else None  # type: ignore[operator]
        journal.finish(ended, 0, finished=at)
    journal.close()
    return journal


# -- create and reopen ---------------------------------------------------------------------------


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    cest = timezone(timedelta(hours=2))
    rows: list[PlannedRow | RowResult] = [
        *planned(3),
        RowResult(
            5,
            Outcome.INVALID,
            "INCA0000005",
            message='column "Priority": "urgentt" is not a priority',
        ),
        RowResult(6, Outcome.SKIPPED, message="blank row"),
        PlannedRow(
            7,
            update=TicketUpdate(
                "INCA0000007",
                description="Réparé — 修正済み\nsecond line",
                assigned_to="corp\\jsmith",
            ),
        ),
    ]
    run = start(
        operator="Zoë Ångström on LAPTOP-7",
        notes=("Resumed from journal x", "=not a formula"),
        simulated=True,
    )
    journal = Journal.create(tmp_path, run, rows, resumed_from="20240101-000000-abcd")
    sent = [
        RowResult(
            2,
            Outcome.UPDATED,
            "INCA0000002",
            204,
            "",
            1,
            datetime(2024, 5, 31, 14, 30, 1, 123456, tzinfo=timezone.utc),
            87,
            rows[0].update.to_json_text(),
        ),  # type: ignore[union-attr]
        RowResult(
            3,
            Outcome.FAILED,
            "INCA0000003",
            404,
            "Ticket INCA0000003 was not found (ünïcode)",
            1,
            datetime(2024, 5, 31, 16, 30, 2, tzinfo=cest),
            12,
            '{"TicketNumber":"INCA0000003"}',
        ),
        RowResult(
            4,
            Outcome.NOT_SENT,
            "INCA0000004",
            message="not sent: the run was interrupted",
            request_json='{"TicketNumber": "INCA0000004"}',
        ),
        RowResult(
            7,
            Outcome.UPDATED,
            "INCA0000007",
            204,
            "updated on attempt 3 after HTTP 503, timeout",
            3,
            datetime(2024, 5, 31, 14, 31, tzinfo=timezone.utc),
            30512,
            rows[5].update.to_json_text(),
        ),  # type: ignore[union-attr]
    ]
    for result in sent:
        journal.mark_sending(result.row_number)
        journal.record(result)
    journal.finish(RunEnd.FINISHED, 1, tmp_path / "tickets.results.xlsx")
    journal.close()

    reopened = Journal.open(journal.path)
    results = reopened.results()
    expected = {r.row_number: r for r in [*sent, rows[3], rows[4]]}
    assert results == expected
    for result in results.values():
        assert result.sent_at is None or result.sent_at.tzinfo is timezone.utc
    assert results[3].sent_at == datetime(2024, 5, 31, 14, 30, 2, tzinfo=timezone.utc)
    assert results[7].request_json == (
        '{"TicketNumber": "INCA0000007", "TicketDescription": "Réparé — 修正済み\\nsecond line", '
        '"AssignedTo": "corp\\\\jsmith"}'
    )
    record = reopened.run
    assert (record.input_path, record.input_name, record.input_sha256, record.sheet_name) == (
        "/data/sweeps/tickets.xlsx",
        "tickets.xlsx",
        SHA_A,
        "Changes",
    )
    assert (record.server_url, record.ccs_user, record.operator, record.tool_version) == (
        "https://ccs.example.com",
        "corp\\jsmith",
        "Zoë Ångström on LAPTOP-7",
        "0.1.0",
    )
    assert record.settings == SETTINGS
    assert record.settings_digest == settings_digest(SETTINGS)
    assert (record.ended, record.exit_code, record.results_path) == (
        RunEnd.FINISHED,
        1,
        str(tmp_path / "tickets.results.xlsx"),
    )
    assert record.is_finished and record.finished is not None and record.finished >= record.started
    assert (record.resumed_from, record.retry_of, record.dry_run, record.simulated) == (
        "20240101-000000-abcd",
        None,
        False,
        True,
    )
    assert record.notes == ("Resumed from journal x", "=not a formula")
    assert record.row_count == 6 and record.schema_version == journal_module.SCHEMA_VERSION
    assert record.pid == os.getpid()
    info = record.to_run_info()
    assert (info.input_sha256, info.rate, info.concurrency, info.simulated) == (SHA_A, 5.0, 4, True)
    assert info.notes == ("Resumed from journal x", "=not a formula")
    assert (info.run_id, info.journal_path) == (journal.run_id, str(journal.path.resolve()))
    # The facts the journal was given come back, with what it learnt since (and the settings).
    learnt = dict(finished=None, rate=None, concurrency=None, python_version="")
    assert replace(info, run_id="", journal_path="", **learnt) == run  # type: ignore[arg-type]
    assert [row.row_number for row in reopened.rows()] == [2, 3, 4, 5, 6, 7]
    reopened.close()


def test_planned_rows_keep_the_request_exactly_as_sent(tmp_path: Path) -> None:
    rows = planned(2) + [
        PlannedRow(
            9, update=TicketUpdate("INCA9", description='ü "quoted" \u2028 \\ tab\t', priority=3)
        )
    ]
    with Journal.create(tmp_path, start(), rows) as journal:
        stored = {row.row_number: row.request_json for row in journal.rows()}
    assert stored == {r.row_number: r.update.to_json_text() for r in rows}  # type: ignore[union-attr]


def test_file_name_sorts_by_time_and_is_valid_on_windows(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path / "nested" / ".batch-update", start(), planned(1))
    assert NAME_PATTERN.match(journal.path.name)
    assert journal.path.name == journal_file_name("tickets.xlsx", journal.run_id)
    assert journal.run_id == journal.path.name.split(".")[1]
    assert journal.run_id.startswith(f"{journal.run.started:%Y%m%d-%H%M%S}-")
    journal.close()


@pytest.mark.parametrize(
    ("input_path", "stem"),
    [
        ("C:\\Users\\j\\Desktop\\May: sweep?.xlsx", "May_ sweep_"),
        ("/data/tickets.v2.csv", "tickets.v2"),
        ("CON.xlsx", "_CON"),
        ("lpt1.final.xlsx", "_lpt1.final"),
        ("...xlsx", "input"),
        ("a" * 200 + ".xlsx", "a" * 60),
        ("ünï code.xlsx", "ünï code"),
    ],
)
def test_input_stem_is_sanitised(input_path: str, stem: str) -> None:
    assert safe_stem(input_path) == stem


def test_journal_is_wal_and_marked_as_ours(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path, start(), planned(1))
    journal.close()
    with sqlite3.connect(journal.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA application_id").fetchone()[0] == journal_module.APPLICATION_ID
        assert db.execute("PRAGMA user_version").fetchone()[0] == journal_module.SCHEMA_VERSION
    db.close()


def test_two_runs_in_the_same_second_get_their_own_files(tmp_path: Path) -> None:
    moment = datetime(2024, 5, 31, 14, 0, tzinfo=timezone.utc)
    journals = [Journal.create(tmp_path, start(started=moment), planned(1)) for _ in range(5)]
    assert len({j.path for j in journals}) == 5 and len({j.run_id for j in journals}) == 5
    for journal in journals:
        journal.close()


def test_the_sheet_can_be_stored_and_rebuilt(tmp_path: Path) -> None:
    sheet = Sheet(
        path="/data/tickets.xlsx",
        sheet_name="Changes",
        header_row=3,
        headers=["Ticket", "State", "When", "Day", "At", "Took", "Ratio", "Done", "Note"],
        rows=[
            SheetRow(
                4,
                (
                    "INCA1",
                    2,
                    datetime(2024, 5, 1, 8, 30),
                    date(2024, 5, 2),
                    time(9, 15),
                    timedelta(hours=1, seconds=3),
                    0.25,
                    True,
                    "=1+1 ü\n",
                ),
            ),
            SheetRow(5, (None, None, None, None, None, None, float("nan"), False, "")),
        ],
        notices=["Row 2 is merged"],
    )
    results = [
        RowResult(4, Outcome.VALID, "INCA1"),
        RowResult(5, Outcome.SKIPPED, message="blank row"),
    ]
    with Journal.create(tmp_path, start(dry_run=True), results, sheet=sheet) as journal:
        path = journal.path
    with Journal.open(path) as journal:
        rebuilt = journal.sheet()
    assert rebuilt is not None
    assert (
        rebuilt.path,
        rebuilt.sheet_name,
        rebuilt.header_row,
        rebuilt.headers,
        rebuilt.notices,
    ) == (sheet.path, sheet.sheet_name, sheet.header_row, sheet.headers, sheet.notices)
    assert rebuilt.rows[0] == sheet.rows[0]
    assert [type(v) for v in rebuilt.rows[0].values] == [type(v) for v in sheet.rows[0].values]
    nan = rebuilt.rows[1].values[6]
    assert isinstance(nan, float) and nan != nan
    assert rebuilt.rows[1].values[:6] == (None,) * 6 and rebuilt.rows[1].values[7:] == (False, "")


def test_without_a_sheet_there_is_none(tmp_path: Path) -> None:
    with Journal.create(tmp_path, start(), planned(1)) as journal:
        assert journal.sheet() is None


def test_a_hundred_thousand_rows(tmp_path: Path) -> None:
    rows: list[PlannedRow | RowResult] = list(planned(99_990))
    rows += [RowResult(n, Outcome.INVALID, f"X{n}", message="bad") for n in range(200_000, 200_010)]
    with Journal.create(tmp_path, start(), rows) as journal:
        assert journal.run.row_count == 100_000
        assert journal.counts() == {Phase.PLANNED: 99_990, Outcome.INVALID: 10}
        assert sum(1 for _ in journal.rows()) == 100_000


# -- phases --------------------------------------------------------------------------------------


def test_a_row_goes_planned_sending_done(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path, start(), planned(3))
    assert [r.row_number for r in journal.rows_in_phase("planned")] == [2, 3, 4]
    first = datetime(2024, 5, 31, 14, 0, tzinfo=timezone.utc)
    journal.mark_sending(3, at=first)
    row = journal.row(3)
    assert row is not None
    assert (row.phase, row.attempts, row.sent_at, row.outcome) == (Phase.SENDING, 1, first, None)
    journal.mark_sending(3, at=first + timedelta(seconds=5))  # a retry: same first send time
    row = journal.row(3)
    assert row is not None and (row.attempts, row.sent_at) == (2, first)
    assert [r.row_number for r in journal.rows_in_phase(Phase.SENDING)] == [3]
    journal.record(
        RowResult(3, Outcome.UPDATED, "INCA0000003", 204, "", 2, first, 5100, "{}"),
        verified="read back 2024-05-31T14:05:00Z: matches",
    )
    row = journal.row(3)
    assert row is not None
    assert (row.phase, row.outcome, row.status, row.attempts) == (
        Phase.DONE,
        Outcome.UPDATED,
        204,
        2,
    )
    assert row.verified == "read back 2024-05-31T14:05:00Z: matches"
    assert row.finished_at is not None and row.finished_at.tzinfo is timezone.utc
    assert journal.rows_in_phase("sending") == []
    assert journal.counts() == {Phase.PLANNED: 2, Outcome.UPDATED: 1}
    journal.close()


def test_a_row_with_its_outcome_is_never_marked_sending_again(tmp_path: Path) -> None:
    skipped = RowResult(3, Outcome.SKIPPED, message="x")
    journal = Journal.create(tmp_path, start(), [*planned(1), skipped])
    journal.mark_sending(2)
    journal.record(RowResult(2, Outcome.UPDATED, "INCA0000002", 204))
    with pytest.raises(JournalError) as refused:
        journal.mark_sending(2)
    assert refused.value.message == (
        f"Row 2 already has its outcome (Updated) in the journal {journal.path.name}; "
        "it must not be sent again."
    )
    with pytest.raises(JournalError, match=r"already has its outcome \(Skipped\)"):
        journal.mark_sending(3)
    with pytest.raises(JournalError) as unknown:
        journal.mark_sending(99)
    assert unknown.value.message == f"Row 99 is not in the journal {journal.path.name}."
    journal.close()


def test_record_of_an_unknown_row_adds_it(tmp_path: Path) -> None:
    with Journal.create(tmp_path, start(), planned(1)) as journal:
        journal.record(RowResult(50, Outcome.FAILED, "INCA50", 400, "bad request", 1))
        assert journal.results()[50] == RowResult(
            50, Outcome.FAILED, "INCA50", 400, "bad request", 1
        )


def test_pending_rows_get_stand_ins_only_when_asked(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path, start(), planned(3))
    at = datetime(2024, 5, 31, tzinfo=timezone.utc)
    journal.mark_sending(3, at=at)
    journal.mark_sending(4, at=at)
    journal.record(RowResult(4, Outcome.UPDATED, "INCA0000004", 204, attempts=1, sent_at=at))
    assert list(journal.results()) == [4]
    every = journal.results(include_pending=True)
    assert every[2] == RowResult(
        2,
        Outcome.NOT_SENT,
        "INCA0000002",
        message="not sent: the run ended before this row was sent",
        request_json=planned(1)[0].update.to_json_text(),  # type: ignore[union-attr]
    )
    assert every[3].outcome is Outcome.UNKNOWN and every[3].status is None
    assert every[3].message == (
        "the run ended while this request was in flight: no answer was seen, so the outcome is "
        "unknown; a resume (batch-update resume) reads the ticket back before deciding"
    )
    assert (every[3].attempts, every[3].sent_at) == (1, at)
    journal.close()


def test_naive_times_are_refused(tmp_path: Path) -> None:
    with Journal.create(tmp_path, start(), planned(1)) as journal:
        with pytest.raises(ValueError, match="no time zone"):
            journal.record(RowResult(2, Outcome.UPDATED, sent_at=datetime(2024, 5, 31, 14, 0)))
        with pytest.raises(ValueError, match="no time zone"):
            journal.mark_sending(2, at=datetime(2024, 5, 31, 14, 0))


def test_finish_records_how_the_run_ended(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path, start(), planned(1))
    assert journal.run.ended is RunEnd.RUNNING and journal.run.finished is None
    record = journal.finish("stopped", 3, None, stopped_reason="credentials refused")
    assert (record.ended, record.exit_code, record.results_path, record.stopped_reason) == (
        RunEnd.STOPPED,
        3,
        None,
        "credentials refused",
    )
    assert journal.run == record
    assert journal.set_results_path(tmp_path / "late.xlsx").results_path == str(
        tmp_path / "late.xlsx"
    )
    with pytest.raises(ValueError):
        journal.finish(RunEnd.RUNNING, 0)
    journal.close()
    assert Journal.open(journal.path).run.to_run_info().stopped_reason == "credentials refused"


def drop_column(path: Path, table: str, column: str) -> None:
    """Make the journal look as an earlier version wrote it (without DROP COLUMN: SQLite 3.35+)."""
    connection = sqlite3.connect(path)
    try:
        with connection:
            columns = [info[1] for info in connection.execute(f"PRAGMA table_info({table})")]
            kept = ", ".join(name for name in columns if name != column)
            assert len(kept.split(", ")) == len(columns) - 1
            connection.execute(f"CREATE TABLE old_copy AS SELECT {kept} FROM {table}")
            connection.execute(f"DROP TABLE {table}")
            connection.execute(f"ALTER TABLE old_copy RENAME TO {table}")
    finally:
        connection.close()


def test_finish_keeps_how_many_requests_were_in_flight(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path, start(), planned(1))
    assert journal.run.workers is None
    assert journal.finish(RunEnd.FINISHED, 0, workers=7).workers == 7
    journal.close()
    assert Journal.open(journal.path).run.to_run_info().workers == 7


def test_a_journal_from_before_the_workers_column_still_reads(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path, start(), planned(1))
    journal.close()
    drop_column(journal.path, "journal_run", "workers")
    with Journal.open(journal.path, writable=True) as old:
        assert old.run.workers is None
        assert old.finish(RunEnd.FINISHED, 0, workers=5).workers is None
    assert Journal.open(journal.path).run.to_run_info().workers is None


def test_the_python_version_of_the_run_is_kept_for_the_rebuilt_run_sheet(tmp_path: Path) -> None:
    import platform

    journal = Journal.create(tmp_path, start(), planned(1))
    journal.close()
    assert Journal.open(journal.path).run.to_run_info().python_version == platform.python_version()
    drop_column(journal.path, "journal_run", "python_version")
    assert Journal.open(journal.path).run.python_version == ""  # a journal from before it


BEFORE = {
    "TicketNumber": "INCA0000002",
    "TicketState": 1,
    "Priority": "Low",
    "AssignedTo": "corp\\ana ✓",
}


def test_before_values_are_kept_ahead_of_the_request_and_with_the_outcome(tmp_path: Path) -> None:
    from batch_updater.sweep.continuation import continue_run

    rows = planned(3)  # rows 2..4
    journal = Journal.create(tmp_path, start(), rows)
    journal.record_before(2, BEFORE)
    journal.mark_sending(2)
    assert journal.row(2).before == BEFORE  # kept before the PATCH went out
    journal.record(
        RowResult(2, Outcome.UPDATED, "INCA0000002", 204, "", 1, NOW, 5, "{}", before=BEFORE)
    )
    journal.record(RowResult(3, Outcome.FAILED, "INCA0000003", 404, "not found", 1, NOW, 5, "{}"))
    journal.record_before(4, {**BEFORE, "TicketNumber": "INCA0000004"})
    journal.mark_sending(4)  # killed while in flight
    assert journal.row(2).to_result().before == BEFORE
    assert journal.row(3).before is None
    plan = continue_run(journal, rows)
    # carried with its evidence; the row caught in flight keeps its before values for the resume
    assert plan.carried[2].before == BEFORE
    assert plan.read_back == {4}
    assert plan.known_before == {4: {**BEFORE, "TicketNumber": "INCA0000004"}}
    journal.close()
    reopened = Journal.open(journal.path)
    assert reopened.row(2).before == BEFORE
    reopened.close()


def test_a_journal_from_before_the_before_column_still_reads_and_records(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path, start(), planned(2))
    journal.close()
    drop_column(journal.path, "journal_row", "before_json")
    with Journal.open(journal.path, writable=True) as old:
        old.record_before(2, BEFORE)  # nothing to keep it in: ignored, not an error
        old.record(
            RowResult(2, Outcome.UPDATED, "INCA0000002", 204, "", 1, NOW, 5, "{}", before=BEFORE)
        )
        assert old.row(2).outcome is Outcome.UPDATED and old.row(2).before is None
        assert [r.before for r in old.rows()] == [None, None]


def test_a_read_only_journal_refuses_writes(tmp_path: Path) -> None:
    made = make_run(tmp_path)
    with (
        Journal.open(made.path) as journal,
        pytest.raises(JournalError, match="Cannot write to the journal"),
    ):
        journal.mark_sending(2)
    with Journal.open(made.path, writable=True) as journal:
        journal.finish(RunEnd.INTERRUPTED, 130)
    assert Journal.open(made.path).run.ended is RunEnd.INTERRUPTED


def test_a_closed_journal_says_so(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path, start(), planned(1))
    journal.close()
    with pytest.raises(JournalError, match="is closed"):
        journal.mark_sending(2)


def test_bad_rows_are_refused_and_leave_no_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="row 2 is given twice"):
        Journal.create(tmp_path, start(), planned(1) + planned(1))
    with pytest.raises(ValueError, match="row 8 is not valid; journal it as a RowResult"):
        Journal.create(tmp_path, start(), [PlannedRow(8, blank=True)])
    assert list(tmp_path.iterdir()) == []


# -- threads and a killed process -----------------------------------------------------------------


def test_eight_threads_record_at_once_and_nothing_is_lost(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path, start(), planned(4000))
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(k: int) -> None:
        try:
            barrier.wait()
            for n in range(2 + k, 4002, 8):
                journal.mark_sending(n)
                journal.record(
                    RowResult(
                        n,
                        Outcome.UPDATED,
                        f"INCA{n:07d}",
                        204,
                        f"thread {k}",
                        1,
                        datetime.now(timezone.utc),
                        1,
                        "{}",
                    )
                )
                if n % 97 == 0:
                    assert journal.row(n) is not None
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    journal.close()
    with Journal.open(journal.path) as reopened:
        results = reopened.results()
    assert len(results) == 4000
    assert all(r.outcome is Outcome.UPDATED for r in results.values())
    assert {r.message for r in results.values()} == {f"thread {k}" for k in range(8)}
    assert all(results[n].message == f"thread {(n - 2) % 8}" for n in results)


KILLED_WRITER = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timezone
    from batch_updater.journal import Journal
    from batch_updater.tickets import Outcome, PlannedRow, RowResult, RunInfo, TicketUpdate

    folder, count = sys.argv[1], int(sys.argv[2])
    rows = [PlannedRow(n, update=TicketUpdate(f"INCA{n:07d}", priority="High"))
            for n in range(2, 2 + count)]
    print("creating", flush=True)
    run = RunInfo("tickets.xlsx", "ab" * 32, "Changes", "", "", datetime.now(timezone.utc))
    journal = Journal.create(folder, run, rows)
    print("created", flush=True)
    for n in range(2, 2 + count):
        journal.mark_sending(n)
        print("S", n, flush=True)
        journal.record(RowResult(n, Outcome.UPDATED, f"INCA{n:07d}", 204, "", 1,
                                 datetime.now(timezone.utc), 3, "{}"))
        print("D", n, flush=True)
    journal.finish("finished", 0)
    print("finished", flush=True)
    """
)


def _run_and_kill(folder: Path, kill_after: str, count: int) -> list[str]:
    """Start the writer, SIGKILL it once it printed kill_after; the lines it printed."""
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(folder), str(count)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert writer.stdout is not None
    lines: list[str] = []
    try:
        for line in writer.stdout:
            lines.append(line.strip())
            if lines[-1] == kill_after:
                os.kill(writer.pid, signal.SIGKILL)
                break
        lines += [line.strip() for line in writer.stdout]
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait(30)
        writer.stdout.close()
    return lines


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX; Windows has no kill -9 to test with")
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_process_killed_while_writing_leaves_every_committed_row(
    tmp_path: Path, seed: int
) -> None:
    count = 3000
    kill_at = random.Random(seed).randrange(2, 2 + count - 1)
    lines = _run_and_kill(tmp_path, f"{random.Random(seed).choice('SD')} {kill_at}", count)
    assert "finished" not in lines
    done = {int(line.split()[1]) for line in lines if line.startswith("D ")}
    sending = {int(line.split()[1]) for line in lines if line.startswith("S ")}
    assert done and kill_at in sending

    runs = list_runs(tmp_path)
    assert len(runs) == 1 and runs[0].ended is RunEnd.RUNNING
    with Journal.open(runs[0].path) as journal:
        rows = {row.row_number: row for row in journal.rows()}
    assert len(rows) == count
    for n in done:
        assert rows[n].phase is Phase.DONE and rows[n].outcome is Outcome.UPDATED
    for n in sending - done:
        assert rows[n].phase in (Phase.SENDING, Phase.DONE)
    assert all(rows[n].phase is Phase.PLANNED for n in rows if n > max(sending) + 1)
    assert len([r for r in rows.values() if r.phase is Phase.SENDING]) <= 1
    with sqlite3.connect(runs[0].path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX; Windows has no kill -9 to test with")
def test_a_process_killed_while_creating_leaves_nothing_half_made(tmp_path: Path) -> None:
    lines = _run_and_kill(tmp_path, "creating", 50_000)
    skipped: list[tuple[Path, JournalError]] = []
    runs = list_runs(tmp_path, on_skipped=lambda path, error: skipped.append((path, error)))
    # Either the kill came first (no run; at most an empty file, reported) or the journal is whole.
    assert all(run.row_count == 50_000 for run in runs)
    for _, error in skipped:
        assert "empty journal" in error.message
    assert len(runs) + len(skipped) <= 1, lines


# -- finding runs ---------------------------------------------------------------------------------


def test_list_runs_newest_first_and_skips_what_it_cannot_read(tmp_path: Path) -> None:
    older = make_run(tmp_path, RunEnd.FINISHED, started=NOW - timedelta(days=2))
    newer = make_run(tmp_path, None, started=NOW - timedelta(days=1))
    (tmp_path / "garbage.journal.sqlite").write_bytes(b"this is not SQLite at all" * 100)
    foreign = tmp_path / "foreign.journal.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE t (x)")
    db.close()
    (tmp_path / "empty.journal.sqlite").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a journal name")
    (tmp_path / "dir.journal.sqlite").mkdir()

    skipped: dict[str, str] = {}
    runs = list_runs(
        tmp_path, on_skipped=lambda path, error: skipped.update({path.name: str(error)})
    )
    assert [run.run_id for run in runs] == [newer.run_id, older.run_id]
    assert skipped == {
        "empty.journal.sqlite": f"{tmp_path / 'empty.journal.sqlite'} is an empty journal: its run "
        "was killed while the journal was being created (or is being created right now), before "
        "anything was sent.",
        "foreign.journal.sqlite": f"{foreign} is an SQLite file but not a batch-update journal.",
        "garbage.journal.sqlite": f"{tmp_path / 'garbage.journal.sqlite'} is not a readable "
        "batch-update journal (file is not a database).",
    }
    assert list_runs(tmp_path / "missing") == []


def test_a_journal_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    made = make_run(tmp_path, RunEnd.FINISHED)
    with sqlite3.connect(made.path) as db:
        db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(JournalError) as refused:
        Journal.open(made.path)
    assert refused.value.message == (
        f"{made.path} was written by a newer batch-update (journal format 99; this version "
        f"reads formats up to {journal_module.SCHEMA_VERSION})."
    )
    assert refused.value.tip == "Upgrade batch-update to read it."
    assert isinstance(refused.value, BatchUpdateError)


def test_a_locked_journal_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal_files, "BUSY_TIMEOUT_SECONDS", 0.1)
    made = make_run(tmp_path, RunEnd.FINISHED)
    holder = sqlite3.connect(made.path, isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("UPDATE journal_run SET operator = 'someone else'")
        with pytest.raises(JournalError) as locked:
            Journal.open(made.path)
        assert locked.value.message == f"The journal {made.path} is locked by another program."
        skipped: list[Path] = []
        assert list_runs(tmp_path, on_skipped=lambda path, error: skipped.append(path)) == []
        assert skipped == [made.path]
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_open_a_missing_journal(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="does not exist"):
        Journal.open(tmp_path / "nope.journal.sqlite")


def test_latest_unfinished_is_the_latest_live_run_if_it_did_not_finish(tmp_path: Path) -> None:
    make_run(tmp_path, RunEnd.FINISHED, started=NOW - timedelta(days=3))
    assert latest_unfinished(tmp_path, "tickets.xlsx") is None
    interrupted = make_run(tmp_path, RunEnd.INTERRUPTED, started=NOW - timedelta(days=2))
    make_run(tmp_path, None, started=NOW - timedelta(days=1), dry_run=True)
    make_run(tmp_path, None, started=NOW, input_path="/data/other.xlsx")
    found = latest_unfinished(tmp_path, "tickets.xlsx")
    assert found is not None and found.run_id == interrupted.run_id
    other = latest_unfinished(tmp_path, "other.xlsx")
    assert other is not None and other.input_name == "other.xlsx"
    make_run(tmp_path, RunEnd.FINISHED, started=NOW, resumed_from=interrupted.run_id)
    assert latest_unfinished(tmp_path, "tickets.xlsx") is None


def test_finished_run_with_input_ignores_dry_and_unfinished_runs(tmp_path: Path) -> None:
    make_run(tmp_path, RunEnd.FINISHED, started=NOW - timedelta(days=3), dry_run=True)
    make_run(tmp_path, RunEnd.STOPPED, started=NOW - timedelta(days=2))
    assert finished_run_with_input(tmp_path, SHA_A) is None
    live = make_run(tmp_path, RunEnd.FINISHED, started=NOW - timedelta(days=1))
    make_run(tmp_path, RunEnd.FINISHED, started=NOW, input_sha256=SHA_B)
    found = finished_run_with_input(tmp_path, SHA_A.upper())
    assert found is not None and found.run_id == live.run_id
    assert found.finished == live.run.started + timedelta(minutes=5)


def test_find_run_by_id_journal_or_results_workbook(tmp_path: Path) -> None:
    folder = tmp_path / ".batch-update"
    results = tmp_path / "tickets.results-20240531.xlsx"
    results.write_bytes(b"xlsx")
    journal = Journal.create(folder, start(), planned(1))
    journal.finish(RunEnd.FINISHED, 0, results)
    journal.close()
    make_run(folder, RunEnd.FINISHED)

    assert find_run(folder, journal.run_id).run_id == journal.run_id  # type: ignore[union-attr]
    assert find_run(folder, journal.path).run_id == journal.run_id  # type: ignore[union-attr]
    assert find_run(folder, journal.path.name).run_id == journal.run_id  # type: ignore[union-attr]
    assert find_run(folder, results).run_id == journal.run_id  # type: ignore[union-attr]
    copied = tmp_path / "for auditors" / results.name
    copied.parent.mkdir()
    copied.write_bytes(b"xlsx")
    assert find_run(folder, str(copied)).run_id == journal.run_id  # type: ignore[union-attr]
    assert find_run(folder, "20990101-000000-ffff") is None
    assert find_run(folder, tmp_path / "other.results.xlsx") is None
    assert find_run(folder, "missing.journal.sqlite") is None


# -- pruning --------------------------------------------------------------------------------------


def test_prune_deletes_old_closed_runs_and_keeps_unfinished_ones(tmp_path: Path) -> None:
    old, recent = NOW - timedelta(days=200), NOW - timedelta(days=10)
    finished_old = make_run(tmp_path, RunEnd.FINISHED, started=old)
    unfinished_old = make_run(tmp_path, RunEnd.INTERRUPTED, started=old)
    running_old = make_run(tmp_path, None, started=old)
    dry_old = make_run(tmp_path, None, started=old, dry_run=True)
    finished_recent = make_run(tmp_path, RunEnd.FINISHED, started=recent)
    resumed_old = make_run(tmp_path, RunEnd.STOPPED, started=old - timedelta(hours=1))
    resumer_old = make_run(tmp_path, RunEnd.FINISHED, started=old, resumed_from=resumed_old.run_id)
    retried_old = make_run(tmp_path, RunEnd.FINISHED, started=old - timedelta(hours=2))
    retrier_recent = make_run(
        tmp_path, RunEnd.FINISHED, started=recent, retry_of=retried_old.run_id
    )
    (tmp_path / "garbage.journal.sqlite").write_bytes(b"x" * 200)
    Path(f"{finished_old.path}-wal").write_bytes(b"")

    deleted = prune(tmp_path, 90)
    assert {run.run_id for run in deleted} == {
        finished_old.run_id,
        dry_old.run_id,
        resumed_old.run_id,
        resumer_old.run_id,
    }
    assert {run.run_id for run in list_runs(tmp_path)} == {
        unfinished_old.run_id,
        running_old.run_id,
        finished_recent.run_id,
        retried_old.run_id,
        retrier_recent.run_id,
    }
    assert not finished_old.path.exists() and not Path(f"{finished_old.path}-wal").exists()
    assert (tmp_path / "garbage.journal.sqlite").exists()
    assert prune(tmp_path, 90) == []
    assert {r.run_id for r in prune(tmp_path, 0, now=NOW + timedelta(days=1))} == {
        finished_recent.run_id,
        retrier_recent.run_id,
        retried_old.run_id,
    }
    with pytest.raises(ValueError):
        prune(tmp_path, -1)


# -- settings and secrets -------------------------------------------------------------------------


def test_settings_are_stored_canonically(tmp_path: Path) -> None:
    a = {"rate": 5.0, "url": "https://x", "column_mapping": {"Ticket": "TicketNumber"}}
    b = {"column_mapping": {"Ticket": "TicketNumber"}, "url": "https://x", "rate": 5.0}
    assert (
        canonical_settings_json(a)
        == canonical_settings_json(b)
        == ('{"column_mapping":{"Ticket":"TicketNumber"},"rate":5.0,"url":"https://x"}')
    )
    assert settings_digest(a) == hashlib.sha256(canonical_settings_json(a).encode()).hexdigest()
    odd = {"out": Path("a") / "b", "when": date(2024, 5, 1), "p": ("x",)}
    assert canonical_settings_json(odd) == json.dumps(
        {"out": str(Path("a") / "b"), "p": ["x"], "when": "2024-05-01"}, separators=(",", ":")
    )
    with pytest.raises(ValueError, match="cannot be written to the journal as JSON"):
        canonical_settings_json({"thing": object()})


@pytest.mark.parametrize(
    "settings",
    [
        {"password": "Demo-Passw0rd!"},
        {"auth": {"access_token": "eyJhbGciOi"}},
        {"apiKey": "k"},
        {"client_secret": "s"},
        {"headers": [{"Authorization": "Bearer x"}]},
        {"CCS_PASSWORD": "p"},
    ],
)
def test_settings_with_a_secret_are_refused(tmp_path: Path, settings: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="holds a secret; the journal never stores secrets"):
        Journal.create(tmp_path, start(settings=settings), planned(1))
    assert list(tmp_path.iterdir()) == []


def test_masked_or_empty_secrets_and_look_alike_keys_are_fine() -> None:
    settings = {
        "password": "********",
        "token": None,
        "password_encoding": "base64",
        "token_url": "https://ccs/token",
        "secret_file": "C:\\keys\\ccs.txt",
    }
    assert json.loads(canonical_settings_json(settings)) == settings


def test_folders_and_inputs_with_odd_characters(tmp_path: Path) -> None:
    folder = tmp_path / "Q2 #1 100% ünï" / ".batch-update"
    journal = Journal.create(
        folder, start(input_path=str(tmp_path / "May #2 100%.xlsx")), planned(1)
    )
    journal.close()
    assert journal.path.name.startswith("May #2 100%.")
    runs = list_runs(folder)
    assert [run.input_name for run in runs] == ["May #2 100%.xlsx"]
    assert Journal.open(journal.path).run.run_id == journal.run_id


def test_the_settings_objects_own_description_is_accepted(tmp_path: Path) -> None:
    from batch_updater.settings import Secret, Settings

    settings = Settings(
        url="https://ccs", username="corp\\jsmith", password=Secret("Demo-Passw0rd!")
    )
    with Journal.create(tmp_path, start(settings=settings.describe()), planned(1)) as journal:
        assert journal.run.settings["password"] == "********"
    assert b"Demo-Passw0rd!" not in journal.path.read_bytes()


# -- carrying a run forward ----------------------------------------------------------------------


def test_continue_run_sends_only_what_was_not_applied(tmp_path: Path) -> None:
    from batch_updater.sweep.continuation import continue_run

    rows = planned(6)  # rows 2..7
    journal = Journal.create(tmp_path, start(), rows)
    sent_at = datetime(2026, 11, 30, 9, 15, 2, tzinfo=timezone.utc)

    def done(row: PlannedRow, outcome: Outcome, status: int | None, message: str = "") -> None:
        journal.mark_sending(row.row_number, at=sent_at)
        journal.record(
            RowResult(
                row.row_number,
                outcome,
                row.ticket_number,
                status,
                message,
                1,
                sent_at,
                5,
                row.update.to_json_text(),
            )
        )

    done(rows[0], Outcome.UPDATED, 204)
    done(rows[1], Outcome.FAILED, 404, "Ticket not found. Provide valid ticket number.")
    done(rows[2], Outcome.FAILED, None, "no answer within 60 s (timeout)")
    journal.mark_sending(rows[3].row_number, at=sent_at)  # killed while in flight
    journal.record(
        RowResult(
            rows[4].row_number,
            Outcome.NOT_SENT,
            rows[4].ticket_number,
            message="not sent: interrupted",
        )
    )
    # rows[5] never reached

    plan = continue_run(journal, rows)
    assert [r.row_number for r in plan.send] == [3, 4, 5, 6, 7]
    assert plan.read_back == {4, 5}
    carried = plan.carried[2]
    assert (carried.outcome, carried.status, carried.sent_at, carried.attempts) == (
        Outcome.SKIPPED,
        204,
        sent_at,
        0,
    )
    assert (
        carried.message
        == f"updated in run {journal.run_id} at 2026-11-30 09:15:02 UTC; not sent again"
    )
    assert carried.request_json == rows[0].update.to_json_text()
    journal.close()

    # a resume of the resume keeps naming the run that really updated the row
    second = Journal.create(tmp_path, start(), [], resumed_from=journal.run_id)
    second.record(carried)
    again = continue_run(second, rows[:1])
    assert again.send == [] and again.carried[2].message == carried.message
    second.close()


# -- where journals live: local disk, never a network share -----------------------------------------

from pathlib import PureWindowsPath  # noqa: E402

from batch_updater.errors import ConfigError  # noqa: E402
from batch_updater.journal import RunLock, RunLocked  # noqa: E402
from batch_updater.settings import DRIVE_REMOTE, load_settings, network_location  # noqa: E402

DRIVE_FIXED, DRIVE_REMOVABLE, DRIVE_CDROM, DRIVE_NO_ROOT = 3, 2, 5, 1


def drive_types(root: str) -> int:
    """GetDriveTypeW as a Windows machine with Z: and N: mapped to shares would answer."""
    return {
        "Z:\\": DRIVE_REMOTE,
        "N:\\": DRIVE_REMOTE,
        "C:\\": DRIVE_FIXED,
        "E:\\": DRIVE_REMOVABLE,
        "D:\\": DRIVE_CDROM,
    }.get(root.upper(), DRIVE_NO_ROOT)


@pytest.mark.parametrize(
    ("path", "network"),
    [
        ("\\\\fileserver\\compliance\\journals", "a network share (\\\\fileserver\\compliance)"),
        ("\\\\fileserver\\compliance", "a network share (\\\\fileserver\\compliance)"),
        ("//fileserver/compliance/journals", "a network share (\\\\fileserver\\compliance)"),
        (
            "\\\\?\\UNC\\fileserver\\compliance\\j",
            "a network share (\\\\fileserver\\compliance\\j)",
        ),
        ("\\\\10.0.0.5\\c$\\journals", "a network share (\\\\10.0.0.5\\c$)"),
        ("Z:\\journals", "the mapped network drive Z:"),
        ("z:\\journals", "the mapped network drive Z:"),
        ("n:/batch-update", "the mapped network drive N:"),
        (PureWindowsPath("Z:/journals"), "the mapped network drive Z:"),
        ("C:\\Users\\jsmith\\AppData\\Local\\batch-update", None),
        ("\\\\?\\C:\\very\\long\\path", None),
        ("E:\\usb-stick\\journals", None),
        ("D:\\journals", None),
        ("/home/jsmith/.local/state/batch-update", None),
        ("journals", None),
        ("", None),
    ],
)
def test_a_journal_folder_on_a_network_share_is_recognised(
    path: object, network: str | None
) -> None:
    assert network_location(path, drive_types) == network  # type: ignore[arg-type]


def test_the_drive_type_is_asked_of_the_drive_root_only(tmp_path: Path) -> None:
    asked: list[str] = []
    network_location("Q:\\a\\b\\c", lambda root: asked.append(root) or DRIVE_FIXED)
    network_location("\\\\srv\\share\\x", lambda root: asked.append(root) or DRIVE_FIXED)
    network_location("/srv/x", lambda root: asked.append(root) or DRIVE_FIXED)
    assert asked == ["Q:\\"]


@pytest.mark.parametrize(
    "share", ["\\\\fileserver\\compliance\\journals", "//fileserver/compliance/journals"]
)
def test_journal_dir_on_a_share_is_refused_naming_the_setting(tmp_path: Path, share: str) -> None:
    config = tmp_path / "batch-update.yaml"
    config.write_text(f"output:\n  journal_dir: '{share}'\n", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_settings(env={}, config_path=config, cwd=tmp_path)
    message = refused.value.message
    assert (
        message.startswith(f"{config}: output.journal_dir: ") or "output.journal_dir" in message
    ), message
    assert (
        "is on a network share (\\\\fileserver\\compliance): the run journal is a SQLite database in WAL mode"
        in message
    )
    assert "use a folder on this machine's own disk, or leave output.journal_dir out" in message


def test_journal_dir_on_local_disk_is_taken(tmp_path: Path) -> None:
    config = tmp_path / "batch-update.yaml"
    config.write_text("output:\n  journal_dir: journals\n", encoding="utf-8")
    assert (
        load_settings(env={}, config_path=config, cwd=tmp_path).journal_dir == tmp_path / "journals"
    )


def test_the_tests_never_touch_the_real_state_folder(state_folder: Path, tmp_path_factory) -> None:
    assert Path(tmp_path_factory.getbasetemp()) in state_folder.parents


# -- the run lock ----------------------------------------------------------------------------------


def test_the_run_lock_refuses_a_second_holder_naming_the_first(tmp_path: Path) -> None:
    holder = {"pid": 4242, "host": "LAPTOP-7", "started": "2026-12-02T20:00:00+00:00"}
    first = RunLock.acquire(tmp_path, SHA_A, holder)
    first.name_run("20261202-200000-ab12")
    with pytest.raises(RunLocked) as refused:
        RunLock.acquire(tmp_path, SHA_A.upper(), {"pid": 1})
    assert refused.value.holder == {**holder, "run_id": "20261202-200000-ab12"}
    RunLock.acquire(tmp_path, SHA_B, {"pid": 2}).release()  # another sheet: its own lock
    first.release()
    with RunLock.acquire(tmp_path, SHA_A, {"pid": 3}) as again:
        assert again.holder == {"pid": 3}


def test_a_run_refused_while_the_holder_writes_its_description_still_names_it(
    tmp_path: Path,
) -> None:
    # Two runs of one sheet started together: the loser may look while the winner has taken
    # the lock but not yet written who it is (or is rewriting it with its run id).
    import threading

    first = RunLock.acquire(tmp_path, SHA_A, {"pid": 4242})
    handle = first._handle
    handle.seek(0)  # type: ignore[union-attr]
    handle.truncate()  # type: ignore[union-attr]
    handle.flush()  # type: ignore[union-attr]
    writer = threading.Timer(0.2, first.name_run, args=("20261202-200000-ab12",))
    writer.start()
    try:
        with pytest.raises(RunLocked) as refused:
            RunLock.acquire(tmp_path, SHA_A, {"pid": 1})
    finally:
        writer.join()
        first.release()
    assert refused.value.holder == {"pid": 4242, "run_id": "20261202-200000-ab12"}


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_the_run_lock_dies_with_its_process(tmp_path: Path) -> None:
    holding = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from batch_updater.journal import RunLock
            lock = RunLock.acquire({str(tmp_path)!r}, {SHA_A!r}, {{"pid": 1}})
            print("held", flush=True)
            time.sleep(60)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holding.stdout.readline().strip() == "held"
        with pytest.raises(RunLocked):
            RunLock.acquire(tmp_path, SHA_A, {"pid": 2})
    finally:
        holding.send_signal(signal.SIGKILL)
        holding.wait(timeout=30)
    RunLock.acquire(tmp_path, SHA_A, {"pid": 2}).release()  # no pid file to clean up by hand


# -- the copy beside the results -------------------------------------------------------------------


def test_the_copy_of_a_journal_is_complete_without_its_wal_file(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path / "state", start(), planned(30))
    for n in range(2, 32):
        journal.mark_sending(n)
        journal.record(RowResult(n, Outcome.UPDATED, ticket_number=f"INCA{n:07d}", status=204))
    assert Path(f"{journal.path}-wal").stat().st_size > 0  # the newest commits are in the WAL
    copy = journal.copy_to(tmp_path / "tickets.results-20261202-200000.journal.sqlite")
    try:
        assert not Path(f"{copy}-wal").exists()
        with Journal.open(copy) as copied:
            assert copied.run_id == journal.run_id
            assert copied.counts() == {Outcome.UPDATED: 30}
        assert not Path(f"{copy}-wal").exists()
        with pytest.raises(
            JournalError, match="exists already; batch-update will not overwrite it"
        ):
            journal.copy_to(copy)
    finally:
        journal.close()
