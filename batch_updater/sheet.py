"""Read the input file (.xlsx, .xlsm, .xls, .ods or delimited text) into a Sheet of plain values.

The reader knows spreadsheets, not tickets: it finds the header row with a predicate it is given,
keeps every row's number exactly as Excel shows it, and turns cell values into plain Python
(empty -> None, 2.0 -> 2, text exactly as written). Workbooks are read with python-calamine, text
with the stdlib csv module after detecting its encoding and delimiter. Every failure becomes an
InputError that names the file and says what to do.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import difflib
import gc
import hashlib
import html
import io
import posixpath
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import TypeVar

from python_calamine import (
    CalamineError,
    CalamineSheet,
    CalamineWorkbook,
    PasswordError,
    SheetMetadata,
    SheetTypeEnum,
    SheetVisibleEnum,
)

from .errors import InputError
from .tickets import CellError, FormulaWithoutValue, Sheet, SheetRow, count_text

DEFAULT_MAX_ROWS = 1_000_000
DEFAULT_HEADER_SEARCH_ROWS = 20
# The most cells (rows x columns, counted from A1) a sheet may span. The workbook reader builds
# the whole rectangle in memory (32 bytes a cell) before a single row can be looked at, and a
# failed allocation ends the process outright, so a stray value in cell XFD1048576 is refused
# here instead: 1,000,000 rows of 50 columns still fit.
MAX_SHEET_CELLS = 50_000_000

_T = TypeVar("_T")

WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods")
TEXT_SUFFIXES = (".csv", ".txt", ".tsv")
SUPPORTED_SUFFIXES = WORKBOOK_SUFFIXES + TEXT_SUFFIXES

# How many header texts an error message lists before it says "and N more".
_MAX_LISTED_HEADERS = 15
_MAX_LISTED_MERGES = 8

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# The stream that holds an encrypted (password-protected) .xlsx inside its OLE2 wrapper.
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")

_DELIMITERS = (",", ";", "\t")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
# Enough text to judge the delimiter by, without sniffing a 100 MB file.
_SNIFF_CHARS = 64 * 1024
_HASH_CHUNK = 1024 * 1024

_FIX_PASSWORD = (
    "is password-protected; open it in Excel, remove the password "
    "(File > Info > Protect Workbook) and save a copy"
)
_SAVE_AS_XLSX = 'open it in Excel and save it as an "Excel Workbook (.xlsx)"'
_SAVE_AS_CSV_UTF8 = 'save it from Excel as "CSV UTF-8 (Comma delimited)"'


def column_letter(index: int) -> str:
    """The spreadsheet letter of the 0-based column index: 0 -> A, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file's bytes as hex, read in chunks so memory stays flat."""
    path = Path(path)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(_HASH_CHUNK), b""):
                digest.update(chunk)
    except OSError as exc:
        raise _os_error(path, exc) from exc
    return digest.hexdigest()


def read_sheet(
    path: Path,
    sheet_name: str | None = None,
    *,
    is_header_row: Callable[[Sequence[object]], bool],
    max_rows: int = DEFAULT_MAX_ROWS,
    header_search_rows: int = DEFAULT_HEADER_SEARCH_ROWS,
) -> Sheet:
    """Read one sheet of a workbook, or a delimited text file, into a Sheet."""
    path = Path(path)
    name = path.name
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        shown = f'"{path.suffix}"' if path.suffix else "(none)"
        raise InputError(
            f"{name}: unsupported file type {shown}; use one of {', '.join(SUPPORTED_SUFFIXES)}.",
            tip='in Excel, use File > Save As and choose "Excel Workbook (.xlsx)".',
        )
    head = _read_head(path)
    if not head:
        raise InputError(f"{name} is empty (0 bytes).", tip="export the tickets again.")
    reader = _Reader(path, is_header_row, max_rows, header_search_rows)

    if head.startswith(_ZIP_MAGIC):
        kind = _zip_kind(path)
        with gc_paused():
            return reader.workbook(kind, sheet_name)
    if head.startswith(_OLE_MAGIC):
        if _is_encrypted_ole(path):
            raise InputError(f"{name} {_FIX_PASSWORD}.")
        try:
            damage = _ole_damage(path)
        except OSError as exc:
            raise _os_error(path, exc) from exc
        if damage:
            raise reader._unreadable(damage)
        with gc_paused():
            return reader.workbook(".xls", sheet_name)
    if suffix in TEXT_SUFFIXES:
        with gc_paused():
            return reader.text()
    # A workbook name, but neither a zip nor an OLE2 file: say what it looks like instead.
    if _looks_like_html(head):
        raise InputError(
            f"{name} is a web page (HTML) with an Excel name, not a workbook; {_SAVE_AS_XLSX}."
        )
    if _looks_like_text(head):
        raise InputError(
            f"{name} looks like text (CSV), not an Excel workbook; rename it to "
            f"{path.stem}.csv and run again."
        )
    raise InputError(
        f"{name} is not a spreadsheet (its content is neither .xlsx, .xls nor .ods); "
        f"{_SAVE_AS_XLSX}."
    )


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a sheet's worth of rows is built.

    A 100,000-row sheet means about a million new tuples and lists and no reference cycles;
    the collector would rescan the growing heap over and over (measured here: it doubled the
    time). Reference counting still frees everything as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --- where things are, for messages -------------------------------------------------------


def _where(file_name: str, sheet_name: str) -> str:
    return f'{file_name}, sheet "{sheet_name}"' if sheet_name else file_name


def _os_error(path: Path, exc: OSError) -> InputError:
    name = path.name
    if isinstance(exc, FileNotFoundError):
        return InputError(f"{name}: file not found ({path.absolute()}).")
    if isinstance(exc, IsADirectoryError):
        return InputError(f"{name} is a folder, not a file ({path.absolute()}).")
    if isinstance(exc, PermissionError):
        # Excel holds a lock on an open workbook on Windows; that is by far the common cause.
        return InputError(
            f"{name} is open in another program or not readable; close it in Excel and try again."
        )
    return InputError(f"{name} could not be read: {exc.strerror or exc}.")


def _read_head(path: Path) -> bytes:
    try:
        with path.open("rb") as stream:
            return stream.read(8192)
    except OSError as exc:
        raise _os_error(path, exc) from exc


# --- what kind of file it is --------------------------------------------------------------


def _zip_kind(path: Path) -> str:
    """The workbook suffix the zip's content says it is (.xlsx, .xlsb or .ods)."""
    name = path.name
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            mimetype = archive.read("mimetype")[:100] if "mimetype" in names else b""
    except OSError as exc:
        raise _os_error(path, exc) from exc
    except _ZIP_READ_ERRORS as exc:
        raise InputError(
            f"{name} is damaged: it starts like an Excel workbook but is not a complete one "
            f"({exc}); open it in Excel and save it again, or export it again.",
        ) from exc
    if "xl/workbook.xml" in names:
        return ".xlsx"
    if "xl/workbook.bin" in names:
        return ".xlsb"
    if b"opendocument.spreadsheet" in mimetype or ("content.xml" in names and not mimetype):
        return ".ods"
    if "word/document.xml" in names:
        what = "a Word document"
    elif "ppt/presentation.xml" in names:
        what = "a PowerPoint presentation"
    else:
        what = "a zip archive"
    raise InputError(f"{name} is {what}, not a workbook; {_SAVE_AS_XLSX}.")


def _is_encrypted_ole(path: Path) -> bool:
    # An encrypted .xlsx is an OLE2 file with an EncryptedPackage stream; calamine reports it
    # only when the name ends in .xlsx, so look for the stream's directory entry ourselves.
    tail = b""
    try:
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(_HASH_CHUNK), b""):
                if _ENCRYPTED_STREAM in tail + chunk:
                    return True
                tail = chunk[-len(_ENCRYPTED_STREAM) :]
    except OSError as exc:
        raise _os_error(path, exc) from exc
    return False


def _looks_like_html(head: bytes) -> bool:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:512].lower()
    return start.startswith((b"<!doctype html", b"<html", b"<table")) or b"<html" in start


def _looks_like_text(head: bytes) -> bool:
    if head.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return True
    if b"\x00" in head:
        return False
    controls = sum(1 for byte in head if byte < 32 and byte not in (9, 10, 13))
    return controls <= len(head) // 100


# --- what the workbook reader does not say (.xlsx) ----------------------------------------
#
# calamine reads a formula without a saved value as an empty cell, says nothing of hidden rows,
# and trusts the counts and cell positions written in the file: one stray value in XFD1048576,
# or a damaged count, makes it ask for more memory than any machine has, which ends the
# process. So before calamine sees an .xlsx, its sheet XML is read here in one streaming pass
# of C-speed searches (no Python work per cell on the common path).

_XML_CHUNK = 4 * 1024 * 1024
_NS = rb"(?:[A-Za-z_][\w.-]*:)?"
_ROW_OPEN_RE = re.compile(rb"<(" + _NS + rb")row[\s/>]")
_HIDDEN_ROW_RE = re.compile(rb"<" + _NS + rb"row\s[^>]*?\bhidden=\"(?:1|true)\"[^>]*>")
_TAG_NAME_ENDS = frozenset((b" ", b"/", b">", b"\t", b"\n", b"\r"))
_FORMULA_TEXT_RE = re.compile(rb"<" + _NS + rb"f(\s[^>]*?)?(?:/>|>([^<]*)<)")
_REF_ATTR_RE = re.compile(rb'\sr="([A-Za-z]{0,3})(\d+)"')
_TYPE_ATTR_RE = re.compile(rb'\st="([^"]*)"')
_SI_ATTR_RE = re.compile(rb'\ssi="(\d+)"')
_VALUE_RE = re.compile(rb"<" + _NS + rb"v(?:\s[^>]*)?(?:/>|>([^<]*)<)")
_INLINE_RE = re.compile(rb"<" + _NS + rb"is[\s>]")
_ERROR_TYPE = b't="e"'
_XML_TAG_RE = re.compile(rb"<" + _NS + rb"(sheet|Relationship)\s([^>]*)>")
_XML_ATTR_RE = re.compile(rb"([\w:.-]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_SST_COUNT_RE = re.compile(rb"\suniqueCount=\"(\d+)\"")
# Fewer entries than this in the list of shared texts cost little memory whatever they claim.
_PLAUSIBLE_SHARED_STRINGS = 1_000_000
_MIN_SHARED_STRING_BYTES = 5  # "<si/>"
_MAX_LISTED_HIDDEN = 10


@dataclass
class _SheetFacts:
    """What the sheet XML says that calamine does not."""

    # Formulas without a saved value, and error values, by 0-based (row, column).
    formulas: dict[tuple[int, int], FormulaWithoutValue | CellError]
    hidden_rows: list[int]  # 1-based, in sheet order
    last_row: int  # 1-based row of the last cell with a value (0: none)
    last_column: int  # 1-based column of the right-most cell with a value (0: none)
    far_cell: str  # the reference of that right-most cell, e.g. "XFD3"


def _column_number(letters: bytes) -> int:
    number = 0
    for byte in letters.upper():
        number = number * 26 + byte - 64
    return number


def _columns_beyond(column: int) -> bytes:
    """A regex alternation matching the column letters of every column right of `column`."""
    letters = column_letter(column - 1).encode("ascii") if column > 0 else b""
    size = len(letters)
    alternatives = [b"[A-Z]{%d,3}" % (size + 1)] if size < 3 else []
    for index, letter in enumerate(letters):
        if letter != ord("Z"):
            rest = size - index - 1
            alternatives.append(
                letters[:index] + b"[%c-Z]" % (letter + 1) + (b"[A-Z]{%d}" % rest if rest else b"")
            )
    return b"|".join(alternatives) or b"(?!)"


class _SheetXmlScanner:
    """One streaming pass over a sheet's XML; feed() returns its _SheetFacts."""

    def __init__(self) -> None:
        self.facts = _SheetFacts({}, [], 0, 0, "")
        self.prefix: bytes | None = None
        self.row_token = b"<row"
        self.row_close = b"</row>"
        self.cell_tokens: tuple[bytes, ...] = ()
        self.cell_close = b"</c>"
        self.value_ends: tuple[bytes, ...] = ()
        self.rows_before = 0  # row elements in the blocks already scanned (if positional)
        self.positional: bool | None = None  # rows without their number (r="...")
        self.formula_token = b"<f"
        # Where each row of the current block starts (for rows without a number), made once.
        self._row_starts: list[int] = []
        self._row_starts_of: bytes | None = None
        self.shared: dict[bytes, bytes] = {}  # shared formulas' text by their si
        self._far = re.compile(b"(?!)")

    def feed(self, stream: io.BufferedIOBase | zipfile.ZipExtFile) -> _SheetFacts:
        carry = b""
        while True:
            chunk = stream.read(_XML_CHUNK)
            if not chunk:
                if carry and self.prefix is not None:
                    self._block(carry)
                return self.facts
            data = carry + chunk if carry else chunk
            if self.prefix is None:
                found = _ROW_OPEN_RE.search(data)
                if found is None:
                    carry = data[-64:]  # the part before the first row holds nothing wanted
                    continue
                self._set_prefix(found.group(1))
            # Cut after the last complete row, so that no cell is split between two blocks.
            cut = data.rfind(self.row_close)
            if cut < 0:
                carry = data
                continue
            cut += len(self.row_close)
            self._block(data[:cut])
            carry = data[cut:]

    def _set_prefix(self, prefix: bytes) -> None:
        self.prefix = prefix
        self.row_token = b"<" + prefix + b"row"
        self.row_close = b"</" + prefix + b"row>"
        self.cell_tokens = tuple(
            b"<" + prefix + b"c" + end for end in (b" ", b">", b"\t", b"\n", b"\r")
        )
        self.cell_close = b"</" + prefix + b"c>"
        self.value_ends = (b"</" + prefix + b"v>", b"</" + prefix + b"is>")
        self.formula_token = b"<" + prefix + b"f"
        self._set_far(0)

    def _set_far(self, column: int) -> None:
        # One search with a literal start ('r="'), which the regex engine finds at C speed:
        # a cell right of the right-most one so far, or a row number of seven digits or more.
        self._far = re.compile(
            rb'r="(?:(' + _columns_beyond(column) + rb')(\d+)|[A-Z]{1,3}(\d{7,}))"'
        )

    # -- one block of whole rows ----------------------------------------------------------------

    def _block(self, block: bytes) -> None:
        facts = self.facts
        if self.positional is None:
            first = _ROW_OPEN_RE.search(block)
            if first is not None:
                tag_end = block.find(b">", first.start())
                self.positional = _REF_ATTR_RE.search(block[first.start() : tag_end + 1]) is None
        found_formula = block.find(self.formula_token)
        if found_formula >= 0:
            self._formulas(block, found_formula)
        if _ERROR_TYPE in block:
            self._errors(block)
        if b'hidden="' in block:
            for found in _HIDDEN_ROW_RE.finditer(block):
                facts.hidden_rows.append(self._row_number(block, found.start(), found.group(0)))
        position = 0
        while True:
            found = self._far.search(block, position)
            if found is None:
                break
            position = found.end()
            start = block.rfind(b"<", 0, found.start())
            if not block.startswith(self.cell_tokens, start):
                continue
            tag, content = self._cell(block, start)
            if content is None or not self._has_value(tag, content):
                continue
            if found.group(3) is not None:
                facts.last_row = max(facts.last_row, int(found.group(3)))
                continue
            column = _column_number(found.group(1))
            if column > facts.last_column:
                facts.last_column = column
                facts.far_cell = (found.group(1) + found.group(2)).decode("ascii")
                self._set_far(column)
        end = max(block.rfind(token) for token in self.value_ends)
        if end >= 0:
            start = self._cell_start(block, end)
            if start >= 0:
                tag, _ = self._cell(block, start)
                facts.last_row = max(facts.last_row, self._position(block, start, tag)[0])
        if self.positional:
            self.rows_before += block.count(self.row_token)

    def _formulas(self, block: bytes, found: int) -> None:
        done = -1
        token = self.formula_token
        while found >= 0:
            at, found = found, block.find(token, found + 1)
            if block[at + len(token) : at + len(token) + 1] not in _TAG_NAME_ENDS:
                continue
            start = self._cell_start(block, at)
            if start < 0 or start == done:
                continue
            done = start
            tag, content = self._cell(block, start)
            if not content:
                continue
            formula = _FORMULA_TEXT_RE.search(content)
            if formula is None:
                continue
            if self._has_value(tag, content):
                if b'si="' in (formula.group(1) or b""):
                    self._formula_text(formula)  # the first cell of a shared formula: keep it
                continue
            text = self._formula_text(formula)
            row, column = self._position(block, start, tag)
            if row < 1 or column < 1:
                continue
            self.facts.formulas[(row - 1, column - 1)] = FormulaWithoutValue(
                text, f"{column_letter(column - 1)}{row}"
            )

    def _formula_text(self, formula: re.Match[bytes]) -> str:
        attributes, text = formula.group(1) or b"", formula.group(2) or b""
        shared = _SI_ATTR_RE.search(attributes)
        if shared is not None:
            # A shared formula is written once, in its first cell; the others point to it.
            if text:
                self.shared[shared.group(1)] = text
            else:
                text = self.shared.get(shared.group(1), b"")
        return html.unescape(text.decode("utf-8", "replace")).strip()

    def _errors(self, block: bytes) -> None:
        """Cells holding an error value (t="e"): calamine reads them as empty."""
        at = block.find(_ERROR_TYPE)
        while at >= 0:
            start = block.rfind(b"<", 0, at)
            at = block.find(_ERROR_TYPE, at + 1)
            if not block.startswith(self.cell_tokens, start):
                continue
            tag, content = self._cell(block, start)
            if not content:
                continue
            value = _VALUE_RE.search(content)
            if value is None or not value.group(1):
                continue
            formula = _FORMULA_TEXT_RE.search(content)
            row, column = self._position(block, start, tag)
            if row < 1 or column < 1:
                continue
            self.facts.formulas[(row - 1, column - 1)] = CellError(
                html.unescape(value.group(1).decode("utf-8", "replace")).strip(),
                self._formula_text(formula) if formula is not None else "",
                f"{column_letter(column - 1)}{row}",
            )

    # -- cells --------------------------------------------------------------------------------

    def _cell_start(self, block: bytes, before: int) -> int:
        """Where the last cell tag before `before` starts, or -1."""
        # Searched in a window that grows: the tag is usually a few bytes back, and searching
        # the whole block each time would make a sheet full of formulas quadratic.
        first, *others = self.cell_tokens  # "<c " first: nearly every cell tag is spelled so
        low = before
        while low > 0:
            low = max(0, low - max(256, 4 * (before - low)))
            found = block.rfind(first, low, before)
            if found >= 0:
                # A cell tag spelled otherwise ("<c>", a line break) may still come after it.
                return max(found, *(block.rfind(token, found, before) for token in others))
            found = max(block.rfind(token, low, before) for token in others)
            if found >= 0:
                return found
        return -1

    def _cell(self, block: bytes, start: int) -> tuple[bytes, bytes | None]:
        """The cell's opening tag and its content (b"" if it is self-closing, None if cut)."""
        tag_end = block.find(b">", start)
        if tag_end < 0:
            return block[start:], None
        tag = block[start : tag_end + 1]
        if tag.endswith(b"/>"):
            return tag, b""
        close = block.find(self.cell_close, tag_end)
        if close < 0:
            return tag, None
        return tag, block[tag_end + 1 : close]

    @staticmethod
    def _has_value(tag: bytes, content: bytes) -> bool:
        if _INLINE_RE.search(content) is not None:
            return True
        value = _VALUE_RE.search(content)
        if value is None:
            return False
        if value.group(1):
            return True
        # A formula whose result is the empty text is saved as t="str" with an empty value.
        kind = _TYPE_ATTR_RE.search(tag)
        return kind is not None and kind.group(1) == b"str"

    def _row_number(self, block: bytes, row_start: int, row_tag: bytes) -> int:
        ref = _REF_ATTR_RE.search(row_tag)
        if ref is not None and not ref.group(1):
            return int(ref.group(2))
        # Rows may leave out their number; then they count from the top.
        if self._row_starts_of is not block:
            self._row_starts = [found.start() for found in _ROW_OPEN_RE.finditer(block)]
            self._row_starts_of = block
        return self.rows_before + bisect.bisect_right(self._row_starts, row_start)

    def _position(self, block: bytes, start: int, tag: bytes) -> tuple[int, int]:
        """The 1-based (row, column) of the cell whose tag starts at `start`."""
        ref = _REF_ATTR_RE.search(tag)
        if ref is not None and ref.group(1):
            return int(ref.group(2)), _column_number(ref.group(1))
        # Cells may leave out their reference; then they count from the row's start.
        row_start = block.rfind(self.row_token, 0, start)
        if row_start < 0:
            return 0, 0
        row_tag = block[row_start : block.find(b">", row_start) + 1]
        column = 1 + sum(block.count(token, row_start, start) for token in self.cell_tokens)
        return self._row_number(block, row_start, row_tag), column


def _xml_attributes(text: bytes) -> dict[str, str]:
    attributes = {}
    for name, double, single in _XML_ATTR_RE.findall(text):
        value = double if double or not single else single
        attributes[name.decode("utf-8", "replace")] = html.unescape(
            value.decode("utf-8", "replace")
        )
    return attributes


class _XlsxParts:
    """Where things are inside an .xlsx: each sheet's XML and the shared texts, by name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.archive = zipfile.ZipFile(path)
        self.sheets: dict[str, str] = {}
        self.shared_strings = ""
        try:
            self._locate()
        except Exception:
            self.archive.close()
            raise

    def close(self) -> None:
        self.archive.close()

    def _read_small(self, member: str, limit: int = 16 * 1024 * 1024) -> bytes:
        with self.archive.open(member) as stream:
            return stream.read(limit)

    def _locate(self) -> None:
        names = set(self.archive.namelist())
        if "xl/workbook.xml" not in names or "xl/_rels/workbook.xml.rels" not in names:
            return
        targets: dict[str, str] = {}
        for kind, text in _XML_TAG_RE.findall(self._read_small("xl/_rels/workbook.xml.rels")):
            if kind != b"Relationship":
                continue
            attributes = _xml_attributes(text)
            target = attributes.get("Target", "")
            if not target or attributes.get("TargetMode") == "External":
                continue
            if target.startswith("/"):
                member = target.lstrip("/")
            else:
                member = posixpath.normpath(posixpath.join("xl", target))
            if member not in names:
                continue
            targets[attributes.get("Id", "")] = member
            if attributes.get("Type", "").endswith("/sharedStrings"):
                self.shared_strings = member
        for kind, text in _XML_TAG_RE.findall(self._read_small("xl/workbook.xml")):
            if kind != b"sheet":
                continue
            attributes = _xml_attributes(text)
            relation = next(
                (v for k, v in attributes.items() if k.endswith(":id") or k == "id"), ""
            )
            if "name" in attributes and relation in targets:
                self.sheets[attributes["name"]] = targets[relation]

    def shared_strings_claim(self) -> tuple[int, int] | None:
        """(entries claimed, bytes held) of the shared texts if the claim cannot be true."""
        if not self.shared_strings:
            return None
        with self.archive.open(self.shared_strings) as stream:
            head = stream.read(4096)
            claim = _SST_COUNT_RE.search(head)
            if claim is None or int(claim.group(1)) <= _PLAUSIBLE_SHARED_STRINGS:
                return None
            size = len(head)
            for chunk in iter(lambda: stream.read(_XML_CHUNK), b""):
                size += len(chunk)
        count = int(claim.group(1))
        return (count, size) if count > size // _MIN_SHARED_STRING_BYTES else None

    def sheet_facts(self, sheet_name: str) -> _SheetFacts | None:
        member = self.sheets.get(sheet_name)
        if member is None:
            return None
        with self.archive.open(member) as stream:
            return _SheetXmlScanner().feed(stream)


# Everything reading a damaged zip member can raise, from the zip layer to the inflater.
_ZIP_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    KeyError,
)


def _place_formulas(
    grid: list[list[object]],
    formulas: dict[tuple[int, int], FormulaWithoutValue | CellError],
    limit: int,
) -> int:
    """Put each marker (formula without a value, error) where calamine left an empty cell.

    Returns the number of rows the markers reach.

    A row that holds only such formulas lies outside calamine's grid; it is added, so that the
    row is reported rather than silently left out.
    """
    bottom = 0
    for (row, column), marker in formulas.items():
        if row >= limit:
            bottom = max(bottom, row + 1)
            continue
        while len(grid) <= row:
            grid.append([])
        cells = grid[row]
        if len(cells) <= column:
            cells.extend([""] * (column + 1 - len(cells)))
        if cells[column] == "" or cells[column] is None:
            cells[column] = marker
            bottom = max(bottom, row + 1)
    return bottom


def _hidden_rows_notice(rows: Sequence[int]) -> str | None:
    if not rows:
        return None
    ranges: list[str] = []
    start = previous = rows[0]
    for row in [*rows[1:], None]:
        if row is not None and row == previous + 1:
            previous = row
            continue
        ranges.append(str(start) if start == previous else f"{start}-{previous}")
        if row is not None:
            start = previous = row
    listed = ", ".join(ranges[:_MAX_LISTED_HIDDEN])
    if len(ranges) > _MAX_LISTED_HIDDEN:
        rest = sum(
            int(r.split("-")[1]) - int(r.split("-")[0]) + 1 if "-" in r else 1
            for r in ranges[_MAX_LISTED_HIDDEN:]
        )
        listed += f" and {rest:,} more"
    if len(rows) == 1:
        return (
            f"Row {listed} is hidden in Excel (filtered or hidden by hand); it is checked and sent "
            "like every other row. Delete it from the sheet if it should not be sent."
        )
    return (
        f"Rows {listed} are hidden in Excel (filtered or hidden by hand); they are checked and "
        "sent like every other row. Delete them from the sheet if they should not be sent."
    )


# --- the structure of an OLE2 (.xls) file -------------------------------------------------

_OLE_LAST_SECTOR = 0xFFFFFFFA  # ids from here up mark the end of a chain or a free sector
_OLE_END_OF_CHAIN = 0xFFFFFFFE
_OLE_DIRECTORY_ENTRY = 128
_OLE_MINI_SECTOR = 64
_OLE_MINI_CUTOFF = 4096
_BIFF_SST = 0x00FC
_BIFF_DIMENSIONS = 0x0200
# The largest sheet an .xls can hold (Excel 97-2003): 65,536 rows by 256 columns.
_BIFF_MAX_ROWS = 65_536
_BIFF_MAX_COLUMNS = 256


class _OleDamage(Exception):
    """What is wrong with an OLE2 file, in words for the user's message."""


class _OleFile:
    """Just enough of an OLE2 (compound file) reader to check what calamine would trust blindly.

    calamine follows the container's sector chains and allocates the sizes and counts it finds
    without checking them against the file; a damaged count then ends the process. This reads
    the same structures and raises _OleDamage for any claim the file cannot back.
    """

    def __init__(self, stream: io.BufferedIOBase, size: int) -> None:
        self.stream = stream
        self.size = size
        header = stream.read(512)
        if len(header) < 512:
            raise _OleDamage("it ends inside its header")
        shift, mini_shift = struct.unpack_from("<HH", header, 0x1E)
        if shift not in (9, 12) or mini_shift != 6:
            raise _OleDamage("its header is not valid")
        self.sector_size = 1 << shift
        self.sectors = max(0, -(-(size - self.sector_size) // self.sector_size))
        (
            directory_sectors,
            fat_sectors,
            directory_start,
            _,
            _,
            minifat_start,
            minifat_sectors,
            difat_start,
            difat_sectors,
        ) = struct.unpack_from("<9I", header, 0x28)
        if max(directory_sectors, fat_sectors, minifat_sectors, difat_sectors) > self.sectors:
            raise _OleDamage("its header claims more sectors than the file holds")
        per_sector = self.sector_size // 4
        difat = list(struct.unpack_from("<109I", header, 0x4C))
        following = difat_start
        for _ in range(difat_sectors):
            if following >= _OLE_LAST_SECTOR:
                break
            if following >= self.sectors:
                raise _OleDamage("its sector table points past the end of the file")
            entries = struct.unpack(f"<{per_sector}I", self._sector(following))
            difat.extend(entries[:-1])
            following = entries[-1]
        self.fat: list[int] = []
        for number in difat:
            if number >= _OLE_LAST_SECTOR:
                continue
            if number >= self.sectors:
                raise _OleDamage("its sector table points past the end of the file")
            self.fat.extend(struct.unpack(f"<{per_sector}I", self._sector(number)))
        # Every link of every chain must name a sector that exists: the reader follows them
        # without looking.
        self.usable = min(self.sectors, len(self.fat))
        if any(self.usable <= link < _OLE_LAST_SECTOR for link in self.fat):
            raise _OleDamage("its sector table points past the end of the file")
        for start in (directory_start, minifat_start):
            if self.usable <= start < _OLE_LAST_SECTOR:
                raise _OleDamage("its header points past the end of the file")
        self.minifat_start = minifat_start
        self.entries: list[tuple[str, int, int, int]] = []  # (name, kind, start, length)
        for number in self._chain(directory_start, whole=True):
            data = self._sector(number)
            for offset in range(0, self.sector_size, _OLE_DIRECTORY_ENTRY):
                self._entry(data[offset : offset + _OLE_DIRECTORY_ENTRY])

    def _entry(self, entry: bytes) -> None:
        kind = entry[66]
        if kind not in (1, 2, 5):  # storage, stream, root
            return
        (name_size,) = struct.unpack_from("<H", entry, 64)
        name = entry[: min(name_size, 64)].decode("utf-16-le", "replace").rstrip("\0")
        (start,) = struct.unpack_from("<I", entry, 116)
        if self.sector_size == 512:
            (length,) = struct.unpack_from("<I", entry, 120)
        else:
            (length,) = struct.unpack_from("<Q", entry, 120)
        if length > self.size:
            raise _OleDamage("its directory names a stream larger than the file")
        if self.usable <= start < _OLE_LAST_SECTOR and (kind == 5 or length >= _OLE_MINI_CUTOFF):
            raise _OleDamage("its directory points past the end of the file")
        self.entries.append((name, kind, start, length))

    def _sector(self, number: int) -> bytes:
        self.stream.seek((number + 1) * self.sector_size)
        return self.stream.read(self.sector_size).ljust(self.sector_size, b"\0")

    def _chain(self, start: int, *, whole: bool = False) -> list[int]:
        """The sectors of a chain; whole: each must lie entirely inside the file."""
        chain: list[int] = []
        current = start
        while current < _OLE_LAST_SECTOR:
            if len(chain) >= self.usable or current >= self.usable:
                raise _OleDamage("a chain of its sectors loops or runs past the end of the file")
            if whole and (current + 2) * self.sector_size > self.size:
                raise _OleDamage("its directory is cut short")
            chain.append(current)
            current = self.fat[current]
        return chain

    def stream_bytes(self, name: str) -> bytes | None:
        """The content of a stream of the root storage, by name (case-insensitive)."""
        wanted = name.casefold()
        found = next((e for e in self.entries if e[1] == 2 and e[0].casefold() == wanted), None)
        if found is None:
            return None
        _, _, start, length = found
        if length >= _OLE_MINI_CUTOFF:
            data = b"".join(self._sector(n) for n in self._chain(start))
            return data[:length]
        root = next((e for e in self.entries if e[1] == 5), None)
        if root is None:
            return None
        mini_stream = b"".join(self._sector(n) for n in self._chain(root[2]))[: root[3]]
        minifat_data = b"".join(self._sector(n) for n in self._chain(self.minifat_start))
        minifat = struct.unpack(f"<{len(minifat_data) // 4}I", minifat_data)
        pieces: list[bytes] = []
        current, steps = start, 0
        while current < _OLE_LAST_SECTOR:
            steps += 1
            if current >= len(minifat) or steps > len(minifat):
                raise _OleDamage("a chain of its sectors loops or runs past the end of the file")
            pieces.append(
                mini_stream[current * _OLE_MINI_SECTOR : (current + 1) * _OLE_MINI_SECTOR]
            )
            current = minifat[current]
        return b"".join(pieces)[:length]


def _biff_damage(workbook: bytes) -> str | None:
    """What in an .xls Workbook stream claims more than it holds (calamine allocates it)."""
    position, end = 0, len(workbook)
    while position + 4 <= end:
        kind, length = struct.unpack_from("<HH", workbook, position)
        data = workbook[position + 4 : position + 4 + length]
        position += 4 + length
        if kind == _BIFF_SST and len(data) >= 8:
            (unique,) = struct.unpack_from("<i", data, 4)
            # Each text takes at least 3 bytes.
            if unique < 0 or unique > end // 3:
                return f"its list of texts claims {unique:,} entries in {end:,} bytes"
        elif kind == _BIFF_DIMENSIONS and len(data) in (10, 14):
            if len(data) == 14:
                first_row, last_row, first_column, last_column = struct.unpack_from("<IIHH", data)
            else:
                first_row, last_row, first_column, last_column = struct.unpack_from("<HHHH", data)
            if (
                last_row > _BIFF_MAX_ROWS
                or last_column > _BIFF_MAX_COLUMNS
                or first_row > last_row
                or first_column > last_column
            ):
                return "a sheet claims more rows or columns than an .xls can hold"
    return None


def _ole_damage(path: Path) -> str | None:
    """What is wrong with an OLE2 (.xls) file that the workbook reader would not survive."""
    with path.open("rb") as stream:
        try:
            ole = _OleFile(stream, path.stat().st_size)
            workbook = ole.stream_bytes("Workbook") or ole.stream_bytes("Book")
        except _OleDamage as damage:
            return str(damage)
    return _biff_damage(workbook) if workbook else None


# --- workbooks and text files -------------------------------------------------------------


@dataclass
class _Reader:
    """One read of one file: the header predicate and the limits travel together."""

    path: Path
    is_header_row: Callable[[Sequence[object]], bool]
    max_rows: int
    header_search_rows: int

    @property
    def name(self) -> str:
        return self.path.name

    def workbook(self, kind: str, sheet_name: str | None) -> Sheet:
        """Read a workbook whose content is `kind` (.xlsx, .xlsb, .ods or .xls)."""
        if kind != ".xlsx":
            return self._workbook(kind, sheet_name, None)
        try:
            parts = _XlsxParts(self.path)
        except OSError as exc:
            raise _os_error(self.path, exc) from exc
        except _ZIP_READ_ERRORS as exc:
            raise self._unreadable(exc) from exc
        try:
            claim = self._zip_step(parts.shared_strings_claim)
            if claim is not None:
                raise self._unreadable(
                    f"its list of texts claims {claim[0]:,} entries in {claim[1]:,} bytes"
                )
            return self._workbook(kind, sheet_name, parts)
        finally:
            parts.close()

    def _zip_step(self, step: Callable[[], _T]) -> _T:
        """Run one read of the zip's content; a damaged member becomes an InputError."""
        try:
            return step()
        except OSError as exc:
            raise _os_error(self.path, exc) from exc
        except _ZIP_READ_ERRORS as exc:
            raise self._unreadable(exc) from exc

    def _sheet_facts(self, parts: _XlsxParts | None, title: str) -> _SheetFacts | None:
        """The sheet's XML facts; refuses a sheet too large to load before it is loaded."""
        if parts is None:
            return None
        facts = self._zip_step(lambda: parts.sheet_facts(title))
        if facts is None:
            return None
        rows, columns = facts.last_row, facts.last_column
        if rows * columns > MAX_SHEET_CELLS:
            where = _where(self.name, title)
            if rows > self.header_search_rows + self.max_rows + 1:
                raise InputError(
                    f"{where}: data down to row {rows:,}, more than the limit of "
                    f"{self.max_rows:,} data rows (setting max_rows).",
                    tip="split the file, or raise max_rows in the config if the rows are meant.",
                )
            raise InputError(
                f"{where}: cell {facts.far_cell} holds a value far outside the table; with it "
                f"the sheet spans {rows:,} rows by {columns:,} columns ({rows * columns:,} "
                f"cells), more than batch-update reads ({MAX_SHEET_CELLS:,}). Delete the cells "
                "outside the table (in Excel, Ctrl+End goes to the last cell in use) and save "
                "the file."
            )
        return facts

    def _workbook(self, kind: str, sheet_name: str | None, parts: _XlsxParts | None) -> Sheet:
        notices: list[str] = []
        suffix = self.path.suffix.lower()
        same_kind = suffix == kind or (kind == ".xlsx" and suffix == ".xlsm")
        if not same_kind:
            notices.append(
                f"{self.name} is really {_KIND_NAMES[kind]} despite its name; read it as one."
            )
        try:
            if same_kind:
                book = CalamineWorkbook.from_path(str(self.path))
            else:
                # calamine picks its reader by the file name; from a stream it looks at the content.
                with self.path.open("rb") as stream:
                    book = CalamineWorkbook.from_filelike(stream)
        except PasswordError as exc:
            raise InputError(f"{self.name} {_FIX_PASSWORD}.") from exc
        except CalamineError as exc:
            raise self._unreadable(exc) from exc
        except OSError as exc:
            raise _os_error(self.path, exc) from exc
        except BaseException as exc:
            if not _is_panic(exc):
                raise
            raise self._unreadable(_PANIC) from exc
        with book:
            try:
                return self._read_book(book, sheet_name, notices, parts)
            except PasswordError as exc:
                raise InputError(f"{self.name} {_FIX_PASSWORD}.") from exc
            except CalamineError as exc:
                raise self._unreadable(exc) from exc
            except BaseException as exc:
                if not _is_panic(exc):
                    raise
                raise self._unreadable(_PANIC) from exc

    def _unreadable(self, exc: object) -> InputError:
        return InputError(
            f"{self.name} could not be read as a workbook ({exc}); open it in Excel and save it "
            "again, or export it again."
        )

    def _read_book(
        self,
        book: CalamineWorkbook,
        sheet_name: str | None,
        notices: list[str],
        parts: _XlsxParts | None = None,
    ) -> Sheet:
        metas = list(book.sheets_metadata)
        if not metas:
            raise InputError(f"{self.name} has no sheets.")
        # Probing for the header may load a sheet before it is chosen; load each one once.
        loaded: dict[str, CalamineSheet] = {}
        facts: dict[str, _SheetFacts | None] = {}

        def load(title: str) -> CalamineSheet:
            if title not in loaded:
                facts[title] = self._sheet_facts(parts, title)
                loaded[title] = book.get_sheet_by_name(title)
            return loaded[title]

        listing = ", ".join(
            meta.name + ("" if meta.visible == SheetVisibleEnum.Visible else " (hidden)")
            for meta in metas
        )
        others_checked: list[str] = []
        if sheet_name is not None:
            meta = _find_sheet(metas, sheet_name)
            if meta is None:
                close = difflib.get_close_matches(sheet_name, [m.name for m in metas], n=1)
                raise InputError(
                    f'{self.name}: no sheet named "{sheet_name}"; the workbook has '
                    f"{count_text(len(metas), 'sheet')}: {listing}.",
                    tip=f'did you mean "{close[0]}"?' if close else None,
                )
            reason = "as asked"
            if meta.visible != SheetVisibleEnum.Visible:
                reason += "; it is hidden in the workbook"
        elif len(metas) == 1:
            meta, reason = metas[0], ""
        else:
            visible = (
                [
                    m
                    for m in metas
                    if m.visible == SheetVisibleEnum.Visible and m.typ == SheetTypeEnum.WorkSheet
                ]
                or [m for m in metas if m.typ == SheetTypeEnum.WorkSheet]
                or metas
            )
            named = [m for m in visible if "ticket" in _squash(m.name)]
            if named:
                meta, reason = named[0], "named like Tickets"
            else:
                meta, reason = visible[0], "the first visible sheet"
                # A Readme or cover sheet often comes first; prefer a sheet that has the data.
                for candidate in visible:
                    probe = load(candidate.name).to_python(
                        skip_empty_area=False, nrows=self.header_search_rows
                    )
                    if self._header_index(probe) is not None:
                        if candidate is not visible[0]:
                            meta, reason = candidate, "the first sheet with a ticket-number column"
                        break
                    others_checked.append(candidate.name)
        if len(metas) > 1:
            notices.insert(
                0,
                f'Using sheet "{meta.name}" ({reason}; the workbook has '
                f"{count_text(len(metas), 'sheet')}: {listing}).",
            )
        sheet = load(meta.name)
        limit = self.header_search_rows + self.max_rows + 1
        grid = sheet.to_python(skip_empty_area=False, nrows=limit)
        end = sheet.end
        total_rows = end[0] + 1 if end else 0
        found = facts.get(meta.name)
        if found is not None and found.formulas:
            total_rows = max(total_rows, _place_formulas(grid, found.formulas, limit))
        others = [n for n in others_checked if n != meta.name]
        return self._build(
            grid,
            meta.name,
            notices,
            total_rows=total_rows,
            merges=sheet.merged_cell_ranges or (),
            others_checked=others,
            hidden_rows=found.hidden_rows if found is not None else (),
        )

    def text(self) -> Sheet:
        """Read a delimited text file: encoding and delimiter detected, every cell a string."""
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise _os_error(self.path, exc) from exc
        notices: list[str] = []
        text = _decode(raw, self.name, notices)
        sample = text[:_SNIFF_CHARS]
        first = _sniff_delimiter(sample, self.path.suffix.lower())
        # The header row decides: a wrong delimiter leaves "Ticket Number;State" in one cell.
        grid: list[list[str]] = []
        for delimiter in (first, *(d for d in _DELIMITERS if d != first)):
            grid = self._parse_text(text, delimiter, self.header_search_rows)
            if self._header_index(grid) is not None:
                break
        else:
            delimiter = first
        grid = self._parse_text(text, delimiter, None)
        return self._build(
            grid, "", notices, total_rows=len(grid), merges=(), others_checked=[], text_file=True
        )

    def _parse_text(self, text: str, delimiter: str, limit: int | None) -> list[list[str]]:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        rows: list[list[str]] = []
        try:
            if limit is None:
                rows.extend(reader)
            else:
                for row in reader:
                    rows.append(row)
                    if len(rows) >= limit:
                        break
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise InputError(
                    f"{self.name}, row {len(rows) + 1}: a cell is longer than "
                    f'{csv.field_size_limit():,} characters; this usually means a quote (") '
                    "is opened and never closed.",
                ) from exc
            raise InputError(f"{self.name}, row {len(rows) + 1}: {exc}.") from exc
        return rows

    # --- from a grid of raw cells to a Sheet --------------------------------------------------

    def _header_index(self, grid: Sequence[Sequence[object]]) -> int | None:
        for index in range(min(self.header_search_rows, len(grid))):
            values = _normalize(grid[index])
            if any(value is not None for value in values) and self.is_header_row(values):
                return index
        return None

    def _build(
        self,
        grid: list[list[object]],
        sheet_name: str,
        notices: list[str],
        *,
        total_rows: int,
        merges: Sequence[tuple[tuple[int, int], tuple[int, int]]],
        others_checked: Sequence[str],
        hidden_rows: Sequence[int] = (),
        text_file: bool = False,
    ) -> Sheet:
        where = _where(self.name, sheet_name)
        header_index = self._header_index(grid)
        if header_index is None:
            raise self._no_header(grid, where, others_checked)

        # Trailing empty rows are formatting leftovers, not rows anyone meant to send.
        last = len(grid)
        while last > header_index + 1 and _is_empty(grid[last - 1]):
            last -= 1
        data = grid[header_index + 1 : last]
        if len(data) > self.max_rows or total_rows > len(grid):
            # Past the rows loaded, only the sheet's extent is known, not the count of rows.
            if total_rows > len(grid):
                found = f"data down to row {total_rows:,}"
            else:
                found = f"{len(data):,} data rows"
            raise InputError(
                f"{where}: {found}, more than the limit of {self.max_rows:,} data rows "
                "(setting max_rows).",
                tip="split the file, or raise max_rows in the config if the rows are meant.",
            )

        header_cells = list(grid[header_index])
        width = max(len(header_cells), max(map(len, data), default=0))
        if len(header_cells) < width:
            header_cells += [""] * (width - len(header_cells))
        # In a text file, fields past the header's last name are not a column of their own:
        # they are what an unquoted delimiter pushed out of place ("Patched, rebooted").
        named = max((i + 1 for i, cell in enumerate(header_cells) if _header_text(cell)), default=0)
        extra = _extra_fields(data, named) if text_file else {}
        kept: list[int] = []
        headers: list[str] = []
        for column, cell in enumerate(header_cells):
            text = _header_text(cell)
            if text_file and column >= named:
                break
            if not text:
                if not any(column < len(row) and row[column] != "" for row in data):
                    continue
                text = f"Column {column_letter(column)}"
            kept.append(column)
            headers.append(text)

        first_row = header_index + 2
        rows = [
            SheetRow(first_row + offset, values)
            for offset, values in enumerate(_normalize_rows(data, kept, width))
        ]
        for offset, count in extra.items():
            rows[offset] = SheetRow(rows[offset].row_number, rows[offset].values, count)
        notice = _merge_notice(merges, header_index)
        if notice:
            notices.append(notice)
        if hidden_rows:
            # Only the hidden rows of the table that hold something: those would be sent.
            last_row = first_row + len(rows) - 1
            hidden = [
                number
                for number in hidden_rows
                if first_row <= number <= last_row and not _is_empty(grid[number - 1])
            ]
            notice = _hidden_rows_notice(hidden)
            if notice:
                notices.append(notice)
        return Sheet(
            path=str(self.path),
            sheet_name=sheet_name,
            header_row=header_index + 1,
            headers=headers,
            rows=rows,
            notices=notices,
            column_letters=[column_letter(column) for column in kept],
        )

    def _no_header(
        self, grid: Sequence[Sequence[object]], where: str, others_checked: Sequence[str]
    ) -> InputError:
        first = next((i for i, row in enumerate(grid) if not _is_empty(row)), None)
        if first is None:
            return InputError(f"{where} has no data.")
        limit = self.header_search_rows
        message = f"{where}: no ticket-number column in the first {limit} rows."
        if first < limit:
            texts = [_header_text(cell) for cell in grid[first]]
            texts = [f'"{text}"' for text in texts if text]
            listed = ", ".join(texts[:_MAX_LISTED_HEADERS])
            if len(texts) > _MAX_LISTED_HEADERS:
                listed += f" and {len(texts) - _MAX_LISTED_HEADERS} more"
            message += f" The first non-empty row (row {first + 1}) has: {listed}."
        else:
            message += f" The first {limit} rows are empty."
        if others_checked:
            message += f" No other sheet has one either ({', '.join(others_checked)})."
        return InputError(
            message,
            tip='name the column "Ticket Number", or map your header in the config '
            '(columns: {"Your header": TicketNumber}).',
        )


_KIND_NAMES = {
    ".xlsx": "an .xlsx workbook",
    ".xlsb": "an .xlsb workbook",
    ".ods": "an .ods (OpenDocument) spreadsheet",
    ".xls": "an .xls (Excel 97-2003) workbook",
}


_PANIC = "the workbook reader stopped on damaged content"


def _is_panic(exc: BaseException) -> bool:
    """Whether exc is a panic of the Rust workbook reader.

    pyo3 raises a panic as PanicException, which derives from BaseException (so that
    `except Exception` does not swallow it) and cannot be imported by name.
    """
    return type(exc).__name__ == "PanicException"


def _find_sheet(metas: Sequence[SheetMetadata], wanted: str) -> SheetMetadata | None:
    for meta in metas:
        if meta.name == wanted:
            return meta
    folded = wanted.strip().casefold()
    for meta in metas:
        if meta.name.strip().casefold() == folded:
            return meta
    return None


def _squash(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


# --- cell values --------------------------------------------------------------------------


# Integral floats up to here become ints (Excel's 2.0 is the 2 a person typed); beyond it a float
# such as 1e308 stays the number it is, not a 309-digit integer no spreadsheet can show.
_EXACT_FLOAT_INT = 2.0**53


def _normalize(cells: Sequence[object]) -> tuple[object, ...]:
    return tuple(
        [
            None
            if cell == ""
            else int(cell)
            if type(cell) is float
            and cell.is_integer()
            and -_EXACT_FLOAT_INT <= cell <= _EXACT_FLOAT_INT
            else cell
            for cell in cells
        ]
    )


def _normalize_rows(
    data: list[list[object]], kept: list[int], width: int
) -> list[tuple[object, ...]]:
    """Each row's kept cells as plain values: '' -> None, 2.0 -> 2, the rest as they are.

    This is the only per-cell Python work of the reader, so it is kept to one comprehension
    per row; column selection is done by itemgetter in C.
    """
    if set(map(len, data)) - {width}:
        data = [row if len(row) == width else [*row, *[""] * (width - len(row))] for row in data]
    if kept == list(range(width)):
        rows: Sequence[Sequence[object]] = data
    elif len(kept) == 1:
        column = kept[0]
        rows = [(row[column],) for row in data]
    else:
        select = itemgetter(*kept)
        rows = [select(row) for row in data]
    return [
        tuple(
            [
                None
                if cell == ""
                else int(cell)
                if type(cell) is float
                and cell.is_integer()
                and -_EXACT_FLOAT_INT <= cell <= _EXACT_FLOAT_INT
                else cell
                for cell in row
            ]
        )
        for row in rows
    ]


def _extra_fields(data: Sequence[Sequence[object]], named: int) -> dict[int, int]:
    """Rows (by offset) with filled fields past the first `named` ones: how many fields more."""
    extra: dict[int, int] = {}
    for offset, row in enumerate(data):
        if len(row) > named and not _is_empty(row[named:]):
            last = max(i for i, cell in enumerate(row) if cell != "" and cell is not None)
            extra[offset] = last + 1 - named
    return extra


def _is_empty(cells: Sequence[object]) -> bool:
    return all(cell == "" or cell is None for cell in cells)


def _header_text(cell: object) -> str:
    if cell is None or cell == "":
        return ""
    if isinstance(cell, bool):
        return "TRUE" if cell else "FALSE"
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    if hasattr(cell, "isoformat"):
        return cell.isoformat()  # type: ignore[no-any-return]
    return str(cell).strip()


def _merge_notice(
    merges: Sequence[tuple[tuple[int, int], tuple[int, int]]], header_index: int
) -> str | None:
    # Merges above the header are titles; only those that touch the table can hide values.
    inside = sorted(m for m in merges if m[1][0] >= header_index)
    if not inside:
        return None
    ranges = [
        f"{column_letter(c0)}{r0 + 1}:{column_letter(c1)}{r1 + 1}" for (r0, c0), (r1, c1) in inside
    ]
    listed = ", ".join(ranges[:_MAX_LISTED_MERGES])
    if len(ranges) > _MAX_LISTED_MERGES:
        listed += f" and {len(ranges) - _MAX_LISTED_MERGES} more"
    top = min(m[0][0] for m in inside) + 1
    bottom = max(m[1][0] for m in inside) + 1
    rows = f"row {top}" if top == bottom else f"rows {top}-{bottom}"
    return (
        f"Merged cells in {rows} ({listed}): only the first cell of each merge holds a value; "
        "unmerge them in Excel if that is not what you meant."
    )


# --- text files ---------------------------------------------------------------------------


def _decode(raw: bytes, name: str, notices: list[str]) -> str:
    """The file's text: BOM first (UTF-8, UTF-16), else strict UTF-8, else Windows-1252."""
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if raw.startswith(bom):
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{name} starts like {encoding.upper()} text but is not valid "
                    f"{encoding.upper()} "
                    f"(byte {exc.start:,}); {_SAVE_AS_CSV_UTF8}."
                ) from exc
            break
    else:
        if b"\x00" in raw:
            raise InputError(
                f"{name} does not look like a text file (it contains NUL bytes); if it is "
                f'"Unicode Text" from Excel, {_SAVE_AS_CSV_UTF8}.'
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            if _looks_like_utf8(raw):
                line = raw.count(b"\n", 0, bad.start) + 1
                raise InputError(
                    f"{name} mixes two text encodings: it holds UTF-8 text, but line {line:,} "
                    f"does not (byte 0x{raw[bad.start]:02X} there is not UTF-8), so its accented "
                    "letters would be sent wrong; retype them in an editor that saves UTF-8, or "
                    f"export the whole file again and {_SAVE_AS_CSV_UTF8}."
                ) from bad
            try:
                text = raw.decode("cp1252")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{name} is neither UTF-8 nor Windows-1252 text (byte {exc.start:,}); "
                    f"{_SAVE_AS_CSV_UTF8}."
                ) from exc
            notices.append(
                f"{name} is not UTF-8; read it as Windows-1252 (Western European). If accented "
                f"letters look wrong in the results, {_SAVE_AS_CSV_UTF8}."
            )
    if "\x00" in text:
        raise InputError(f"{name} does not look like a text file (it contains NUL characters).")
    return text


# Well-formed UTF-8 sequences of two, three and four bytes.
_UTF8_SEQUENCE_RE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)


def _looks_like_utf8(raw: bytes) -> bool:
    """Whether text that is not valid UTF-8 still holds UTF-8 letters (a mix of two encodings).

    Windows-1252 text can hold such a pair by chance ("É" followed by a curly quote), so one
    two-byte pair alone is not taken as proof; a longer sequence, or a second pair, is.
    """
    for found, match in enumerate(_UTF8_SEQUENCE_RE.finditer(raw), start=1):
        if found >= 2 or len(match.group()) > 2:
            return True
    return False


def _sniff_delimiter(sample: str, suffix: str) -> str:
    """The likeliest of comma, semicolon and tab for this text."""
    # Cut at a line end so the sniffer never sees half a row.
    cut = max(sample.rfind("\n"), sample.rfind("\r"))
    if 0 < cut < len(sample) - 1:
        sample = sample[: cut + 1]
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters="".join(_DELIMITERS)).delimiter
    except csv.Error:
        delimiter = ""
    if delimiter in _DELIMITERS and delimiter in sample:
        return delimiter
    # Fallback: the candidate seen most often in the first non-empty line; ties go to the
    # one the file name suggests (Excel's "Text (Tab delimited)" saves .txt).
    preferred = ("\t", ",", ";") if suffix in (".tsv", ".txt") else _DELIMITERS
    line = next((ln for ln in sample.splitlines() if ln.strip()), "")
    return max(preferred, key=lambda d: (line.count(d), -preferred.index(d)))
