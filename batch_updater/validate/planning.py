"""The plan of a sheet: every row judged, duplicates found; messages that name file, row and column."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InputError
from ..sheet import gc_paused
from ..tickets import (
    Field,
    PlannedRow,
    Problem,
    Sheet,
    SheetRow,
)
from .columns import ColumnMap, _unrecognised_fields, map_columns
from .rows import _mark_duplicates, _RowChecker
from .rules import _MAX_UNMAPPED_LISTED, DEFAULT_RULES, ValidationRules

# --- the plan -----------------------------------------------------------------------------


@dataclass
class Plan:
    """The verdict on every row of a sheet, in sheet order, and what the columns feed."""

    rows: list[PlannedRow]
    columns: ColumnMap
    notices: list[str] = field(default_factory=list)

    @property
    def valid_rows(self) -> list[PlannedRow]:
        """The rows that would be sent."""
        return [row for row in self.rows if row.is_valid]

    @property
    def invalid_rows(self) -> list[PlannedRow]:
        """The rows with problems (blank rows are not invalid: they are skipped)."""
        return [row for row in self.rows if not row.blank and not row.is_valid]

    @property
    def valid_count(self) -> int:
        """How many rows would be sent."""
        return sum(1 for row in self.rows if row.is_valid)

    @property
    def invalid_count(self) -> int:
        """How many rows have problems."""
        return sum(1 for row in self.rows if not row.blank and not row.is_valid)

    @property
    def blank_count(self) -> int:
        """How many rows are blank (skipped)."""
        return sum(1 for row in self.rows if row.blank)

    @property
    def problem_count(self) -> int:
        """How many problems all rows have together."""
        return sum(len(row.problems) for row in self.rows)

    def counts(self) -> dict[str, int]:
        """{'valid': n, 'invalid': n, 'blank': n, 'total': n}."""
        valid = self.valid_count
        blank = self.blank_count
        return {
            "valid": valid,
            "invalid": len(self.rows) - valid - blank,
            "blank": blank,
            "total": len(self.rows),
        }


def plan(sheet: Sheet, rules: ValidationRules = DEFAULT_RULES) -> Plan:
    """Judge every row of the sheet: an update to send, problems, or blank."""
    where = sheet_location(sheet)
    try:
        columns = map_columns(sheet.headers, rules, letters=sheet.column_letters or None)
    except InputError as exc:
        raise InputError(f"{where}: {exc.message}", tip=exc.tip) from exc
    if Field.TICKET_NUMBER not in columns.fields:
        raise InputError(
            f"{where}: no ticket-number column; the headers are: "
            + ", ".join(f'"{h}"' for h in sheet.headers[:15])
            + ("" if len(sheet.headers) <= 15 else f" and {len(sheet.headers) - 15} more")
            + ".",
            tip='name the column "Ticket Number", or map your header in the config '
            '(columns: {"Your header": TicketNumber}).',
        )
    refusal = _unrecognised_fields(columns, rules)
    if refusal is not None:
        raise InputError(f"{where}: {refusal.message}", tip=refusal.tip)
    if Field.PRIORITY not in columns.fields:
        raise InputError(
            f"{where}: no Priority column; CCS requires a priority on every update "
            f"({rules.priority_choices()}).",
            tip='add a "Priority" column, or map your header in the config '
            '(columns: {"Your header": Priority}).',
        )
    notices: list[str] = []
    unmapped = columns.unmapped_headers
    if unmapped:
        listed = ", ".join(unmapped[:_MAX_UNMAPPED_LISTED])
        if len(unmapped) > _MAX_UNMAPPED_LISTED:
            listed += f" and {len(unmapped) - _MAX_UNMAPPED_LISTED} more"
        notices.append(f"Columns not sent to CCS (kept in the results workbook): {listed}.")

    check = _RowChecker(columns, rules)
    with gc_paused():
        rows = [check(row, position) for position, row in enumerate(sheet.rows)]
        _mark_duplicates(rows, check.tickets)
    return Plan(rows=rows, columns=columns, notices=notices)


# The CLI's name for plan().
plan_rows = plan


def validate_row(row: SheetRow, columns: ColumnMap, rules: ValidationRules) -> PlannedRow:
    """Judge one row on its own (duplicates across rows are plan()'s job)."""
    return _RowChecker(columns, rules)(row)


def sheet_location(sheet: Sheet) -> str:
    """'tickets.xlsx, sheet "Changes"', or just 'tickets.csv' for a text file."""
    if sheet.sheet_name:
        return f'{sheet.file_name}, sheet "{sheet.sheet_name}"'
    return sheet.file_name


def format_problem(sheet: Sheet, row_number: int, problem: Problem) -> str:
    """The full message: 'tickets.xlsx, sheet "Changes", row 14, column "Priority": ...'."""
    separator = ", " if problem.column is not None else ": "
    return f"{sheet_location(sheet)}, row {row_number}{separator}{problem}"
