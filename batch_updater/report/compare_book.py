"""The comparison workbook of two runs: a Summary (the counts, both runs' identities and manifest
checks), one sheet per category with each ticket's rows from both runs side by side, a Legend."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from openpyxl import Workbook
from openpyxl.utils import get_column_letter

from ..comparison import CATEGORY_MEANINGS, Category, Compared, Comparison
from ..tickets import RowResult
from .cells import _styled, safe_text
from .layout import _BOLD, _FILLS, _TITLE_FONT, _TOP, _column_widths
from .paths import write_atomically
from .results import _abandon

_SIDE = ("Row", "Outcome", "HTTP Status", "Message", "Request")


def _headers(category: Category) -> list[str]:
    headers = ["Ticket Number"]
    if category is Category.FAILED_AGAIN:
        headers.append("Runs in a row")
    if category is Category.CHANGED_IN_CCS:
        headers += ["Our last write", "Differs now"]
    return headers + [f"A: {name}" for name in _SIDE] + [f"B: {name}" for name in _SIDE]


def _side(row: RowResult | None) -> list[object]:
    if row is None:
        return ["", "(not in this run)", "", "", ""]
    request = row.request_json or ""
    if request:
        try:
            request = json.dumps(json.loads(request), ensure_ascii=False)
        except ValueError:
            pass
    return [row.row_number, row.outcome.value, row.status or "", row.message, request]


def _values(category: Category, item: Compared) -> list[object]:
    values: list[object] = [item.ticket]
    if category is Category.FAILED_AGAIN:
        values.append(item.in_a_row)
    if category is Category.CHANGED_IN_CCS:
        values += [item.written, item.now]
    return values + _side(item.a) + _side(item.b)


def write_comparison(
    path: Path, summary: Sequence[tuple[str, object]], comparison: Comparison
) -> Path:
    """Write the comparison workbook (atomically; never over an existing file)."""

    def save(temp: Path) -> None:
        workbook = Workbook(write_only=True)
        workbook.properties.title = "batch-update comparison"
        try:
            _write_summary(workbook, summary)
            for category in Category:
                _write_category(workbook, category, comparison.of(category))
            _write_legend(workbook)
            workbook.save(str(temp))
        except BaseException:
            _abandon(workbook)
            raise

    return write_atomically(path, save, "the comparison workbook")


def _write_summary(workbook: Workbook, summary: Sequence[tuple[str, object]]) -> None:
    ws = workbook.create_sheet("Summary")
    ws.column_dimensions["A"].width = 30
    ws.column_dimensions["B"].width = 100
    ws.append([_styled(ws, "batch-update comparison", font=_TITLE_FONT)])
    for label, value in summary:
        ws.append(
            [_styled(ws, label, font=_BOLD, alignment=_TOP), _styled(ws, value, alignment=_TOP)]
        )


def _write_category(workbook: Workbook, category: Category, items: Sequence[Compared]) -> None:
    ws = workbook.create_sheet(category.value)
    headers = _headers(category)
    table = [[safe_text(value) for value in _values(category, item)] for item in items]
    for index, width in enumerate(_column_widths(headers, table[:500]), start=1):
        ws.column_dimensions[get_column_letter(index)].width = width
    ws.freeze_panes = "B2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{len(items) + 1}"
    ws.append([_styled(ws, header, font=_BOLD) for header in headers])
    for item, values in zip(items, table):
        cells = [_styled(ws, value, alignment=_TOP) for value in values]
        for row, offset in (
            (item.a, len(headers) - 2 * len(_SIDE)),
            (item.b, len(headers) - len(_SIDE)),
        ):
            if row is not None:
                cells[offset + 1].fill = _FILLS[row.outcome]
        ws.append(cells)


def _write_legend(workbook: Workbook) -> None:
    ws = workbook.create_sheet("Legend")
    ws.column_dimensions["A"].width = 22
    ws.column_dimensions["B"].width = 110
    ws.append([_styled(ws, "Sheet", font=_BOLD), _styled(ws, "Meaning", font=_BOLD)])
    for category in Category:
        ws.append(
            [
                _styled(ws, category.value, font=_BOLD),
                _styled(ws, CATEGORY_MEANINGS[category], alignment=_TOP),
            ]
        )
    ws.append([])
    ws.append(
        [
            _styled(ws, "A and B", font=_BOLD),
            _styled(
                ws,
                "A is the baseline (the earlier run), B the run compared with it; each run's "
                "rows come from its journal (see the Summary), never from a workbook.",
                alignment=_TOP,
            ),
        ]
    )
