"""read_sheet(): a workbook (python-calamine) or a text file into a Sheet of plain values."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from python_calamine import (
    CalamineError,
    CalamineSheet,
    CalamineWorkbook,
    PasswordError,
    SheetMetadata,
)

from ..errors import InputError
from ..exported import EXPORT_SHEET
from ..tickets import Sheet, SheetRow, count_text
from .cells import _extra_fields, _is_empty, _merge_notice, _normalize_rows
from .choice import _asked_sheet, _guess_sheet, _sheet_listing
from .common import (
    _DELIMITERS,
    _FIX_PASSWORD,
    _OLE_MAGIC,
    _SAVE_AS_XLSX,
    _SNIFF_CHARS,
    _T,
    _ZIP_MAGIC,
    _ZIP_READ_ERRORS,
    DEFAULT_HEADER_SEARCH_ROWS,
    DEFAULT_MAX_ROWS,
    MAX_SHEET_CELLS,
    SUPPORTED_SUFFIXES,
    TEXT_SUFFIXES,
    _is_encrypted_ole,
    _looks_like_html,
    _looks_like_text,
    _os_error,
    _read_head,
    _where,
    _zip_kind,
    column_letter,
    gc_paused,
)
from .header import _columns, _header_index, _no_header
from .text import _decode, _sniff_delimiter
from .xls_guard import _ole_damage
from .xlsx_guard import _hidden_rows_notice, _place_formulas, _SheetFacts, _XlsxParts


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
        """Choose the sheet to read (the one asked for, or a guess), then read it."""
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

        listing = _sheet_listing(metas)
        others_checked: list[str] = []
        if sheet_name is not None:
            meta, reason = _asked_sheet(self.name, metas, sheet_name, listing)
        elif len(metas) == 1:
            meta, reason = metas[0], ""
        else:
            meta, reason, others_checked = _guess_sheet(
                metas, lambda title: self._has_header(load(title))
            )
        if len(metas) > 1:
            notices.insert(
                0,
                f'Using sheet "{meta.name}" ({reason}; the workbook has '
                f"{count_text(len(metas), 'sheet')}: {listing}).",
            )
        sheet = load(meta.name)
        others = [n for n in others_checked if n != meta.name]
        read = self._read_loaded(sheet, meta.name, facts.get(meta.name), notices, others)
        read.export_items = _export_items(book, metas, meta.name)
        return read

    def _has_header(self, sheet: CalamineSheet) -> bool:
        """Whether the sheet has a header row among its first rows (loading only those)."""
        probe = sheet.to_python(skip_empty_area=False, nrows=self.header_search_rows)
        return self._header_index(probe) is not None

    def _read_loaded(
        self,
        sheet: CalamineSheet,
        title: str,
        found: _SheetFacts | None,
        notices: list[str],
        others_checked: Sequence[str],
    ) -> Sheet:
        """Read the chosen sheet's cells, with the formulas and hidden rows its XML showed."""
        limit = self.header_search_rows + self.max_rows + 1
        grid = sheet.to_python(skip_empty_area=False, nrows=limit)
        end = sheet.end
        total_rows = end[0] + 1 if end else 0
        if found is not None and found.formulas:
            total_rows = max(total_rows, _place_formulas(grid, found.formulas, limit))
        raw = _RawSheet(
            grid,
            title,
            total_rows=total_rows,
            merges=sheet.merged_cell_ranges or (),
            others_checked=others_checked,
            hidden_rows=found.hidden_rows if found is not None else (),
        )
        return self._build(raw, notices)

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
        return self._build(_RawSheet(grid, "", total_rows=len(grid), text_file=True), notices)

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
        """The index of the grid's header row, looked for in the first header_search_rows."""
        return _header_index(grid, self.is_header_row, self.header_search_rows)

    def _build(self, raw: _RawSheet, notices: list[str]) -> Sheet:
        """The Sheet of a grid: its header row found, the rows below it kept with their numbers."""
        grid = raw.grid
        where = _where(self.name, raw.sheet_name)
        header_index = self._header_index(grid)
        if header_index is None:
            raise _no_header(grid, where, raw.others_checked, self.header_search_rows)
        data = self._data_rows(grid, header_index, raw.total_rows, where)
        columns = _columns(grid[header_index], data, raw.text_file)
        extra = _extra_fields(data, columns.named) if raw.text_file else {}
        first_row = header_index + 2
        rows = [
            SheetRow(first_row + offset, values)
            for offset, values in enumerate(_normalize_rows(data, columns.kept, columns.width))
        ]
        for offset, count in extra.items():
            rows[offset] = SheetRow(rows[offset].row_number, rows[offset].values, count)
        notice = _merge_notice(raw.merges, header_index)
        if notice:
            notices.append(notice)
        notice = _hidden_notice(grid, raw.hidden_rows, first_row, len(rows))
        if notice:
            notices.append(notice)
        return Sheet(
            path=str(self.path),
            sheet_name=raw.sheet_name,
            header_row=header_index + 1,
            headers=columns.headers,
            rows=rows,
            notices=notices,
            column_letters=[column_letter(column) for column in columns.kept],
        )

    def _data_rows(
        self, grid: list[list[Any]], header_index: int, total_rows: int, where: str
    ) -> list[list[Any]]:
        """The rows below the header, up to the last that holds something; at most max_rows."""
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
        return data


@dataclass(frozen=True)
class _RawSheet:
    """The raw cells of one sheet as loaded, and what is known of the sheet beyond them."""

    grid: list[list[Any]]
    sheet_name: str  # "" for a text file, which has no sheets
    # The sheet's extent in rows, which may go past the rows loaded.
    total_rows: int
    merges: Sequence[tuple[tuple[int, int], tuple[int, int]]] = ()
    # The sheets probed for a header before this one, named when this one has none either.
    others_checked: Sequence[str] = ()
    hidden_rows: Sequence[int] = ()
    text_file: bool = False


def _hidden_notice(
    grid: Sequence[Sequence[object]], hidden_rows: Sequence[int], first_row: int, count: int
) -> str | None:
    """The notice of the hidden rows among the `count` table rows from first_row, if any."""
    if not hidden_rows:
        return None
    # Only the hidden rows of the table that hold something: those would be sent.
    last_row = first_row + count - 1
    hidden = [
        number
        for number in hidden_rows
        if first_row <= number <= last_row and not _is_empty(grid[number - 1])
    ]
    return _hidden_rows_notice(hidden)


_KIND_NAMES = {
    ".xlsx": "an .xlsx workbook",
    ".xlsb": "an .xlsb workbook",
    ".ods": "an .ods (OpenDocument) spreadsheet",
    ".xls": "an .xls (Excel 97-2003) workbook",
}


_PANIC = "the workbook reader stopped on damaged content"


def _export_items(
    book: CalamineWorkbook, metas: Sequence[SheetMetadata], chosen: str
) -> tuple[tuple[str, str], ...]:
    """The (item, value) rows of the workbook's Export sheet (a sheet made by `export` says
    there where it came from), when the sheet read is another one; () when there is none."""
    if chosen == EXPORT_SHEET or not any(m.name == EXPORT_SHEET for m in metas):
        return ()
    grid = book.get_sheet_by_name(EXPORT_SHEET).to_python(skip_empty_area=False, nrows=200)
    return tuple(
        (str(row[0]).strip(), str(row[1]))
        for row in grid
        if len(row) >= 2 and isinstance(row[0], str) and row[0].strip() and row[1] != ""
    )


def _is_panic(exc: BaseException) -> bool:
    """Whether exc is a panic of the Rust workbook reader.

    pyo3 raises a panic as PanicException, which derives from BaseException (so that
    `except Exception` does not swallow it) and cannot be imported by name.
    """
    return type(exc).__name__ == "PanicException"
