"""Read the input file (.xlsx, .xlsm, .xls, .ods or delimited text) into a Sheet of plain values.

The reader knows spreadsheets, not tickets: it finds the header row with a predicate it is given,
keeps every row's number exactly as Excel shows it, and turns cell values into plain Python
(empty -> None, 2.0 -> 2, text exactly as written). Workbooks are read with python-calamine, text
with the stdlib csv module after detecting its encoding and delimiter. Every failure becomes an
InputError that names the file and says what to do.

Modules: `reader` (read_sheet and the reader of workbooks and text), `choice` (which sheet of a
workbook is read), `header` (the header row found, the columns it names), `cells` (cell values as
plain Python), `common` (limits, names, file kinds), `xlsx_guard` (the pass over an .xlsx's sheet
XML), `xls_guard` (the OLE2 check of an .xls), `text` (encoding and delimiter of text files).
"""

from .common import (
    DEFAULT_HEADER_SEARCH_ROWS,
    DEFAULT_MAX_ROWS,
    MAX_SHEET_CELLS,
    SUPPORTED_SUFFIXES,
    TEXT_SUFFIXES,
    WORKBOOK_SUFFIXES,
    column_letter,
    file_sha256,
    gc_paused,
)
from .reader import read_sheet

__all__ = [
    "DEFAULT_HEADER_SEARCH_ROWS",
    "DEFAULT_MAX_ROWS",
    "MAX_SHEET_CELLS",
    "SUPPORTED_SUFFIXES",
    "TEXT_SUFFIXES",
    "WORKBOOK_SUFFIXES",
    "column_letter",
    "file_sha256",
    "gc_paused",
    "read_sheet",
]
