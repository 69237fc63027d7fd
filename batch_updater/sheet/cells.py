"""Cell values as plain Python, and what a header row and merged cells say."""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter

from .common import _MAX_LISTED_MERGES, column_letter

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
        return cell.isoformat()
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
