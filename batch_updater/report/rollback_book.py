"""The rollback workbook: the captured before values of every applied update, as a sheet to read."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from openpyxl import Workbook
from openpyxl.utils import get_column_letter

from ..errors import OutputError
from ..rollback import ROLLBACK_FIELDS
from ..rollback import rollback_rows as restoring_rows
from ..tickets import RowResult, RunInfo
from .cells import _as_utc, _styled, _xlsx_value, safe_text
from .layout import _BOLD
from .paths import (
    _appeared_error,
    _check_target,
    _create_temp_beside,
    _move_into_place,
    _remove_quietly,
)

# --------------------------------------------------------------------------------------------
# Rollback

ROLLBACK_HEADERS = (
    "Ticket Number",
    "State",
    "Priority",
    "Assigned To",
    "Description",
    "Rolls back row",
    "Note",
)


def default_rollback_path(input_path: Path, started: datetime, out_dir: Path | None = None) -> Path:
    """`<input stem>.rollback-<UTC yyyymmdd-HHMMSS>.xlsx` beside the input (or in out_dir)."""
    stamp = _as_utc(started).strftime("%Y%m%d-%H%M%S")
    return (out_dir or input_path.parent) / f"{input_path.stem}.rollback-{stamp}.xlsx"


def rollback_rows(results: Sequence[RowResult]) -> list[list[object]]:
    """The rollback workbook's rows: for each applied update with captured before values, the
    input row that undoes it (rollback.rollback_rows says which values, exactly)."""
    return [
        [
            row.ticket_number,
            *(row.cell(field_name) for field_name, _ in ROLLBACK_FIELDS),
            row.rolls_back_row,
            "; ".join(row.notes) or None,
        ]
        for row in restoring_rows(results)
    ]


def write_rollback(path: Path, results: Sequence[RowResult], run: RunInfo) -> int:
    """Write a batch-update input that restores the previous values; returns its row count.

    Written like the results workbook: to a temporary file beside it, then moved into place,
    never over an existing file. Every value passes through safe_text.
    """
    rows = rollback_rows(results)
    _check_target(path, [Path(run.input_path)] if run.input_path else [], "--capture-before")
    temp: Path | None = None
    try:
        temp = _create_temp_beside(path)
        workbook = Workbook(write_only=True)
        workbook.properties.creator = f"batch-update {run.tool_version}"
        workbook.properties.title = "batch-update rollback"
        ws = workbook.create_sheet("Tickets")
        widths = (16, 10, 10, 22, 50, 14, 60)
        for index, width in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(index)].width = width
        ws.freeze_panes = "A2"
        ws.append([_styled(ws, header, font=_BOLD) for header in ROLLBACK_HEADERS])
        for row in rows:
            values = [safe_text(value) for value in row]
            ws.append([_xlsx_value(ws, v) for v in values])
        workbook.save(str(temp))
        if os.path.lexists(path):
            raise _appeared_error(path, "--capture-before")
        _move_into_place(temp, path, "--capture-before")
    except OSError as exc:
        raise OutputError(
            f"Could not write the rollback workbook {path}: {exc.strerror or exc}.",
            tip=f"Check the free space and the permissions of {path.parent}.",
        ) from exc
    finally:
        _remove_quietly(temp)
    return len(rows)
