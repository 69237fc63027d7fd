"""Judge every row of a Sheet before anything is sent: an update, or problems that say what to fix.

Headers are matched to API fields (aliases, plus the config's `columns:` mapping, which wins);
each row's cells are checked against the rules of API-CONTRACT.md; duplicate ticket numbers are
found across the whole sheet. Validation never raises on a cell value: a bad cell is a Problem
of its row, and only a sheet that cannot be used at all (no ticket-number or Priority column,
two columns feeding one field, a column that reads like a field but is not recognised) is an
InputError.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from operator import itemgetter
from types import MappingProxyType

from .errors import ConfigError, InputError
from .sheet import column_letter, gc_paused
from .tickets import (
    CellError,
    Field,
    FormulaWithoutValue,
    PlannedRow,
    PriorityFormat,
    Problem,
    Sheet,
    SheetRow,
    TicketState,
    TicketUpdate,
)

__all__ = [
    "DEFAULT_DESCRIPTION_MAX_LENGTH",
    "DEFAULT_PRIORITIES",
    "DEFAULT_RULES",
    "HEADER_ALIASES",
    "ColumnMap",
    "Plan",
    "PriorityFormat",
    "ValidationRules",
    "format_problem",
    "is_header_row",
    "looks_like_field",
    "make_header_matcher",
    "map_columns",
    "normalize_header",
    "plan",
    "plan_rows",
    "rules_from_settings",
    "sheet_location",
    "validate_row",
]

DEFAULT_PRIORITIES: tuple[str, ...] = ("Low", "Medium", "High")
DEFAULT_DESCRIPTION_MAX_LENGTH = 4000

# The header texts people use for each field; matched after normalize_header().
HEADER_ALIASES: Mapping[Field, tuple[str, ...]] = MappingProxyType(
    {
        Field.TICKET_NUMBER: (
            "Ticket Number",
            "Ticket #",
            "TicketNumber",
            "Ticket No",
            "Ticket ID",
            "Ticket",
        ),
        Field.TICKET_STATE: ("State", "Status", "Ticket State", "Ticket Status"),
        Field.ASSIGNED_TO: ("Assigned To", "Assignee", "Assigned"),
        Field.TICKET_DESCRIPTION: ("Description", "Ticket Description"),
        Field.PRIORITY: ("Priority", "Ticket Priority"),
    }
)

# The fields a row can change, in the order messages list them.
_CHANGE_FIELDS = (
    Field.TICKET_STATE,
    Field.PRIORITY,
    Field.ASSIGNED_TO,
    Field.TICKET_DESCRIPTION,
)
_FIELD_LABELS = {
    Field.TICKET_NUMBER: "Ticket Number",
    Field.TICKET_STATE: "State",
    Field.PRIORITY: "Priority",
    Field.ASSIGNED_TO: "Assigned To",
    Field.TICKET_DESCRIPTION: "Description",
}
_EXAMPLE_TICKET = "INCA0000009"
_MAX_SHOWN_CHARS = 60
_MAX_DUPLICATE_ROWS_LISTED = 10
_MAX_UNMAPPED_LISTED = 30
# A row-level problem sorts after every cell problem of its row.
_ROW_LEVEL = 1 << 30


def normalize_header(text: object) -> str:
    """A header reduced for matching: casefolded, without spaces, underscores or punctuation."""
    return "".join(ch for ch in str(text).casefold() if ch.isalnum())


def _squash_words(text: str) -> str:
    # "remediation_performed", " Not  applicable " and "Not-Applicable" all mean the same.
    return " ".join(text.replace("_", " ").replace("-", " ").split()).casefold()


_ALIAS_INDEX: Mapping[str, Field] = MappingProxyType(
    {normalize_header(alias): fld for fld, aliases in HEADER_ALIASES.items() for alias in aliases}
)


# --- rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidationRules:
    """What a valid row looks like; built from the settings once per run."""

    priorities: tuple[str, ...] = DEFAULT_PRIORITIES
    priority_format: PriorityFormat = PriorityFormat.NAME
    description_max_length: int = DEFAULT_DESCRIPTION_MAX_LENGTH
    ticket_pattern: str | None = None
    column_mapping: Mapping[str, Field] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    # Headers the config names as context (columns: {"Status Date": ignore}): never a field.
    ignored_columns: tuple[str, ...] = ()
    # Derived once in __post_init__ so that validating 100,000 rows does no repeated set-up.
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False, hash=False)
    _mapping_index: Mapping[str, Field] = field(init=False, repr=False, compare=False, hash=False)
    _ignored_index: frozenset[str] = field(init=False, repr=False, compare=False, hash=False)
    _priority_index: Mapping[str, tuple[str, int]] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # the dataclass is frozen; these are its own derived values
        priorities = tuple(str(p).strip() for p in self.priorities)
        if not priorities or not all(priorities):
            raise ConfigError(
                "priorities: give at least one priority name, e.g. [Low, Medium, High]"
            )
        set_(self, "priorities", priorities)
        try:
            set_(self, "priority_format", PriorityFormat(str(self.priority_format).strip().lower()))
        except ValueError as exc:
            raise ConfigError(
                f'priority_format: "{self.priority_format}" is not a priority format; '
                "use name or integer"
            ) from exc
        if (
            isinstance(self.description_max_length, bool)
            or not isinstance(self.description_max_length, int)
            or self.description_max_length < 1
        ):
            raise ConfigError(
                f"description_max_length: {self.description_max_length!r} is not a positive "
                "whole number; use e.g. 4000"
            )
        pattern = None
        if self.ticket_pattern:
            try:
                pattern = re.compile(self.ticket_pattern)
            except re.error as exc:
                raise ConfigError(
                    f"ticket_pattern: {self.ticket_pattern} is not a valid regular expression "
                    f"({exc}); use e.g. INCA\\d{{7}}"
                ) from exc
        set_(self, "_pattern", pattern)
        mapping = {
            str(header): _as_field(header, value)
            for header, value in dict(self.column_mapping).items()
        }
        set_(self, "column_mapping", MappingProxyType(mapping))
        set_(
            self,
            "_mapping_index",
            MappingProxyType({normalize_header(h): f for h, f in mapping.items()}),
        )
        ignored = tuple(str(header).strip() for header in self.ignored_columns)
        set_(self, "ignored_columns", ignored)
        set_(self, "_ignored_index", frozenset(normalize_header(h) for h in ignored))
        index: dict[str, tuple[str, int]] = {}
        for position, name in enumerate(priorities, start=1):
            # The exact spelling too, so the common case needs no normalizing.
            index.setdefault(name, (name, position))
            index.setdefault(_squash_words(name), (name, position))
        set_(self, "_priority_index", MappingProxyType(index))

    def field_for(self, header: object) -> Field | None:
        """The field a header feeds: the config's mapping first, then the aliases."""
        key = normalize_header(header)
        if key in self._ignored_index:
            return None
        return self._mapping_index.get(key) or _ALIAS_INDEX.get(key)

    def is_header_row(self, values: Sequence[object]) -> bool:
        """True if any cell of the row is a ticket-number header under these rules."""
        for value in values:
            if value is not None and self.field_for(value) is Field.TICKET_NUMBER:
                return True
        return False

    def priority_choices(self) -> str:
        """'one of Low, Medium, High' or '1-3 or a name: 1 Low, 2 Medium, 3 High' for messages."""
        if self.priority_format is PriorityFormat.INTEGER:
            numbered = ", ".join(f"{n} {name}" for n, name in enumerate(self.priorities, start=1))
            return f"1-{len(self.priorities)} or a name: {numbered}"
        return "one of " + ", ".join(self.priorities)


DEFAULT_RULES = ValidationRules()


def _as_field(header: object, value: object) -> Field:
    if isinstance(value, Field):
        return value
    wanted = normalize_header(value)
    for fld in Field:
        if normalize_header(fld.value) == wanted or normalize_header(fld.name) == wanted:
            return fld
    if wanted in _ALIAS_INDEX:
        return _ALIAS_INDEX[wanted]
    choices = ", ".join(f.value for f in Field)
    raise ConfigError(f'columns: "{header}": "{value}" is not a ticket field; use one of {choices}')


def is_header_row(values: Sequence[object]) -> bool:
    """True if any cell of the row is a ticket-number header by the built-in aliases."""
    return DEFAULT_RULES.is_header_row(values)


def make_header_matcher(rules: ValidationRules) -> Callable[[Sequence[object]], bool]:
    """The header-row predicate for read_sheet() under these rules (the config's mapping too)."""
    return rules.is_header_row


def rules_from_settings(settings: object) -> ValidationRules:
    """The validation rules a Settings object describes."""

    def get(name: str, default: object) -> object:
        return getattr(settings, name, default)

    return ValidationRules(
        priorities=tuple(get("priorities", DEFAULT_PRIORITIES)),  # type: ignore[arg-type]
        priority_format=get("priority_format", PriorityFormat.NAME),  # type: ignore[arg-type]
        description_max_length=get(  # type: ignore[arg-type]
            "description_max_length", DEFAULT_DESCRIPTION_MAX_LENGTH
        ),
        ticket_pattern=get("ticket_pattern", None),  # type: ignore[arg-type]
        column_mapping=get("column_mapping", {}),  # type: ignore[arg-type]
        ignored_columns=tuple(get("ignored_columns", ())),  # type: ignore[call-overload]
    )


# --- columns -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnMap:
    """Which column (by position in Sheet.headers) feeds which field, and which feed none."""

    headers: tuple[str, ...]
    fields: Mapping[Field, int]
    unmapped: tuple[int, ...]
    letters: tuple[str, ...] = ()

    def index(self, fld: Field) -> int | None:
        """The position of the column that feeds this field, or None."""
        return self.fields.get(fld)

    def header(self, fld: Field) -> str | None:
        """The header text, as written in the sheet, of the column that feeds this field."""
        position = self.fields.get(fld)
        return None if position is None else self.headers[position]

    @property
    def unmapped_headers(self) -> tuple[str, ...]:
        """The headers of the columns that are not sent to CCS."""
        return tuple(self.headers[i] for i in self.unmapped)


def map_columns(
    headers: Sequence[str], rules: ValidationRules, *, letters: Sequence[str] | None = None
) -> ColumnMap:
    """Map headers to fields; two columns for one field is an InputError naming both."""
    if not letters or len(letters) != len(headers):
        letters = [column_letter(i) for i in range(len(headers))]
    candidates: dict[Field, list[tuple[int, bool]]] = {}
    for position, header in enumerate(headers):
        key = normalize_header(header)
        if key in rules._ignored_index:
            continue
        if key in rules._mapping_index:
            candidates.setdefault(rules._mapping_index[key], []).append((position, True))
        elif key in _ALIAS_INDEX:
            candidates.setdefault(_ALIAS_INDEX[key], []).append((position, False))
    fields: dict[Field, int] = {}
    for fld, found in candidates.items():
        # A column the config names for a field outranks columns that only look like it.
        if any(from_config for _, from_config in found):
            found = [item for item in found if item[1]]
        if len(found) > 1:
            raise _two_columns(fld, [p for p, _ in found], headers, letters)
        fields[fld] = found[0][0]
    ordered = dict(sorted(fields.items(), key=lambda item: item[1]))
    used = set(ordered.values())
    return ColumnMap(
        headers=tuple(headers),
        fields=MappingProxyType(ordered),
        unmapped=tuple(i for i in range(len(headers)) if i not in used),
        letters=tuple(letters),
    )


def _two_columns(
    fld: Field, positions: list[int], headers: Sequence[str], letters: Sequence[str]
) -> InputError:
    named = [f'"{headers[p]}" (column {letters[p]})' for p in positions]
    listed = ", ".join(named[:-1]) + " and " + named[-1]
    same_text = len({normalize_header(headers[p]) for p in positions}) == 1
    if same_text:
        others = "the other" if len(positions) == 2 else "the others"
        tip = f'keep one "{headers[positions[0]]}" column: delete or rename {others}.'
    else:
        tip = (
            "rename or delete the one not meant for CCS, or say in the config which one to send, "
            f'e.g. columns: {{"{headers[positions[0]]}": {fld.value}}}.'
        )
    both = "both" if len(positions) == 2 else "all"
    return InputError(f"columns {listed} {both} feed {fld.value}; only one column can.", tip=tip)


# --- columns that read like a field ---------------------------------------------------------

# The words that name a field a row can change. A header no alias and no columns: entry knows,
# but which carries one of these ("Target Status", "Assignee (new)", "Change Comment"), is most
# likely a change column in the team's own wording: its values would silently not be sent.
_FIELD_WORDS: Mapping[str, Field] = MappingProxyType(
    {
        **dict.fromkeys(("state", "states", "status", "statuses"), Field.TICKET_STATE),
        **dict.fromkeys(("priority", "priorities", "prio"), Field.PRIORITY),
        **dict.fromkeys(("owner", "owners"), Field.ASSIGNED_TO),
        **dict.fromkeys(
            ("description", "descriptions", "desc", "comment", "comments"),
            Field.TICKET_DESCRIPTION,
        ),
    }
)
_ASSIGN_PREFIX = "assign"  # assign, assigned, assignee, assignment ...
# Words that say a column holds something other than the value to send: an earlier or current
# value ("Previous Owner", "Priority (old)", batch-update's own "Before: State"), when or by
# whom ("Status Date", "Assigned By"), or a field of something other than the ticket ("Asset
# Owner", "Compliance Status", batch-update's own "HTTP Status").
CONTEXT_WORDS: frozenset[str] = frozenset(
    {
        # an earlier or the current value
        "before", "old", "previous", "prev", "prior", "original", "orig", "former", "from",
        "last", "current", "existing", "exported",
        # when, how long, or by whom
        "date", "dates", "time", "timestamp", "at", "since", "when", "days", "age", "by",
        # a field of something other than the ticket
        "asset", "standard", "check", "control", "rule", "policy", "risk", "compliance",
        "host", "system", "server", "machine", "computer", "device", "application", "app",
        "business", "data", "patch", "evaluation", "job", "http",
    }
)  # fmt: skip
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[^\W\d_]+|\d+")


def _header_words(header: str) -> list[str]:
    """'Target Status', 'TargetStatus' and 'target_status' -> ['target', 'status']."""
    return [word.casefold() for word in _WORD.findall(_CAMEL_BOUNDARY.sub(" ", header))]


def looks_like_field(header: str) -> Field | None:
    """The field a header reads like by its words ("Target Status" -> TicketState), else None.

    A header carrying a field's word reads like that field unless one of its words says it holds
    something else (CONTEXT_WORDS): "Status Date", "Previous Owner", "Before: Description".
    Only asked of headers that no alias and no columns: entry recognises.
    """
    words = _header_words(header)
    if any(word in CONTEXT_WORDS for word in words):
        return None
    for word in words:
        if word in _FIELD_WORDS:
            return _FIELD_WORDS[word]
        if word.startswith(_ASSIGN_PREFIX):
            return Field.ASSIGNED_TO
    return None


def _shown_header(header: str) -> str:
    # A line break in a header cell would break the message's line.
    return "".join(_visible(ch) for ch in header)


def _yaml_key(header: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar, whatever the header holds.
    return json.dumps(header, ensure_ascii=False)


def _unrecognised_fields(columns: ColumnMap, rules: ValidationRules) -> InputError | None:
    """The refusal for columns that read like a field but feed none, or None if there are none."""
    found: list[tuple[int, Field]] = []
    for position in columns.unmapped:
        header = columns.headers[position]
        key = normalize_header(header)
        if key in _ALIAS_INDEX or key in rules._mapping_index or key in rules._ignored_index:
            continue  # recognised, and left out on purpose (a config entry outranked it)
        fld = looks_like_field(header)
        if fld is not None and fld in _CHANGE_FIELDS:
            found.append((position, fld))
    if not found:
        return None
    named = [f'column {columns.letters[p]} "{_shown_header(columns.headers[p])}"' for p, _ in found]
    one = len(found) == 1
    lines = ["columns:"]
    taken = {fld: f'column {columns.letters[p]} "{_shown_header(columns.headers[p])}"'
             for fld, p in columns.fields.items()}  # fmt: skip
    for position, fld in found:
        key = _yaml_key(columns.headers[position])
        label = _FIELD_LABELS[fld]
        if fld in taken:
            lines.append(f"  {key}: ignore  # {label} comes from {taken[fld]}")
        else:
            lines.append(f"  {key}: {label}")
            taken[fld] = named[len(lines) - 2]
    return InputError(
        f"{_join(named)} "
        + ("looks like a ticket field" if one else "look like ticket fields")
        + " (State, Priority, Assigned To, Description), but batch-update does not know "
        + ("this header, so its" if one else "these headers, so their")
        + " values would not be sent. Say in the config what "
        + ("it is." if one else "each one is."),
        tip="add these lines to the config file (under columns: if it has one already); write "
        "the field a column feeds, or ignore for a column that is only context (it is kept in "
        "the results workbook and never sent):\n" + "\n".join(lines),
    )


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

        rules = self.rules
        header = self.header
        at = self.at
        problems: list[tuple[int, Problem]] = []
        ticket, message = _check_ticket(raw_ticket, rules)
        # The ticket as written, kept for the results even when the row is Invalid.
        as_written = ticket or ("" if raw_ticket is None else _text(raw_ticket).strip())
        if message:
            problems.append(
                (at[Field.TICKET_NUMBER], Problem(header[Field.TICKET_NUMBER], message))
            )
        if ticket:
            self.tickets.append((position, ticket.casefold(), ticket))

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

        state = None
        if has_state:
            state = _parse_state(raw_state)
            if state is None:
                message = _show(raw_state) + self.state_problem_tail
                problems.append(
                    (at[Field.TICKET_STATE], Problem(header[Field.TICKET_STATE], message))
                )

        priority: str | int | None = None
        if not has_priority:
            problems.append(
                (at[Field.PRIORITY], Problem(header[Field.PRIORITY], self.priority_required))
            )
        else:
            priority = _parse_priority(raw_priority, rules)
            if priority is None:
                message = _show(raw_priority) + self.priority_problem_tail
                problems.append((at[Field.PRIORITY], Problem(header[Field.PRIORITY], message)))

        assigned = None
        if has_assigned:
            assigned = (
                raw_assigned if raw_assigned.__class__ is str else _text(raw_assigned)
            ).strip()

        description = None
        if has_description:
            description = (
                raw_description if raw_description.__class__ is str else _text(raw_description)
            ).strip()
            limit = rules.description_max_length
            if len(description) > limit:
                message = (
                    f"the description is {len(description):,} characters long; the limit is "
                    f"{limit:,} (setting description_max_length)."
                )
                problems.append(
                    (
                        at[Field.TICKET_DESCRIPTION],
                        Problem(header[Field.TICKET_DESCRIPTION], message),
                    )
                )

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


# Cells whose value the file does not hold: a formula never calculated, or an error value.
_MARKERS = frozenset({FormulaWithoutValue, CellError})


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


# --- cells ---------------------------------------------------------------------------------


def _is_blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value or value.isspace()
    return False


def _text(value: object) -> str:
    """A cell as text: numbers as Excel shows them, dates as ISO, the rest as str()."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        if value.time() == time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    try:
        return str(value)
    except Exception:  # an object whose __str__ fails is still a cell to report, not a crash
        return object.__repr__(value)


def _show(value: object) -> str:
    """A cell value quoted for a message, control characters made visible, long text cut."""
    text = _text(value)
    shown = "".join(_visible(ch) for ch in text)
    if len(shown) > _MAX_SHOWN_CHARS:
        shown = shown[: _MAX_SHOWN_CHARS - 3] + "..."
    return f'"{shown}"'


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(ch: str) -> str:
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
        return f"<U+{ord(ch):04X}>"
    return ch


def _char_name(ch: str) -> str:
    name = unicodedata.name(ch, "")
    shown = ch if unicodedata.category(ch)[0] not in ("C", "Z") else ""
    code = f"U+{ord(ch):04X}"
    if shown:
        return f'"{shown}" ({name or code})'
    return f"{code} ({name})" if name else code


_WHITESPACE_NAMES = {
    " ": "a space",
    "\t": "a tab",
    "\n": "a line break",
    "\r": "a line break",
    "\u00a0": "a non-breaking space",
}


# Anything but printable, non-space ASCII sends a ticket number to the closer look.
_NOT_PLAIN = re.compile(r"[^\x21-\x7e]")


# Cell types a ticket number never is: Excel turns "3-1" or "12:30" into a date or time as it is
# typed, and TRUE/FALSE are yes/no values; their text would be sent as a ticket number.
_NOT_A_TICKET = (bool, datetime, date, time, timedelta)


def _not_a_ticket(value: object) -> str:
    if isinstance(value, bool):
        return f"{_show(value)} is a yes/no value, not a ticket number; retype it."
    what = "a date" if isinstance(value, date) else "a time"
    return (
        f"{_show(value)} is {what}, not a ticket number; Excel may have turned what was typed "
        f"into {what}: format the column as Text and type the ticket number again."
    )


def _check_ticket(value: object, rules: ValidationRules) -> tuple[str, str | None]:
    """The ticket number's text and what is wrong with it (None if nothing)."""
    if _is_blank(value):
        return "", (
            "no ticket number; fill in the number shown in the CCS Remediation workspace, "
            f"e.g. {_EXAMPLE_TICKET}."
        )
    if value.__class__ is not str and isinstance(value, _NOT_A_TICKET):
        return _text(value), _not_a_ticket(value)
    text = _text(value).strip()
    if _NOT_PLAIN.search(text):
        spaces = sorted({ch for ch in text if ch.isspace()})
        if spaces:
            kinds = _join(
                list(dict.fromkeys(_WHITESPACE_NAMES.get(ch) or _char_name(ch) for ch in spaces))
            )
            return text, (
                f"{_show(text)} contains {kinds}; a ticket number is one word without spaces, "
                f"e.g. {_EXAMPLE_TICKET}."
            )
        odd = list(dict.fromkeys(ch for ch in text if not (ch.isascii() and ch.isprintable())))
        names = _join([_char_name(ch) for ch in odd[:3]])
        if len(odd) > 3:
            names = ", ".join(_char_name(ch) for ch in odd[:3]) + f" and {len(odd) - 3} more"
        what = (
            "is not a plain letter or digit" if len(odd) == 1 else "are not plain letters or digits"
        )
        return text, f"{_show(text)} contains {names}, which {what}; retype it."
    pattern = rules._pattern
    if pattern is not None and pattern.fullmatch(text) is None:
        return text, (
            f"{_show(text)} does not match the ticket-number pattern {rules.ticket_pattern} "
            "(setting ticket_pattern)."
        )
    return text, None


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


_STATE_NAMES: Mapping[str, TicketState] = MappingProxyType(
    {_squash_words(state.label): state for state in TicketState}
)
_WHOLE_NUMBER = re.compile(r"[+]?(\d+)(?:\.0*)?")
# "2 Remediation Performed" or "2 - Remediation Performed", as the messages list them.
_NUMBERED_NAME = re.compile(r"(\d+)\s*(?:[-.:)]\s*)?(\D.*)")


def _whole_number(value: object) -> int | None:
    """The whole number a cell holds (2, 2.0, "2", " 2 ", "2.0"), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        match = _WHOLE_NUMBER.fullmatch(value.strip())
        if match and match.group(1).isascii():
            return int(match.group(1))
    return None


_STATE_BY_NUMBER: Mapping[int, TicketState] = MappingProxyType({s.value: s for s in TicketState})


# Cells as text files and most sheets hold them, looked up before any normalizing.
_STATE_BY_TEXT: Mapping[str, TicketState] = MappingProxyType(
    {
        **{str(s.value): s for s in TicketState},
        **{s.label: s for s in TicketState},
        **{s.label.lower(): s for s in TicketState},
    }
)


def _parse_state(value: object) -> TicketState | None:
    if value.__class__ is int:
        return _STATE_BY_NUMBER.get(value)  # type: ignore[call-overload]
    if value.__class__ is str and value in _STATE_BY_TEXT:
        return _STATE_BY_TEXT[value]  # type: ignore[index]
    number = _whole_number(value)
    if number is not None:
        return TicketState(number) if 1 <= number <= len(TicketState) else None
    if not isinstance(value, str):
        return None
    words = _squash_words(value)
    if words in _STATE_NAMES:
        return _STATE_NAMES[words]
    numbered = _NUMBERED_NAME.fullmatch(words)
    if numbered and numbered.group(1).isascii():
        state = _STATE_NAMES.get(numbered.group(2).strip())
        if state is not None and int(numbered.group(1)) == state.value:
            return state
    return None


def _parse_priority(value: object, rules: ValidationRules) -> str | int | None:
    count = len(rules.priorities)
    if value.__class__ is str and value in rules._priority_index:
        name, position = rules._priority_index[value]  # type: ignore[index]
        return position if rules.priority_format is PriorityFormat.INTEGER else name
    if rules.priority_format is PriorityFormat.INTEGER:
        number = _whole_number(value)
        if number is not None:
            return number if 1 <= number <= count else None
        found = rules._priority_index.get(_squash_words(_text(value)))
        return found[1] if found else None
    found = rules._priority_index.get(_squash_words(_text(value)))
    return found[0] if found else None
