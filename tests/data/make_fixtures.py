"""Make the binary fixtures that the tests cannot write with the project's own dependencies.

Most test sheets are written by the tests themselves (openpyxl, csv, zipfile), so that what they
contain is readable in the test. Two formats need a writer the project does not depend on:

- tickets.xls: an Excel 97-2003 workbook (xlwt), the table starting at B3, a blank row in the
  middle, a merged cell and a second sheet;
- password.xlsx: an .xlsx encrypted with the password "secret" (msoffcrypto-tool), which makes it
  an OLE2 file with an EncryptedPackage stream, as Excel writes it.

Run it in a throw-away environment, not the project's:

    python -m venv /tmp/fixtures && /tmp/fixtures/bin/pip install xlwt msoffcrypto-tool openpyxl
    /tmp/fixtures/bin/python tests/data/make_fixtures.py
"""

from __future__ import annotations

import datetime
import io
from pathlib import Path

HERE = Path(__file__).resolve().parent


def make_xls(path: Path) -> None:
    """tickets.xls: what test_sheet.py's test_xls_fixture expects, cell by cell."""
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("Tickets")
    sheet.write(0, 0, "Remediation changes")  # A1, a title above the table
    for column, header in enumerate(["Ticket Number", "State", "Priority", "Due"], start=1):
        sheet.write(2, column, header)  # row 3, from column B
    sheet.write(3, 1, "INCA0000001")
    sheet.write(3, 2, 2)
    sheet.write(3, 3, "High")
    sheet.write(3, 4, datetime.date(2024, 5, 31), xlwt.easyxf(num_format_str="YYYY-MM-DD"))
    # row 5 left blank on purpose
    sheet.write(5, 1, "INCA0000002")
    sheet.write(5, 2, "Verified")
    sheet.write_merge(6, 7, 1, 1, "INCA0000003")  # B7:B8
    sheet.write(6, 3, "Low")
    book.add_sheet("Lists").write(0, 0, "Low")
    book.save(str(path))


def make_password_xlsx(path: Path) -> None:
    """password.xlsx: a one-row workbook encrypted with the password "secret"."""
    import openpyxl
    from msoffcrypto.format.ooxml import OOXMLFile

    book = openpyxl.Workbook()
    book.active.append(["Ticket Number", "Priority"])
    book.active.append(["INCA0000001", "Low"])
    plain = io.BytesIO()
    book.save(plain)
    plain.seek(0)
    with path.open("wb") as out:
        OOXMLFile(plain).encrypt("secret", out)


if __name__ == "__main__":
    make_xls(HERE / "tickets.xls")
    make_password_xlsx(HERE / "password.xlsx")
