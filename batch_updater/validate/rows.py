"""One row checked: its cells against the contract's rules, formulas without a value, duplicates."""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter

from ..tickets import (
    CellError,
    Field,
    FormulaWithoutValue,
    PlannedRow,
    Problem,
    SheetRow,
    TicketState,
    TicketUpdate,
)
from .cells import _check_ticket, _is_blank, _parse_priority, _parse_state, _show, _text, _visible
from .columns import ColumnMap
from .rules import (
    _CHANGE_FIELDS,
    _FIELD_LABELS,
    _MAX_DUPLICATE_ROWS_LISTED,
    _MAX_SHOWN_CHARS,
    _ROW_LEVEL,
    ValidationRules,
)

# --- one row ---------------------------------------------------------------------------------


class _RowChecker:
    """Checks rows against one ColumnMap and one set of rules; set up once per sheet.

    This runs once per row of sheets with 100,000 rows, so the common case (every cell fine)
    takes the shortest path: one itemgetter for the five cells, exact-match lookups before any
    normalizing, and no per-character Python loops.
    """

    def __init__(self, columns: ColumnMap, rules: ValidationRules) -> None:
        self.rules = rules
        width = len(columns.headers)
        self.width = width
        self.last_header = columns.headers[-1] if columns.headers else ""
        index = columns.fields
        # A field without a column reads the None appended after the row's last cell.
        self.at = {fld: index.get(fld, width) for fld in Field}
        self.cells = itemgetter(
            self.at[Field.TICKET_NUMBER],
            self.at[Field.TICKET_STATE],
            self.at[Field.PRIORITY],
            self.at[Field.ASSIGNED_TO],
            self.at[Field.TICKET_DESCRIPTION],
        )
        self.header = {fld: columns.headers[i] for fld, i in index.items()}
        for fld, label in _FIELD_LABELS.items():
            self.header.setdefault(fld, label)
        self.state_problem_tail = (
            f" is not a ticket state; use 1-5 or a name: {TicketState.labels()}."
        )
        self.priority_required = f"Priority is required by CCS; use {rules.priority_choices()}."
        self.priority_problem_tail = f" is not a priority; use {rules.priority_choices()}."
        self.nothing_to_change = _nothing_to_change_message(columns, self.header[Field.PRIORITY])
        # (position in the plan, casefolded ticket, ticket as written) for _mark_duplicates.
        self.tickets: list[tuple[int, str, str]] = []

    def __call__(self, row: SheetRow, position: int = 0) -> PlannedRow:
        try:
            return self._check(row, position)
        except Exception as exc:  # a bug must not lose the row; it becomes a visible problem
            return PlannedRow(
                row.row_number,
                problems=(Problem(None, f"could not be checked ({_describe_error(exc)})."),),
            )

    def _shifted(self, row: SheetRow) -> PlannedRow:
        """A text row with more fields than the header: its values are not where they seem."""
        more = row.extra_fields
        return PlannedRow(
            row.row_number,
            problems=(
                Problem(
                    None,
                    f"has {more} more field{'s' if more > 1 else ''} than the header, past its "
                    f'last column "{self.last_header}": the values after a delimiter inside a '
                    "value are in the wrong columns. Put double quotes around a value that "
                    'holds the delimiter, e.g. "Patched, rebooted"; nothing of this row is sent.',
                ),
            ),
        )

    def _check_formulas(self, row: SheetRow, position: int) -> PlannedRow:
        """A row whose sent cells hold formulas without a saved value or errors: values unknown.

        The row is checked as if those cells were empty, then every such cell becomes a problem
        of its own, and the problems that only said "empty" about them are dropped.
        """
        values = (tuple(row.values) + (None,) * self.width)[: self.width]
        fields = [fld for fld in Field if _value_at(values, self.at[fld]).__class__ in _MARKERS]
        cleared = list(values)
        for fld in fields:
            cleared[self.at[fld]] = None
        planned = self._check(SheetRow(row.row_number, tuple(cleared)), position)
        marked = {self.header[fld] for fld in fields}
        # "Nothing to change" is not known to be true when a change is hidden in a formula.
        change_unknown = any(fld in _CHANGE_FIELDS for fld in fields)
        kept = [
            problem
            for problem in planned.problems
            if problem.column not in marked
            and not (
                change_unknown
                and problem.column is None
                and problem.message == self.nothing_to_change
            )
        ]
        found = [
            (self.at[fld], Problem(self.header[fld], _formula_problem(values[self.at[fld]])))
            for fld in fields
        ]
        order = {self.header[fld]: self.at[fld] for fld in Field}
        ranked = [(order.get(p.column, _ROW_LEVEL) if p.column else _ROW_LEVEL, p) for p in kept]
        problems = sorted([*ranked, *found], key=lambda item: item[0])
        return PlannedRow(
            row.row_number,
            problems=tuple(p for _, p in problems),
            ticket_text=planned.ticket_text if planned.update is None else planned.ticket_number,
        )

    def _check(self, row: SheetRow, position: int) -> PlannedRow:
        """One row's verdict: its update, or the problems that say what to fix."""
        if row.extra_fields:
            return self._shifted(row)
        values = row.values
        if len(values) != self.width:
            values = (tuple(values) + (None,) * self.width)[: self.width]
        raw_ticket, raw_state, raw_priority, raw_assigned, raw_description = self.cells(
            (*values, None)
        )
        if not _MARKERS.isdisjoint(
            (
                raw_ticket.__class__,
                raw_state.__class__,
                raw_priority.__class__,
                raw_assigned.__class__,
                raw_description.__class__,
            )
        ):
            return self._check_formulas(row, position)
        if _is_blank(raw_ticket) and all(_is_blank(value) for value in values):
            return PlannedRow(row.row_number, blank=True)

        problems: list[tuple[int, Problem]] = []
        ticket, as_written = self._ticket(raw_ticket, position, problems)

        # Inline blank tests: five function calls per row add up over 100,000 rows.
        has_state = raw_state is not None and not (
            raw_state.__class__ is str and (not raw_state or raw_state.isspace())
        )
        has_priority = raw_priority is not None and not (
            raw_priority.__class__ is str and (not raw_priority or raw_priority.isspace())
        )
        has_assigned = raw_assigned is not None and not _is_blank(raw_assigned)
        has_description = raw_description is not None and not _is_blank(raw_description)
        if not (has_state or has_priority or has_assigned or has_description):
            problems.append((_ROW_LEVEL, Problem(None, self.nothing_to_change)))
            return PlannedRow(
                row.row_number, problems=tuple(p for _, p in problems), ticket_text=as_written
            )

        state = self._state(raw_state, problems) if has_state else None
        priority = self._priority(raw_priority, has_priority, problems)
        assigned = _filled_text(raw_assigned) if has_assigned else None
        description = self._description(raw_description, problems) if has_description else None
        if problems:
            problems.sort(key=lambda item: item[0])
            return PlannedRow(
                row.row_number, problems=tuple(p for _, p in problems), ticket_text=as_written
            )
        return PlannedRow(
            row.row_number,
            update=TicketUpdate(
                ticket_number=ticket,
                state=state,
                description=description,
                priority=priority,
                assigned_to=assigned or None,
            ),
        )

    # --- one field each: the value to send, and a problem added when it cannot be sent -------

    def _ticket(
        self, raw: object, position: int, problems: list[tuple[int, Problem]]
    ) -> tuple[str, str]:
        """The ticket number ("" if the cell holds none) and the ticket as written.

        A valid ticket number is noted for _mark_duplicates; an invalid one adds its problem.
        """
        ticket, message = _check_ticket(raw, self.rules)
        # The ticket as written, kept for the results even when the row is Invalid.
        as_written = ticket or ("" if raw is None else _text(raw).strip())
        if message:
            problems.append(self._entry(Field.TICKET_NUMBER, message))
        if ticket:
            self.tickets.append((position, ticket.casefold(), ticket))
        return ticket, as_written

    def _state(self, raw: object, problems: list[tuple[int, Problem]]) -> TicketState | None:
        """The state of a filled State cell; one that is not a ticket state adds its problem."""
        state = _parse_state(raw)
        if state is None:
            problems.append(self._entry(Field.TICKET_STATE, _show(raw) + self.state_problem_tail))
        return state

    def _priority(
        self, raw: object, filled: bool, problems: list[tuple[int, Problem]]
    ) -> str | int | None:
        """The priority of the Priority cell; an empty or unknown one adds its problem."""
        if not filled:
            # CCS refuses an update without a priority, so an empty cell is a problem.
            problems.append(self._entry(Field.PRIORITY, self.priority_required))
            return None
        priority = _parse_priority(raw, self.rules)
        if priority is None:
            problems.append(self._entry(Field.PRIORITY, _show(raw) + self.priority_problem_tail))
        return priority

    def _description(self, raw: object, problems: list[tuple[int, Problem]]) -> str:
        """The text of a filled Description cell; one over the length limit adds its problem."""
        description = _filled_text(raw)
        limit = self.rules.description_max_length
        if len(description) > limit:
            message = (
                f"the description is {len(description):,} characters long; the limit is "
                f"{limit:,} (setting description_max_length)."
            )
            problems.append(self._entry(Field.TICKET_DESCRIPTION, message))
        return description

    def _entry(self, fld: Field, message: str) -> tuple[int, Problem]:
        """A problem of the field's column, with the column's place to sort the row's problems by."""
        return self.at[fld], Problem(self.header[fld], message)


# Cells whose value the file does not hold: a formula never calculated, or an error value.
_MARKERS = frozenset({FormulaWithoutValue, CellError})


def _filled_text(value: object) -> str:
    """A filled cell's text without its outer spaces; a text cell, the common case, as it is."""
    return (value if isinstance(value, str) else _text(value)).strip()


def _value_at(values: Sequence[object], index: int) -> object:
    """The cell at index, or None past the row's end (a field without a column)."""
    return values[index] if index < len(values) else None


def _shown_formula(formula: str) -> str:
    shown = "".join(_visible(ch) for ch in "=" + formula)
    if len(shown) > _MAX_SHOWN_CHARS:
        shown = shown[: _MAX_SHOWN_CHARS - 3] + "..."
    return shown


def _formula_problem(marker: object) -> str:
    cell = getattr(marker, "cell", "")
    if isinstance(marker, CellError):
        error = "".join(_visible(ch) for ch in marker.error)[:_MAX_SHOWN_CHARS]
        if marker.formula:
            where = f" in cell {cell}" if cell else ""
            what = f"the formula {_shown_formula(marker.formula)}{where} shows the error {error}"
        else:
            what = f"cell {cell} holds the error {error}" if cell else f"the error {error}"
        return f"{what}; correct it in Excel and save the file."
    where = f" in cell {cell}" if cell else ""
    return (
        f"the formula {_shown_formula(getattr(marker, 'formula', ''))}{where} has no saved "
        "value; open the file in Excel, let it calculate, and save it."
    )


def _describe_error(exc: Exception) -> str:
    try:
        return f"{type(exc).__name__}: {exc}"
    except Exception:  # an exception whose __str__ fails still names its type
        return type(exc).__name__


def _nothing_to_change_message(columns: ColumnMap, priority_header: str) -> str:
    others = [
        columns.headers[at]
        for fld, at in columns.fields.items()
        if fld in _CHANGE_FIELDS and fld is not Field.PRIORITY
    ]
    message = f"nothing to change: fill in {priority_header} (CCS requires it)"
    if others:
        message += " and any of " + ", ".join(others)
    return message + "."


def _mark_duplicates(rows: list[PlannedRow], tickets: Sequence[tuple[int, str, str]]) -> None:
    """Give every row whose ticket number appears more than once a problem, and no update."""
    first: dict[str, int] = {}
    repeated: dict[str, list[int]] = {}
    for position, key, _ in tickets:
        if key in first:
            repeated.setdefault(key, [first[key]]).append(position)
        else:
            first[key] = position
    if not repeated:
        return
    for position, key, ticket in tickets:
        positions = repeated.get(key)
        if positions is None:
            continue
        row = rows[position]
        others = [rows[p].row_number for p in positions if p != position]
        listed = ", ".join(str(n) for n in others[:_MAX_DUPLICATE_ROWS_LISTED])
        if len(others) > _MAX_DUPLICATE_ROWS_LISTED:
            listed += f" and {len(others) - _MAX_DUPLICATE_ROWS_LISTED:,} more"
        word = "row" if len(others) == 1 else "rows"
        shown = "".join(_visible(ch) for ch in ticket)
        problem = Problem(
            None, f"ticket {shown} also appears in {word} {listed}; keep one row per ticket."
        )
        rows[position] = PlannedRow(
            row.row_number, problems=(*row.problems, problem), ticket_text=ticket
        )
