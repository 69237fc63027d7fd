"""Tests of sheet.py: every format, exact Excel row numbers, sheet choice and every input error.

Workbooks and text files are written by the tests themselves (openpyxl, zipfile, bytes), so each
test shows what the file holds. Two binary fixtures come from tests/data/make_fixtures.py.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import hashlib
import io
import zipfile
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl.cell.cell import ERROR_CODES

from batch_updater.errors import InputError
from batch_updater.sheet import column_letter, file_sha256, read_sheet
from batch_updater.tickets import FormulaWithoutValue
from batch_updater.validate import is_header_row

DATA = Path(__file__).parent / "data"


def read(path: Path, sheet_name: str | None = None, **kwargs: object):
    return read_sheet(path, sheet_name, is_header_row=is_header_row, **kwargs)


def error_of(path: Path, sheet_name: str | None = None, **kwargs: object) -> InputError:
    with pytest.raises(InputError) as caught:
        read(path, sheet_name, **kwargs)
    return caught.value


def write_xlsx(
    path: Path, sheets: dict[str, dict[str, object]], hidden: tuple[str, ...] = ()
) -> Path:
    """A workbook with the given cells per sheet, e.g. {"Tickets": {"B3": "Ticket Number"}}."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, cells in sheets.items():
        sheet = book.create_sheet(title)
        for ref, value in cells.items():
            sheet[ref] = value
        if title in hidden:
            sheet.sheet_state = "hidden"
    book.save(path)
    return path


def table(top_left: str, rows: list[list[object]]) -> dict[str, object]:
    """Cells for rows laid out from top_left; None cells are left unwritten."""
    column = ord(top_left[0]) - 64
    row = int(top_left[1:])
    cells: dict[str, object] = {}
    for r, values in enumerate(rows):
        for c, value in enumerate(values):
            if value is not None:
                cells[f"{column_letter(column - 1 + c)}{row + r}"] = value
    return cells


def rows_of(sheet) -> list[tuple[int, tuple[object, ...]]]:
    return [(row.row_number, row.values) for row in sheet.rows]


# --- xlsx: values and row numbers --------------------------------------------------------------


def test_xlsx_values_are_plain_python(tmp_path: Path) -> None:
    when = datetime.datetime(2024, 3, 1, 14, 30)
    path = write_xlsx(
        tmp_path / "tickets.xlsx",
        {
            "Sheet1": table(
                "A1",
                [
                    ["Ticket Number", "State", "Priority", "Score", "Flag", "When", "Note"],
                    ["INCA0000001", 2.0, "High", 2.5, True, when, "  kept as written  "],
                    [12345, 3, " low ", -0.0, False, datetime.date(2024, 1, 2), "line1\nline2"],
                ],
            )
        },
    )
    sheet = read(path)
    assert sheet.sheet_name == "Sheet1"
    assert sheet.header_row == 1
    assert sheet.headers == ["Ticket Number", "State", "Priority", "Score", "Flag", "When", "Note"]
    assert sheet.notices == []
    [first, second] = sheet.rows
    assert first.values == ("INCA0000001", 2, "High", 2.5, True, when, "  kept as written  ")
    assert type(first.values[1]) is int and type(first.values[4]) is bool
    assert second.values[:5] == (12345, 3, " low ", 0, False)
    assert type(second.values[0]) is int
    # openpyxl stores a date as a datetime at midnight; calamine gives back what Excel holds.
    assert second.values[5] in (datetime.date(2024, 1, 2), datetime.datetime(2024, 1, 2))
    assert second.values[6] == "line1\nline2"


def test_exact_row_numbers_with_offset_table_and_blank_rows(tmp_path: Path) -> None:
    cells = {"A1": "Remediation changes, March"}  # a title above the table
    cells.update(
        table(
            "B3",
            [
                ["Ticket Number", "State", None, "Priority", None, "Notes"],
                ["INCA0000001", 2, None, "High", "x", None],
                [None] * 6,  # row 5 blank
                [None] * 6,  # row 6 blank
                ["INCA0000002", "Verified", None, "Low", None, "n"],
            ],
        )
    )
    cells["C12"] = None  # nothing below row 7 except formatting: trailing rows are dropped
    path = write_xlsx(tmp_path / "tickets.xlsx", {"Tickets": cells})
    sheet = read(path)
    assert sheet.header_row == 3
    # D is empty top to bottom: dropped; F has data under an empty header: named by its letter.
    assert sheet.headers == ["Ticket Number", "State", "Priority", "Column F", "Notes"]
    assert sheet.column_letters == ["B", "C", "E", "F", "G"]
    assert rows_of(sheet) == [
        (4, ("INCA0000001", 2, "High", "x", None)),
        (5, (None, None, None, None, None)),
        (6, (None, None, None, None, None)),
        (7, ("INCA0000002", "Verified", "Low", None, "n")),
    ]


def test_header_found_below_title_rows(tmp_path: Path) -> None:
    cells = {"A1": "Tickets to close", "A2": "Prepared by J. Smith", "C2": 2024}
    cells.update(table("A5", [["Ticket #", "Status"], ["INCA1", "Open"]]))
    sheet = read(write_xlsx(tmp_path / "t.xlsx", {"S": cells}))
    assert sheet.header_row == 5
    assert sheet.headers == ["Ticket #", "Status"]
    assert rows_of(sheet) == [(6, ("INCA1", "Open"))]


def test_header_texts_are_stripped_and_numbers_become_text(tmp_path: Path) -> None:
    cells = table("A1", [["  Ticket Number ", 2024, 1.5, True], ["INCA1", "a", "b", "c"]])
    sheet = read(write_xlsx(tmp_path / "t.xlsx", {"S": cells}))
    assert sheet.headers == ["Ticket Number", "2024", "1.5", "TRUE"]


def test_duplicate_headers_are_kept_as_written(tmp_path: Path) -> None:
    cells = table("A1", [["Ticket", "Priority", "Priority"], ["INCA1", "Low", "High"]])
    sheet = read(write_xlsx(tmp_path / "t.xlsx", {"S": cells}))
    assert sheet.headers == ["Ticket", "Priority", "Priority"]


def test_header_search_rows_bounds_the_search(tmp_path: Path) -> None:
    cells = table("A4", [["Ticket Number"], ["INCA1"]])
    path = write_xlsx(tmp_path / "t.xlsx", {"S": cells})
    assert read(path, header_search_rows=4).header_row == 4
    error = error_of(path, header_search_rows=3)
    assert (
        str(error) == 't.xlsx, sheet "S": no ticket-number column in the first 3 rows. '
        "The first 3 rows are empty."
    )


def test_formula_without_cached_value_is_marked(tmp_path: Path) -> None:
    # openpyxl saves formulas without a computed value; what Excel saves has one. calamine reads
    # such a cell as empty; the reader marks it, so that validation can refuse the row.
    cells = table("A1", [["Ticket Number", "Priority"], ["INCA1", "=1+1"]])
    sheet = read(write_xlsx(tmp_path / "t.xlsx", {"S": cells}))
    assert rows_of(sheet) == [(2, ("INCA1", FormulaWithoutValue("1+1", "B2")))]


def test_only_header_row_gives_no_rows(tmp_path: Path) -> None:
    sheet = read(write_xlsx(tmp_path / "t.xlsx", {"S": {"A1": "Ticket Number"}}))
    assert sheet.headers == ["Ticket Number"] and sheet.rows == []


# --- no header, no data, too many rows --------------------------------------------------------


def test_no_ticket_column_message(tmp_path: Path) -> None:
    cells = table("A1", [["Asset", "Notes"], ["srv01", "x"]])
    error = error_of(write_xlsx(tmp_path / "tickets.xlsx", {"Sheet1": cells}))
    assert str(error) == (
        'tickets.xlsx, sheet "Sheet1": no ticket-number column in the first 20 rows. '
        'The first non-empty row (row 1) has: "Asset", "Notes".'
    )
    assert error.tip == (
        'name the column "Ticket Number", or map your header in the config '
        '(columns: {"Your header": TicketNumber}).'
    )


def test_no_ticket_column_lists_at_most_15_headers(tmp_path: Path) -> None:
    cells = table("A2", [[f"H{i}" for i in range(1, 19)]])
    error = error_of(write_xlsx(tmp_path / "t.xlsx", {"S": cells}))
    listed = ", ".join(f'"H{i}"' for i in range(1, 16))
    assert str(error) == (
        f't.xlsx, sheet "S": no ticket-number column in the first 20 rows. '
        f"The first non-empty row (row 2) has: {listed} and 3 more."
    )


def test_no_ticket_column_when_data_starts_late(tmp_path: Path) -> None:
    cells = table("A30", [["Ticket Number"], ["INCA1"]])
    error = error_of(write_xlsx(tmp_path / "t.xlsx", {"S": cells}))
    assert (
        str(error) == 't.xlsx, sheet "S": no ticket-number column in the first 20 rows. '
        "The first 20 rows are empty."
    )


def test_empty_sheet_has_no_data(tmp_path: Path) -> None:
    error = error_of(write_xlsx(tmp_path / "t.xlsx", {"Sheet1": {}}))
    assert str(error) == 't.xlsx, sheet "Sheet1" has no data.'


def test_max_rows(tmp_path: Path) -> None:
    cells = table("A1", [["Ticket Number"], *[[f"INCA{i}"] for i in range(6)]])
    path = write_xlsx(tmp_path / "t.xlsx", {"S": cells})
    assert len(read(path, max_rows=6).rows) == 6
    error = error_of(path, max_rows=5)
    assert (
        str(error) == 't.xlsx, sheet "S": 6 data rows, more than the limit of 5 data rows '
        "(setting max_rows)."
    )
    assert error.tip == "split the file, or raise max_rows in the config if the rows are meant."


def test_max_rows_counts_rows_beyond_what_is_loaded(tmp_path: Path) -> None:
    # The reader loads header_search_rows + max_rows + 1 rows at most; data further down counts.
    cells = table("A1", [["Ticket Number"], ["INCA1"]])
    cells["A40"] = "INCA2"
    error = error_of(
        write_xlsx(tmp_path / "t.xlsx", {"S": cells}), max_rows=5, header_search_rows=3
    )
    assert (
        str(error) == 't.xlsx, sheet "S": data down to row 40, more than the limit of 5 data rows '
        "(setting max_rows)."
    )


def test_trailing_blank_rows_do_not_count_against_max_rows(tmp_path: Path) -> None:
    cells = table("A1", [["Ticket Number", "Note"], ["INCA1", "x"]])
    cells["B9"] = ""  # an empty string cell far below
    sheet = read(write_xlsx(tmp_path / "t.xlsx", {"S": cells}), max_rows=1)
    assert rows_of(sheet) == [(2, ("INCA1", "x"))]


# --- sheet choice ----------------------------------------------------------------------------


def ticket_table() -> dict[str, object]:
    return table("A1", [["Ticket Number", "Priority"], ["INCA1", "Low"]])


def test_only_sheet_is_used_without_notice(tmp_path: Path) -> None:
    sheet = read(write_xlsx(tmp_path / "t.xlsx", {"Whatever": ticket_table()}))
    assert sheet.sheet_name == "Whatever" and sheet.notices == []


def test_sheet_named_like_tickets_is_chosen(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "t.xlsx",
        {"Readme": {"A1": "Read me"}, "Open tickets": ticket_table(), "Lists": {"A1": "Low"}},
    )
    sheet = read(path)
    assert sheet.sheet_name == "Open tickets"
    assert sheet.notices == [
        'Using sheet "Open tickets" (named like Tickets; the workbook has 3 sheets: '
        "Readme, Open tickets, Lists)."
    ]


def test_hidden_sheet_named_like_tickets_is_not_chosen(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "t.xlsx",
        {"Tickets": ticket_table(), "Data": ticket_table()},
        hidden=("Tickets",),
    )
    sheet = read(path)
    assert sheet.sheet_name == "Data"
    assert sheet.notices == [
        'Using sheet "Data" (the first visible sheet; the workbook has 2 sheets: '
        "Tickets (hidden), Data)."
    ]


def test_first_sheet_with_a_ticket_column_wins_over_a_readme(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "t.xlsx",
        {"Readme": {"A1": "How to"}, "Data": ticket_table(), "More": ticket_table()},
    )
    sheet = read(path)
    assert sheet.sheet_name == "Data"
    assert sheet.notices == [
        'Using sheet "Data" (the first sheet with a ticket-number column; the workbook has '
        "3 sheets: Readme, Data, More)."
    ]


def test_no_sheet_has_a_ticket_column(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "t.xlsx", {"Readme": {"A1": "How to"}, "Data": {"A1": "Asset"}})
    error = error_of(path)
    assert str(error) == (
        't.xlsx, sheet "Readme": no ticket-number column in the first 20 rows. '
        'The first non-empty row (row 1) has: "How to". No other sheet has one either (Data).'
    )


def test_sheet_asked_by_name_case_insensitive(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "t.xlsx", {"Tickets": ticket_table(), "Changes": ticket_table()})
    sheet = read(path, "  changes")
    assert sheet.sheet_name == "Changes"
    assert sheet.notices == [
        'Using sheet "Changes" (as asked; the workbook has 2 sheets: Tickets, Changes).'
    ]


def test_hidden_sheet_asked_by_name_is_read_with_a_notice(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "t.xlsx", {"Tickets": {}, "Old": ticket_table()}, hidden=("Old",))
    sheet = read(path, "Old")
    assert sheet.sheet_name == "Old"
    assert sheet.notices == [
        'Using sheet "Old" (as asked; it is hidden in the workbook; the workbook has 2 sheets: '
        "Tickets, Old (hidden))."
    ]


def test_unknown_sheet_name(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "t.xlsx", {"Readme": {}, "Tickets": ticket_table(), "Lists": {}})
    error = error_of(path, "Tikets")
    assert (
        str(error)
        == 't.xlsx: no sheet named "Tikets"; the workbook has 3 sheets: Readme, Tickets, Lists.'
    )
    assert error.tip == 'did you mean "Tickets"?'
    assert error_of(path, "Zzz").tip is None


# --- merged cells ----------------------------------------------------------------------------


def test_merged_cells_in_the_table_give_one_notice(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Tickets"
    sheet["A1"] = "A title over the table"
    sheet.merge_cells("A1:C1")  # above the header: not reported
    for ref, value in table(
        "A3", [["Ticket Number", "Priority", "Note"], ["INCA1", "Low", None]]
    ).items():
        sheet[ref] = value
    sheet["A5"] = "INCA2"
    sheet["B5"] = "High"
    sheet.merge_cells("B5:B6")
    sheet["A6"] = "INCA3"
    sheet.merge_cells("C4:C5")
    book.save(tmp_path / "m.xlsx")
    read_back = read(tmp_path / "m.xlsx")
    assert read_back.notices == [
        "Merged cells in rows 4-6 (C4:C5, B5:B6): only the first cell of each merge holds a "
        "value; unmerge them in Excel if that is not what you meant."
    ]
    assert rows_of(read_back)[-1] == (6, ("INCA3", None, None))


# --- other workbook formats --------------------------------------------------------------------


def test_xls_fixture() -> None:
    sheet = read(DATA / "tickets.xls")
    assert sheet.sheet_name == "Tickets" and sheet.header_row == 3
    assert sheet.headers == ["Ticket Number", "State", "Priority", "Due"]
    assert sheet.column_letters == ["B", "C", "D", "E"]
    assert rows_of(sheet) == [
        (4, ("INCA0000001", 2, "High", datetime.date(2024, 5, 31))),
        (5, (None, None, None, None)),
        (6, ("INCA0000002", "Verified", None, None)),
        (7, ("INCA0000003", None, "Low", None)),
    ]
    assert sheet.notices == [
        'Using sheet "Tickets" (named like Tickets; the workbook has 2 sheets: Tickets, Lists).',
        "Merged cells in rows 7-8 (B7:B8): only the first cell of each merge holds a value; "
        "unmerge them in Excel if that is not what you meant.",
    ]


def _ods_cell(value: object) -> str:
    if value is None:
        return "<table:table-cell/>"
    if isinstance(value, (int, float)):
        return (
            f'<table:table-cell office:value-type="float" office:value="{value}">'
            f"<text:p>{value}</text:p></table:table-cell>"
        )
    return (
        f'<table:table-cell office:value-type="string"><text:p>{value}</text:p></table:table-cell>'
    )


def _ods_row(values: list[object], repeated: int = 1) -> str:
    attribute = f' table:number-rows-repeated="{repeated}"' if repeated > 1 else ""
    return f"<table:table-row{attribute}>" + "".join(map(_ods_cell, values)) + "</table:table-row>"


def write_ods(path: Path, body: str) -> Path:
    """A minimal OpenDocument spreadsheet with one table named Tickets."""
    content = (
        '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        f'<office:body><office:spreadsheet><table:table table:name="Tickets">{body}'
        "</table:table></office:spreadsheet></office:body></office:document-content>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("content.xml", content)
        archive.writestr(
            "META-INF/manifest.xml",
            '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
            'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
            'manifest:version="1.2">'
            '<manifest:file-entry manifest:full-path="/" '
            'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
            '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
            "</manifest:manifest>",
        )
    return path


def test_ods_with_repeated_blank_rows_keeps_row_numbers(tmp_path: Path) -> None:
    body = (
        _ods_row([None], repeated=2)
        + _ods_row([None, "Ticket Number", "State", "Priority"])
        + _ods_row([None, "INCA1", 2, "Low"])
        + _ods_row([None], repeated=3)
        + _ods_row([None, "INCA2", "Verified", "High"])
    )
    sheet = read(write_ods(tmp_path / "t.ods", body))
    assert sheet.sheet_name == "Tickets" and sheet.header_row == 3
    assert sheet.column_letters == ["B", "C", "D"]
    assert rows_of(sheet) == [
        (4, ("INCA1", 2, "Low")),
        (5, (None, None, None)),
        (6, (None, None, None)),
        (7, (None, None, None)),
        (8, ("INCA2", "Verified", "High")),
    ]


def test_xlsx_with_an_xls_name_is_read_by_content(tmp_path: Path) -> None:
    write_xlsx(tmp_path / "real.xlsx", {"S": ticket_table()})
    (tmp_path / "export.xls").write_bytes((tmp_path / "real.xlsx").read_bytes())
    sheet = read(tmp_path / "export.xls")
    assert rows_of(sheet) == [(2, ("INCA1", "Low"))]
    assert sheet.notices == [
        "export.xls is really an .xlsx workbook despite its name; read it as one."
    ]


def test_workbook_with_a_csv_name_is_read_as_a_workbook(tmp_path: Path) -> None:
    write_xlsx(tmp_path / "real.xlsx", {"S": ticket_table()})
    (tmp_path / "tickets.csv").write_bytes((tmp_path / "real.xlsx").read_bytes())
    sheet = read(tmp_path / "tickets.csv")
    assert sheet.sheet_name == "S"
    assert sheet.notices == [
        "tickets.csv is really an .xlsx workbook despite its name; read it as one."
    ]


def test_xls_with_an_xlsx_name_is_read_by_content(tmp_path: Path) -> None:
    (tmp_path / "old.xlsx").write_bytes((DATA / "tickets.xls").read_bytes())
    sheet = read(tmp_path / "old.xlsx")
    assert sheet.header_row == 3
    assert (
        "old.xlsx is really an .xls (Excel 97-2003) workbook despite its name; read it as one."
        in sheet.notices
    )


# --- text files ------------------------------------------------------------------------------

TEXT_ROWS = [
    ["Ticket Number", "State", "Priority", "Description"],
    ["INCA0000001", "2", "High", "Patched; rebooted, verified"],
    ["", "", "", ""],
    ["INCA0000002", "Verified", "Low", "Café – naïve"],
]


def delimited(rows: list[list[str]], delimiter: str) -> str:
    def quote(cell: str) -> str:
        if any(ch in cell for ch in (delimiter, '"', "\n", "\r")):
            return '"' + cell.replace('"', '""') + '"'
        return cell

    return "".join(delimiter.join(quote(c) for c in row) + "\r\n" for row in rows)


EXPECTED_TEXT_ROWS = [
    (2, ("INCA0000001", "2", "High", "Patched; rebooted, verified")),
    (3, (None, None, None, None)),
    (4, ("INCA0000002", "Verified", "Low", "Café – naïve")),
]


@pytest.mark.parametrize(
    ("name", "encoding", "delimiter"),
    [
        ("utf8-comma.csv", "utf-8", ","),
        ("utf8-semicolon.csv", "utf-8", ";"),
        ("utf8-tab.csv", "utf-8", "\t"),
        ("bom-comma.csv", "utf-8-sig", ","),
        ("bom-semicolon.csv", "utf-8-sig", ";"),
        ("unicode-text.txt", "utf-16", "\t"),  # Excel's "Unicode Text": UTF-16 LE, BOM, tabs
        ("utf16be.csv", "utf-16-be-bom", ";"),
        ("tabs.tsv", "utf-8", "\t"),
    ],
)
def test_text_encodings_and_delimiters(
    tmp_path: Path, name: str, encoding: str, delimiter: str
) -> None:
    text = delimited(TEXT_ROWS, delimiter)
    if encoding == "utf-16-be-bom":
        data = codecs.BOM_UTF16_BE + text.encode("utf-16-be")
    else:
        data = text.encode(encoding)
    sheet = read(_write(tmp_path / name, data))
    assert sheet.sheet_name == ""
    assert sheet.headers == TEXT_ROWS[0]
    assert rows_of(sheet) == EXPECTED_TEXT_ROWS
    assert sheet.notices == []


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_cp1252_text_is_read_with_a_notice(tmp_path: Path) -> None:
    path = _write(tmp_path / "ansi.csv", delimited(TEXT_ROWS, ";").encode("cp1252"))
    sheet = read(path)
    assert rows_of(sheet) == EXPECTED_TEXT_ROWS
    assert sheet.notices == [
        "ansi.csv is not UTF-8; read it as Windows-1252 (Western European). If accented letters "
        'look wrong in the results, save it from Excel as "CSV UTF-8 (Comma delimited)".'
    ]


def test_text_cells_stay_strings_exactly_as_written(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "t.csv",
        b'Ticket Number,State,Note\r\n  INCA1 ,2.0,"a ""quoted""\r\nline"\r\nINCA2,007,\r\n',
    )
    sheet = read(path)
    assert rows_of(sheet) == [
        (2, ("  INCA1 ", "2.0", 'a "quoted"\r\nline')),
        # A quoted line break keeps a record on one spreadsheet row, as Excel shows it.
        (3, ("INCA2", "007", None)),
    ]


def test_text_title_lines_blank_lines_and_ragged_rows(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "t.csv",
        b"Changes for March\n\nTicket Number;Priority\nINCA1;Low;extra\n\n\nINCA2\n\n\n",
    )
    sheet = read(path)
    assert sheet.header_row == 3
    # A field past the header's last name is no column of its own in a text file: the row
    # says it has one field too many (validation makes it Invalid).
    assert sheet.headers == ["Ticket Number", "Priority"]
    assert sheet.column_letters == ["A", "B"]
    assert rows_of(sheet) == [
        (4, ("INCA1", "Low")),
        (5, (None, None)),
        (6, (None, None)),
        (7, ("INCA2", None)),
    ]
    assert [row.extra_fields for row in sheet.rows] == [1, 0, 0, 0]


@pytest.mark.parametrize(
    ("line", "extra"),
    [
        (b"INCA1,2,High,Patched, rebooted\r\n", 1),  # an unquoted comma in the description
        (b'INCA1,2,High,"Patched, rebooted"\r\n', 0),  # quoted: one field
        (b"INCA1,2,High,Patched,\r\n", 0),  # a trailing empty field is nothing more
        (b"INCA1,2,High,a,b,,c\r\n", 3),  # counted to the last filled field
        (b"INCA1,2,High\r\n", 0),  # fewer fields than the header are empty cells
    ],
)
def test_text_rows_with_more_fields_than_the_header_say_so(
    tmp_path: Path, line: bytes, extra: int
) -> None:
    path = _write(tmp_path / "t.csv", b"Ticket Number,State,Priority,Description\r\n" + line)
    sheet = read(path)
    assert sheet.headers == ["Ticket Number", "State", "Priority", "Description"]
    assert [row.extra_fields for row in sheet.rows] == [extra]


def test_a_workbook_keeps_values_under_no_header_as_a_column_of_their_own(tmp_path: Path) -> None:
    # In a workbook, nothing shifts: a value in a column without a header is kept as context.
    book = openpyxl.Workbook()
    book.active.append(["Ticket Number", "Priority"])
    book.active.append(["INCA1", "Low", "a note"])
    book.save(tmp_path / "t.xlsx")
    sheet = read(tmp_path / "t.xlsx")
    assert sheet.headers == ["Ticket Number", "Priority", "Column C"]
    assert [row.extra_fields for row in sheet.rows] == [0]


def test_delimiter_is_chosen_by_the_header_when_sniffing_is_fooled(tmp_path: Path) -> None:
    # Many commas in the data, semicolons between the columns.
    lines = ["Ticket Number;Description"] + [f"INCA{i};a, b, c, d" for i in range(5)]
    sheet = read(_write(tmp_path / "t.csv", "\n".join(lines).encode()))
    assert sheet.headers == ["Ticket Number", "Description"]
    assert sheet.rows[0].values == ("INCA0", "a, b, c, d")


def test_single_column_text(tmp_path: Path) -> None:
    sheet = read(_write(tmp_path / "t.csv", b"Ticket Number\nINCA1\nINCA2\n"))
    assert rows_of(sheet) == [(2, ("INCA1",)), (3, ("INCA2",))]


def test_text_with_nul_bytes(tmp_path: Path) -> None:
    # UTF-16 without a BOM is the usual culprit.
    path = _write(tmp_path / "t.csv", "Ticket Number\tPriority\r\n".encode("utf-16-le"))
    error = error_of(path)
    assert str(error) == (
        "t.csv does not look like a text file (it contains NUL bytes); if it is "
        '"Unicode Text" from Excel, save it from Excel as "CSV UTF-8 (Comma delimited)".'
    )


def test_text_neither_utf8_nor_cp1252(tmp_path: Path) -> None:
    error = error_of(_write(tmp_path / "t.csv", b"Ticket Number\n\x81\x8d\n"))
    assert str(error) == (
        "t.csv is neither UTF-8 nor Windows-1252 text (byte 14); "
        'save it from Excel as "CSV UTF-8 (Comma delimited)".'
    )


def test_text_with_a_quote_never_closed(tmp_path: Path) -> None:
    big = "x" * 140_000
    error = error_of(_write(tmp_path / "t.csv", f'Ticket Number,Note\nINCA1,"{big}\n'.encode()))
    assert str(error) == (
        't.csv, row 2: a cell is longer than 131,072 characters; this usually means a quote (") '
        "is opened and never closed."
    )


def test_empty_text_file_has_no_data(tmp_path: Path) -> None:
    assert (
        str(error_of(_write(tmp_path / "t.csv", b"\xef\xbb\xbf\r\n\r\n"))) == "t.csv has no data."
    )


def test_text_without_ticket_column(tmp_path: Path) -> None:
    error = error_of(_write(tmp_path / "tickets.csv", b"Asset;Notes\nsrv;x\n"))
    assert str(error) == (
        "tickets.csv: no ticket-number column in the first 20 rows. "
        'The first non-empty row (row 1) has: "Asset", "Notes".'
    )


# --- files that cannot be read ---------------------------------------------------------------


def test_file_not_found(tmp_path: Path) -> None:
    path = tmp_path / "tickets.xlsx"
    assert str(error_of(path)) == f"tickets.xlsx: file not found ({path})."


def test_a_folder_is_not_a_file(tmp_path: Path) -> None:
    folder = tmp_path / "tickets.xlsx"
    folder.mkdir()
    assert str(error_of(folder)) == f"tickets.xlsx is a folder, not a file ({folder})."


def test_file_open_in_another_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_xlsx(tmp_path / "tickets.xlsx", {"S": ticket_table()})

    def locked(self: Path, *args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied", str(self))

    # As root, chmod does not stop reads; Windows' lock on an open workbook looks like this.
    monkeypatch.setattr(Path, "open", locked)
    assert str(error_of(path)) == (
        "tickets.xlsx is open in another program or not readable; close it in Excel and try again."
    )


def test_empty_file(tmp_path: Path) -> None:
    error = error_of(_write(tmp_path / "tickets.xlsx", b""))
    assert str(error) == "tickets.xlsx is empty (0 bytes)."
    assert str(error_of(_write(tmp_path / "tickets.csv", b""))) == "tickets.csv is empty (0 bytes)."


@pytest.mark.parametrize("name", ["tickets.pdf", "tickets.xlsb", "tickets"])
def test_unsupported_file_type(tmp_path: Path, name: str) -> None:
    error = error_of(_write(tmp_path / name, b"whatever"))
    suffix = f'"{Path(name).suffix}"' if Path(name).suffix else "(none)"
    assert str(error) == (
        f"{name}: unsupported file type {suffix}; use one of "
        ".xlsx, .xlsm, .xls, .ods, .csv, .txt, .tsv."
    )
    assert error.tip == 'in Excel, use File > Save As and choose "Excel Workbook (.xlsx)".'


def test_csv_renamed_xlsx(tmp_path: Path) -> None:
    error = error_of(_write(tmp_path / "tickets.xlsx", b"Ticket Number,Priority\nINCA1,Low\n"))
    assert str(error) == (
        "tickets.xlsx looks like text (CSV), not an Excel workbook; "
        "rename it to tickets.csv and run again."
    )


def test_html_saved_as_xls(tmp_path: Path) -> None:
    error = error_of(
        _write(tmp_path / "export.xls", b"<html><body><table><tr><td>x</td></tr></table>")
    )
    assert str(error) == (
        "export.xls is a web page (HTML) with an Excel name, not a workbook; "
        'open it in Excel and save it as an "Excel Workbook (.xlsx)".'
    )


def test_binary_garbage(tmp_path: Path) -> None:
    error = error_of(_write(tmp_path / "tickets.xlsx", bytes(range(256)) * 8))
    assert str(error) == (
        "tickets.xlsx is not a spreadsheet (its content is neither .xlsx, .xls nor .ods); "
        'open it in Excel and save it as an "Excel Workbook (.xlsx)".'
    )


def test_truncated_xlsx(tmp_path: Path) -> None:
    write_xlsx(tmp_path / "full.xlsx", {"S": ticket_table()})
    data = (tmp_path / "full.xlsx").read_bytes()
    error = error_of(_write(tmp_path / "tickets.xlsx", data[: len(data) // 2]))
    assert str(error) == (
        "tickets.xlsx is damaged: it starts like an Excel workbook but is not a complete one "
        "(File is not a zip file); open it in Excel and save it again, or export it again."
    )


def test_zip_that_is_not_a_workbook(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "report.xlsx", "w") as archive:
        archive.writestr("word/document.xml", "<w/>")
    with zipfile.ZipFile(tmp_path / "bundle.xlsx", "w") as archive:
        archive.writestr("a.txt", "a")
    assert str(error_of(tmp_path / "report.xlsx")) == (
        "report.xlsx is a Word document, not a workbook; "
        'open it in Excel and save it as an "Excel Workbook (.xlsx)".'
    )
    assert str(error_of(tmp_path / "bundle.xlsx")).startswith(
        "bundle.xlsx is a zip archive, not a workbook;"
    )


def test_workbook_with_broken_content(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "tickets.xlsx", "w") as archive:
        archive.writestr("xl/workbook.xml", "<not really")
    error = error_of(tmp_path / "tickets.xlsx")
    assert str(error).startswith("tickets.xlsx could not be read as a workbook (")
    assert str(error).endswith("); open it in Excel and save it again, or export it again.")
    assert error.__cause__ is not None


PASSWORD_MESSAGE = (
    "is password-protected; open it in Excel, remove the password "
    "(File > Info > Protect Workbook) and save a copy."
)


@pytest.mark.parametrize("name", ["tickets.xlsx", "tickets.xls", "tickets.csv"])
def test_password_protected_workbook(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path / name, (DATA / "password.xlsx").read_bytes())
    assert str(error_of(path)) == f"{name} {PASSWORD_MESSAGE}"


def test_password_detection_finds_the_stream_anywhere(tmp_path: Path) -> None:
    filler = b"\0" * (1024 * 1024 - 5)  # the stream's name straddles the reader's chunk boundary
    data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + filler + "EncryptedPackage".encode("utf-16-le")
    assert str(error_of(_write(tmp_path / "t.xlsx", data))) == f"t.xlsx {PASSWORD_MESSAGE}"


def test_ole_file_that_is_not_a_workbook(tmp_path: Path) -> None:
    data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600
    error = error_of(_write(tmp_path / "t.xls", data))
    assert str(error).startswith("t.xls could not be read as a workbook (")


# --- hashing ---------------------------------------------------------------------------------


def test_file_sha256(tmp_path: Path) -> None:
    data = bytes(range(256)) * 10_000
    path = _write(tmp_path / "t.xlsx", data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    with pytest.raises(InputError, match=r"^missing\.xlsx: file not found"):
        file_sha256(tmp_path / "missing.xlsx")


def test_column_letter() -> None:
    assert [column_letter(i) for i in (0, 1, 25, 26, 27, 51, 52, 701, 702)] == [
        "A",
        "B",
        "Z",
        "AA",
        "AB",
        "AZ",
        "BA",
        "ZZ",
        "AAA",
    ]


# --- properties ------------------------------------------------------------------------------


HEADER = ["Ticket Number", "Priority", "Note"]
# Text Excel and csv can both hold: no NUL, no lone surrogates.
text_cells = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)


def expected_rows(
    first_row: int, rows: list[list[str] | None]
) -> list[tuple[int, tuple[object, ...]]]:
    expected = [
        (
            first_row + i,
            tuple(None if cell in ("", None) else cell for cell in (values or [None] * 3)),
        )
        for i, values in enumerate(rows)
    ]
    while expected and all(v is None for v in expected[-1][1]):
        expected.pop()  # trailing blank rows are dropped
    return expected


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.one_of(st.none(), st.lists(text_cells, min_size=3, max_size=3)), max_size=8),
    delimiter=st.sampled_from([",", ";", "\t"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
    title_lines=st.integers(min_value=0, max_value=3),
)
def test_text_round_trip_keeps_rows_and_values(
    tmp_path: Path, rows: list[list[str] | None], delimiter: str, encoding: str, title_lines: int
) -> None:
    out = io.StringIO()
    out.write("Exported tickets\r\n" * title_lines)
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerow(HEADER)
    for values in rows:
        writer.writerow(values if values is not None else ["", "", ""])
    path = _write(tmp_path / "round.csv", out.getvalue().encode(encoding))
    sheet = read(path)
    assert sheet.header_row == title_lines + 1
    assert sheet.headers == HEADER
    assert rows_of(sheet) == expected_rows(title_lines + 2, rows)


xlsx_cells = st.one_of(
    st.none(),
    st.integers(min_value=-(10**6), max_value=10**6),
    # Eighths are exact in binary and in openpyxl's decimal text (it rounds to 15 digits).
    st.integers(min_value=-(10**6), max_value=10**6).map(lambda n: n / 8),
    st.booleans(),
    st.text(
        st.characters(min_codepoint=32, max_codepoint=0x2FFF, blacklist_categories=("Cs",)),
        max_size=10,
        # openpyxl stores "=..." as a formula and an error code ("#REF!", "#N/A"...) as an error
        # cell, which the reader rightly gives back as a CellError, not as text.
    ).filter(lambda t: not t.startswith("=") and t not in ERROR_CODES),
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    top=st.integers(min_value=1, max_value=6),
    left=st.integers(min_value=0, max_value=4),
    rows=st.lists(st.one_of(st.none(), st.lists(xlsx_cells, min_size=3, max_size=3)), max_size=8),
)
def test_xlsx_row_numbers_are_excels(
    tmp_path: Path, top: int, left: int, rows: list[list[object] | None]
) -> None:
    book = openpyxl.Workbook()
    ws = book.active
    for c, header in enumerate(HEADER):
        ws.cell(row=top, column=left + 1 + c, value=header)
    for i, values in enumerate(rows):
        for c, value in enumerate(values or []):
            if value is not None:
                ws.cell(row=top + 1 + i, column=left + 1 + c, value=value)
    path = tmp_path / "round.xlsx"
    book.save(path)
    sheet = read(path)
    assert sheet.header_row == top
    assert sheet.column_letters == [column_letter(left + c) for c in range(3)]

    def plain(value: object) -> object:
        if value == "" or value is None:
            return None
        if type(value) is float and value.is_integer():
            return int(value)
        return value

    expected = [
        (top + 1 + i, tuple(plain(v) for v in (values or [None] * 3)))
        for i, values in enumerate(rows)
    ]
    while expected and all(v is None for v in expected[-1][1]):
        expected.pop()
    assert rows_of(sheet) == expected


def test_huge_numbers_stay_numbers_and_come_out_as_numbers(tmp_path: Path) -> None:
    from batch_updater.report import write_results
    from batch_updater.tickets import Outcome, RowResult, RunInfo

    path = write_xlsx(
        tmp_path / "tickets.xlsx",
        {
            "Sheet1": table(
                "A1", [["Ticket Number", "Size", "Count"], ["INCA0000001", 1e308, 2.0**53]]
            )
        },
    )
    sheet = read(path)
    (row,) = sheet.rows
    assert row.values[1] == 1e308 and type(row.values[1]) is float  # not a 309-digit integer
    assert row.values[2] == 2**53 and type(row.values[2]) is int
    out = tmp_path / "out.xlsx"
    run = RunInfo(
        str(path),
        "ab" * 32,
        "Sheet1",
        "0.1.0",
        "me",
        datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc),
    )
    write_results(out, sheet, [RowResult(2, Outcome.SKIPPED)], run)
    (written,) = read(out, "Results").rows
    assert written.values[1] == 1e308 and type(written.values[1]) is float
