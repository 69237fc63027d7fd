"""Read the input file (.xlsx, .xlsm, .xls, .ods or delimited text) into a Sheet of plain values.

The reader knows spreadsheets, not tickets: it finds the header row with a predicate it is given,
keeps every row's number exactly as Excel shows it, and turns cell values into plain Python
(empty -> None, 2.0 -> 2, text exactly as written). Workbooks are read with python-calamine, text
with the stdlib csv module after detecting its encoding and delimiter. Every failure becomes an
InputError that names the file and says what to do.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import gc
import hashlib
import io
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

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
from .tickets import Sheet, SheetRow

DEFAULT_MAX_ROWS = 1_000_000
DEFAULT_HEADER_SEARCH_ROWS = 20

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
        with _gc_paused():
            return reader.workbook(kind, sheet_name)
    if head.startswith(_OLE_MAGIC):
        if _is_encrypted_ole(path):
            raise InputError(f"{name} {_FIX_PASSWORD}.")
        with _gc_paused():
            return reader.workbook(".xls", sheet_name)
    if suffix in TEXT_SUFFIXES:
        with _gc_paused():
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
def _gc_paused() -> Iterator[None]:
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
    except zipfile.BadZipFile as exc:
        raise InputError(
            f"{name} is damaged: it starts like an Excel workbook but is not a complete one "
            f"({exc}); open it in Excel and save it again, or export it again.",
        ) from exc
    except OSError as exc:
        raise _os_error(path, exc) from exc
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
        with book:
            try:
                return self._read_book(book, sheet_name, notices)
            except PasswordError as exc:
                raise InputError(f"{self.name} {_FIX_PASSWORD}.") from exc
            except CalamineError as exc:
                raise self._unreadable(exc) from exc

    def _unreadable(self, exc: Exception) -> InputError:
        return InputError(
            f"{self.name} could not be read as a workbook ({exc}); open it in Excel and save it "
            "again, or export it again."
        )

    def _read_book(
        self, book: CalamineWorkbook, sheet_name: str | None, notices: list[str]
    ) -> Sheet:
        metas = list(book.sheets_metadata)
        if not metas:
            raise InputError(f"{self.name} has no sheets.")
        # Probing for the header may load a sheet before it is chosen; load each one once.
        loaded: dict[str, CalamineSheet] = {}

        def load(title: str) -> CalamineSheet:
            if title not in loaded:
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
                    f"{_count(len(metas), 'sheet')}: {listing}.",
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
                f"{_count(len(metas), 'sheet')}: {listing}).",
            )
        sheet = load(meta.name)
        limit = self.header_search_rows + self.max_rows + 1
        grid = sheet.to_python(skip_empty_area=False, nrows=limit)
        end = sheet.end
        total_rows = end[0] + 1 if end else 0
        others = [n for n in others_checked if n != meta.name]
        return self._build(
            grid,
            meta.name,
            notices,
            total_rows=total_rows,
            merges=sheet.merged_cell_ranges or (),
            others_checked=others,
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
        return self._build(grid, "", notices, total_rows=len(grid), merges=(), others_checked=[])

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
        kept: list[int] = []
        headers: list[str] = []
        for column, cell in enumerate(header_cells):
            text = _header_text(cell)
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
        notice = _merge_notice(merges, header_index)
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


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# --- cell values --------------------------------------------------------------------------


def _normalize(cells: Sequence[object]) -> tuple[object, ...]:
    return tuple(
        [
            None if cell == "" else int(cell) if type(cell) is float and cell.is_integer() else cell
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
                if type(cell) is float and cell.is_integer()
                else cell
                for cell in row
            ]
        )
        for row in rows
    ]


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
        except UnicodeDecodeError:
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
