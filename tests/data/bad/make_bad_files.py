"""Write the bad-input corpus of tests/test_bad_input.py into this folder.

Every file here is made by this script, from the project's own dependencies (openpyxl) and the
standard library, so that anyone can see how each one was made and make them again:

    python tests/data/bad/make_bad_files.py            # rewrite the files beside this script
    python tests/data/bad/make_bad_files.py OUT_DIR    # write them somewhere else

The output is reproducible: the same script writes the same bytes (workbooks get fixed
timestamps, random bytes come from a seeded generator). Two files start from the fixtures one
folder up: password.xlsx (a copy) and tickets.xls (damaged on purpose in two ways). Where
openpyxl cannot write what a case needs (a formula with a saved value, a damaged count), the
XML inside the saved workbook is edited.

What each file holds, and what the tool must say about it, is in tests/test_bad_input.py.
"""

from __future__ import annotations

import datetime
import io
import random
import re
import struct
import sys
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import openpyxl

HERE = Path(__file__).resolve().parent
DATA = HERE.parent
HEADERS = ["Ticket Number", "State", "Priority", "Assigned To", "Description"]
# Every zip member gets this time, and docProps/core.xml this date, so that bytes repeat.
FIXED_ZIP_TIME = (2024, 1, 1, 0, 0, 0)
FIXED_DATE = "2024-01-01T00:00:00Z"


# --- building blocks ----------------------------------------------------------------------------


def normalized(data: bytes, edits: dict[str, Callable[[str], str]] | None = None) -> bytes:
    """The zip `data` rewritten with fixed timestamps, and each member in `edits` edited."""
    edits = dict(edits or {})
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for name in source.namelist():
            content = source.read(name)
            if name == "docProps/core.xml":
                text = content.decode("utf-8")
                text = re.sub(
                    r"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:)",
                    rf"\g<1>{FIXED_DATE}\g<3>",
                    text,
                )
                content = text.encode("utf-8")
            if name in edits:
                content = edits.pop(name)(content.decode("utf-8")).encode("utf-8")
            info = zipfile.ZipInfo(name, date_time=FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, content)
    if edits:
        raise ValueError(f"no such member to edit: {sorted(edits)}")
    return out.getvalue()


def workbook(
    rows: Iterable[Sequence[object]],
    *,
    headers: Sequence[object] = HEADERS,
    title: str = "Tickets",
    edits: dict[str, Callable[[str], str]] | None = None,
    prepare: Callable[[openpyxl.Workbook], None] | None = None,
) -> bytes:
    """An .xlsx: the header on row 1, then the rows; text stays text, even if it starts with "=".

    A value given as Formula("A1*2") is written as a formula (without a saved value, as
    openpyxl always writes them).
    """
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = title
    kinds: dict[tuple[int, int], str] = {}
    for number, line in enumerate([headers, *rows], start=1):
        values = []
        for column, value in enumerate(line, start=1):
            if isinstance(value, Formula):
                kinds[(number, column)] = "f"
                value = "=" + value.text
            elif isinstance(value, ErrorValue):
                kinds[(number, column)] = "e"
                value = value.error
            values.append(None if value == "" else value)
        sheet.append(values)
    for row in sheet.iter_rows():
        for cell in row:
            if (cell.row, cell.column) in kinds:
                cell.data_type = kinds[(cell.row, cell.column)]
            elif isinstance(cell.value, str):
                cell.data_type = "s"
    if prepare is not None:
        prepare(book)
    raw = io.BytesIO()
    book.save(raw)
    return normalized(raw.getvalue(), edits)


class Formula:
    """A formula cell for workbook(); openpyxl saves it without a value."""

    def __init__(self, text: str) -> None:
        self.text = text


class ErrorValue:
    """An error value (#N/A, #REF! ...) for workbook(), stored as Excel stores one."""

    def __init__(self, error: str) -> None:
        self.error = error


def seeded_bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def garbage(seed: int, size: int = 2048) -> bytes:
    """Random bytes that are neither text nor any workbook's signature."""
    data = bytearray(seeded_bytes(seed, size))
    data[0] = 0x00  # never a zip (PK), OLE2 (D0 CF), BOM or "<" by chance
    return bytes(data)


def csv_bytes(rows: Iterable[Sequence[str]], encoding: str = "utf-8") -> bytes:
    return "".join(",".join(row) + "\r\n" for row in rows).encode(encoding)


def patched(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


# --- the cases ----------------------------------------------------------------------------------


def header_only() -> bytes:
    return workbook([])


def no_ticket_column() -> bytes:
    return workbook([["srv01", 2, "High"]], headers=["Asset", "State", "Priority"])


def csv_renamed_xlsx() -> bytes:
    return csv_bytes([["Ticket Number", "State", "Priority"], ["INCA0000001", "2", "High"]])


def not_a_zip() -> bytes:
    return b"PK\x03\x04" + seeded_bytes(4, 2000)


def word_document() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, text in (
            ("[Content_Types].xml", "<Types/>"),
            ("word/document.xml", "<w:document/>"),
        ):
            archive.writestr(zipfile.ZipInfo(name, date_time=FIXED_ZIP_TIME), text)
    return out.getvalue()


def web_page() -> bytes:
    return (
        b"<!DOCTYPE html><html><head><title>Tickets</title></head><body><table>"
        b"<tr><td>Ticket Number</td><td>Priority</td></tr>"
        b"<tr><td>INCA0000001</td><td>High</td></tr></table></body></html>"
    )


def utf16_without_bom() -> bytes:
    # Excel's "Unicode Text" with its byte-order mark stripped: every other byte is NUL.
    return "Ticket Number\tPriority\r\nINCA0000001\tHigh\r\n".encode("utf-16-le")


def nul_in_text() -> bytes:
    return b"Ticket Number,Priority\r\nINCA0000001,Hi\x00gh\r\n"


def mixed_encoding() -> bytes:
    head = csv_bytes(
        [
            ["Ticket Number", "State", "Priority", "Description"],
            ["INCA0000001", "2", "High", "Café crème brûlée"],
        ]
    )
    return head + csv_bytes([["INCA0000002", "3", "Low", "Zürich"]], "cp1252")


def wrong_encoding() -> bytes:
    return b"Ticket Number,Priority\r\nINCA0000001,\x81\x8d\r\n"


def utf8_bom() -> bytes:
    return b"\xef\xbb\xbf" + csv_bytes(
        [
            ["Ticket Number", "State", "Priority", "Description"],
            ["INCA0000001", "2", "High", "Café"],
        ]
    )


def utf16_bom() -> bytes:
    text = "Ticket Number\tState\tPriority\r\nINCA0000001\tVerified\tLow\r\n"
    return text.encode("utf-16")  # with its BOM, as Excel's "Unicode Text" is


def cp1252() -> bytes:
    return csv_bytes(
        [
            ["Ticket Number", "State", "Priority", "Description"],
            ["INCA0000001", "2", "High", "Café – naïve"],
        ],
        "cp1252",
    )


def quote_never_closed() -> bytes:
    return b'Ticket Number,Priority,Description\r\nINCA0000001,High,"' + b"x" * 140_000 + b"\r\n"


def long_line() -> bytes:
    return csv_bytes(
        [
            ["Ticket Number", "State", "Priority", "Description"],
            ["INCA0000001", "2", "High", "y" * 20_000],
            ["INCA0000002", "3", "Low", "short"],
        ]
    )


def long_cell() -> bytes:
    # 32,767 characters: the most an Excel cell holds.
    return workbook([["INCA0000001", 2, "High", "", "z" * 32_767], ["INCA0000002", 3, "Low"]])


def too_many_rows() -> bytes:
    return workbook([[f"INCA{n:07d}", 2, "High"] for n in range(1, 7)])


def merged_cells() -> bytes:
    def merge(book: openpyxl.Workbook) -> None:
        book.active.merge_cells("C2:C3")

    return workbook(
        [["INCA0000001", 2, "High"], ["INCA0000002", 3, ""], ["INCA0000003", 5, "Low"]],
        prepare=merge,
    )


def formulas() -> bytes:
    rows = [
        ["INCA0000001", Formula("1+1"), "High", "", "", "saved"],  # saved value 2, added below
        ["INCA0000002", Formula("A1*2"), "High", "", "", ""],
        ["INCA0000003", 3, "Low", "", "", Formula("LEN(A4)")],
        [Formula("A2"), 2, "High", "", "", ""],
    ]

    def saved_value(xml: str) -> str:
        # What Excel writes: the formula and its last result.
        edited = xml.replace('<c r="B2"><f>1+1</f><v /></c>', '<c r="B2"><f>1+1</f><v>2</v></c>')
        if edited == xml:
            raise ValueError("cell B2 not found as expected")
        return edited

    return workbook(
        rows,
        headers=[*HEADERS, "Notes"],
        edits={"xl/worksheets/sheet1.xml": saved_value},
    )


def error_values() -> bytes:
    rows = [
        ["INCA0000001", Formula("VLOOKUP(A2,Lists!A:B,2,FALSE)"), "High"],  # saved as #N/A
        ["INCA0000002", 2, ErrorValue("#REF!")],
        ["INCA0000003", 3, "Low", "", "", ErrorValue("#DIV/0!")],
    ]

    def saved_error(xml: str) -> str:
        # What Excel writes for a formula whose last result was an error.
        old = '<c r="B2"><f>VLOOKUP(A2,Lists!A:B,2,FALSE)</f><v /></c>'
        new = '<c r="B2" t="e"><f>VLOOKUP(A2,Lists!A:B,2,FALSE)</f><v>#N/A</v></c>'
        if old not in xml:
            raise ValueError("cell B2 not found as expected")
        return xml.replace(old, new)

    return workbook(
        rows,
        headers=[*HEADERS, "Notes"],
        edits={"xl/worksheets/sheet1.xml": saved_error},
    )


def hidden_sheet() -> bytes:
    def add_hidden(book: openpyxl.Workbook) -> None:
        old = book.create_sheet("Old tickets")
        old.append(HEADERS)
        old.append(["INCA0000099", 2, "High"])
        old.sheet_state = "hidden"

    return workbook([["INCA0000001", 2, "High"], ["INCA0000002", 3, "Low"]], prepare=add_hidden)


def hidden_rows() -> bytes:
    def hide(book: openpyxl.Workbook) -> None:
        for number in (3, 5, 6):
            book.active.row_dimensions[number].hidden = True

    return workbook([[f"INCA{n:07d}", 2, "High"] for n in range(1, 7)], prepare=hide)


def dates_in_text_columns() -> bytes:
    return workbook(
        [
            [datetime.date(2024, 3, 1), 2, "High"],
            ["INCA0000002", 2, "High", "", datetime.datetime(2024, 3, 1, 14, 30)],
            ["INCA0000003", datetime.time(14, 30), "High"],
            [datetime.time(9, 15), 2, "High"],
        ]
    )


def leading_zeros_xlsx() -> bytes:
    return workbook([["0001234", "02", "High"], ["0000042", "3", "Low"]])


def leading_zeros_csv() -> bytes:
    return csv_bytes([["Ticket Number", "State", "Priority"], ["0001234", "02", "High"]])


def duplicated_headers() -> bytes:
    return workbook(
        [["INCA0000001", 2, "High", "Low"]],
        headers=["Ticket Number", "State", "Priority", "Priority"],
    )


def unicode_lookalikes() -> bytes:
    return workbook(
        [
            ["INC\u04100000001", 2, "High"],  # CYRILLIC CAPITAL LETTER A
            ["INCA\uff10000002", 2, "High"],  # FULLWIDTH DIGIT ZERO
            ["INCA0000003\u200b", 2, "High"],  # ZERO WIDTH SPACE
            ["INCA\u00a00000004", 2, "High"],  # NO-BREAK SPACE
            ["INCA0000005", 2, "High"],
        ]
    )


def formula_like_text_xlsx() -> bytes:
    return workbook(
        [
            ["INCA0000001", 2, "High", "@admin", "=SUM(A1:A2)"],
            ["INCA0000002", 3, "Low", "", "+1 555 0100"],
            ["INCA0000003", 5, "Medium", "", "-5 degrees"],
        ]
    )


def formula_like_text_csv() -> bytes:
    return csv_bytes(
        [
            ["Ticket Number", "State", "Priority", "Assigned To", "Description"],
            ["INCA0000001", "2", "High", "@admin", '"=HYPERLINK(""http://x.example"",""y"")"'],
            ["INCA0000002", "3", "Low", "", "-2+3"],
        ]
    )


def far_away_cell() -> bytes:
    def stray(book: openpyxl.Workbook) -> None:
        book.active["XFD5000"] = "x"

    return workbook([["INCA0000001", 2, "High"]], prepare=stray)


def damaged_shared_strings() -> bytes:
    # A workbook that uses the shared-text list, with that list's entry count damaged.
    sheet = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
        '<row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2" t="s"><v>3</v></c></row>'
        "</sheetData></worksheet>"
    )
    strings = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="4" '
        'uniqueCount="4000000000"><si><t>Ticket Number</t></si><si><t>Priority</t></si>'
        "<si><t>INCA0000001</t></si><si><t>High</t></si></sst>"
    )
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    relations = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    package = "http://schemas.openxmlformats.org/package/2006/relationships"
    members = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            '<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>'
        ),
        "_rels/.rels": (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{package}">'
            f'<Relationship Id="rId1" Type="{relations}/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{main}" '
            f'xmlns:r="{relations}"><sheets><sheet name="Tickets" sheetId="1" r:id="rId1"/>'
            "</sheets></workbook>"
        ),
        "xl/_rels/workbook.xml.rels": (
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{package}">'
            f'<Relationship Id="rId1" Type="{relations}/worksheet" '
            'Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId2" Type="{relations}/sharedStrings" '
            'Target="sharedStrings.xml"/></Relationships>'
        ),
        "xl/worksheets/sheet1.xml": sheet,
        "xl/sharedStrings.xml": strings,
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            info = zipfile.ZipInfo(name, date_time=FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text)
    return out.getvalue()


def damaged_header_xls() -> bytes:
    # The header's count of FAT sectors (offset 0x2C) made far larger than the file.
    data = (DATA / "tickets.xls").read_bytes()
    return patched(data, 0x2C, struct.pack("<I", 0x00FFFFFF))


def damaged_sheet_size_xls() -> bytes:
    # The first sheet's DIMENSIONS record (type 0x0200, 14 bytes) made to claim 4 billion rows.
    data = (DATA / "tickets.xls").read_bytes()
    record = data.find(b"\x00\x02\x0e\x00")
    if record < 0:
        raise ValueError("no DIMENSIONS record in tickets.xls")
    return patched(data, record + 4 + 4, struct.pack("<I", 0xFFFFFFF0))


FILES: dict[str, Callable[[], bytes]] = {
    "empty.xlsx": lambda: b"",
    "empty.csv": lambda: b"",
    "header-only.xlsx": header_only,
    "no-ticket-column.xlsx": no_ticket_column,
    "csv-renamed.xlsx": csv_renamed_xlsx,
    "not-a-zip.xlsx": not_a_zip,
    "word-document.xlsx": word_document,
    "web-page.xls": web_page,
    "password.xlsx": lambda: (DATA / "password.xlsx").read_bytes(),
    "garbage.xlsx": lambda: garbage(8),
    "garbage.xls": lambda: garbage(9),
    "utf16-without-bom.csv": utf16_without_bom,
    "nul-in-text.csv": nul_in_text,
    "mixed-encoding.csv": mixed_encoding,
    "wrong-encoding.csv": wrong_encoding,
    "utf8-bom.csv": utf8_bom,
    "utf16-bom.txt": utf16_bom,
    "cp1252.csv": cp1252,
    "quote-never-closed.csv": quote_never_closed,
    "long-line.csv": long_line,
    "long-cell.xlsx": long_cell,
    "too-many-rows.xlsx": too_many_rows,
    "merged-cells.xlsx": merged_cells,
    "formulas.xlsx": formulas,
    "error-values.xlsx": error_values,
    "hidden-sheet.xlsx": hidden_sheet,
    "hidden-rows.xlsx": hidden_rows,
    "dates-in-text-columns.xlsx": dates_in_text_columns,
    "leading-zeros.xlsx": leading_zeros_xlsx,
    "leading-zeros.csv": leading_zeros_csv,
    "duplicated-headers.xlsx": duplicated_headers,
    "unicode-lookalikes.xlsx": unicode_lookalikes,
    "formula-like-text.xlsx": formula_like_text_xlsx,
    "formula-like-text.csv": formula_like_text_csv,
    "far-away-cell.xlsx": far_away_cell,
    "damaged-shared-strings.xlsx": damaged_shared_strings,
    "damaged-header.xls": damaged_header_xls,
    "damaged-sheet-size.xls": damaged_sheet_size_xls,
}


def write_all(folder: Path) -> list[Path]:
    """Write every file of the corpus into `folder`; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in FILES.items():
        path = folder / name
        path.write_bytes(make())
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    for path in write_all(target):
        print(f"{path.stat().st_size:>9,}  {path.name}")
