"""Cell values as validation reads them: blank, text, shown in messages, ticket numbers, states, priorities."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta
from types import MappingProxyType

from ..tickets import (
    PriorityFormat,
    TicketState,
)
from .rules import _EXAMPLE_TICKET, _MAX_SHOWN_CHARS, ValidationRules, _squash_words

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
        return _STATE_BY_NUMBER.get(value)
    if value.__class__ is str and value in _STATE_BY_TEXT:
        return _STATE_BY_TEXT[value]
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
        name, position = rules._priority_index[value]
        return position if rules.priority_format is PriorityFormat.INTEGER else name
    if rules.priority_format is PriorityFormat.INTEGER:
        number = _whole_number(value)
        if number is not None:
            return number if 1 <= number <= count else None
        found = rules._priority_index.get(_squash_words(_text(value)))
        return found[1] if found else None
    found = rules._priority_index.get(_squash_words(_text(value)))
    return found[0] if found else None


def parse_state(value: object) -> TicketState | None:
    """A state from a cell or an option: 1-5 (2.0 too) or its name in any case; None if not."""
    return _parse_state(value)
