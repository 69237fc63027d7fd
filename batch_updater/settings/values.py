"""Parsing one value: the raw value and where it came from in, the typed value or a message out."""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

from ..tickets import Field
from .folders import network_location, user_state_folder
from .model import API_PATH, AUTO, DEFAULT_PORT, MAX_CONCURRENCY, FrozenMapping, Secret

# ---------------------------------------------------------------------------------------------
# Parsing one value. A parser gets the raw value and where it came from, and returns the typed
# value or raises _Bad with the second half of a message ("0 is out of range; use ...").


class _Bad(Exception):
    def __init__(self, text: str, tip: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.tip = tip


@dataclass(frozen=True)
class _Origin:
    """Where a value came from: the message prefix, the source label, and how to read it."""

    where: str
    source: str
    from_yaml: bool  # config file: YAML has types, so a quoted number is an error
    base_dir: Path
    key_hint: str = ""  # for "write it as rate: 5" tips


_BACKSLASH_TIP = (
    "In double-quoted YAML a backslash starts an escape (\\t, \\n...): write the value in single "
    "quotes, e.g. 'corp\\svc-ccs' or 'C:\\certs\\ca.pem', or double each backslash inside double "
    "quotes."
)


def _show(value: object) -> str:
    """A value as a message shows it: text in double quotes, control characters escaped."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a group of keys"
    if isinstance(value, (list, tuple, set)):
        return "a list"
    if isinstance(value, (str, Path)):
        text = str(value)
        if len(text) > 60:
            text = text[:57] + "..."
        text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
        return f'"{text}"'
    return str(value)


def _has_control(text: str) -> bool:
    return not text.isprintable()


def _text_value(value: object, origin: _Origin, what: str, accepted: str) -> str:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise _Bad(f"the value is empty; use {accepted}, or leave the key out")
        if _has_control(text):
            raise _Bad(
                f"{_show(value)} contains a tab, line break or other control character; "
                f"use {accepted}",
                _BACKSLASH_TIP if origin.from_yaml else None,
            )
        return text
    raise _Bad(f"{_show(value)} is not {what}; use {accepted}")


def _number(value: object, origin: _Origin, *, whole: bool, accepted: str) -> float:
    kind = "a whole number" if whole else "a number"
    if isinstance(value, bool):
        raise _Bad(f"{_show(value)} is not {kind}; use {accepted}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise _Bad(f"{_show(value)} is not {kind}; use {accepted}") from None
        if origin.from_yaml:
            # YAML only makes text of a number written in quotes; say so rather than guess.
            tip = f"Write it as {origin.key_hint}: {value.strip()}" if origin.key_hint else None
            raise _Bad(
                f"{_show(value)} is text (it is in quotes); use {accepted}, without quotes", tip
            )
    else:
        raise _Bad(f"{_show(value)} is not {kind}; use {accepted}")
    if not math.isfinite(number) or (whole and number != int(number)):
        raise _Bad(f"{_show(value)} is not {kind}; use {accepted}")
    return number


_CONCURRENCY_ACCEPTED = f"{AUTO} or a whole number from 1 to {MAX_CONCURRENCY}, e.g. 4"


def _auto_or(parse_number: _Parser) -> _Parser:
    """The word "auto" (any case), or what parse_number accepts."""

    def parse(value: object, origin: _Origin) -> object:
        if isinstance(value, str) and value.strip().lower() == AUTO:
            return AUTO
        return parse_number(value, origin)

    return parse


def _float_in(low: float, high: float, *, above_low: bool, accepted: str) -> _Parser:
    def parse(value: object, origin: _Origin) -> float:
        number = _number(value, origin, whole=False, accepted=accepted)
        if number > high or number < low or (above_low and number == low):
            raise _Bad(f"{_show(value)} is out of range; use {accepted}")
        return number

    return parse


def _int_in(low: int, high: int, *, accepted: str) -> _Parser:
    def parse(value: object, origin: _Origin) -> int:
        number = _number(value, origin, whole=True, accepted=accepted)
        if not low <= number <= high:
            raise _Bad(f"{_show(value)} is out of range; use {accepted}")
        return int(number)

    return parse


_TRUE_WORDS = {"true", "yes", "on", "1"}
_FALSE_WORDS = {"false", "no", "off", "0"}


def _parse_bool(value: object, origin: _Origin) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and not origin.from_yaml:
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise _Bad(f"{_show(value)} is not true or false; use true or false")


def _enum_parser(enum: type[Enum], what: str) -> _Parser:
    choices = ", ".join(member.value for member in enum)

    def parse(value: object, origin: _Origin) -> Enum:
        if isinstance(value, enum):
            return value
        if isinstance(value, str):
            for member in enum:
                if member.value == value.strip().lower():
                    return member
        raise _Bad(f"{_show(value)} is not {what}; use one of {choices}")

    return parse


def _path_value(value: object, origin: _Origin, accepted: str) -> Path:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    text = _text_value(value, origin, "a path", accepted)
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = origin.base_dir / path
    return path


def _parse_path(value: object, origin: _Origin) -> Path:
    return _path_value(value, origin, "the path of a file or folder")


def _parse_journal_dir(value: object, origin: _Origin) -> Path:
    accepted = "the path of a folder on this machine's own disk"
    raw = os.fspath(value) if isinstance(value, os.PathLike) else value
    path = _path_value(value, origin, accepted)
    network = network_location(raw) if isinstance(raw, str) else None
    network = network or network_location(path)
    if network is not None:
        raise _Bad(
            f'"{path}" is on {network}: the run journal is a SQLite database in WAL mode, which '
            "does not work on a network file system; use a folder on this machine's own disk, or "
            "leave output.journal_dir out to keep journals in the per-user state folder "
            f"({user_state_folder() / 'journals'}). A copy of each finished journal is written "
            "beside the results workbook anyway, wherever that is"
        )
    return path


def _parse_ca_bundle(value: object, origin: _Origin) -> Path:
    accepted = "the path of a PEM file holding your CA's certificate(s)"
    path = _path_value(value, origin, accepted)
    if not path.exists():
        raise _Bad(f'"{path}" does not exist; use {accepted}')
    return path


def _parse_username(value: object, origin: _Origin) -> str:
    return _text_value(
        value, origin, "a user name", "a user name such as 'corp\\svc-ccs' (in single quotes)"
    )


def _parse_sheet(value: object, origin: _Origin) -> str:
    # A sheet named 2024 arrives from YAML as an int; it is still a sheet name.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text_value(value, origin, "a sheet name", "the name of a sheet, e.g. Tickets")


def _parse_password(value: object, origin: _Origin) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret(value)
    raise _Bad("the password is not text")


def _parse_ticket_pattern(value: object, origin: _Origin) -> str:
    accepted = "a Python regular expression, e.g. '^INCA\\d{7}$' (in single quotes)"
    if not isinstance(value, str) or not value.strip():
        raise _Bad(f"{_show(value)} is not a regular expression; use {accepted}")
    try:
        re.compile(value)
    except re.error as exc:
        raise _Bad(
            f"{_show(value)} is not a valid regular expression ({exc}); use {accepted}"
        ) from None
    return value


def _parse_priorities(value: object, origin: _Origin) -> tuple[str, ...]:
    accepted = "a list of priority names, e.g. [Low, Medium, High]"
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _Bad(f"{_show(value)} is not a list; use {accepted}")
    names: list[str] = []
    seen: set[str] = set()
    for item in value:
        if isinstance(item, int) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str) or not item.strip():
            raise _Bad(f"{_show(item)} is not a priority name; use {accepted}")
        name = item.strip()
        if name.casefold() in seen:
            raise _Bad(f"{_show(name)} is listed twice; list each priority once")
        seen.add(name.casefold())
        names.append(name)
    if not names:
        raise _Bad(f"the list is empty; use {accepted}")
    return tuple(names)


def _squash(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.casefold())


# Field values (any case, with or without spaces/underscores) and the names people use.
_FIELD_NAMES: Mapping[str, Field] = MappingProxyType(
    {
        **{_squash(item.value): item for item in Field},
        "state": Field.TICKET_STATE,
        "status": Field.TICKET_STATE,
        "ticketstatus": Field.TICKET_STATE,
        "description": Field.TICKET_DESCRIPTION,
        "assignee": Field.ASSIGNED_TO,
    }
)
_FIELD_CHOICES = ", ".join(item.value for item in Field)
_FIELD_TIP = "The names Ticket Number, State, Description, Priority and Assigned To work too."


def parse_field_name(text: str) -> Field | None:
    """The Field a name like "TicketState", "ticket state" or "Assigned To" stands for, or None."""
    return _FIELD_NAMES.get(_squash(text))


# The value under columns: that says "this column is context, not a field".
IGNORE_COLUMN = "ignore"


def _is_ignore(name: object) -> bool:
    return isinstance(name, str) and name.strip().casefold() == IGNORE_COLUMN


def _parse_ignored_columns(value: object, origin: _Origin) -> tuple[str, ...]:
    # The same columns: mapping as _parse_columns, which reports what is wrong with it.
    if not isinstance(value, Mapping):
        return ()
    return tuple(
        header.strip()
        for header, name in value.items()
        if isinstance(header, str) and header.strip() and _is_ignore(name)
    )


def _parse_columns(value: object, origin: _Origin) -> Mapping[str, Field]:
    accepted = 'header text mapped to a field, e.g. "Ticket #": TicketNumber'
    if not isinstance(value, Mapping):
        raise _Bad(f"{_show(value)} is not a mapping; use {accepted}")
    mapping: dict[str, Field] = {}
    headers_by_field: dict[Field, str] = {}
    for header, name in value.items():
        if not isinstance(header, str) or not header.strip():
            raise _Bad(
                f"the header {_show(header)} is not text; put it in quotes, e.g. "
                f'"{header}": TicketNumber'
            )
        header = header.strip()
        if _is_ignore(name):
            continue
        chosen = name if isinstance(name, Field) else None
        if chosen is None and isinstance(name, str):
            chosen = parse_field_name(name)
        if chosen is None:
            hint = ""
            if isinstance(name, str):
                close = difflib.get_close_matches(
                    _squash(name), list(_FIELD_NAMES), n=1, cutoff=0.6
                )
                if close:
                    hint = f'did you mean "{_FIELD_NAMES[close[0]].value}"? '
            raise _Bad(
                f"column {_show(header)}: {_show(name)} is not a ticket field; {hint}"
                f"use one of {_FIELD_CHOICES}, or {IGNORE_COLUMN} for a column that is only "
                "context",
                _FIELD_TIP,
            )
        if chosen in headers_by_field:
            raise _Bad(
                f"{_show(headers_by_field[chosen])} and {_show(header)} both map to "
                f"{chosen.value}; map one column to each field"
            )
        headers_by_field[chosen] = header
        mapping[header] = chosen
    return FrozenMapping(mapping)


_URL_ACCEPTED = "the server's address, e.g. https://ccs01.corp.example:12431 or ccs01.corp.example"


def normalize_url(text: str) -> str:
    """The server's base URL: scheme https by default, port 12431 by default, no API path.

    Raises ValueError with a message part ("... is not ...; use ...") when it cannot be one.
    """
    try:
        return _normalize_url(text)
    except _Bad as bad:
        raise ValueError(bad.text) from None


def _normalize_url(value: str) -> str:
    text = value.strip()
    if not text:
        raise _Bad(f"the value is empty; use {_URL_ACCEPTED}")
    if "@" in text:
        # Checked first and never echoed: what precedes the @ may well be a password (and a
        # password holding a "/" would make urlsplit() see it as a path, not as user info).
        raise _Bad(
            "the server address contains a user name or password; use "
            f"{_URL_ACCEPTED}, and give the user name as auth.username and the password in "
            "CCS_PASSWORD"
        )
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise _Bad(f"{_show(value)} contains spaces or control characters; use {_URL_ACCEPTED}")
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _Bad(f"{_show(value)} is not an http or https address; use {_URL_ACCEPTED}")
    if "?" in text or "#" in text:
        raise _Bad(f"{_show(value)} has a query or fragment (? or #); use {_URL_ACCEPTED}")
    host = parts.hostname
    if not host:
        raise _Bad(f"{_show(value)} has no host name; use {_URL_ACCEPTED}")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise _Bad(f"{_show(value)} has an invalid port; use a port from 1 to 65535, e.g. :12431")
    if port is None:
        port = DEFAULT_PORT
    path = parts.path.rstrip("/")
    if path.lower().endswith(API_PATH):
        path = path[: -len(API_PATH)].rstrip("/")
    if "/ccs/api" in path.lower():
        raise _Bad(
            f"{_show(value)} includes an API path; use {_URL_ACCEPTED} "
            f"(the tool adds {API_PATH}/... itself)"
        )
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}{path}"


def _parse_url(value: object, origin: _Origin) -> str:
    if not isinstance(value, str):
        raise _Bad(f"{_show(value)} is not a server address; use {_URL_ACCEPTED}")
    return _normalize_url(value)


_Parser = Callable[[object, _Origin], object]
