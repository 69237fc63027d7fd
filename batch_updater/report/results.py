"""Writing the results workbook (the Results sheet, streamed) and the CSV beside it."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.formatting.rule import CellIsRule
from openpyxl.utils import get_column_letter

from ..errors import OutputError
from ..tickets import RowResult, RunInfo, Sheet
from .cells import (
    _CONTROL_CHARS_RE,
    _ODD_FIRST,
    SENT_AT_FORMAT,
    _iso_utc,
    _styled,
    _xlsx_value,
    csv_text,
    safe_text,
)
from .layout import (
    _BOLD,
    _FILLS,
    _WIDTH_SAMPLE_ROWS,
    OUTCOME_ORDER,
    RESULT_COLUMNS,
    RESULTS_SHEET,
    TITLE,
    _check_results,
    _column_widths,
    _Layout,
    _layout,
    _row_values,
    _Tally,
    evidence_columns,
)
from .paths import (
    _appeared_error,
    _check_target,
    _create_temp_beside,
    _move_into_place,
    _remove_quietly,
    _same_file,
)
from .summary import _write_legend_sheet, _write_run_sheet, _write_summary_sheet

# --------------------------------------------------------------------------------------------
# Writing


def write_results(
    path: Path,
    sheet: Sheet,
    results: Sequence[RowResult],
    run: RunInfo,
    *,
    csv_path: Path | None = None,
) -> None:
    """Write the results workbook (and the CSV, if asked) without ever overwriting a file."""
    _check_results(sheet, results)
    path = Path(path)
    targets = [(path, "--out")]
    if csv_path is not None:
        csv_path = Path(csv_path)
        if _same_file(csv_path, path):
            raise OutputError(
                f"{csv_path} is both the results workbook and the results CSV.",
                tip="Give the CSV its own name with --csv.",
            )
        targets.append((csv_path, "--csv"))
    inputs = [Path(p) for p in dict.fromkeys((sheet.path, run.input_path)) if p]
    for target, option in targets:
        _check_target(target, inputs, option)

    width = max([len(sheet.headers)] + [len(row.values) for row in sheet.rows])
    layout = _layout(list(sheet.headers), width, evidence_columns(run))

    temps: list[Path] = []
    try:
        temp_xlsx = _create_temp_beside(path)
        temps.append(temp_xlsx)
        if csv_path is None:
            _write_files(temp_xlsx, None, sheet, results, run, layout, width)
        else:
            temp_csv = _create_temp_beside(csv_path)
            temps.append(temp_csv)
            # Excel needs the BOM to read UTF-8; newline="" lets the csv module write CRLF.
            with open(temp_csv, "w", encoding="utf-8-sig", newline="") as csv_file:
                _write_files(temp_xlsx, csv_file, sheet, results, run, layout, width)
        # Both names are checked before either file is moved, so that a clash leaves neither.
        for target, option in targets:
            if os.path.lexists(target):
                raise _appeared_error(target, option)
        for (target, option), temp in zip(targets, temps):
            _move_into_place(temp, target, option)
    except OSError as exc:
        names = " and ".join(str(target) for target, _ in targets)
        folders = " and ".join(dict.fromkeys(str(target.parent) for target, _ in targets))
        options = " or ".join(option for _, option in targets)
        raise OutputError(
            f"Could not write {names}: {exc.strerror or exc}.",
            tip=f"Check the free space and the permissions of {folders}, or choose another "
            f"place with {options}.",
        ) from exc
    finally:
        for temp in temps:
            _remove_quietly(temp)


def _write_files(
    xlsx_path: Path,
    csv_file: IO[str] | None,
    sheet: Sheet,
    results: Sequence[RowResult],
    run: RunInfo,
    layout: _Layout,
    width: int,
) -> None:
    workbook = Workbook(write_only=True)
    workbook.properties.creator = f"batch-update {run.tool_version}"
    workbook.properties.title = TITLE
    tally = _Tally()
    try:
        columns = _Columns(layout, width, evidence_columns(run))
        _write_results_sheet(workbook, csv_file, sheet, results, columns, tally)
        _write_summary_sheet(workbook, sheet, run, layout, tally)
        _write_run_sheet(workbook, run)
        _write_legend_sheet(workbook, layout)
        workbook.save(str(xlsx_path))
    except BaseException:
        _abandon(workbook)
        raise


def _abandon(workbook: Workbook) -> None:
    """Close half-written sheets now, rather than when the garbage collector finds them."""
    for ws in workbook.worksheets:
        try:
            if not ws.closed:
                ws.close()
        except Exception:
            pass  # the error that got us here is the one to report


@dataclass(frozen=True)
class _Columns:
    """The Results sheet's columns: their names, how many hold the input's cells, and which
    evidence columns follow the usual result columns."""

    layout: _Layout
    width: int  # the input's columns: its header row or its longest row, whichever is wider
    evidence: tuple[str, ...] = ()


def _write_results_sheet(
    workbook: Workbook,
    csv_file: IO[str] | None,
    sheet: Sheet,
    results: Sequence[RowResult],
    columns: _Columns,
    tally: _Tally,
) -> None:
    layout, width, evidence = columns.layout, columns.width, columns.evidence
    ws = workbook.create_sheet(RESULTS_SHEET)
    headers = [str(safe_text(h)) for h in layout.headers]
    outcome_index = width + RESULT_COLUMNS.index("Outcome")
    sent_index = width + RESULT_COLUMNS.index("Sent At")

    # Write-only sheets stream rows, so widths, panes and the filter are fixed up front.
    sample_tally = _Tally()
    sample = [
        _row_values(row, result, width, sample_tally, evidence)
        for row, result in zip(sheet.rows[:_WIDTH_SAMPLE_ROWS], results[:_WIDTH_SAMPLE_ROWS])
    ]
    for index, column_width in enumerate(_column_widths(headers, sample), start=1):
        ws.column_dimensions[get_column_letter(index)].width = column_width
    ws.freeze_panes = "A2"
    last = f"{get_column_letter(len(headers))}{len(sheet.rows) + 1}"
    ws.auto_filter.ref = f"A1:{last}"

    ws.append([_styled(ws, header, font=_BOLD) for header in headers])
    # The csv module writes None as an empty field and dates in ISO form, as Excel reads them.
    writer = csv.writer(csv_file) if csv_file is not None else None
    if writer is not None:
        writer.writerow(headers)

    # The Outcome column is coloured by conditional formatting, one rule per outcome, rather
    # than by a style on every cell: the cells stay plain values (a styled cell costs openpyxl
    # about 3 us a row more to write), the colour follows the value when an auditor sorts or
    # filters (Excel and LibreOffice both apply such rules).
    if sheet.rows:
        column = get_column_letter(outcome_index + 1)
        _colour_outcomes(ws, f"{column}2:{column}{len(sheet.rows) + 1}")
    for row, result in zip(sheet.rows, results):
        values = _row_values(row, result, width, tally, evidence)
        sent = values[sent_index]
        if writer is not None:
            # The CSV has no date cells: ISO 8601 text, as the journal has.
            if isinstance(sent, datetime):
                values[sent_index] = _iso_utc(sent)
            writer.writerow([csv_text(v) for v in values])
        if isinstance(sent, datetime):
            cell = WriteOnlyCell(ws, value=sent)
            cell.number_format = SENT_AT_FORMAT
            values[sent_index] = cell
        # Only text that openpyxl or Excel would not take as plain text needs a cell of its own
        # (isprintable() is the quick test that leaves the regular expression to the few).
        ws.append(
            [
                _xlsx_value(ws, v)
                if type(v) is str
                and (
                    not v
                    or v[0] in _ODD_FIRST
                    or v[0].isspace()
                    or "_x" in v
                    or (not v.isprintable() and _CONTROL_CHARS_RE.search(v) is not None)
                )
                else v
                for v in values
            ]
        )


def _colour_outcomes(ws: Any, cell_range: str) -> None:
    """Colour each Outcome cell of cell_range by its value, as the Legend sheet shows."""
    for outcome in OUTCOME_ORDER:
        # Outcome texts hold no quotes; a formula's text constant doubles them all the same.
        text = outcome.value.replace('"', '""')
        ws.conditional_formatting.add(
            cell_range,
            CellIsRule(operator="equal", formula=[f'"{text}"'], fill=_FILLS[outcome]),
        )
