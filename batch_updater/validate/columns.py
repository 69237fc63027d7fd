"""Which column feeds which field; a column that reads like a field but is not recognised stops the run."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from ..errors import InputError
from ..sheet import column_letter
from ..tickets import (
    Field,
)
from .cells import _join, _visible
from .rules import _ALIAS_INDEX, _CHANGE_FIELDS, _FIELD_LABELS, ValidationRules, normalize_header

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


def alias_field(header: str) -> Field | None:
    """The field a header names by one of its aliases ("Assigned To", "Status"...), else None."""
    return _ALIAS_INDEX.get(normalize_header(header))
