"""The rules rows are judged by: header aliases, priorities, limits; ValidationRules from Settings."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..tickets import (
    Field,
    PriorityFormat,
)

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

if TYPE_CHECKING:
    from ..settings import Settings


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


def rules_from_settings(settings: Settings) -> ValidationRules:
    """The validation rules a Settings object describes."""
    return ValidationRules(
        priorities=tuple(settings.priorities),
        priority_format=settings.priority_format,
        description_max_length=settings.description_max_length,
        ticket_pattern=settings.ticket_pattern,
        column_mapping=settings.column_mapping,
        ignored_columns=tuple(settings.ignored_columns),
    )
