"""Tests for report/: the results workbook and CSV, read back as auditors' tools read them."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import zipfile
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import IntEnum
from pathlib import Path

import openpyxl
import pytest
import python_calamine
from hypothesis import given, settings
from hypothesis import strategies as st

from batch_updater.errors import OutputError
from batch_updater.report import (
    EXCEL_CELL_LIMIT,
    RESULT_COLUMNS,
    check_output_path,
    csv_text,
    default_results_path,
    result_headers,
    safe_text,
    write_results,
)
from batch_updater.report import cells as report_cells
from batch_updater.report import layout as report_layout
from batch_updater.report import paths as report_paths
from batch_updater.report import results as report_results
from batch_updater.report import summary as report_summary
from batch_updater.tickets import Outcome, RowResult, RunInfo, Sheet, SheetRow

HEADERS = ["Ticket Number", "State", "Priority", "Assigned To", "Description", "Due"]
SENT = datetime(2026, 11, 30, 14, 3, 7, 123456, tzinfo=timezone.utc)
STARTED = datetime(2026, 11, 30, 14, 0, 0, tzinfo=timezone.utc)

MALICIOUS = [
    '=HYPERLINK("http://x","y")',
    "+1",
    "-2+3",
    "@SUM(A1)",
    "\t=1",
    "\r=1",
    "\n=1",
    "=1+1",
    "=",
    "-",
    "=cmd|' /C calc'!A0",
]

SUMMARY_KEYS_PLAIN_RUN = [
    "Input file",
    "Input path",
    "Input SHA-256",
    "Sheet",
    "Header row",
    "Rows read",
    "Updated",
    "Unchanged",
    "Conflict",
    "Failed",
    "Unknown",
    "Invalid",
    "Skipped",
    "Not sent",
    "Valid (dry run)",
    "Reconciliation",
    "HTTP 204",
    "HTTP 404",
    "HTTP 503",
    "No response",
    "No request sent",
    "Before values",
    "Read-back verification",
    "Server URL",
    "CCS user",
    "Operator",
    "Started (UTC)",
    "Finished (UTC)",
    "Duration",
    "Rate (requests/s)",
    "Concurrency",
    "Mode",
    "Stopped early",
    "Tool version",
    "Run journal",
    "Text cells kept as text (quote prefix)",
    "Text cells not kept exactly",
    "About safe text",
    "Note 1",
    "Note 2",
]


# --------------------------------------------------------------------------------------------
# Helpers


def make_input(folder: Path, name: str = "tickets.xlsx") -> Path:
    path = folder / name
    path.write_bytes(b"not really a workbook, but it must never change")
    return path


def make_run(input_path: Path, **changes: object) -> RunInfo:
    run = RunInfo(
        input_path=str(input_path),
        input_sha256="a" * 64,
        sheet_name="Changes",
        tool_version="0.1.0",
        operator="corp\\jsmith",
        started=STARTED,
        finished=STARTED + timedelta(minutes=1, seconds=30, milliseconds=500),
        server_url="https://ccs.example.com:12431",
        ccs_user="svc-ccs",
        rate=10.0,
        concurrency=4,
        notes=["Resumed from journal tickets.journal.sqlite", "=not a formula"],
    )
    return dataclasses.replace(run, **changes)  # type: ignore[arg-type]


def make_sheet(input_path: Path, rows: list[tuple[object, ...]], headers=None, notices=None):
    return Sheet(
        path=str(input_path),
        sheet_name="Changes",
        header_row=1,
        headers=list(HEADERS if headers is None else headers),
        rows=[SheetRow(index + 2, tuple(values)) for index, values in enumerate(rows)],
        notices=list(notices or []),
    )


def standard_case(folder: Path):
    """Six rows, one per outcome, with the evidence each outcome carries."""
    input_path = make_input(folder)
    rows = [
        ("RT-0001", "Remediation Performed", 2, "corp\\jsmith", "Patched", date(2026, 12, 1)),
        (
            "RT-0002",
            3,
            "High",
            "Zoë Ångström",
            "Cliché naïve café 🚀",
            datetime(2026, 12, 2, 9, 30),
        ),
        ("RT-0003", "Bogus", 1.5, None, None, None),
        (None, None, None, None, None, None),
        ("RT-0005", 2, 1, "jdoe", '=HYPERLINK("http://x","y")', None),
        ("RT-0006", 2, 1, "jdoe", "dry", None),
    ]
    sheet = make_sheet(input_path, rows)
    results = [
        RowResult(
            2,
            Outcome.UPDATED,
            "RT-0001",
            204,
            "",
            1,
            SENT,
            87,
            '{"TicketNumber": "RT-0001", "TicketState": 2}',
        ),
        RowResult(
            3,
            Outcome.FAILED,
            "RT-0002",
            404,
            "Ticket RT-0002 not found",
            1,
            SENT + timedelta(seconds=1),
            45,
            '{"TicketNumber": "RT-0002"}',
        ),
        RowResult(
            4,
            Outcome.INVALID,
            "RT-0003",
            None,
            'column "State": "Bogus" is not a state',
            0,
            None,
            None,
            None,
        ),
        RowResult(5, Outcome.SKIPPED, "", None, "blank row", 0),
        RowResult(6, Outcome.NOT_SENT, "RT-0005", None, "run stopped: Ctrl-C", 0),
        RowResult(
            7,
            Outcome.VALID,
            "RT-0006",
            None,
            "",
            0,
            None,
            None,
            '{"TicketNumber": "RT-0006", "TicketState": 2}',
        ),
    ]
    return input_path, sheet, results


def write_standard(tmp_path: Path, **run_changes: object):
    input_path, sheet, results = standard_case(tmp_path)
    out = tmp_path / "tickets.results.xlsx"
    write_results(out, sheet, results, make_run(input_path, **run_changes))
    return out, sheet, results


def read_rows(path: Path, sheet_name: str) -> list[tuple[object, ...]]:
    workbook = openpyxl.load_workbook(path)
    return [tuple(row) for row in workbook[sheet_name].iter_rows(values_only=True)]


def calamine_rows(path: Path, sheet_name: str) -> list[list[object]]:
    workbook = python_calamine.CalamineWorkbook.from_path(str(path))
    return workbook.get_sheet_by_name(sheet_name).to_python()


def summary(path: Path) -> dict[str, object]:
    rows = read_rows(path, "Summary")
    assert rows[0][0] == "batch-update results"
    return {key: value for key, value in rows[1:]}


def summary_keys(path: Path) -> list[str]:
    return [key for key, _ in read_rows(path, "Summary")[1:]]


def all_cells(path: Path):
    workbook = openpyxl.load_workbook(path)
    for ws in workbook.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                yield ws.title, cell


def assert_no_formulas(path: Path) -> None:
    for title, cell in all_cells(path):
        assert cell.data_type != "f", (title, cell.coordinate, cell.value)
    # And in the XML itself: no <f> element in any sheet.
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.startswith("xl/worksheets/"):
                xml = archive.read(name).decode("utf-8")
                assert "<f>" not in xml and "<f " not in xml, name


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# --------------------------------------------------------------------------------------------
# The Results sheet


def test_results_columns_are_the_input_columns_then_the_outcome_columns(tmp_path):
    out, _, _ = write_standard(tmp_path)
    expected = HEADERS + list(RESULT_COLUMNS)
    assert list(read_rows(out, "Results")[0]) == expected
    assert calamine_rows(out, "Results")[0] == expected
    assert RESULT_COLUMNS == (
        "Row",
        "Outcome",
        "HTTP Status",
        "Message",
        "Attempts",
        "Sent At",
        "Duration ms",
        "Request",
    )
    assert openpyxl.load_workbook(out).sheetnames == ["Results", "Summary", "Run", "Legend"]


def test_original_values_are_kept_numbers_as_numbers_dates_as_dates(tmp_path):
    out, _, _ = write_standard(tmp_path)
    rows = read_rows(out, "Results")
    first, second, third, blank = rows[1], rows[2], rows[3], rows[4]
    assert first[:6] == (
        "RT-0001",
        "Remediation Performed",
        2,
        "corp\\jsmith",
        "Patched",
        datetime(2026, 12, 1),
    )
    assert type(first[2]) is int
    assert second[:6] == (
        "RT-0002",
        3,
        "High",
        "Zoë Ångström",
        "Cliché naïve café 🚀",
        datetime(2026, 12, 2, 9, 30),
    )
    assert third[:6] == ("RT-0003", "Bogus", 1.5, None, None, None)
    assert blank[:6] == (None,) * 6
    # The first input cell that is a date is stored as a date, not as text.
    cell = openpyxl.load_workbook(out)["Results"]["F2"]
    assert cell.is_date


def test_outcome_columns_per_row(tmp_path):
    out, _, _ = write_standard(tmp_path)
    rows = read_rows(out, "Results")
    ours = [row[len(HEADERS) :] for row in rows[1:]]
    assert ours == [
        (
            2,
            "Updated",
            204,
            None,
            1,
            datetime(2026, 11, 30, 14, 3, 7, 123000),
            87,
            '{"TicketNumber": "RT-0001", "TicketState": 2}',
        ),
        (
            3,
            "Failed",
            404,
            "Ticket RT-0002 not found",
            1,
            datetime(2026, 11, 30, 14, 3, 8, 123000),
            45,
            '{"TicketNumber": "RT-0002"}',
        ),
        (4, "Invalid", None, 'column "State": "Bogus" is not a state', 0, None, None, None),
        (5, "Skipped", None, "blank row", 0, None, None, None),
        (6, "Not sent", None, "run stopped: Ctrl-C", 0, None, None, None),
        (
            7,
            "Valid (dry run)",
            None,
            None,
            0,
            None,
            None,
            '{"TicketNumber": "RT-0006", "TicketState": 2}',
        ),
    ]


def test_sent_at_is_a_date_cell_in_utc_to_the_millisecond(tmp_path):
    out, _, _ = write_standard(tmp_path)
    sheet = openpyxl.load_workbook(out)["Results"]
    column = len(HEADERS) + RESULT_COLUMNS.index("Sent At") + 1
    cell = sheet.cell(row=2, column=column)
    assert cell.is_date and cell.value == datetime(2026, 11, 30, 14, 3, 7, 123000)
    assert cell.number_format == 'yyyy-mm-dd hh:mm:ss.000 "UTC"'
    assert sheet.cell(row=4, column=column).value is None  # no request, no date


def test_calamine_reads_the_same_values(tmp_path):
    out, _, _ = write_standard(tmp_path)
    rows = calamine_rows(out, "Results")
    assert rows[1][:5] == ["RT-0001", "Remediation Performed", 2, "corp\\jsmith", "Patched"]
    assert rows[1][5] in (date(2026, 12, 1), datetime(2026, 12, 1))
    assert rows[2][3:5] == ["Zoë Ångström", "Cliché naïve café 🚀"]
    assert rows[1][6:] == [
        2,
        "Updated",
        204,
        "",
        1,
        datetime(2026, 11, 30, 14, 3, 7, 123000),
        87,
        '{"TicketNumber": "RT-0001", "TicketState": 2}',
    ]


def test_sent_at_is_utc_with_milliseconds_whatever_the_zone(tmp_path):
    input_path = make_input(tmp_path)
    sheet = make_sheet(input_path, [("RT-1",), ("RT-2",), ("RT-3",)], headers=["Ticket"])
    plus_two = timezone(timedelta(hours=2))
    results = [
        RowResult(
            2,
            Outcome.UPDATED,
            "RT-1",
            204,
            "",
            1,
            datetime(2026, 11, 30, 16, 3, 7, 5000, tzinfo=plus_two),
            1,
        ),
        RowResult(3, Outcome.UPDATED, "RT-2", 204, "", 1, datetime(2026, 11, 30, 14, 3, 7), 1),
        RowResult(4, Outcome.FAILED, "RT-3", None, "timed out", 3, None, None),
    ]
    out = tmp_path / "out.xlsx"
    write_results(out, sheet, results, make_run(input_path), csv_path=tmp_path / "out.csv")
    sent_at = [row[6] for row in read_rows(out, "Results")[1:]]
    assert sent_at == [
        datetime(2026, 11, 30, 14, 3, 7, 5000),
        datetime(2026, 11, 30, 14, 3, 7),
        None,
    ]
    # The CSV has no date cells: ISO 8601 text in UTC.
    with open(tmp_path / "out.csv", encoding="utf-8-sig", newline="") as handle:
        in_csv = [line[6] for line in list(csv.reader(handle))[1:]]
    assert in_csv == ["2026-11-30T14:03:07.005Z", "2026-11-30T14:03:07.000Z", ""]


def _conditional_fill(ws, cell):
    """The fill Excel would show on cell: the first equal-to rule covering it that matches."""
    from openpyxl.worksheet.cell_range import CellRange

    shown = None
    for formatting in ws.conditional_formatting:
        if not any(cell.coordinate in CellRange(str(r)) for r in formatting.sqref.ranges):
            continue
        for rule in sorted(formatting.rules, key=lambda r: r.priority):
            assert rule.type == "cellIs" and rule.operator == "equal"
            (formula,) = rule.formula
            assert formula.startswith('"') and formula.endswith('"')
            if cell.value == formula[1:-1].replace('""', '"') and shown is None:
                shown = rule.dxf.fill
    return shown


def test_outcome_cells_are_coloured_by_outcome(tmp_path):
    out, _, _ = write_standard(tmp_path)
    ws = openpyxl.load_workbook(out)["Results"]
    column = len(HEADERS) + 2  # Outcome
    expected = {
        "Updated": "C6EFCE",
        "Failed": "FFC7CE",
        "Invalid": "F8CBAD",
        "Skipped": "D9D9D9",
        "Not sent": "FFEB9C",
        "Valid (dry run)": "DDEBF7",
    }
    seen = {}
    for row in range(2, 8):
        cell = ws.cell(row=row, column=column)
        fill = _conditional_fill(ws, cell)
        assert fill is not None and fill.fill_type == "solid", cell.value
        # Excel paints a conditional solid fill with its background colour; a reader that
        # takes the foreground gets the same colour, since both are set.
        assert fill.fgColor.rgb[-6:] == fill.bgColor.rgb[-6:]
        seen[cell.value] = fill.bgColor.rgb[-6:]
    assert seen == expected
    # The rules cover exactly the Outcome cells of the rows written; other cells are plain.
    ranges = {str(r) for formatting in ws.conditional_formatting for r in formatting.sqref.ranges}
    letter = openpyxl.utils.get_column_letter(column)
    assert ranges == {f"{letter}2:{letter}{ws.max_row}"}
    assert _conditional_fill(ws, ws.cell(row=2, column=1)) is None
    assert ws.cell(row=2, column=1).fill.fill_type is None
    assert ws.cell(row=2, column=column).fill.fill_type is None


def test_outcome_colours_match_the_legend(tmp_path):
    out, _, _ = write_standard(tmp_path)
    workbook = openpyxl.load_workbook(out)
    legend = {
        row[0].value: row[0].fill.fgColor.rgb[-6:]
        for row in workbook["Legend"].iter_rows()
        if row[0].fill.fill_type == "solid"
    }
    ws = workbook["Results"]
    column = len(HEADERS) + 2
    for row in range(2, ws.max_row + 1):
        cell = ws.cell(row=row, column=column)
        assert _conditional_fill(ws, cell).bgColor.rgb[-6:] == legend[cell.value]


def test_header_is_bold_frozen_and_filtered(tmp_path):
    out, _, _ = write_standard(tmp_path)
    ws = openpyxl.load_workbook(out)["Results"]
    assert all(cell.font.b for cell in ws[1])
    assert not ws["A2"].font.b
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == "A1:N7"  # 6 + 8 columns, header + 6 rows


def test_column_widths_follow_the_content_and_are_capped(tmp_path):
    input_path = make_input(tmp_path)
    sheet = make_sheet(input_path, [("RT-1", "x" * 500, "short")], headers=["T", "Long", "S"])
    results = [RowResult(2, Outcome.SKIPPED, "RT-1", None, "", 0)]
    out = tmp_path / "out.xlsx"
    write_results(out, sheet, results, make_run(input_path))
    dims = openpyxl.load_workbook(out)["Results"].column_dimensions
    assert dims["B"].width == 60
    assert 8 <= dims["A"].width < 20
    assert dims["D"].width >= len("Row") + 4  # header plus room for the filter button
    assert dims["E"].width >= len("Outcome") + 4


# --------------------------------------------------------------------------------------------
# The Summary sheet


def test_summary_keys_in_order(tmp_path):
    input_path, sheet, results = standard_case(tmp_path)
    results.append(RowResult(8, Outcome.FAILED, "RT-8", 503, "busy", 5, SENT, 9))
    sheet.rows.append(SheetRow(8, ("RT-8",)))
    out = tmp_path / "out.xlsx"
    write_results(out, sheet, results, make_run(input_path))
    assert summary_keys(out) == SUMMARY_KEYS_PLAIN_RUN


def test_summary_values(tmp_path):
    out, _, _ = write_standard(tmp_path)
    facts = summary(out)
    assert facts["Input file"] == "tickets.xlsx"
    assert facts["Input path"] == str(tmp_path / "tickets.xlsx")
    assert facts["Input SHA-256"] == "a" * 64
    assert facts["Sheet"] == "Changes"
    assert facts["Header row"] == 1
    assert facts["Rows read"] == 6
    # Updated, Unchanged, Conflict, Failed, Unknown, Invalid, Skipped, Not sent, Valid (dry run)
    assert [facts[o.value] for o in report_layout.OUTCOME_ORDER] == [1, 0, 0, 1, 0, 1, 1, 1, 1]
    assert facts["HTTP 204"] == 1
    assert facts["HTTP 404"] == 1
    assert facts["No response"] == 0
    assert facts["No request sent"] == 4
    assert facts["Server URL"] == "https://ccs.example.com:12431"
    assert facts["CCS user"] == "svc-ccs"
    assert facts["Operator"] == "corp\\jsmith"
    assert facts["Started (UTC)"] == "2026-11-30T14:00:00Z"
    assert facts["Finished (UTC)"] == "2026-11-30T14:01:30Z"
    assert facts["Duration"] == "0:01:30 (90.5 s)"
    assert facts["Rate (requests/s)"] == 10
    assert facts["Concurrency"] == 4
    assert facts["Mode"] == "Live run"
    assert facts["Stopped early"] == "No"
    assert facts["Tool version"] == "0.1.0"
    assert facts["Note 1"] == "Resumed from journal tickets.journal.sqlite"
    assert facts["Note 2"] == "=not a formula"
    # One cell of the input (the HYPERLINK formula) is kept as text with the quote prefix.
    assert facts["Text cells kept as text (quote prefix)"] == 1
    assert facts["Text cells not kept exactly"] == 0
    assert "its value is exactly the original" in facts["About safe text"]


def test_summary_counts_every_outcome_even_zero_in_fixed_order(tmp_path):
    input_path = make_input(tmp_path)
    sheet = make_sheet(input_path, [("RT-1",), ("RT-2",)], headers=["Ticket"])
    results = [
        RowResult(2, Outcome.UPDATED, "RT-1", 204, "", 1, SENT, 5),
        RowResult(3, Outcome.UPDATED, "RT-2", 204, "", 2, SENT, 5),
    ]
    out = tmp_path / "out.xlsx"
    write_results(out, sheet, results, make_run(input_path))
    keys = summary_keys(out)
    outcome_keys = [k for k in keys if k in {o.value for o in Outcome}]
    assert outcome_keys == [
        "Updated",
        "Unchanged",
        "Conflict",
        "Failed",
        "Unknown",
        "Invalid",
        "Skipped",
        "Not sent",
        "Valid (dry run)",
    ]
    facts = summary(out)
    assert [facts[k] for k in outcome_keys] == [2, 0, 0, 0, 0, 0, 0, 0, 0]
    assert facts["HTTP 204"] == 2
    assert "HTTP 404" not in facts


def test_reconciliation_is_balanced_and_counted_from_the_rows(tmp_path):
    out, _, _ = write_standard(tmp_path)
    line = summary(out)["Reconciliation"]
    assert line == (
        "balanced: 6 rows read = 1 Updated + 0 Unchanged + 0 Conflict + 1 Failed + 0 Unknown "
        "+ 1 Invalid + 1 Skipped "
        "+ 1 Not sent "
        "+ 1 Valid (dry run) (= 6, counted from the Results sheet)"
    )
    # And the Results sheet agrees with the Summary's counts.
    outcomes = [row[len(HEADERS) + 1] for row in read_rows(out, "Results")[1:]]
    facts = summary(out)
    for outcome in Outcome:
        assert outcomes.count(outcome.value) == facts[outcome.value]


def test_reconciliation_not_balanced_is_said_so():
    tally = report_layout._Tally(rows=2)
    tally.outcomes[Outcome.UPDATED] = 1
    sheet = Sheet("in.xlsx", "S", 1, ["T"], [SheetRow(2, ("a",)), SheetRow(3, ("b",))])
    run = make_run(Path("in.xlsx"))
    items = dict(report_summary._summary_items(sheet, run, report_layout._layout(["T"], 1), tally))
    assert items["Reconciliation"] == (
        "NOT balanced: 2 rows read ≠ 1 Updated + 0 Unchanged + 0 Conflict + 0 Failed + 0 Unknown "
        "+ 0 Invalid + 0 Skipped + 0 Not sent + 0 Valid (dry run) (= 1, counted from the Results "
        "sheet)"
    )


@pytest.mark.parametrize(
    ("concurrency", "workers", "shown"),
    [
        (4, None, 4),
        ("auto", 7, "auto (at most 7 requests in flight at once)"),
        ("auto", None, "auto"),  # rebuilt from a journal, which does not keep the figure
        (None, None, ""),
    ],
)
def test_the_concurrency_says_how_many_were_in_flight(concurrency, workers, shown):
    tally = report_layout._Tally(rows=1)
    sheet = Sheet("in.xlsx", "S", 1, ["T"], [SheetRow(2, ("a",))])
    run = make_run(Path("in.xlsx"), concurrency=concurrency, workers=workers)
    items = dict(report_summary._summary_items(sheet, run, report_layout._layout(["T"], 1), tally))
    assert items["Concurrency"] == shown


def test_no_response_counts_rows_sent_without_an_answer(tmp_path):
    input_path = make_input(tmp_path)
    sheet = make_sheet(input_path, [("RT-1",), ("RT-2",), ("RT-3",)], headers=["Ticket"])
    results = [
        RowResult(2, Outcome.FAILED, "RT-1", None, "timed out after 3 attempts", 3, SENT, 30000),
        RowResult(3, Outcome.FAILED, "RT-2", 503, "Service Unavailable", 3, SENT, 12),
        RowResult(4, Outcome.NOT_SENT, "RT-3", None, "stopped", 0),
    ]
    out = tmp_path / "out.xlsx"
    write_results(out, sheet, results, make_run(input_path))
    facts = summary(out)
    assert (facts["HTTP 503"], facts["No response"], facts["No request sent"]) == (1, 1, 1)


@pytest.mark.parametrize(
    ("changes", "mode"),
    [
        ({}, "Live run"),
        ({"dry_run": True}, "Dry run, no network"),
        ({"simulated": True}, "Simulated server"),
    ],
)
def test_summary_mode(tmp_path, changes, mode):
    out, _, _ = write_standard(tmp_path, **changes)
    assert summary(out)["Mode"] == mode


def test_summary_stopped_early_unfinished_and_notices(tmp_path):
    input_path, sheet, results = standard_case(tmp_path)
    sheet.notices.extend(["2 hidden rows were read", "Merged cells in B4:B5"])
    run = make_run(
        input_path,
        stopped_reason="Credentials rejected (HTTP 401 twice)",
        finished=None,
        rate=None,
        concurrency=None,
        notes=[],
    )
    out = tmp_path / "out.xlsx"
    write_results(out, sheet, results, run)
    facts = summary(out)
    assert facts["Stopped early"] == "Credentials rejected (HTTP 401 twice)"
    assert facts["Finished (UTC)"] == "not recorded"
    assert facts["Duration"] == "not recorded"
    assert facts["Rate (requests/s)"] is None
    assert facts["Input notice 1"] == "2 hidden rows were read"
    assert facts["Input notice 2"] == "Merged cells in B4:B5"
    assert "Note 1" not in facts


def test_summary_keys_are_bold(tmp_path):
    out, _, _ = write_standard(tmp_path)
    ws = openpyxl.load_workbook(out)["Summary"]
    assert ws["A1"].value == "batch-update results" and ws["A1"].font.b
    assert all(ws.cell(row=r, column=1).font.b for r in range(2, ws.max_row + 1))


def test_legend_explains_columns_and_outcomes(tmp_path):
    out, _, _ = write_standard(tmp_path)
    legend = dict((k, v) for k, v in read_rows(out, "Legend") if k)
    for name in RESULT_COLUMNS:
        assert legend[name]
    for outcome in Outcome:
        assert legend[outcome.value]
    # What an auditor asks of the numbers: what they count, and where a 200 comes from.
    assert "the reads (GET) of --capture-before and --verify" in legend["Attempts"]
    assert "after HTTP 401 counts twice" in legend["Attempts"]
    assert "retries, their waits and the reads (GET) included" in legend["Duration ms"]
    assert '200 with "verified by read-back"' in legend["HTTP Status"]


# --------------------------------------------------------------------------------------------
# Formula safety


@pytest.mark.parametrize("value", MALICIOUS)
def test_formula_like_text_keeps_its_value_and_only_the_csv_gets_an_apostrophe(value):
    assert safe_text(value) == value
    assert csv_text(value) == "'" + value


def test_no_cell_is_a_formula_even_with_malicious_values(tmp_path):
    input_path = make_input(tmp_path)
    headers = ["=Ticket", "+Header", "Value"]
    rows = [(f"RT-{i}", value, value) for i, value in enumerate(MALICIOUS)]
    sheet = make_sheet(input_path, rows, headers=headers, notices=["=notice"])
    results = [
        RowResult(i + 2, Outcome.FAILED, f"RT-{i}", 400, value, 1, SENT, 5, value)
        for i, value in enumerate(MALICIOUS)
    ]
    run = make_run(
        input_path,
        operator="=evil",
        server_url="@server",
        ccs_user="-user",
        stopped_reason="+why",
        notes=["=1+1"],
        sheet_name="=Sheet",
    )
    out = tmp_path / "out.xlsx"
    csv_out = tmp_path / "out.csv"
    write_results(out, sheet, results, run, csv_path=csv_out)
    assert_no_formulas(out)

    # calamine decodes cell text as Excel does (a CR is stored as "_x000D_"; openpyxl's
    # reader leaves that escape as it is).
    rows = calamine_rows(out, "Results")
    assert rows[0][:3] == ["=Ticket", "+Header", "Value"]
    for row, value in zip(rows[1:], MALICIOUS):
        assert row[1] == row[2] == value  # the value itself: no apostrophe added
        assert row[len(headers) + 3] == value  # Message
        assert row[len(headers) + 7] == value  # Request
    for row, value in zip(read_rows(out, "Results")[1:], MALICIOUS):
        assert row[1] == value.replace("\r", "_x000D_")
    # Each such cell is text with Excel's quote prefix: not evaluated on open, nor on edit.
    protected = [
        (title, cell)
        for title, cell in all_cells(out)
        if (isinstance(cell.value, str) and cell.value[:1] in "=+-@\t\n")
        or (isinstance(cell.value, str) and cell.value.startswith("_x000D_"))
    ]
    assert len(protected) > 4 * len(MALICIOUS)
    for title, cell in protected:
        assert (cell.data_type, cell.quotePrefix) == ("s", True), (
            title,
            cell.coordinate,
            cell.value,
        )
    facts = summary(out)
    assert facts["Operator"] == "=evil"
    assert facts["Server URL"] == "@server"
    assert facts["CCS user"] == "-user"
    assert facts["Stopped early"] == "+why"
    assert facts["Sheet"] == "=Sheet"
    assert facts["Input notice 1"] == "=notice"
    # 2 cells per row in the input, plus Message and Request of every row.
    assert facts["Text cells kept as text (quote prefix)"] == 4 * len(MALICIOUS)
    assert facts["Text cells not kept exactly"] == 0

    with open(csv_out, encoding="utf-8-sig", newline="") as handle:
        for line in list(csv.reader(handle))[1:]:
            for field in line:
                assert not field or field[0] not in "=+-@\t\r\n\0", line


def test_text_that_looks_like_an_error_or_an_escape_stays_text(tmp_path):
    input_path = make_input(tmp_path)
    values = ["#N/A", "#DIV/0!", "_x0041_", "a_x000D_b", "#REF!"]
    sheet = make_sheet(input_path, [tuple(values)], headers=[f"C{i}" for i in range(5)])
    results = [RowResult(2, Outcome.UPDATED, "x", 204, "#N/A", 1, SENT, 1)]
    out = tmp_path / "out.xlsx"
    write_results(out, sheet, results, make_run(input_path))
    # calamine reads cells the way Excel shows them: decoded escapes, errors as errors.
    cal = calamine_rows(out, "Results")
    assert cal[1][:5] == values
    assert cal[1][5 + 3] == "#N/A"
    for title, cell in all_cells(out):
        assert cell.data_type not in ("f", "e"), (title, cell.coordinate)


def test_blank_text_and_carriage_returns_survive(tmp_path):
    input_path = make_input(tmp_path)
    values = [" ", "   ", "\u00a0", " \n ", "a\r\nb", " lead and trail ", "\u2003\n", "\u2028"]
    sheet = make_sheet(input_path, [tuple(values)], headers=[f"C{i}" for i in range(8)])
    out = tmp_path / "out.xlsx"
    write_results(out, sheet, [RowResult(2, Outcome.SKIPPED)], make_run(input_path))
    assert calamine_rows(out, "Results")[1][:8] == values


def test_control_characters_are_kept_and_only_what_no_workbook_holds_is_replaced(tmp_path):
    input_path = make_input(tmp_path)
    nasty = "bell\x07 vt\x0b ff\x0c esc\x1b nul\x00 surrogate\ud800 nonchar\uffff end"
    sheet = make_sheet(input_path, [(nasty, "tab\tand\nnewline")], headers=["A", "B"])
    results = [RowResult(2, Outcome.FAILED, "x", 400, "server said \x01", 1, SENT, 1)]
    out = tmp_path / "out.xlsx"
    write_results(out, sheet, results, make_run(input_path))
    row = calamine_rows(out, "Results")[1]
    # Control characters are stored as Excel's _xHHHH_ escapes, and read back as themselves.
    assert row[0] == "bell\x07 vt\x0b ff\x0c esc\x1b nul\x00 surrogate� nonchar� end"
    assert row[1] == "tab\tand\nnewline"
    assert row[2 + 3] == "server said \x01"
    assert summary(out)["Text cells not kept exactly"] == 1


def test_text_longer_than_a_cell_is_cut_with_a_marker(tmp_path):
    input_path = make_input(tmp_path)
    long_ascii = "x" * 40_000
    long_emoji = "🚀" * 20_000  # 40,000 UTF-16 units
    sheet = make_sheet(input_path, [(long_ascii, long_emoji)], headers=["A", "B"])
    results = [RowResult(2, Outcome.INVALID, "", None, "y" * 50_000, 0)]
    out = tmp_path / "out.xlsx"
    write_results(out, sheet, results, make_run(input_path))
    row = calamine_rows(out, "Results")[1]
    for text, total in ((row[0], 40_000), (row[1], 20_000), (row[2 + 3], 50_000)):
        assert len(text.encode("utf-16-le")) // 2 <= EXCEL_CELL_LIMIT
        assert text.endswith(
            f"[cut by batch-update: {total:,} characters in all, Excel holds 32,767]"
        )
    assert row[0].startswith("x" * 30_000)
    assert row[1].startswith("🚀" * 15_000)


# --------------------------------------------------------------------------------------------
# safe_text


class Colour(IntEnum):
    RED = 1


class Broken:
    def __str__(self) -> str:
        raise RuntimeError("no")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ("", ""),
        ("corp\\jsmith", "corp\\jsmith"),
        ("Zoë 🚀", "Zoë 🚀"),
        (" =1", " =1"),  # a leading space is not evaluated
        ("a=b", "a=b"),
        ("'=already quoted", "'=already quoted"),
        ("\x00=1", "\x00=1"),
        ("\x07", "\x07"),
        ("\ud800", "\ufffd"),
        (42, 42),
        (-5, -5),
        (1.5, 1.5),
        (-0.25, -0.25),
        (True, True),
        (False, False),
        (None, None),
        (date(2026, 12, 1), date(2026, 12, 1)),
        (datetime(2026, 12, 1, 9, 30), datetime(2026, 12, 1, 9, 30)),
        (time(9, 30), time(9, 30)),
        (Colour.RED, 1),
        (Outcome.UPDATED, "Updated"),
        (Decimal("2.5"), "2.5"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (float("-inf"), "-inf"),
        (1234567890123456789, "1234567890123456789"),  # beyond Excel's 15 digits: kept as text
        (-1234567890123456789, "-1234567890123456789"),
        (999_999_999_999_999, 999_999_999_999_999),
        (date(1850, 1, 2), "1850-01-02"),  # before Excel's calendar
        (b"=bytes", "b'=bytes'"),
        (["=x"], "['=x']"),
    ],
)
def test_safe_text(value, expected):
    result = safe_text(value)
    assert result == expected
    assert type(result) is type(expected)


def test_safe_text_makes_aware_datetimes_naive_utc():
    aware = datetime(2026, 11, 30, 16, 0, tzinfo=timezone(timedelta(hours=2)))
    assert safe_text(aware) == datetime(2026, 11, 30, 14, 0)
    assert safe_text(aware).tzinfo is None
    assert safe_text(time(16, 0, tzinfo=timezone(timedelta(hours=2)))) == time(14, 0)


def test_safe_text_survives_a_broken_str():
    assert safe_text(Broken()).startswith("<")


def test_safe_text_is_idempotent_on_long_text():
    once = safe_text("=" + "z" * 70_000)
    assert safe_text(once) == once
    assert once.startswith("=z")


def test_aware_datetime_in_the_input_is_written_as_utc(tmp_path):
    input_path = make_input(tmp_path)
    aware = datetime(2026, 11, 30, 16, 0, tzinfo=timezone(timedelta(hours=2)))
    sheet = make_sheet(input_path, [(aware,)], headers=["When"])
    out = tmp_path / "out.xlsx"
    write_results(out, sheet, [RowResult(2, Outcome.SKIPPED)], make_run(input_path))
    assert read_rows(out, "Results")[1][0] == datetime(2026, 11, 30, 14, 0)


ALL_CHARACTERS = st.characters(min_codepoint=0, max_codepoint=0x10FFFF)  # surrogates included
TRIGGER_HEAVY = st.text(alphabet=st.sampled_from("=+-@\t\r\n\x00\x01'#_x0A \u00a0\u2003\ufffe🚀é"))
ANY_VALUE = st.one_of(
    st.text(alphabet=ALL_CHARACTERS),
    TRIGGER_HEAVY,
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.datetimes(timezones=st.none() | st.timezones()),
    st.dates(),
    st.times(timezones=st.none() | st.timezones()),
    st.decimals(allow_nan=False),
    st.binary(),
    st.lists(st.text(max_size=3), max_size=3),
)


def _evaluable(text: str) -> bool:
    return bool(text) and text[0] in "=+-@\t\r\n\x00"


@settings(max_examples=400, deadline=None)
@given(ANY_VALUE)
def test_safe_text_gives_values_a_workbook_holds_and_csv_text_none_it_would_evaluate(value):
    result = safe_text(value)
    assert isinstance(result, (str, int, float, bool, date, time, type(None)))
    if isinstance(result, str):
        assert not _evaluable(csv_text(result))  # the CSV's OWASP apostrophe
        assert not report_cells._UNWRITABLE_CHARS_RE.search(result)
        assert len(result.encode("utf-16-le")) // 2 <= EXCEL_CELL_LIMIT
        assert safe_text(result) == result
    if isinstance(result, (datetime, time)):
        assert result.tzinfo is None
    if isinstance(result, float):
        assert result == result and abs(result) != float("inf")


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.one_of(st.text(alphabet=ALL_CHARACTERS, max_size=20), TRIGGER_HEAVY),
        min_size=1,
        max_size=8,
    )
)
def test_any_text_round_trips_through_a_saved_workbook(tmp_path_factory, texts):
    folder = tmp_path_factory.mktemp("rt")
    input_path = make_input(folder)
    sheet = make_sheet(input_path, [tuple(texts)], headers=[f"C{i}" for i in range(len(texts))])
    out = folder / "out.xlsx"
    write_results(out, sheet, [RowResult(2, Outcome.SKIPPED)], make_run(input_path))
    assert_no_formulas(out)
    row = calamine_rows(out, "Results")[1]
    for written, original in zip(row, texts):
        assert written == (safe_text(original) or "")
        if not report_cells._UNWRITABLE_CHARS_RE.search(original):
            assert written == original  # the value itself, whatever it starts with


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(
                alphabet=st.characters(
                    blacklist_categories=["Cs"], blacklist_characters="\ufffe\uffff"
                ),
                min_size=1,
                max_size=30,
            ),
            TRIGGER_HEAVY.filter(lambda t: t and "\ufffe" not in t),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_what_the_writer_writes_the_reader_reads_back_exactly(tmp_path_factory, texts):
    """The project's writer, then the project's reader: every text is the one written."""
    from batch_updater.sheet import read_sheet
    from batch_updater.validate import is_header_row

    folder = tmp_path_factory.mktemp("rr")
    input_path = make_input(folder)
    headers = ["Ticket Number", *[f"Text {i}" for i in range(len(texts))]]
    sheet = make_sheet(input_path, [("INCA0000001", *texts)], headers=headers)
    out = folder / "out.xlsx"
    write_results(
        out,
        sheet,
        [RowResult(2, Outcome.UPDATED, "INCA0000001", 204, texts[0], 1, SENT, 3, texts[-1])],
        make_run(input_path),
    )
    read = read_sheet(out, "Results", is_header_row=is_header_row)
    (row,) = read.rows
    assert list(row.values[1 : 1 + len(texts)]) == [t if t != "" else None for t in texts]
    message = read.headers.index("Message")
    assert row.values[message] == texts[0]


# --------------------------------------------------------------------------------------------
# Header collisions and ragged rows


def test_input_columns_named_like_ours_are_kept_and_ours_are_suffixed(tmp_path):
    input_path = make_input(tmp_path)
    headers = ["Ticket", "Outcome", "row", "Outcome (batch-update)"]
    sheet = make_sheet(input_path, [("RT-1", "old outcome", 99, "older")], headers=headers)
    results = [RowResult(2, Outcome.UPDATED, "RT-1", 204, "", 1, SENT, 3)]
    out = tmp_path / "out.xlsx"
    write_results(out, sheet, results, make_run(input_path))
    rows = read_rows(out, "Results")
    assert list(rows[0]) == headers + [
        "Row (batch-update)",
        "Outcome (batch-update 2)",
        "HTTP Status",
        "Message",
        "Attempts",
        "Sent At",
        "Duration ms",
        "Request",
    ]
    assert rows[1][:6] == ("RT-1", "old outcome", 99, "older", 2, "Updated")
    note = summary(out)["Columns renamed"]
    assert '"Row" is named "Row (batch-update)"' in note
    assert '"Outcome" is named "Outcome (batch-update 2)"' in note
    assert result_headers(headers) == list(rows[0])
    assert result_headers(["=x"])[:2] == ["=x", "Row"]
    legend = [k for k, _ in read_rows(out, "Legend")]
    assert "Outcome (batch-update 2)" in legend


def test_rows_wider_or_narrower_than_the_header_lose_nothing(tmp_path):
    input_path = make_input(tmp_path)
    sheet = make_sheet(input_path, [("RT-1",), ("RT-2", "b", "extra")], headers=["Ticket", "B"])
    results = [RowResult(2, Outcome.SKIPPED), RowResult(3, Outcome.SKIPPED)]
    out = tmp_path / "out.xlsx"
    write_results(out, sheet, results, make_run(input_path))
    rows = read_rows(out, "Results")
    assert rows[0][:4] == ("Ticket", "B", "Column C", "Row")
    assert rows[1][:4] == ("RT-1", None, None, 2)
    assert rows[2][:4] == ("RT-2", "b", "extra", 3)


def test_empty_sheet_still_gets_a_workbook(tmp_path):
    input_path = make_input(tmp_path)
    sheet = make_sheet(input_path, [])
    out = tmp_path / "out.xlsx"
    write_results(out, sheet, [], make_run(input_path))
    ws = openpyxl.load_workbook(out)["Results"]
    assert ws.auto_filter.ref == "A1:N1"
    assert summary(out)["Rows read"] == 0
    assert summary(out)["Reconciliation"].startswith("balanced: 0 rows read")


# --------------------------------------------------------------------------------------------
# Mismatched results


def test_fewer_results_than_rows_is_refused_and_nothing_is_written(tmp_path):
    input_path, sheet, results = standard_case(tmp_path)
    out = tmp_path / "out.xlsx"
    before = files_in(tmp_path)
    with pytest.raises(ValueError, match="internal error: 5 results for 6 rows"):
        write_results(out, sheet, results[:-1], make_run(input_path))
    assert files_in(tmp_path) == before


def test_results_for_other_rows_are_refused(tmp_path):
    input_path, sheet, results = standard_case(tmp_path)
    results[1], results[2] = results[2], results[1]
    out = tmp_path / "out.xlsx"
    with pytest.raises(ValueError, match="result 2 is for row 4 but the sheet's row 2 is row 3"):
        write_results(out, sheet, results, make_run(input_path))
    assert not out.exists()


def test_an_outcome_that_is_not_an_outcome_is_refused(tmp_path):
    input_path = make_input(tmp_path)
    sheet = make_sheet(input_path, [("RT-1",)], headers=["T"])
    with pytest.raises(ValueError, match="not an Outcome"):
        write_results(tmp_path / "o.xlsx", sheet, [RowResult(2, "Updated")], make_run(input_path))


# --------------------------------------------------------------------------------------------
# Paths, overwriting and clean-up


def test_default_results_path():
    started = datetime(2026, 11, 30, 15, 3, 7, tzinfo=timezone(timedelta(hours=1)))
    input_path = Path("data") / "tickets.xlsx"
    assert default_results_path(input_path, started) == (
        Path("data") / "tickets.results-20261130-140307.xlsx"
    )
    assert (
        default_results_path(input_path, datetime(2026, 1, 2, 3, 4, 5), Path("out"), ".csv")
        == Path("out") / "tickets.results-20260102-030405.csv"
    )


def test_existing_output_is_refused_and_left_alone(tmp_path):
    input_path, sheet, results = standard_case(tmp_path)
    out = tmp_path / "out.xlsx"
    out.write_bytes(b"last month's evidence")
    with pytest.raises(OutputError) as error:
        write_results(out, sheet, results, make_run(input_path))
    assert str(error.value) == f"{out} exists already; batch-update will not overwrite it."
    assert error.value.tip == "Move it away, or choose another name with --out."
    assert out.read_bytes() == b"last month's evidence"


def test_existing_csv_is_refused_before_anything_is_written(tmp_path):
    input_path, sheet, results = standard_case(tmp_path)
    out, csv_out = tmp_path / "out.xlsx", tmp_path / "out.csv"
    csv_out.write_text("keep me")
    with pytest.raises(OutputError, match="will not overwrite") as error:
        write_results(out, sheet, results, make_run(input_path), csv_path=csv_out)
    assert error.value.tip == "Move it away, or choose another name with --csv."
    assert not out.exists()
    assert csv_out.read_text() == "keep me"


def test_check_output_path_messages(tmp_path):
    input_path = make_input(tmp_path)
    with pytest.raises(OutputError) as error:
        check_output_path(input_path, input_path=input_path)
    assert str(error.value) == (
        f"{input_path} is the input file; batch-update never writes to its input."
    )
    assert error.value.tip == "Choose another name for the results with --out."

    missing = tmp_path / "no-such-folder" / "out.xlsx"
    with pytest.raises(OutputError) as error:
        check_output_path(missing)
    assert str(error.value) == (
        f"Cannot write {missing}: the folder {missing.parent} does not exist."
    )
    assert error.value.tip == "Create the folder, or choose another place with --out."

    under_a_file = input_path / "out.xlsx"
    with pytest.raises(OutputError, match="is not a folder"):
        check_output_path(under_a_file)

    with pytest.raises(OutputError, match="is a folder; batch-update will not overwrite it"):
        check_output_path(tmp_path)

    check_output_path(tmp_path / "fine.xlsx", input_path=input_path)
    assert files_in(tmp_path) == {"tickets.xlsx"}  # the probe left nothing behind


def test_check_output_path_unwritable_folder(tmp_path, monkeypatch):
    # Permissions cannot be taken from root, so the refusal of the file system is simulated.
    def refuse(target: Path) -> Path:
        raise PermissionError(13, "Permission denied", str(target))

    monkeypatch.setattr(report_paths, "_create_temp_beside", refuse)
    out = tmp_path / "out.xlsx"
    with pytest.raises(OutputError) as error:
        check_output_path(out, option="--csv")
    assert str(error.value) == (
        f"Cannot write {out}: cannot create files in {tmp_path} (Permission denied)."
    )
    assert error.value.tip == "Choose a folder you can write to with --csv."


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write into read-only folders"
)
def test_check_output_path_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="cannot create files in"):
            check_output_path(folder / "out.xlsx")
    finally:
        folder.chmod(0o700)


def test_the_input_is_never_written_to(tmp_path):
    input_path, sheet, results = standard_case(tmp_path)
    before = (input_path.read_bytes(), input_path.stat().st_mtime_ns)
    with pytest.raises(OutputError, match="is the input file"):
        write_results(input_path, sheet, results, make_run(input_path))
    with pytest.raises(OutputError, match="is the input file"):
        write_results(
            tmp_path / "o.xlsx", sheet, results, make_run(input_path), csv_path=input_path
        )
    write_results(tmp_path / "o.xlsx", sheet, results, make_run(input_path))
    assert (input_path.read_bytes(), input_path.stat().st_mtime_ns) == before


def test_same_name_for_workbook_and_csv_is_refused(tmp_path):
    input_path, sheet, results = standard_case(tmp_path)
    out = tmp_path / "out.xlsx"
    with pytest.raises(OutputError, match="is both the results workbook and the results CSV"):
        write_results(out, sheet, results, make_run(input_path), csv_path=out)


def test_temp_file_is_removed_when_writing_fails(tmp_path, monkeypatch):
    input_path, sheet, results = standard_case(tmp_path)
    before = files_in(tmp_path)
    real_save = openpyxl.Workbook.save

    def disk_full(self, filename):
        real_save(self, filename)
        Path(filename).write_bytes(b"half a workbook")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(openpyxl.Workbook, "save", disk_full)
    out, csv_out = tmp_path / "out.xlsx", tmp_path / "out.csv"
    with pytest.raises(OutputError) as error:
        write_results(out, sheet, results, make_run(input_path), csv_path=csv_out)
    assert str(error.value) == f"Could not write {out} and {csv_out}: No space left on device."
    assert error.value.tip == (
        f"Check the free space and the permissions of {tmp_path}, or choose another place "
        f"with --out or --csv."
    )
    assert files_in(tmp_path) == before


def test_temp_file_is_removed_on_an_unexpected_error(tmp_path, monkeypatch):
    input_path, sheet, results = standard_case(tmp_path)
    before = files_in(tmp_path)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report_results, "_write_summary_sheet", boom)
    with pytest.raises(KeyboardInterrupt):
        write_results(tmp_path / "out.xlsx", sheet, results, make_run(input_path))
    assert files_in(tmp_path) == before


def test_a_file_that_appears_meanwhile_is_not_overwritten(tmp_path, monkeypatch):
    input_path, sheet, results = standard_case(tmp_path)
    out = tmp_path / "out.xlsx"
    real_save = openpyxl.Workbook.save

    def save_then_someone_else_writes(self, filename):
        real_save(self, filename)
        out.write_bytes(b"someone else's file")

    monkeypatch.setattr(openpyxl.Workbook, "save", save_then_someone_else_writes)
    with pytest.raises(OutputError) as error:
        write_results(out, sheet, results, make_run(input_path))
    assert str(error.value) == (
        f"{out} appeared while the results were being written; batch-update will not overwrite it."
    )
    assert out.read_bytes() == b"someone else's file"
    assert files_in(tmp_path) == {"tickets.xlsx", "out.xlsx"}


def test_move_into_place_never_overwrites_even_without_hard_links(tmp_path, monkeypatch):
    temp, target = tmp_path / "t.tmp", tmp_path / "t.xlsx"
    temp.write_bytes(b"new")

    def no_links(src, dst):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    report_paths._move_into_place(temp, target, "--out")
    assert target.read_bytes() == b"new" and not temp.exists()
    temp.write_bytes(b"newer")
    with pytest.raises(OutputError, match="appeared while"):
        report_paths._move_into_place(temp, target, "--out")
    assert target.read_bytes() == b"new"


def test_no_temporary_files_are_left_after_success(tmp_path):
    input_path, sheet, results = standard_case(tmp_path)
    write_results(
        tmp_path / "out.xlsx", sheet, results, make_run(input_path), csv_path=tmp_path / "out.csv"
    )
    assert files_in(tmp_path) == {"tickets.xlsx", "out.xlsx", "out.csv"}


# --------------------------------------------------------------------------------------------
# CSV


def test_csv_has_bom_same_columns_and_safe_values(tmp_path):
    input_path, sheet, results = standard_case(tmp_path)
    out, csv_out = tmp_path / "out.xlsx", tmp_path / "out.csv"
    write_results(out, sheet, results, make_run(input_path), csv_path=csv_out)
    raw = csv_out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in raw
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert rows[0] == HEADERS + list(RESULT_COLUMNS)
    assert rows[0] == list(read_rows(out, "Results")[0])
    assert len(rows) == 7
    assert rows[1] == [
        "RT-0001",
        "Remediation Performed",
        "2",
        "corp\\jsmith",
        "Patched",
        "2026-12-01",
        "2",
        "Updated",
        "204",
        "",
        "1",
        "2026-11-30T14:03:07.123Z",
        "87",
        '{"TicketNumber": "RT-0001", "TicketState": 2}',
    ]
    assert rows[2][3:5] == ["Zoë Ångström", "Cliché naïve café 🚀"]
    assert rows[2][5] == "2026-12-02 09:30:00"
    assert rows[3][2] == "1.5"
    assert rows[5][4] == '\'=HYPERLINK("http://x","y")'
    assert [row[7] for row in rows[1:]] == [
        "Updated",
        "Failed",
        "Invalid",
        "Skipped",
        "Not sent",
        "Valid (dry run)",
    ]


# --------------------------------------------------------------------------------------------
# Scale


def test_thousands_of_rows_are_all_written_and_counted(tmp_path):
    input_path = make_input(tmp_path)
    outcomes = [o for o in Outcome if o is not Outcome.UNKNOWN]  # 8 outcomes, 375 rows each
    assert len(outcomes) == 8
    rows = [(f"RT-{i:05d}", "2", i, "jdoe", f"row {i}", date(2026, 12, 1)) for i in range(3000)]
    sheet = make_sheet(input_path, rows)
    results = [
        RowResult(
            i + 2,
            outcomes[i % 8],
            f"RT-{i:05d}",
            204 if outcomes[i % 8] is Outcome.UPDATED else None,
            "",
            1,
            SENT,
            10,
        )
        for i in range(3000)
    ]
    out = tmp_path / "out.xlsx"
    write_results(out, sheet, results, make_run(input_path))
    cal = calamine_rows(out, "Results")
    assert len(cal) == 3001
    assert cal[-1][:3] == ["RT-02999", "2", 2999]
    assert cal[-1][6] == 3001
    facts = summary(out)
    # Updated, Unchanged, Conflict, Failed, Unknown, Invalid, Skipped, Not sent, Valid (dry run)
    assert [facts[o.value] for o in report_layout.OUTCOME_ORDER] == [
        375,
        375,
        375,
        375,
        0,
        375,
        375,
        375,
        375,
    ]
    assert facts["Reconciliation"].startswith(
        "balanced: 3000 rows read = 375 Updated + 375 Unchanged + 375 Conflict + 375 Failed "
        "+ 0 Unknown"
    )


def test_evidence_columns_and_charts(tmp_path: Path) -> None:
    """--capture-before and --verify add Before and Verification columns; the Summary has charts."""
    from openpyxl import load_workbook

    from batch_updater.report import BEFORE_COLUMNS, VERIFICATION_COLUMN

    sheet = Sheet(
        "tickets.xlsx",
        "Changes",
        1,
        ["Ticket Number", "Priority"],
        [SheetRow(2, ("INCA0000001", "High")), SheetRow(3, ("INCA0000002", "Low"))],
    )
    before = {
        "TicketState": 1,
        "Priority": "Low",
        "AssignedTo": "corp\\jsmith",
        "TicketDescription": "=old",
    }
    results = [
        RowResult(
            2, Outcome.UPDATED, "INCA0000001", 204, "", 3, before=before, verification="Verified"
        ),
        RowResult(
            3,
            Outcome.UPDATED,
            "INCA0000002",
            204,
            "",
            3,
            before=before,
            verification='Mismatch: Priority is "High", expected "Low"',
        ),
    ]
    run = RunInfo(
        "tickets.xlsx",
        "ab" * 32,
        "Changes",
        "0.1.0",
        "me",
        datetime(2026, 11, 30, tzinfo=timezone.utc),
        capture_before=True,
        verify=True,
    )
    target = tmp_path / "out.xlsx"
    write_results(target, sheet, results, run)
    wb = load_workbook(target)
    rows = list(wb["Results"].iter_rows(values_only=True))
    assert list(rows[0][-5:]) == [*BEFORE_COLUMNS, VERIFICATION_COLUMN]
    assert list(rows[1][-5:]) == [1, "Low", "corp\\jsmith", "=old", "Verified"]
    assert rows[2][-1] == 'Mismatch: Priority is "High", expected "Low"'
    summary = {r[0]: r[1] for r in wb["Summary"].iter_rows(values_only=True)}
    assert summary["Read-back verification"].endswith("1 Verified, 1 Mismatch, 0 Not checked")
    assert summary["Before values"].startswith("captured")
    assert len(wb["Summary"]._charts) == 2
    legend = [r[0] for r in wb["Legend"].iter_rows(values_only=True)]
    assert VERIFICATION_COLUMN in legend and "Before: State" in legend


def test_the_run_sheet_lists_the_identity_and_settings_but_no_secret(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    sheet = Sheet("tickets.xlsx", "Changes", 1, ["Ticket Number"], [SheetRow(2, ("INCA0000001",))])
    run = RunInfo(
        "tickets.xlsx",
        "ab" * 32,
        "Changes",
        "0.1.0",
        "me",
        datetime(2026, 11, 30, tzinfo=timezone.utc),
        settings={"rate": 5.0, "password": "********", "priorities": ["Low", "High"]},
        python_version="3.11.7",
        run_id="20261130-000000-ab12",
    )
    target = tmp_path / "out.xlsx"
    write_results(target, sheet, [RowResult(2, Outcome.SKIPPED)], run)
    facts = {r[0]: r[1] for r in load_workbook(target)["Run"].iter_rows(values_only=True)}
    assert facts["Run ID"] == "20261130-000000-ab12"
    assert facts["Python version"] == "3.11.7"
    assert facts["Setting: rate"] == 5.0
    assert facts["Setting: priorities"] == '["Low", "High"]'
    assert facts["Setting: password"] == "given in the settings (CCS_PASSWORD); never recorded"


@pytest.mark.parametrize(
    ("settings", "shown"),
    [
        (
            {"password": None},
            "not in the settings (from the keyring or a prompt, if one was needed); never recorded",
        ),
        ({"ca_bundle": None}, "(not set)"),
    ],
)
def test_no_setting_on_the_run_sheet_is_an_empty_cell(tmp_path: Path, settings, shown) -> None:
    from openpyxl import load_workbook

    sheet = Sheet("tickets.xlsx", "Changes", 1, ["Ticket Number"], [SheetRow(2, ("INCA0000001",))])
    run = RunInfo(
        "tickets.xlsx",
        "ab" * 32,
        "Changes",
        "0.1.0",
        "me",
        datetime(2026, 11, 30, tzinfo=timezone.utc),
        settings=settings,
        python_version="3.11.7",
        run_id="20261130-000000-ab12",
    )
    target = tmp_path / "out.xlsx"
    write_results(target, sheet, [RowResult(2, Outcome.SKIPPED)], run)
    facts = {r[0]: r[1] for r in load_workbook(target)["Run"].iter_rows(values_only=True)}
    (key,) = settings
    assert facts[f"Setting: {key}"] == shown
