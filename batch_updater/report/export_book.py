"""The export workbook: the tickets a Search returned, as a sheet to edit for the monthly sweep.

Sheet "Tickets" holds the editable columns, then the context columns, then hidden columns that
keep each changeable field as it was exported; State and Priority have drop-down lists. A hidden
(not very hidden) sheet "Export" says where the tickets came from. Everything is streamed with
openpyxl's write-only worksheets, which write the sheet view, column widths and visibility
before the rows and the autofilter, data validations and protection after them, so an export
of any size costs about what its cells cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.utils import get_column_letter, quote_sheetname
from openpyxl.worksheet.datavalidation import DataValidation

from ..errors import OutputError
from ..exported import (
    AS_EXPORTED_COLUMNS,
    EDITABLE_COLUMNS,
    EXPORT_SHEET,
    TICKETS_SHEET,
    ExportedTicket,
    ExportIdentity,
    context_value,
)
from ..tickets import Field, TicketState
from .cells import _CONTROL_CHARS_RE, _ODD_FIRST, _styled, _xlsx_value, safe_text
from .layout import _BOLD, _WIDTH_SAMPLE_ROWS
from .paths import write_atomically
from .results import _abandon

EXPORT_NOTE = (
    "Where this sheet came from; batch-update reads it to know what each ticket held at export "
    "time. Do not edit."
)
EXPORT_ITEM_HEADERS = ("Item", "Value")
# The heading of the Export sheet's column of priorities, written only when a drop-down list
# cannot hold them itself (see _list_formula).
PRIORITY_CHOICES_HEADER = "Priority choices"

_OPTION = "--out"
_EXCEL_MAX_ROWS = 1_048_576
_EXCEL_MAX_COLUMNS = 16_384
# Excel keeps a drop-down list written into the rule itself to 255 characters, and its
# messages to 32 (title) and 255 (text).
_LIST_FORMULA_LIMIT = 255
_ERROR_TITLE_LIMIT = 32
_ERROR_LIMIT = 255

_MIN_WIDTH = 8
_MAX_WIDTH = 40
_DESCRIPTION_WIDTH = (50, 80)  # at least, at most
_DROP_DOWN_ROOM = 3  # the drop-down arrow beside the longest choice


def write_export(
    path: Path,
    tickets: Sequence[ExportedTicket],
    identity: ExportIdentity,
    *,
    context_headers: Sequence[tuple[str, str]],
    priorities: Sequence[str],
) -> None:
    """Write the export workbook to path, never over an existing file.

    context_headers are (context key as the server spelled it, header shown), in column order;
    a ticket's value for a key is found ignoring case, and is an empty cell when it has none.
    """
    path = Path(path)
    headers = _headers(context_headers)
    if len(tickets) + 1 > _EXCEL_MAX_ROWS:
        raise OutputError(
            f"Cannot write {path}: {len(tickets):,} tickets do not fit in one Excel sheet, which "
            f"holds {_EXCEL_MAX_ROWS - 1:,} rows below its header.",
            tip="Export fewer tickets at a time, with a narrower query.",
        )
    if len(headers) > _EXCEL_MAX_COLUMNS:
        raise OutputError(
            f"Cannot write {path}: {len(headers):,} columns do not fit in one Excel sheet, which "
            f"holds {_EXCEL_MAX_COLUMNS:,}.",
            tip="Choose fewer context columns.",
        )

    def save(temp: Path) -> None:
        workbook = Workbook(write_only=True)
        workbook.properties.creator = f"batch-update {identity.tool_version}"
        workbook.properties.title = "batch-update export"
        try:
            tickets_ws = workbook.create_sheet(TICKETS_SHEET)
            export_ws = workbook.create_sheet(EXPORT_SHEET)
            listed = priorities if priorities and _list_formula(priorities) is None else ()
            _write_export_sheet(export_ws, identity, listed)
            _write_tickets_sheet(
                tickets_ws, tickets, headers, [key for key, _ in context_headers], priorities
            )
            if tickets:
                _add_drop_downs(
                    tickets_ws, len(tickets), priorities, _priority_formula(priorities, listed)
                )
            workbook.save(str(temp))
        except BaseException:
            _abandon(workbook)
            raise

    write_atomically(path, save, "the export workbook", option=_OPTION)


def _headers(context_headers: Sequence[tuple[str, str]]) -> list[str]:
    return [
        *(header for _, header in EDITABLE_COLUMNS),
        *(header for _, header in context_headers),
        *(header for _, header in AS_EXPORTED_COLUMNS),
    ]


# --------------------------------------------------------------------------------------------
# The Tickets sheet

_EDITABLE_FIELDS = tuple(fld for fld, _ in EDITABLE_COLUMNS)
_AS_EXPORTED_FIELDS = tuple(fld for fld, _ in AS_EXPORTED_COLUMNS)
_STATE_CHOICES = tuple(state.label for state in TicketState)
_TEXT_FIELDS = frozenset((Field.TICKET_NUMBER, Field.ASSIGNED_TO, Field.TICKET_DESCRIPTION))


def _row(ticket: ExportedTicket, context_keys: Sequence[str]) -> list[object]:
    """One ticket's cells: the editable fields, its context values, the fields as exported."""
    values = {
        Field.TICKET_NUMBER: ticket.number,
        Field.TICKET_STATE: ticket.state,
        Field.PRIORITY: ticket.priority,
        Field.ASSIGNED_TO: ticket.assigned_to,
        Field.TICKET_DESCRIPTION: ticket.description,
    }
    context: dict[str, object] = {}
    for key, value in ticket.context:
        context.setdefault(key.casefold(), value)
    return [
        *(values[fld] for fld in _EDITABLE_FIELDS),
        *(context_value(context.get(key.casefold())) for key in context_keys),
        *(values[fld] for fld in _AS_EXPORTED_FIELDS),
    ]


def _write_tickets_sheet(
    ws: Any,
    tickets: Sequence[ExportedTicket],
    headers: list[str],
    context_keys: Sequence[str],
    priorities: Sequence[str],
) -> None:
    # A write-only sheet writes its view and columns before the first row: all are set first.
    sample = [_row(ticket, context_keys) for ticket in tickets[:_WIDTH_SAMPLE_ROWS]]
    widths = _column_widths(headers, sample, priorities)
    hidden_from = len(headers) - len(AS_EXPORTED_COLUMNS) + 1
    for index, width in enumerate(widths, start=1):
        dimension = ws.column_dimensions[get_column_letter(index)]
        dimension.width = width
        if index >= hidden_from:
            dimension.hidden = True
        elif index <= len(EDITABLE_COLUMNS) and _EDITABLE_FIELDS[index - 1] in _TEXT_FIELDS:
            # Text format for what is typed into an empty cell: "=..." stays text, "0012" keeps
            # its zeros. (A format on every written cell would cost a styled cell each.)
            dimension.number_format = "@"
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(headers))}{len(tickets) + 1}"

    ws.append([_styled(ws, header, font=_BOLD) for header in headers])
    for ticket in tickets:
        ws.append([_cell(ws, value) for value in _row(ticket, context_keys)])


def _cell(ws: Any, value: object) -> object:
    """The value as safe_text and _xlsx_value have it, with the quick test of results.py first."""
    value = safe_text(value)
    if type(value) is str and (
        not value
        or value[0] in _ODD_FIRST
        or value[0].isspace()
        or "_x" in value
        or (not value.isprintable() and _CONTROL_CHARS_RE.search(value) is not None)
    ):
        return _xlsx_value(ws, value)
    return value


def _column_widths(
    headers: list[str], sample: list[list[object]], priorities: Sequence[str]
) -> list[float]:
    """Widths for the header and the sample's values (and the drop-down choices), capped."""
    fields = {
        len(headers) - len(AS_EXPORTED_COLUMNS) + index: fld
        for index, fld in enumerate(_AS_EXPORTED_FIELDS)
    }
    fields.update(enumerate(_EDITABLE_FIELDS))
    choices = {Field.TICKET_STATE: _STATE_CHOICES, Field.PRIORITY: tuple(priorities)}
    widths = []
    for index, header in enumerate(headers):
        fld = fields.get(index)
        # Room for the bold header and the autofilter button.
        longest = _display_length(header) + 4
        for name in choices.get(fld, ()) if fld is not None else ():
            longest = max(longest, _display_length(name) + _DROP_DOWN_ROOM)
        for values in sample:
            longest = max(longest, _display_length(values[index]) + 1)
        if fld is Field.TICKET_DESCRIPTION:
            low, high = _DESCRIPTION_WIDTH
        else:
            low, high = _MIN_WIDTH, _MAX_WIDTH
        widths.append(float(min(high, max(low, longest))))
    return widths


def _display_length(value: object) -> int:
    """About how many characters wide the value shows: its longest line (long text, its cap)."""
    if value is None:
        return 0
    text = str(value)
    if len(text) > _DESCRIPTION_WIDTH[1]:
        return _DESCRIPTION_WIDTH[1]
    return max((len(line) for line in text.splitlines()), default=0)


def _list_formula(choices: Sequence[str]) -> str | None:
    """A drop-down list held by the rule itself ('"Low,Medium,High"'), or None if Excel's
    inline list cannot hold these choices (a comma or quote in one, or too long)."""
    if not choices or any("," in c or '"' in c or c != c.strip() for c in choices):
        return None
    formula = '"' + ",".join(choices) + '"'
    return formula if len(formula) - 2 <= _LIST_FORMULA_LIMIT else None


def _priority_formula(priorities: Sequence[str], listed: Sequence[str]) -> str | None:
    """The Priority drop-down's source: its own list, or the Export sheet's column of them."""
    if listed:
        first, column = _EXPORT_FIRST_ITEM_ROW, _PRIORITY_CHOICES_COLUMN
        return (
            f"{quote_sheetname(EXPORT_SHEET)}!${column}${first}:${column}${first + len(listed) - 1}"
        )
    return _list_formula(priorities)


def _add_drop_downs(
    ws: Any, count: int, priorities: Sequence[str], priority_formula: str | None
) -> None:
    """Drop-down lists on the State and Priority cells of the data rows; empty is allowed."""
    lists = [
        (
            Field.TICKET_STATE,
            _list_formula(_STATE_CHOICES),
            "State",
            "Choose a state from the list: " + ", ".join(_STATE_CHOICES),
        ),
        (
            Field.PRIORITY,
            priority_formula,
            "Priority",
            "Choose a priority from the list: " + ", ".join(priorities),
        ),
    ]
    for fld, formula, title, text in lists:
        if formula is None:
            continue  # no priorities to offer: the column takes any value
        column = get_column_letter(_EDITABLE_FIELDS.index(fld) + 1)
        error = text + ". Leave the cell empty to keep the ticket's value as it is."
        if len(error) > _ERROR_LIMIT:
            error = (
                "Choose a value from the list. Leave the cell empty to keep the ticket's value "
                "as it is."
            )
        ws.data_validations.append(
            DataValidation(
                type="list",
                formula1=formula,
                allow_blank=True,
                showErrorMessage=True,
                errorStyle="stop",
                errorTitle=f"Not a {title.lower()}"[:_ERROR_TITLE_LIMIT],
                error=error,
                sqref=f"{column}2:{column}{count + 1}",
            )
        )


# --------------------------------------------------------------------------------------------
# The Export sheet

_EXPORT_HEADER_ROW = 3
_EXPORT_FIRST_ITEM_ROW = _EXPORT_HEADER_ROW + 1
_PRIORITY_CHOICES_COLUMN = get_column_letter(len(EXPORT_ITEM_HEADERS) + 2)  # after a gap


def _write_export_sheet(ws: Any, identity: ExportIdentity, priority_choices: Sequence[str]) -> None:
    """The note, then Item / Value from the identity (and the priorities, if listed here)."""
    ws.sheet_state = "hidden"  # not "veryHidden": an auditor can unhide it from Excel's menu
    ws.protection.sheet = True  # no password: it warns against edits, it hides nothing
    items = identity.items()
    widths = [
        max([len(EXPORT_ITEM_HEADERS[0]) + 2, *(len(label) + 2 for label, _ in items)]),
        min(80, max([len(EXPORT_ITEM_HEADERS[1]) + 2, *(len(text) + 2 for _, text in items)])),
    ]
    if priority_choices:
        widths += [
            2,
            min(_MAX_WIDTH, max(len(PRIORITY_CHOICES_HEADER) + 2, *map(len, priority_choices))),
        ]
    for index, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(index)].width = float(width)

    ws.append([_cell(ws, EXPORT_NOTE)])
    ws.append([])
    header: list[object] = [_styled(ws, text, font=_BOLD) for text in EXPORT_ITEM_HEADERS]
    if priority_choices:
        header += [None, _styled(ws, PRIORITY_CHOICES_HEADER, font=_BOLD)]
    ws.append(header)
    for index in range(max(len(items), len(priority_choices))):
        row: list[object] = list(items[index]) if index < len(items) else [None, None]
        if index < len(priority_choices):
            row += [None, priority_choices[index]]
        ws.append([_cell(ws, value) for value in row])
