"""The header row of a grid of raw cells: where it is, what its columns are named, and why not."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import InputError
from .cells import _header_text, _is_empty, _normalize
from .common import _MAX_LISTED_HEADERS, column_letter


def _header_index(
    grid: Sequence[Sequence[object]],
    is_header_row: Callable[[Sequence[object]], bool],
    search_rows: int,
) -> int | None:
    """The index of the first non-empty row of the first `search_rows` that is a header."""
    for index in range(min(search_rows, len(grid))):
        values = _normalize(grid[index])
        if any(value is not None for value in values) and is_header_row(values):
            return index
    return None


@dataclass(frozen=True)
class _Columns:
    """The columns of a table as read: how wide its rows are, which are kept, and their names."""

    width: int
    # How many columns the header names, counted up to its last name; blanks between count too.
    named: int
    kept: list[int]
    headers: list[str]


def _columns(
    header_row: Sequence[object], data: Sequence[Sequence[object]], text_file: bool
) -> _Columns:
    """The columns to read: a column without a header text is kept only if it holds a value."""
    header_cells = list(header_row)
    width = max(len(header_cells), max(map(len, data), default=0))
    if len(header_cells) < width:
        header_cells += [""] * (width - len(header_cells))
    # In a text file, fields past the header's last name are not a column of their own:
    # they are what an unquoted delimiter pushed out of place ("Patched, rebooted").
    named = max((i + 1 for i, cell in enumerate(header_cells) if _header_text(cell)), default=0)
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
    return _Columns(width, named, kept, headers)


def _no_header(
    grid: Sequence[Sequence[object]],
    where: str,
    others_checked: Sequence[str],
    search_rows: int,
) -> InputError:
    """The error for a grid without a header row: what its first rows hold instead."""
    first = next((i for i, row in enumerate(grid) if not _is_empty(row)), None)
    if first is None:
        return InputError(f"{where} has no data.")
    limit = search_rows
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
