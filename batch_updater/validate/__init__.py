"""Judge every row of a Sheet before anything is sent: an update, or problems that say what to fix.

Headers are matched to API fields (aliases, plus the config's `columns:` mapping, which wins);
each row's cells are checked against the rules of API-CONTRACT.md; duplicate ticket numbers are
found across the whole sheet. Validation never raises on a cell value: a bad cell is a Problem
of its row, and only a sheet that cannot be used at all (no ticket-number or Priority column,
two columns feeding one field, a column that reads like a field but is not recognised) is an
InputError.

Modules: `rules` (ValidationRules, aliases), `columns` (ColumnMap, map_columns, looks_like_field),
`plan` (plan, format_problem), `rows` (one row checked), `cells` (cell values read for checking).
"""

from ..tickets import PriorityFormat
from .cells import parse_state
from .columns import ColumnMap, alias_field, looks_like_field, map_columns
from .planning import Plan, format_problem, plan, plan_rows, sheet_location, validate_row
from .rules import (
    DEFAULT_DESCRIPTION_MAX_LENGTH,
    DEFAULT_PRIORITIES,
    DEFAULT_RULES,
    HEADER_ALIASES,
    ValidationRules,
    is_header_row,
    make_header_matcher,
    normalize_header,
    rules_from_settings,
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
    "alias_field",
    "format_problem",
    "is_header_row",
    "looks_like_field",
    "make_header_matcher",
    "map_columns",
    "normalize_header",
    "parse_state",
    "plan",
    "plan_rows",
    "rules_from_settings",
    "sheet_location",
    "validate_row",
]
