"""read_sheet(): a workbook (python-calamine) or a text file into a Sheet of plain values."""

from __future__ import annotations

import csv
import difflib
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
    SheetTypeEnum,
    SheetVisibleEnum,
)

from ..errors import InputError
from ..tickets import Sheet, SheetRow, count_text
from .cells import (
    _extra_fields,
    _header_text,
    _is_empty,
    _merge_notice,
    _normalize,
    _normalize_rows,
)
from .common import (
    _DELIMITERS,
    _FIX_PASSWORD,
    _MAX_LISTED_HEADERS,
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
        grid: list[list[Any]],
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
