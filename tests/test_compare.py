"""compare: two runs of the same sweep, ticket by ticket, from their journals.

The categories' rules are plain unit tests; the command over real runs goes against the
simulator over loopback, in-process and through the installed command.
"""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest
from helpers import (
    ADMIN,
    ADMIN_PASSWORD,
    FakeConsole,
    live_env,
    run_command,
    settings_for,
    write_sheet,
)

from batch_updater.ccs import CcsClient
from batch_updater.comparison import Category, compare
from batch_updater.errors import InputError
from batch_updater.manifest import journal_copy_path
from batch_updater.settings import Secret
from batch_updater.sweep import CompareRequest, RunRequest, compare_runs, run
from batch_updater.tickets import Outcome, RowResult, TicketUpdate


def row(number: int, ticket: str, outcome: Outcome, status: int | None = None) -> RowResult:
    return RowResult(number, outcome, ticket_number=ticket, status=status)


# -- the rules ------------------------------------------------------------------------------------


def test_every_ticket_lands_in_exactly_one_category() -> None:
    a = [
        row(2, "T1", Outcome.FAILED, 404),
        row(3, "T2", Outcome.UPDATED, 204),
        row(4, "T3", Outcome.INVALID),
        row(5, "T4", Outcome.UPDATED, 204),
        row(6, "T5", Outcome.CONFLICT),
        row(7, "T6", Outcome.UPDATED, 204),
        row(8, "", Outcome.INVALID),
        row(9, "T6B", Outcome.UPDATED, 204),
    ]
    b = [
        row(2, "t1 ", Outcome.UNKNOWN),  # the same ticket, however it is typed
        row(3, "T2", Outcome.FAILED, 403),
        row(4, "T3", Outcome.UPDATED, 204),
        row(5, "T4", Outcome.UNCHANGED),
        row(6, "T5", Outcome.NOT_SENT),
        row(8, "T6b", Outcome.NOT_SENT),
        row(7, "T7", Outcome.UPDATED, 204),
    ]
    earlier = [
        {"T1": row(2, "T1", Outcome.FAILED, 404)},  # A itself
        {"T1": row(2, "T1", Outcome.INVALID)},
        {"T1": row(2, "T1", Outcome.UPDATED)},
    ]

    comparison = compare(a, b, earlier)

    where = {item.ticket.strip().upper(): item.category for item in comparison.tickets}
    assert where == {
        "T1": Category.FAILED_AGAIN,
        "T2": Category.NEWLY_FAILED,
        "T3": Category.NOW_SUCCEEDING,
        "T4": Category.SAME,
        "T5": Category.NOT_REACHED,
        "T6B": Category.NOT_REACHED,  # not failing in A: still not reached
        "T6": Category.LEFT_SCOPE,
        "T7": Category.NEW,
    }
    (again,) = comparison.of(Category.FAILED_AGAIN)
    assert again.in_a_row == 3  # B, A and the run before A; the one before that succeeded
    assert comparison.not_keyed == 1


# -- real runs ------------------------------------------------------------------------------------

HEADERS = ["Ticket Number", "State", "Priority", "Assigned To", "Description"]


def sweep(path: Path, sim, rows: list[list[object]]) -> object:
    """A run of a sheet of these rows against the simulator, confirmed (again: a monthly
    re-run of the same input name)."""
    write_sheet(path, rows, headers=HEADERS)
    outcome = run(RunRequest(path, yes=True, again=True), settings_for(sim), FakeConsole())
    assert outcome.workbook is not None
    return outcome


def month(sim, tmp_path: Path) -> tuple[object, object]:
    """Two monthly sweeps of tickets.xlsx with one ticket of every category between them."""
    sheet = tmp_path / "tickets.xlsx"
    first = sweep(
        sheet,
        sim,
        [
            ["INCA9999991", 2, "High", "", ""],  # missing both months: failed again
            ["INCA0000002", 2, "High", "", ""],  # fine, then asked an impossible state
            ["INCA0000003", 2, "Urgent", "", ""],  # invalid, then fixed
            ["INCA0000004", 5, "Low", "", "Not applicable"],  # updated, then already holds it
            ["INCA0000005", 2, "High", "corp\\owner5", ""],  # updated; changed in CCS since
            ["INCA0000006", 2, "High", "", ""],  # dropped from the second month's sheet
        ],
    )
    second = sweep(
        sheet,
        sim,
        [
            ["INCA9999991", 2, "High", "", ""],
            ["INCA0000002", 9, "High", "", ""],
            ["INCA0000003", 2, "High", "", ""],
            ["INCA0000004", 5, "Low", "", "Not applicable"],
            ["INCA0000005", 2, "High", "corp\\owner5", ""],
            ["INCA0000007", 2, "High", "", ""],  # new this month
        ],
    )
    client = CcsClient(sim.url, ADMIN, Secret(ADMIN_PASSWORD))
    held = sim.ticket("INCA0000005")
    assert client.update(
        TicketUpdate("INCA0000005", assigned_to="corp\\colleague", priority=held["Priority"])
    ).ok
    return first, second


def compared(sim, *runs: str, **request):
    console = FakeConsole()
    request = {"run_b": runs[-1], "run_a": runs[0] if len(runs) == 2 else None, **request}
    return compare_runs(CompareRequest(**request), settings_for(sim), console), console


def test_two_months_produce_each_category_exactly(tmp_path: Path, simulator, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first, second = month(simulator, tmp_path)
    simulator.clear_requests()
    outcome, _ = compared(simulator, str(second.workbook))  # the baseline found by itself

    assert outcome.status == 0
    assert outcome.a.record.results_path == str(first.workbook)
    assert "the last run of tickets.xlsx before B" in outcome.baseline
    tickets = {
        category: sorted(item.ticket for item in outcome.comparison.of(category))
        for category in Category
    }
    assert tickets == {
        Category.FAILED_AGAIN: ["INCA9999991"],
        Category.NEWLY_FAILED: ["INCA0000002"],
        Category.NOW_SUCCEEDING: ["INCA0000003"],
        Category.NOT_REACHED: [],
        Category.SAME: ["INCA0000004", "INCA0000005"],
        Category.CHANGED_IN_CCS: ["INCA0000005"],
        Category.LEFT_SCOPE: ["INCA0000006"],
        Category.NEW: ["INCA0000007"],
    }
    (changed,) = outcome.comparison.of(Category.CHANGED_IN_CCS)
    assert "corp\\colleague" in changed.now and "corp\\owner5" in changed.written
    assert [r.method for r in simulator.requests if r.method == "PATCH"] == []
    assert "manifest checked: every file unchanged" in outcome.b.checked

    book = openpyxl.load_workbook(outcome.workbook, read_only=True)
    assert book.sheetnames == [
        "Summary",
        *(category.value for category in Category),
        "Legend",
    ]
    again = list(book["Failed again"].iter_rows(values_only=True))
    assert again[0][:4] == ("Ticket Number", "Runs in a row", "A: Row", "A: Outcome")
    assert again[1][0] == "INCA9999991" and again[1][1] == 2 and again[1][3] == "Failed"
    summary = {r[0]: r[1] for r in book["Summary"].iter_rows(values_only=True) if len(r) > 1}
    assert summary["Failed again"] == 1 and summary["New in B"] == 1
    assert summary["Run A"] == outcome.a.record.run_id


def test_a_third_month_counts_the_runs_in_a_row(tmp_path: Path, simulator, monkeypatch):
    monkeypatch.chdir(tmp_path)
    month(simulator, tmp_path)
    third = sweep(tmp_path / "tickets.xlsx", simulator, [["INCA9999991", 2, "High", "", ""]])
    outcome, _ = compared(simulator, str(third.workbook), offline=True)
    (again,) = outcome.comparison.of(Category.FAILED_AGAIN)
    assert again.in_a_row == 3


def test_run_ids_work_and_offline_sends_nothing(tmp_path: Path, simulator, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first, second = month(simulator, tmp_path)
    from batch_updater.journal import read_run

    id_a = read_run(journal_copy_path(first.workbook)).run_id
    id_b = read_run(journal_copy_path(second.workbook)).run_id
    simulator.clear_requests()
    outcome, _ = compared(simulator, id_a, id_b, offline=True)

    assert simulator.requests == []
    assert outcome.baseline == f"run {id_a}, as asked"
    assert outcome.comparison.of(Category.CHANGED_IN_CCS) == []
    assert outcome.current.startswith("not read (--offline)")
    assert [i.ticket for i in outcome.comparison.of(Category.NEW)] == ["INCA0000007"]


def test_a_missing_run_and_a_changed_journal_copy_are_refused(tmp_path, simulator, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first, second = month(simulator, tmp_path)
    with pytest.raises(InputError, match="No run"):
        compared(simulator, "20990101-000000-0000", offline=True)

    copy = journal_copy_path(first.workbook)
    with copy.open("r+b") as handle:  # one byte of the evidence copy changed
        handle.seek(200)
        byte = handle.read(1)
        handle.seek(200)
        handle.write(bytes([byte[0] ^ 1]))
    with pytest.raises(InputError, match="has changed since the run wrote it"):
        compared(simulator, str(first.workbook), str(second.workbook), offline=True)


def test_compare_through_the_installed_command(tmp_path: Path, simulator) -> None:
    month(simulator, tmp_path)
    latest = max(tmp_path.glob("tickets.results-*.xlsx"), key=lambda p: p.stat().st_mtime)
    simulator.clear_requests()
    result = run_command(
        ["compare", str(latest), "--url", simulator.url, "--user", ADMIN],
        cwd=tmp_path,
        env=live_env(tmp_path / "home"),
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "Failed again            1" in result.stdout
    assert "Baseline: run " in result.stdout
    assert "Changed in CCS          1" in result.stdout
    assert "Comparison workbook:" in result.stdout
    assert [r.method for r in simulator.requests if r.method == "PATCH"] == []


def test_runs_in_a_row_count_back_from_b_whatever_a_is(tmp_path: Path, simulator, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sheet = tmp_path / "g.xlsx"
    first = sweep(sheet, simulator, [["INCA0000011", 2, "Urgent", "", ""]])  # Invalid
    sweep(sheet, simulator, [["INCA0000011", 2, "High", "", ""]])  # Updated
    third = sweep(sheet, simulator, [["INCA0000011", 2, "Urgent", "", ""]])  # Invalid
    outcome, _ = compared(simulator, str(first.workbook), str(third.workbook), offline=True)
    (again,) = outcome.comparison.of(Category.FAILED_AGAIN)
    assert again.in_a_row == 1  # the run between them succeeded


def test_a_changed_journal_copy_named_by_path_is_refused(tmp_path: Path, simulator, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first, second = month(simulator, tmp_path)
    copy = journal_copy_path(second.workbook)
    with copy.open("r+b") as handle:
        handle.seek(300)
        byte = handle.read(1)
        handle.seek(300)
        handle.write(bytes([byte[0] ^ 1]))
    with pytest.raises(InputError, match="has changed since the run wrote it"):
        compared(simulator, str(first.workbook), str(copy), offline=True)


def test_the_tickets_are_read_where_run_b_wrote_them(
    tmp_path, simulator, make_simulator, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    _, second = month(simulator, tmp_path)
    elsewhere = make_simulator()
    console = FakeConsole()
    outcome = compare_runs(
        CompareRequest(run_b=str(second.workbook)), settings_for(elsewhere), console
    )
    assert simulator.url in outcome.current and elsewhere.requests == []
    assert [i.ticket for i in outcome.comparison.of(Category.CHANGED_IN_CCS)] == ["INCA0000005"]
    assert any("where run B wrote them" in text for _, text in console.said)
