"""Bad input of every kind, run through the installed command: a clear message, never a traceback.

Each file of tests/data/bad/ (written by make_bad_files.py there) is copied into a fresh folder
and checked with `batch-update FILE --dry-run` as a subprocess, in a scrubbed environment, the
way an administrator would run it. The table CASES pairs every file with what must come of it:

- a file-level problem exits 2 with exactly one message (and maybe a tip) naming the file and
  saying what to do, and writes no results workbook;
- a row-level problem makes that row Invalid (exit 1), with its message on the terminal and in
  the results workbook; every other row is judged as usual, and no saved cell is a formula.

The end of the file holds property tests: the sheet reader, fed arbitrary bytes under a workbook
or text name, raises only the project's InputError.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import shutil
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
import pytest
from helpers import clean_env, formula_cells, read_results, results_files, run_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch_updater.cli import ExitStatus
from batch_updater.errors import InputError
from batch_updater.report import csv_text, safe_text
from batch_updater.sheet import MAX_SHEET_CELLS, read_sheet
from batch_updater.tickets import CellError, FormulaWithoutValue, Sheet, SheetRow
from batch_updater.validate import is_header_row, plan

BAD = Path(__file__).resolve().parent / "data" / "bad"
MAKER = BAD / "make_bad_files.py"

SAVE_AGAIN = "open it in Excel and save it again, or export it again."
SAVE_AS_XLSX = 'open it in Excel and save it as an "Excel Workbook (.xlsx)".'
SAVE_AS_CSV_UTF8 = 'save it from Excel as "CSV UTF-8 (Comma delimited)".'
RECALCULATE = "has no saved value; open the file in Excel, let it calculate, and save it."
NOT_PLAIN = "which is not a plain letter or digit; retype it."
STATES = (
    "use 1-5 or a name: 1 Open, 2 Remediation Performed, 3 Verified, 4 Failed, 5 Not Applicable."
)
AS_TEXT = "format the column as Text and type the ticket number again."
HIDDEN_ROWS = (
    "Note: Rows 3, 5-6 are hidden in Excel (filtered or hidden by hand); they are checked and "
    "sent like every other row. Delete them from the sheet if they should not be sent."
)


@dataclass(frozen=True)
class Expected:
    """What must come of one file of the corpus."""

    exit: ExitStatus
    # The whole of stderr, line by line.
    stderr: tuple[str, ...]
    # Row (as Excel numbers it) -> the Message of that Invalid row in the results workbook.
    # Every row not listed here must be "Valid (dry run)".
    invalid: Mapping[int, str] = field(default_factory=dict)
    # Row -> the request body that row would send.
    requests: Mapping[int, Mapping[str, object]] = field(default_factory=dict)
    # (row, column header) -> the value the Results sheet shows.
    cells: Mapping[tuple[int, str], object] = field(default_factory=dict)
    # A config file (YAML) for the run, if the case needs one.
    config: str = ""

    @property
    def file_level(self) -> bool:
        return self.exit == ExitStatus.USAGE


def refused(message: str, tip: str | None = None) -> Expected:
    """A file-level problem: exit 2, this message (and tip), nothing else."""
    lines = (f"Error: {message}",) + ((f"Tip: {tip}",) if tip else ())
    return Expected(ExitStatus.USAGE, lines)


def dry_run(valid: int, total: int) -> str:
    return f"Dry run: {valid} of {total} row{'' if total == 1 else 's'} would be sent; nothing was sent."


CASES: dict[str, Expected] = {
    # --- nothing there ----------------------------------------------------------------------
    "empty.xlsx": refused("empty.xlsx is empty (0 bytes).", "export the tickets again."),
    "empty.csv": refused("empty.csv is empty (0 bytes).", "export the tickets again."),
    "header-only.xlsx": refused(
        'header-only.xlsx, sheet "Tickets": nothing to send: no rows under the header (row 1).',
        "add the ticket changes below the header row, or check that this is the right file and "
        "sheet (--sheet).",
    ),
    "no-ticket-column.xlsx": refused(
        'no-ticket-column.xlsx, sheet "Tickets": no ticket-number column in the first 20 rows. '
        'The first non-empty row (row 1) has: "Asset", "State", "Priority".',
        'name the column "Ticket Number", or map your header in the config '
        '(columns: {"Your header": TicketNumber}).',
    ),
    # --- not what the name says ---------------------------------------------------------------
    "csv-renamed.xlsx": refused(
        "csv-renamed.xlsx looks like text (CSV), not an Excel workbook; rename it to "
        "csv-renamed.csv and run again."
    ),
    "not-a-zip.xlsx": refused(
        "not-a-zip.xlsx is damaged: it starts like an Excel workbook but is not a complete one "
        f"(File is not a zip file); {SAVE_AGAIN}"
    ),
    "word-document.xlsx": refused(
        f"word-document.xlsx is a Word document, not a workbook; {SAVE_AS_XLSX}"
    ),
    "web-page.xls": refused(
        f"web-page.xls is a web page (HTML) with an Excel name, not a workbook; {SAVE_AS_XLSX}"
    ),
    "password.xlsx": refused(
        "password.xlsx is password-protected; open it in Excel, remove the password "
        "(File > Info > Protect Workbook) and save a copy."
    ),
    "garbage.xlsx": refused(
        "garbage.xlsx is not a spreadsheet (its content is neither .xlsx, .xls nor .ods); "
        + SAVE_AS_XLSX
    ),
    "garbage.xls": refused(
        "garbage.xls is not a spreadsheet (its content is neither .xlsx, .xls nor .ods); "
        + SAVE_AS_XLSX
    ),
    # --- damaged inside: the workbook reader would ask for more memory than exists -----------
    "damaged-shared-strings.xlsx": refused(
        "damaged-shared-strings.xlsx could not be read as a workbook (its list of texts claims "
        f"4,000,000,000 entries in 250 bytes); {SAVE_AGAIN}"
    ),
    "damaged-header.xls": refused(
        "damaged-header.xls could not be read as a workbook (its header claims more sectors "
        f"than the file holds); {SAVE_AGAIN}"
    ),
    "damaged-sheet-size.xls": refused(
        "damaged-sheet-size.xls could not be read as a workbook (a sheet claims more rows or "
        f"columns than an .xls can hold); {SAVE_AGAIN}"
    ),
    "far-away-cell.xlsx": refused(
        'far-away-cell.xlsx, sheet "Tickets": cell XFD5000 holds a value far outside the table; '
        "with it the sheet spans 5,000 rows by 16,384 columns (81,920,000 cells), more than "
        f"batch-update reads ({MAX_SHEET_CELLS:,}). Delete the cells outside the table (in "
        "Excel, Ctrl+End goes to the last cell in use) and save the file."
    ),
    # --- text encodings -----------------------------------------------------------------------
    "utf16-without-bom.csv": refused(
        "utf16-without-bom.csv does not look like a text file (it contains NUL bytes); if it is "
        f'"Unicode Text" from Excel, {SAVE_AS_CSV_UTF8}'
    ),
    "nul-in-text.csv": refused(
        "nul-in-text.csv does not look like a text file (it contains NUL bytes); if it is "
        f'"Unicode Text" from Excel, {SAVE_AS_CSV_UTF8}'
    ),
    "mixed-encoding.csv": refused(
        "mixed-encoding.csv mixes two text encodings: it holds UTF-8 text, but line 3 does not "
        "(byte 0xFC there is not UTF-8), so its accented letters would be sent wrong; retype "
        "them in an editor that saves UTF-8, or export the whole file again and " + SAVE_AS_CSV_UTF8
    ),
    "wrong-encoding.csv": refused(
        f"wrong-encoding.csv is neither UTF-8 nor Windows-1252 text (byte 36); {SAVE_AS_CSV_UTF8}"
    ),
    "utf8-bom.csv": Expected(
        ExitStatus.OK,
        (dry_run(1, 1),),
        requests={
            2: {
                "TicketNumber": "INCA0000001",
                "TicketState": 2,
                "TicketDescription": "Café",
                "Priority": "High",
            },
        },
    ),
    "utf16-bom.txt": Expected(
        ExitStatus.OK,
        (dry_run(1, 1),),
        requests={2: {"TicketNumber": "INCA0000001", "TicketState": 3, "Priority": "Low"}},
    ),
    "cp1252.csv": Expected(
        ExitStatus.OK,
        (
            "Note: cp1252.csv is not UTF-8; read it as Windows-1252 (Western European). If "
            f"accented letters look wrong in the results, {SAVE_AS_CSV_UTF8}",
            dry_run(1, 1),
        ),
        requests={
            2: {
                "TicketNumber": "INCA0000001",
                "TicketState": 2,
                "TicketDescription": "Café – naïve",
                "Priority": "High",
            },
        },
    ),
    # --- very long lines and cells ------------------------------------------------------------
    "quote-never-closed.csv": refused(
        "quote-never-closed.csv, row 2: a cell is longer than 131,072 characters; this usually "
        'means a quote (") is opened and never closed.'
    ),
    "long-line.csv": Expected(
        ExitStatus.ROWS_FAILED,
        (
            'long-line.csv, row 2, column "Description": the description is 20,000 characters '
            "long; the limit is 4,000 (setting description_max_length).",
            "1 row will not be sent (Invalid).",
            dry_run(1, 2),
        ),
        invalid={
            2: 'column "Description": the description is 20,000 characters long; the limit is '
            "4,000 (setting description_max_length).",
        },
    ),
    "long-cell.xlsx": Expected(
        ExitStatus.ROWS_FAILED,
        (
            'long-cell.xlsx, sheet "Tickets", row 2, column "Description": the description is '
            "32,767 characters long; the limit is 4,000 (setting description_max_length).",
            "1 row will not be sent (Invalid).",
            dry_run(1, 2),
        ),
        invalid={
            2: 'column "Description": the description is 32,767 characters long; the limit is '
            "4,000 (setting description_max_length).",
        },
        cells={(2, "Description"): "z" * 32_767},
    ),
    # --- the shape of the sheet ---------------------------------------------------------------
    "too-many-rows.xlsx": Expected(
        ExitStatus.USAGE,
        (
            'Error: too-many-rows.xlsx, sheet "Tickets": 6 data rows, more than the limit of 5 '
            "data rows (setting max_rows).",
            "Tip: split the file, or raise max_rows in the config if the rows are meant.",
        ),
        config="input:\n  max_rows: 5\n",
    ),
    "duplicated-headers.xlsx": refused(
        'duplicated-headers.xlsx, sheet "Tickets": columns "Priority" (column C) and "Priority" '
        "(column D) both feed Priority; only one column can.",
        'keep one "Priority" column: delete or rename the other.',
    ),
    "merged-cells.xlsx": Expected(
        ExitStatus.ROWS_FAILED,
        (
            "Note: Merged cells in rows 2-3 (C2:C3): only the first cell of each merge holds a "
            "value; unmerge them in Excel if that is not what you meant.",
            'merged-cells.xlsx, sheet "Tickets", row 3, column "Priority": Priority is required '
            "by CCS; use one of Low, Medium, High.",
            "1 row will not be sent (Invalid).",
            dry_run(2, 3),
        ),
        invalid={
            3: 'column "Priority": Priority is required by CCS; use one of Low, Medium, High.'
        },
    ),
    "hidden-sheet.xlsx": Expected(
        ExitStatus.OK,
        (
            'Note: Using sheet "Tickets" (named like Tickets; the workbook has 2 sheets: '
            "Tickets, Old tickets (hidden)).",
            dry_run(2, 2),
        ),
    ),
    "hidden-rows.xlsx": Expected(
        ExitStatus.OK,
        (HIDDEN_ROWS, dry_run(6, 6)),
        requests={3: {"TicketNumber": "INCA0000002", "TicketState": 2, "Priority": "High"}},
    ),
    # --- formulas -----------------------------------------------------------------------------
    "formulas.xlsx": Expected(
        ExitStatus.ROWS_FAILED,
        (
            "Note: Columns not sent to CCS (kept in the results workbook): Notes.",
            'formulas.xlsx, sheet "Tickets", row 3, column "State": the formula =A1*2 in cell B3 '
            + RECALCULATE,
            'formulas.xlsx, sheet "Tickets", row 5, column "Ticket Number": the formula =A2 in '
            f"cell A5 {RECALCULATE}",
            "2 rows will not be sent (Invalid).",
            dry_run(2, 4),
        ),
        invalid={
            3: f'column "State": the formula =A1*2 in cell B3 {RECALCULATE}',
            5: f'column "Ticket Number": the formula =A2 in cell A5 {RECALCULATE}',
        },
        requests={
            # The saved value of =1+1 is used.
            2: {"TicketNumber": "INCA0000001", "TicketState": 2, "Priority": "High"},
            # A formula without a value in a column that is not sent is only shown.
            4: {"TicketNumber": "INCA0000003", "TicketState": 3, "Priority": "Low"},
        },
        cells={(3, "State"): "=A1*2", (4, "Notes"): "=LEN(A4)", (5, "Ticket Number"): "=A2"},
    ),
    "error-values.xlsx": Expected(
        ExitStatus.ROWS_FAILED,
        (
            "Note: Columns not sent to CCS (kept in the results workbook): Notes.",
            'error-values.xlsx, sheet "Tickets", row 2, column "State": the formula '
            "=VLOOKUP(A2,Lists!A:B,2,FALSE) in cell B2 shows the error #N/A; correct it in Excel "
            "and save the file.",
            'error-values.xlsx, sheet "Tickets", row 3, column "Priority": cell C3 holds the '
            "error #REF!; correct it in Excel and save the file.",
            "2 rows will not be sent (Invalid).",
            dry_run(1, 3),
        ),
        invalid={
            2: 'column "State": the formula =VLOOKUP(A2,Lists!A:B,2,FALSE) in cell B2 shows the '
            "error #N/A; correct it in Excel and save the file.",
            3: 'column "Priority": cell C3 holds the error #REF!; correct it in Excel and save '
            "the file.",
        },
        requests={4: {"TicketNumber": "INCA0000003", "TicketState": 3, "Priority": "Low"}},
        cells={(2, "State"): "#N/A", (3, "Priority"): "#REF!", (4, "Notes"): "#DIV/0!"},
    ),
    # --- cell values ------------------------------------------------------------------------
    "dates-in-text-columns.xlsx": Expected(
        ExitStatus.ROWS_FAILED,
        (
            'dates-in-text-columns.xlsx, sheet "Tickets", row 2, column "Ticket Number": '
            '"2024-03-01" is a date, not a ticket number; Excel may have turned what was typed '
            f"into a date: {AS_TEXT}",
            'dates-in-text-columns.xlsx, sheet "Tickets", row 4, column "State": "14:30:00" is '
            f"not a ticket state; {STATES}",
            'dates-in-text-columns.xlsx, sheet "Tickets", row 5, column "Ticket Number": '
            '"09:15:00" is a time, not a ticket number; Excel may have turned what was typed '
            f"into a time: {AS_TEXT}",
            "3 rows will not be sent (Invalid).",
            dry_run(1, 4),
        ),
        invalid={
            2: 'column "Ticket Number": "2024-03-01" is a date, not a ticket number; Excel may '
            f"have turned what was typed into a date: {AS_TEXT}",
            4: f'column "State": "14:30:00" is not a ticket state; {STATES}',
            5: 'column "Ticket Number": "09:15:00" is a time, not a ticket number; Excel may '
            f"have turned what was typed into a time: {AS_TEXT}",
        },
        # A date in a text column is sent as ISO text.
        requests={
            3: {
                "TicketNumber": "INCA0000002",
                "TicketState": 2,
                "TicketDescription": "2024-03-01 14:30:00",
                "Priority": "High",
            },
        },
    ),
    "leading-zeros.xlsx": Expected(
        ExitStatus.OK,
        (dry_run(2, 2),),
        requests={
            2: {"TicketNumber": "0001234", "TicketState": 2, "Priority": "High"},
            3: {"TicketNumber": "0000042", "TicketState": 3, "Priority": "Low"},
        },
        cells={(2, "Ticket Number"): "0001234"},
    ),
    "leading-zeros.csv": Expected(
        ExitStatus.OK,
        (dry_run(1, 1),),
        requests={2: {"TicketNumber": "0001234", "TicketState": 2, "Priority": "High"}},
    ),
    "unicode-lookalikes.xlsx": Expected(
        ExitStatus.ROWS_FAILED,
        (
            'unicode-lookalikes.xlsx, sheet "Tickets", row 2, column "Ticket Number": '
            f'"INC\u04100000001" contains "\u0410" (CYRILLIC CAPITAL LETTER A), {NOT_PLAIN}',
            'unicode-lookalikes.xlsx, sheet "Tickets", row 3, column "Ticket Number": '
            f'"INCA\uff10000002" contains "\uff10" (FULLWIDTH DIGIT ZERO), {NOT_PLAIN}',
            'unicode-lookalikes.xlsx, sheet "Tickets", row 4, column "Ticket Number": '
            f'"INCA0000003<U+200B>" contains U+200B (ZERO WIDTH SPACE), {NOT_PLAIN}',
            'unicode-lookalikes.xlsx, sheet "Tickets", row 5, column "Ticket Number": '
            '"INCA\u00a00000004" contains a non-breaking space; a ticket number is one word '
            "without spaces, e.g. INCA0000009.",
            "4 rows will not be sent (Invalid).",
            dry_run(1, 5),
        ),
        invalid={
            2: f'column "Ticket Number": "INC\u04100000001" contains "\u0410" (CYRILLIC CAPITAL '
            f"LETTER A), {NOT_PLAIN}",
            3: f'column "Ticket Number": "INCA\uff10000002" contains "\uff10" (FULLWIDTH DIGIT '
            f"ZERO), {NOT_PLAIN}",
            4: 'column "Ticket Number": "INCA0000003<U+200B>" contains U+200B (ZERO WIDTH '
            f"SPACE), {NOT_PLAIN}",
            5: 'column "Ticket Number": "INCA\u00a00000004" contains a non-breaking space; a '
            "ticket number is one word without spaces, e.g. INCA0000009.",
        },
    ),
    # Text that a spreadsheet would run as a formula: sent as written, shown with a '.
    "formula-like-text.xlsx": Expected(
        ExitStatus.OK,
        (dry_run(3, 3),),
        requests={
            2: {
                "TicketNumber": "INCA0000001",
                "TicketState": 2,
                "TicketDescription": "=SUM(A1:A2)",
                "Priority": "High",
                "AssignedTo": "@admin",
            },
            3: {
                "TicketNumber": "INCA0000002",
                "TicketState": 3,
                "TicketDescription": "+1 555 0100",
                "Priority": "Low",
            },
            4: {
                "TicketNumber": "INCA0000003",
                "TicketState": 5,
                "TicketDescription": "-5 degrees",
                "Priority": "Medium",
            },
        },
        cells={
            # The results hold the exact text (a quote-prefixed text cell, never a formula).
            (2, "Description"): "=SUM(A1:A2)",
            (2, "Assigned To"): "@admin",
            (3, "Description"): "+1 555 0100",
            (4, "Description"): "-5 degrees",
        },
    ),
    "formula-like-text.csv": Expected(
        ExitStatus.OK,
        (dry_run(2, 2),),
        requests={
            2: {
                "TicketNumber": "INCA0000001",
                "TicketState": 2,
                "TicketDescription": '=HYPERLINK("http://x.example","y")',
                "Priority": "High",
                "AssignedTo": "@admin",
            },
            3: {
                "TicketNumber": "INCA0000002",
                "TicketState": 3,
                "TicketDescription": "-2+3",
                "Priority": "Low",
            },
        },
        cells={
            (2, "Description"): '=HYPERLINK("http://x.example","y")',
            (3, "Description"): "-2+3",
        },
    ),
}


def test_the_corpus_is_big_enough_and_every_file_has_its_case() -> None:
    files = sorted(p.name for p in BAD.iterdir() if p.name != MAKER.name and p.is_file())
    assert len(files) >= 25
    assert files == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input(tmp_path: Path, name: str) -> None:
    expected = CASES[name]
    shutil.copyfile(BAD / name, tmp_path / name)
    args = [name, "--dry-run"]
    if expected.config:
        (tmp_path / "limits.yaml").write_text(expected.config, encoding="utf-8")
        args += ["--config", "limits.yaml"]

    done = run_command(args, tmp_path, env=clean_env(tmp_path / "home"))

    assert "Traceback" not in done.stderr
    named = [f"Using config file {tmp_path / 'limits.yaml'}"] if expected.config else []
    assert done.stderr.splitlines() == named + list(expected.stderr)
    assert done.returncode == expected.exit, done.stderr
    workbooks = results_files(tmp_path)
    if expected.file_level:
        assert done.stdout == ""
        assert workbooks == [], "nothing is written for a file that cannot be used"
        return
    (workbook,) = workbooks
    results = read_results(workbook)
    outcomes = {r["Row"]: r["Outcome"] for r in results}
    assert {row: "Invalid" for row in expected.invalid} == {
        row: outcome for row, outcome in outcomes.items() if outcome != "Valid (dry run)"
    }
    by_row = {r["Row"]: r for r in results}
    for row, message in expected.invalid.items():
        assert by_row[row]["Message"] == message
    for row, body in expected.requests.items():
        assert by_row[row]["Outcome"] == "Valid (dry run)"
        assert json.loads(by_row[row]["Request"]) == body
    for (row, column), value in expected.cells.items():
        assert by_row[row][column] == value, (row, column)
    assert formula_cells(workbook) == []


# --- the corpus is made, not collected ---------------------------------------------------------


def _maker():
    spec = importlib.util.spec_from_file_location("make_bad_files", MAKER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_the_corpus_is_written_reproducibly(tmp_path: Path) -> None:
    maker = _maker()
    maker.write_all(tmp_path / "one")
    maker.write_all(tmp_path / "two")
    assert _digests(tmp_path / "one") == _digests(tmp_path / "two")
    assert sorted(_digests(tmp_path / "one")) == sorted(CASES)
    # And it is what is committed: byte for byte, or for a zip (deflate output varies with
    # the zlib build) member by member, leaving out docProps/app.xml (openpyxl's version).
    for path in sorted((tmp_path / "one").iterdir()):
        fresh, committed = path.read_bytes(), (BAD / path.name).read_bytes()
        assert _members(fresh) == _members(committed), (
            f"{path.name} differs from what make_bad_files.py writes; run it again"
        )


def _members(data: bytes) -> dict[str, bytes] | bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return {
                name: archive.read(name)
                for name in archive.namelist()
                if name != "docProps/app.xml"
            }
    except (zipfile.BadZipFile, OSError):
        return data


# --- property: the reader raises only InputError, whatever the bytes ---------------------------

# Beginnings that send the reader down each of its paths: zip, OLE2, BOMs, HTML, plain text.
PREFIXES = [
    b"",
    b"PK\x03\x04",
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xfe\xff",
    b"<html>",
    b"Ticket Number,Priority\r\n",
    b"Ticket Number\tPriority\n",
]
SEEDS = [
    (BAD / "leading-zeros.xlsx").read_bytes(),
    (BAD / "formulas.xlsx").read_bytes(),
    (Path(__file__).resolve().parent / "data" / "tickets.xls").read_bytes(),
    (BAD / "utf8-bom.csv").read_bytes(),
]


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """A real workbook or text file with a few of its bytes changed, cut, or added."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=len(data)))
        action = draw(st.sampled_from(["set", "cut", "insert"]))
        if action == "set" and at < len(data):
            data[at] = draw(st.integers(min_value=0, max_value=255))
        elif action == "cut":
            del data[at : at + draw(st.integers(min_value=1, max_value=64))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


ANY_BYTES = st.one_of(
    st.binary(max_size=4096),
    st.builds(lambda head, tail: head + tail, st.sampled_from(PREFIXES), st.binary(max_size=2048)),
    damaged(),
)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=ANY_BYTES, suffix=st.sampled_from([".xlsx", ".csv", ".xls"]))
def test_the_reader_raises_only_input_errors(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"tickets{suffix}"
    path.write_bytes(data)
    try:
        sheet = read_sheet(path, is_header_row=is_header_row)
    except InputError as error:
        assert str(error).startswith("tickets"), str(error)
        assert "Traceback" not in str(error)
    else:
        assert isinstance(sheet, Sheet)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is Linux's")
def test_a_far_away_cell_is_refused_before_it_is_loaded(tmp_path: Path) -> None:
    # Without the check, the workbook reader asks for 17 billion cells at once, which ends the
    # process. Under a 2 GB address-space limit it must still end with a message.
    import subprocess

    book = openpyxl.Workbook()
    book.active.append(["Ticket Number", "Priority"])
    book.active.append(["INCA0000001", "Low"])
    book.active["XFD1048576"] = "x"
    book.save(tmp_path / "far.xlsx")
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))\n"
        "from batch_updater.sheet import read_sheet\n"
        "from batch_updater.validate import is_header_row\n"
        "from batch_updater.errors import InputError\n"
        "try:\n"
        "    read_sheet(sys.argv[1], is_header_row=is_header_row)\n"
        "except InputError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "far.xlsx")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONUTF8": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        'far.xlsx, sheet "Sheet": data down to row 1,048,576, more than the limit of 1,000,000 '
        "data rows (setting max_rows)."
    )


# --- the sheet XML read beside calamine: formulas without a value, hidden rows -------------------

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELATIONS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE = "http://schemas.openxmlformats.org/package/2006/relationships"


def xlsx_with_sheet_data(path: Path, rows_xml: str, *, prefix: str = "") -> Path:
    """A minimal .xlsx whose one sheet ("Tickets") holds exactly `rows_xml` as its sheetData."""
    p = f"{prefix}:" if prefix else ""
    namespace = f'xmlns:{prefix}="{MAIN}"' if prefix else f'xmlns="{MAIN}"'
    members = {
        "[Content_Types].xml": (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>'
        ),
        "_rels/.rels": (
            f'<Relationships xmlns="{PACKAGE}"><Relationship Id="rId1" '
            f'Type="{RELATIONS}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            f'<workbook xmlns="{MAIN}" xmlns:r="{RELATIONS}"><sheets>'
            '<sheet name="Tickets" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            f'<Relationships xmlns="{PACKAGE}"><Relationship Id="rId1" '
            f'Type="{RELATIONS}/worksheet" Target="/xl/worksheets/sheet1.xml"/></Relationships>'
        ),
        "xl/worksheets/sheet1.xml": (
            f"<{p}worksheet {namespace}><{p}sheetData>{rows_xml}</{p}sheetData></{p}worksheet>"
        ),
    }
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def text_cell(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


HEADER_ROW = (
    f'<row r="1">{text_cell("A1", "Ticket Number")}{text_cell("B1", "State")}'
    f"{text_cell('C1', 'Priority')}</row>"
)


def read(path: Path) -> Sheet:
    return read_sheet(path, is_header_row=is_header_row)


def test_shared_formulas_saved_empty_texts_and_errors(tmp_path: Path) -> None:
    rows = HEADER_ROW + (
        # A shared formula written once in B2 (with its value) and used again in B3 (without).
        f'<row r="2">{text_cell("A2", "INCA1")}<c r="B2"><f t="shared" ref="B2:B3" si="0">'
        f'LEN(A2)&amp;""</f><v>5</v></c>{text_cell("C2", "Low")}</row>'
        f'<row r="3">{text_cell("A3", "INCA2")}<c r="B3"><f t="shared" si="0"/></c>'
        f"{text_cell('C3', 'Low')}</row>"
        # A formula whose saved result is the empty text, and one whose result is an error.
        f'<row r="4">{text_cell("A4", "INCA3")}<c r="B4" t="str"><f>""</f><v></v></c>'
        f'<c r="C4" t="e"><f>1/0</f><v>#DIV/0!</v></c></row>'
    )
    sheet = read(xlsx_with_sheet_data(tmp_path / "t.xlsx", rows))
    assert [(r.row_number, r.values) for r in sheet.rows] == [
        (2, ("INCA1", 5, "Low")),
        (3, ("INCA2", FormulaWithoutValue('LEN(A2)&""', "B3"), "Low")),
        # calamine reads an error as an empty cell; it is marked instead.
        (4, ("INCA3", None, CellError("#DIV/0!", "1/0", "C4"))),
    ]


def test_cells_and_rows_without_references_and_prefixed_tags(tmp_path: Path) -> None:
    rows = (
        '<x:row><x:c t="inlineStr"><x:is><x:t>Ticket Number</x:t></x:is></x:c>'
        '<x:c t="inlineStr"><x:is><x:t>Priority</x:t></x:is></x:c></x:row>'
        '<x:row hidden="1"><x:c t="inlineStr"><x:is><x:t>INCA1</x:t></x:is></x:c>'
        "<x:c><x:f>A1</x:f></x:c></x:row>"
    )
    sheet = read(xlsx_with_sheet_data(tmp_path / "t.xlsx", rows, prefix="x"))
    assert [(r.row_number, r.values) for r in sheet.rows] == [
        (2, ("INCA1", FormulaWithoutValue("A1", "B2"))),
    ]
    assert sheet.notices == [
        "Row 2 is hidden in Excel (filtered or hidden by hand); it is checked and sent like "
        "every other row. Delete it from the sheet if it should not be sent."
    ]


def test_a_row_of_formulas_below_the_last_value_is_not_lost(tmp_path: Path) -> None:
    rows = HEADER_ROW + (
        f'<row r="2">{text_cell("A2", "INCA1")}{text_cell("C2", "Low")}</row>'
        '<row r="4"><c r="A4"><f>A2</f></c><c r="C4"><f>C2</f></c></row>'
    )
    sheet = read(xlsx_with_sheet_data(tmp_path / "t.xlsx", rows))
    assert [(r.row_number, r.values) for r in sheet.rows] == [
        (2, ("INCA1", None, "Low")),
        (3, (None, None, None)),
        (4, (FormulaWithoutValue("A2", "A4"), None, FormulaWithoutValue("C2", "C4"))),
    ]


def test_hidden_rows_are_listed_as_ranges_and_counted_past_ten(tmp_path: Path) -> None:
    rows = HEADER_ROW
    for number in range(2, 40):
        hidden = ' hidden="1"' if number % 3 == 0 or number in (4, 5) else ""
        rows += f'<row r="{number}"{hidden}>{text_cell(f"A{number}", f"INCA{number}")}</row>'
    rows += '<row r="41" hidden="1"/><row r="60" hidden="true"/>'  # empty: nothing to send
    sheet = read(xlsx_with_sheet_data(tmp_path / "t.xlsx", rows))
    assert sheet.notices == [
        "Rows 3-6, 9, 12, 15, 18, 21, 24, 27, 30, 33 and 2 more are hidden in Excel (filtered or "
        "hidden by hand); they are checked and sent like every other row. Delete them from the "
        "sheet if they should not be sent."
    ]


def test_a_stray_value_far_right_is_refused_but_formatting_alone_is_not(tmp_path: Path) -> None:
    formatted = HEADER_ROW + (
        f'<row r="2">{text_cell("A2", "INCA1")}<c r="XFD2" s="3"/></row>'
        '<row r="90000"><c r="XFD90000" s="3"/><c r="ZZ90000"><v></v></c></row>'
    )
    assert len(read(xlsx_with_sheet_data(tmp_path / "ok.xlsx", formatted)).rows) == 1
    stray = HEADER_ROW + (
        f'<row r="2">{text_cell("A2", "INCA1")}</row>'
        f'<row r="90000">{text_cell("XFD90000", "")}</row>'
    )
    with pytest.raises(InputError) as caught:
        read(xlsx_with_sheet_data(tmp_path / "stray.xlsx", stray))
    assert str(caught.value) == (
        'stray.xlsx, sheet "Tickets": cell XFD90000 holds a value far outside the table; with '
        "it the sheet spans 90,000 rows by 16,384 columns (1,474,560,000 cells), more than "
        f"batch-update reads ({MAX_SHEET_CELLS:,}). Delete the cells outside the table (in "
        "Excel, Ctrl+End goes to the last cell in use) and save the file."
    )


# --- property: validation never raises, and never sends a formula it cannot see -------------------

CELLS = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.integers(-10, 10),
    st.floats(allow_nan=True),
    st.sampled_from(["INCA0000001", "INCA0000002", "High", "Low", "2", "Verified", " "]),
    st.builds(FormulaWithoutValue, st.text(max_size=10), st.sampled_from(["", "B7"])),
    st.builds(
        CellError,
        st.sampled_from(["#N/A", "#REF!", "#DIV/0!", ""]),
        st.text(max_size=10),
        st.sampled_from(["", "C9"]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.lists(CELLS, min_size=0, max_size=6).map(tuple), max_size=10))
def test_plan_never_raises_and_never_sends_a_formula_without_value(
    rows: list[tuple[object, ...]],
) -> None:
    headers = ["Ticket Number", "State", "Priority", "Assigned To", "Description", "Notes"]
    sheet = Sheet("t.xlsx", "Tickets", 1, headers, [SheetRow(n + 2, r) for n, r in enumerate(rows)])
    result = plan(sheet)
    for planned_row, values in zip(result.rows, rows, strict=True):
        sent = values[:5]  # Notes is not sent
        if any(isinstance(value, (FormulaWithoutValue, CellError)) for value in sent):
            assert not planned_row.is_valid
            assert any(
                "has no saved value" in p.message or "the error" in p.message
                for p in planned_row.problems
            )
        for problem in planned_row.problems:
            assert "could not be checked" not in problem.message
        # In a CSV it never reads as a formula (the workbook keeps it as quote-prefixed text).
        text = csv_text(safe_text(values[-1])) if values else None
        assert not (isinstance(text, str) and text[:1] in ("=", "+", "-", "@"))


def test_the_sheet_xml_is_read_the_same_in_small_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import batch_updater.sheet.xlsx_guard as sheet_module

    rows = HEADER_ROW
    for number in range(2, 60):
        state = (
            f'<c r="B{number}"><f>A{number}*2</f></c>'
            if number % 7 == 0
            else f'<c r="B{number}" t="e"><v>#N/A</v></c>'
            if number % 11 == 0
            else f'<c r="B{number}"><v>2</v></c>'
        )
        hidden = ' hidden="1"' if number % 5 == 0 else ""
        rows += (
            f'<row r="{number}"{hidden}>{text_cell(f"A{number}", f"INCA{number}")}{state}'
            f"{text_cell(f'C{number}', 'Low')}</row>"
        )
    path = xlsx_with_sheet_data(tmp_path / "t.xlsx", rows)
    whole = read(path)
    monkeypatch.setattr(sheet_module, "_XML_CHUNK", 97)  # cuts rows, tags and names apart
    pieces = read(path)
    assert pieces.rows == whole.rows and pieces.notices == whole.notices
    marked = {r.row_number: r.values[1] for r in whole.rows if not isinstance(r.values[1], int)}
    assert marked[14] == FormulaWithoutValue("A14*2", "B14")
    assert marked[22] == CellError("#N/A", "", "B22")
    assert len(marked) == 8 + 5  # 7, 14 ... 56 and 11, 22 ... 55
    assert whole.notices[0].startswith("Rows 5, 10, 15, 20, 25, 30, 35, 40, 45, 50 and 1 more")


def test_change_columns_with_headers_of_their_own_stop_a_live_run_before_anything_is_sent(
    tmp_path: Path, simulator
) -> None:
    from helpers import live_args, live_env, results_files

    (tmp_path / "t.csv").write_text(
        "Ticket Number,Target Status,Priority\nINCA0000001,Open,High\n", encoding="utf-8"
    )
    done = run_command(["t.csv", *live_args(simulator)], tmp_path, env=live_env(tmp_path / "home"))

    assert done.returncode == ExitStatus.USAGE
    lines = done.stderr.splitlines()
    assert lines[0].startswith('Error: t.csv: column B "Target Status" looks like a ticket field')
    assert lines[-2:] == ["columns:", '  "Target Status": State']
    assert simulator.requests == []
    assert results_files(tmp_path) == []
