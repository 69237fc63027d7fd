"""The settings of a run: one frozen object built from defaults < config file < environment < CLI.

``load_settings()`` resolves everything once; every other module gets the resulting ``Settings``
passed in and never reads the environment or a file for its own configuration.

Where the settings come from, lowest precedence first:

1. the defaults below;
2. one YAML config file (``yaml.safe_load`` semantics): the ``config_path`` argument (``--config``),
   else ``CCS_CONFIG``, else ``./batch-update.yaml``, else the per-user file
   (``user_config_path()``); only the first one found is read, files are not merged;
3. the ``CCS_...`` environment variables (see ``ENVIRONMENT_VARIABLES``); an empty variable counts
   as not set;
4. the command line, which passes its already-parsed values keyed by attribute name.

Rules worth knowing:

- In the config file, numbers and true/false are written without quotes; ``rate: "5"`` is an
  error rather than a guess (values from the environment and the command line are text by nature
  and are parsed).
- A ``null`` (or empty) value in the config file means "not set": the default applies.
- Relative paths in the config file are relative to the config file's folder; relative paths from
  the environment or the command line are relative to the current directory.
- The password never comes from the config file (a ``password`` or token key there is refused);
  it comes from ``CCS_PASSWORD`` or from the CLI's prompt, and is kept in a ``Secret``.
- Unknown keys are an error with a did-you-mean; every problem found in one pass is reported at
  once.
"""

from __future__ import annotations

import difflib
import hmac
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path, PurePath, PureWindowsPath
from types import MappingProxyType
from typing import NoReturn
from urllib.parse import urlsplit

import platformdirs
import yaml

from .errors import ConfigError
from .tickets import Field, PriorityFormat, TextEnum

APP_NAME = "batch-update"
DEFAULT_CONFIG_FILE_NAME = "batch-update.yaml"
DEFAULT_PORT = 12431
API_PATH = "/ccs/api/v1"
MAX_RATE = 1000.0
MAX_CONCURRENCY = 64
# The default concurrency: workers added as the server's response time needs (see runner.py).
AUTO = "auto"
MAX_ATTEMPTS = 20

SOURCE_DEFAULT = "default"
SOURCE_CONFIG_FILE = "config file"
SOURCE_COMMAND_LINE = "command line"
SOURCE_PROMPT = "prompt"

# Settings attribute -> environment variable (CCS_CONFIG names the config file itself).
ENVIRONMENT_VARIABLES: Mapping[str, str] = MappingProxyType(
    {
        "url": "CCS_URL",
        "username": "CCS_USERNAME",
        "password": "CCS_PASSWORD",
        "password_encoding": "CCS_PASSWORD_ENCODING",
        "ca_bundle": "CCS_CA_BUNDLE",
        "rate": "CCS_RATE",
        "concurrency": "CCS_CONCURRENCY",
    }
)
CONFIG_ENVIRONMENT_VARIABLE = "CCS_CONFIG"


class Secret:
    """A string that never shows itself: repr and str are masked, pickling is refused."""

    __slots__ = ("_value",)
    MASK = "********"

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret wraps a str")
        self._value = value

    def reveal(self) -> str:
        """The secret value itself; call it only where the value is sent to the server."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{self.MASK}')"

    def __str__(self) -> str:
        return self.MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode("utf-8"), other._value.encode("utf-8"))

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> NoReturn:
        # Pickles end up in files and queues; a password must not travel that way.
        raise TypeError("a Secret is not pickled, so that the password is never written out")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: object) -> Secret:
        return self


class FrozenMapping(Mapping[str, object]):
    """A read-only dict for Settings' mappings: hashable, deep-copyable and picklable.

    (types.MappingProxyType is read-only too, but breaks copy.deepcopy and dataclasses.asdict.)
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, object] | None = None) -> None:
        self._items = dict(items or {})

    def __getitem__(self, key: str) -> object:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return repr(self._items)

    def __eq__(self, other: object) -> bool:
        return dict(self._items) == other if isinstance(other, Mapping) else NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __reduce__(self) -> tuple[object, ...]:
        return (FrozenMapping, (self._items,))

    def __deepcopy__(self, memo: object) -> FrozenMapping:
        return self


class PasswordEncoding(TextEnum):
    """How the password is put in the token request (the vendor's page and samples disagree)."""

    BASE64 = "base64"
    PLAIN = "plain"


@dataclass(frozen=True)
class Settings:
    """Everything a run needs to know, resolved once. Build it with load_settings()."""

    # server
    url: str | None = None
    ca_bundle: Path | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    # auth
    username: str | None = None
    password: Secret | None = None
    password_encoding: PasswordEncoding = PasswordEncoding.BASE64
    # How long an access token lives when the token answer has no expires_in.
    token_lifetime: float = 3600.0
    # pacing
    rate: float = 5.0
    concurrency: int | str = AUTO  # AUTO, or a fixed number of requests in flight
    # retries
    max_attempts: int = 4
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    max_throttled: int = 20
    # stop
    stop_forbidden_at_start: int = 5
    stop_transient_streak: int = 10
    # input
    sheet: str | None = None
    max_rows: int = 1_000_000
    column_mapping: Mapping[str, Field] = field(default_factory=FrozenMapping)
    # Headers the config's columns: names as context (`"Status Date": ignore`): never sent.
    ignored_columns: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ("Low", "Medium", "High")
    priority_format: PriorityFormat = PriorityFormat.NAME
    description_max_length: int = 4000
    ticket_pattern: str | None = None
    # output
    output_dir: Path | None = None
    write_csv: bool = False
    log_file: Path | None = None
    journal_dir: Path | None = None
    journal_keep_days: int = 90
    capture_before: bool = False
    verify: bool = False
    # provenance
    config_path: Path | None = None
    sources: Mapping[str, str] = field(default_factory=FrozenMapping)

    def __post_init__(self) -> None:
        # Tests and callers may build Settings directly with plain dicts and lists; keep it frozen.
        if not isinstance(self.column_mapping, FrozenMapping):
            mapping = {header: Field(value) for header, value in self.column_mapping.items()}
            object.__setattr__(self, "column_mapping", FrozenMapping(mapping))
        if not isinstance(self.sources, FrozenMapping):
            object.__setattr__(self, "sources", FrozenMapping(self.sources))
        if not isinstance(self.priorities, tuple):
            object.__setattr__(self, "priorities", tuple(self.priorities))
        if not isinstance(self.ignored_columns, tuple):
            object.__setattr__(self, "ignored_columns", tuple(self.ignored_columns))
        if isinstance(self.password, str):
            object.__setattr__(self, "password", Secret(self.password))

    def source_of(self, name: str) -> str:
        """Where setting `name` came from: "default", "config file", "environment CCS_RATE"..."""
        return self.sources.get(name, SOURCE_DEFAULT)

    def describe(self) -> dict[str, object]:
        """The settings as plain JSON-able values for the workbook and journal, password masked."""
        described: dict[str, object] = {}
        for item in fields(self):
            if item.name == "sources":
                continue
            described[item.name] = _plain(item.name, getattr(self, item.name))
        return described


def _plain(name: str, value: object) -> object:
    if name == "password":
        return None if value is None else Secret.MASK
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): _plain(name, item) for key, item in value.items()}
    if isinstance(value, tuple):
        return list(value)
    return value


def user_config_path() -> Path:
    """Where the per-user config file is looked for, e.g. ~/.config/batch-update/config.yaml."""
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "config.yaml"


def user_state_folder() -> Path:
    """The per-user state folder on local disk, where journals and run locks live by default.

    Windows: %LOCALAPPDATA%\\batch-update (never the roaming profile, which may sit on a share);
    Linux: ~/.local/state/batch-update ($XDG_STATE_HOME); macOS: ~/Library/Application
    Support/batch-update. The environment variable BATCH_UPDATE_STATE_DIR overrides it (tests, or
    a machine whose profile folder is itself redirected to a share).
    """
    override = os.environ.get(STATE_DIR_VARIABLE, "").strip()
    if override:
        return Path(override).expanduser().absolute()
    return Path(platformdirs.user_state_dir(APP_NAME, appauthor=False, roaming=False))


STATE_DIR_VARIABLE = "BATCH_UPDATE_STATE_DIR"


# GetDriveTypeW's answer for a mapped network drive.
DRIVE_REMOTE = 4


def windows_drive_type(root: str) -> int:
    """GetDriveTypeW of a drive root such as "Z:\\" (Windows only; 0, unknown, elsewhere)."""
    if os.name != "nt":
        return 0
    import ctypes  # stdlib; windll exists on Windows only

    return int(ctypes.windll.kernel32.GetDriveTypeW(root))  # type: ignore[attr-defined]


def network_location(
    path: str | PurePath, drive_type: Callable[[str], int] = windows_drive_type
) -> str | None:
    """Why a folder is on a network file system ("a UNC path", "mapped network drive Z:"), or None.

    A pure function of the path's text read the Windows way, so that it is tested anywhere:
    `\\\\server\\share\\...` (or `//server/share/...`) is a network share; a drive letter is one
    when drive_type (GetDriveTypeW on Windows) says DRIVE_REMOTE.
    """
    text = os.fspath(path)
    for prefix in ("\\\\?\\UNC\\", "//?/UNC/"):
        if text[: len(prefix)].upper() == prefix.upper():
            return f"a network share (\\\\{text[len(prefix) :]})"
    if text.startswith(("\\\\?\\", "\\\\.\\", "//?/", "//./")):
        text = text[4:]  # \\?\C:\... is a long local path
    windows = PureWindowsPath(text)
    drive = windows.drive
    if drive.startswith(("\\\\", "//")) or text.startswith(("\\\\", "//")):
        return f"a network share ({drive or text})"
    if len(drive) == 2 and drive[1] == ":":
        try:
            kind = drive_type(drive + "\\")
        except OSError:
            return None
        if kind == DRIVE_REMOTE:
            return f"the mapped network drive {drive.upper()}"
    return None


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


@dataclass(frozen=True)
class _Key:
    """One setting: its attribute, its place in the YAML file, and how its value is read."""

    attr: str
    group: str
    name: str
    parse: _Parser

    @property
    def path(self) -> str:
        return f"{self.group}.{self.name}"


_SECONDS_ABOVE_0 = "a number of seconds above 0 and at most 3600"
_KEYS: tuple[_Key, ...] = (
    _Key("url", "server", "url", _parse_url),
    _Key("ca_bundle", "server", "ca_bundle", _parse_ca_bundle),
    _Key(
        "connect_timeout",
        "server",
        "connect_timeout",
        _float_in(0, 3600, above_low=True, accepted=f"{_SECONDS_ABOVE_0}, e.g. 10"),
    ),
    _Key(
        "read_timeout",
        "server",
        "read_timeout",
        _float_in(0, 3600, above_low=True, accepted=f"{_SECONDS_ABOVE_0}, e.g. 60"),
    ),
    _Key("username", "auth", "username", _parse_username),
    _Key(
        "password_encoding",
        "auth",
        "password_encoding",
        _enum_parser(PasswordEncoding, "a password encoding"),
    ),
    _Key(
        "token_lifetime",
        "auth",
        "token_lifetime",
        _float_in(
            0,
            86400,
            above_low=True,
            accepted="a number of seconds above 0 and at most 86400, e.g. 3600",
        ),
    ),
    _Key(
        "rate",
        "pacing",
        "rate",
        _float_in(
            0,
            MAX_RATE,
            above_low=True,
            accepted="a number of requests per second above 0 and at most 1000, e.g. 5",
        ),
    ),
    _Key(
        "concurrency",
        "pacing",
        "concurrency",
        _auto_or(_int_in(1, MAX_CONCURRENCY, accepted=_CONCURRENCY_ACCEPTED)),
    ),
    _Key(
        "max_attempts",
        "retries",
        "max_attempts",
        _int_in(
            1, MAX_ATTEMPTS, accepted="a whole number from 1 to 20 (the first try included), e.g. 4"
        ),
    ),
    _Key(
        "backoff_base",
        "retries",
        "backoff_base",
        _float_in(0, 600, above_low=False, accepted="a number of seconds from 0 to 600, e.g. 1"),
    ),
    _Key(
        "backoff_cap",
        "retries",
        "backoff_cap",
        _float_in(0, 3600, above_low=False, accepted="a number of seconds from 0 to 3600, e.g. 30"),
    ),
    _Key(
        "max_throttled",
        "retries",
        "max_throttled",
        _int_in(0, 1000, accepted="a whole number from 0 to 1000, e.g. 20"),
    ),
    _Key(
        "stop_forbidden_at_start",
        "stop",
        "forbidden_at_start",
        _int_in(0, 10_000, accepted="a whole number from 0 (never stop) to 10000, e.g. 5"),
    ),
    _Key(
        "stop_transient_streak",
        "stop",
        "transient_streak",
        _int_in(0, 100_000, accepted="a whole number from 0 (never stop) to 100000, e.g. 10"),
    ),
    _Key("sheet", "input", "sheet", _parse_sheet),
    _Key(
        "max_rows",
        "input",
        "max_rows",
        _int_in(1, 100_000_000, accepted="a whole number from 1 to 100000000, e.g. 1000000"),
    ),
    _Key("priorities", "input", "priorities", _parse_priorities),
    _Key(
        "priority_format",
        "input",
        "priority_format",
        _enum_parser(PriorityFormat, "a priority format"),
    ),
    _Key(
        "description_max_length",
        "input",
        "description_max_length",
        _int_in(1, 1_000_000, accepted="a whole number from 1 to 1000000, e.g. 4000"),
    ),
    _Key("ticket_pattern", "input", "ticket_pattern", _parse_ticket_pattern),
    _Key("output_dir", "output", "dir", _parse_path),
    _Key("write_csv", "output", "write_csv", _parse_bool),
    _Key("log_file", "output", "log_file", _parse_path),
    _Key("journal_dir", "output", "journal_dir", _parse_journal_dir),
    _Key("capture_before", "evidence", "capture_before", _parse_bool),
    _Key("verify", "evidence", "verify", _parse_bool),
    _Key(
        "journal_keep_days",
        "output",
        "journal_keep_days",
        _int_in(
            0, 100_000, accepted="a whole number of days from 0 (keep forever) to 100000, e.g. 90"
        ),
    ),
)
_COLUMNS_KEY = _Key("column_mapping", "columns", "", _parse_columns)
_IGNORED_COLUMNS_KEY = _Key("ignored_columns", "columns", "", _parse_ignored_columns)
_PASSWORD_KEY = _Key("password", "auth", "password", _parse_password)

_KEYS_BY_ATTR: Mapping[str, _Key] = MappingProxyType(
    {key.attr: key for key in (*_KEYS, _COLUMNS_KEY, _PASSWORD_KEY)}
)
_GROUPS: Mapping[str, Mapping[str, _Key]] = MappingProxyType(
    {
        group: MappingProxyType({key.name: key for key in _KEYS if key.group == group})
        for group in (
            "server",
            "auth",
            "pacing",
            "retries",
            "stop",
            "input",
            "columns",
            "output",
            "evidence",
        )
    }
)


# ---------------------------------------------------------------------------------------------
# The config file.


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice (safe_load would keep the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[object] = set()
        for key_node, _value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f'the key "{key}" is given twice; keep one', key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def _display_path(path: Path, cwd: Path) -> str:
    """The config file's name as messages show it: relative to the current folder when inside."""
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


def _read_yaml(path: Path, shown: str) -> object:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(
            f"{shown}: the file is not UTF-8 text.", tip="Save it as UTF-8 in your editor."
        ) from None
    except OSError as exc:
        raise ConfigError(f"{shown}: the file cannot be read ({exc.strerror or exc}).") from exc
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        place = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "unreadable"
        tip = None
        if "escape character" in problem:
            tip = _BACKSLASH_TIP
        elif "'\\t'" in problem:
            tip = "Indent with spaces, not tabs."
        elif "given twice" not in problem:
            tip = (
                "Check the indentation and that every key ends with a colon; "
                "config.example.yaml shows the layout."
            )
        # Not str(exc): that quotes the offending line, which could hold a password.
        raise ConfigError(f"{shown}{place}: not valid YAML: {problem}.", tip=tip) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{shown}: not valid YAML: {exc}.") from None


_PASSWORD_WORDS = ("password", "passwd")
_PASSWORD_NAMES = {"pwd", "pass", "passphrase"}
_SECRET_WORDS = ("secret", "apikey", "api_key", "credential", "bearer", "authorization")


def _secret_kind(key: str, *, exact: bool = False) -> str | None:
    """'a password', 'a token' or 'a secret' when a config key looks like one, else None.

    exact: match whole names only (under columns:, where keys are header text, not settings).
    """
    name = key.strip().lower().replace("-", "_").replace(" ", "_")
    if name in ("password_encoding", "token_lifetime"):  # settings about secrets, not secrets
        return None
    if exact:
        words = name.split("_")
        if words[-1] in {*_PASSWORD_WORDS, *_PASSWORD_NAMES}:
            return "a password"
        return "a token" if words[-1] == "token" else None
    if any(word in name for word in _PASSWORD_WORDS) or name in _PASSWORD_NAMES:
        return "a password"
    if "token" in name:
        return "a token"
    if any(word in name for word in _SECRET_WORDS):
        return "a secret"
    return None


def _refuse_secrets(data: object, shown: str, prefix: str = "") -> None:
    if isinstance(data, Mapping):
        for key, value in data.items():
            path = f"{prefix}{key}"
            kind = _secret_kind(str(key), exact=prefix == "columns.")
            if kind == "a password":
                raise ConfigError(
                    f'{shown}: a password does not belong in a config file (key "{path}"). '
                    "Set the CCS_PASSWORD environment variable, or leave it unset to be asked "
                    "at the prompt."
                )
            if kind is not None:
                raise ConfigError(
                    f'{shown}: {kind} does not belong in a config file (key "{path}"). '
                    "The tool gets its own tokens from the server with the user name and "
                    "password; set the password in the CCS_PASSWORD environment variable, or "
                    "leave it unset to be asked at the prompt."
                )
            _refuse_secrets(value, shown, f"{path}.")
    elif isinstance(data, list):
        for item in data:
            _refuse_secrets(item, shown, prefix)


def _suggest(path: str) -> str | None:
    """The valid key nearest to a mistyped one: the same name in another group, or a close one.

    A key inside a group is only ever matched with keys (never with a group name); a key at the
    top level may be a mistyped group or a key written without its group.
    """
    leaf = path.rsplit(".", 1)[-1]
    key_paths = [key.path for key in _KEYS]
    candidates = key_paths if "." in path else [*_GROUPS, *key_paths]
    for candidate in key_paths:
        if candidate != path and candidate.rsplit(".", 1)[-1] == leaf:
            return candidate
    for key in _KEYS:  # the Python name of a key, e.g. output_dir for output.dir
        if key.attr == leaf and key.path != path:
            return key.path
    close = difflib.get_close_matches(path, candidates, n=1, cutoff=0.6)
    return close[0] if close else None


def _unknown_key(shown: str, path: str, group: str | None) -> tuple[str, str | None]:
    if group is None:
        accepted = "The groups are " + ", ".join(_GROUPS) + "."
    else:
        accepted = f'The keys under "{group}" are ' + ", ".join(_GROUPS[group]) + "."
    suggestion = _suggest(path)
    if suggestion:
        return f'{shown}: unknown key "{path}"; did you mean "{suggestion}"?', accepted
    return f'{shown}: unknown key "{path}". {accepted}', None


def _file_values(
    data: object, shown: str, base_dir: Path, errors: list[tuple[str, str | None]]
) -> list[tuple[_Key, object, _Origin]]:
    """The (key, raw value, origin) triples of a config file, unknown keys added to errors."""
    if data is None:
        return []
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{shown}: the file holds {_show(data)}, not a mapping of settings; "
            "use groups such as server: and pacing: with their keys indented below them.",
            tip="config.example.yaml shows every key.",
        )
    _refuse_secrets(data, shown)
    found: list[tuple[_Key, object, _Origin]] = []
    for group_name, group_value in data.items():
        group_path = str(group_name)
        if group_name not in _GROUPS:
            errors.append(_unknown_key(shown, group_path, None))
            continue
        if group_value is None:
            continue
        origin = _Origin(
            where=f'{shown}, key "{group_path}"',
            source=SOURCE_CONFIG_FILE,
            from_yaml=True,
            base_dir=base_dir,
        )
        if group_name == "columns":
            found.append((_COLUMNS_KEY, group_value, origin))
            found.append((_IGNORED_COLUMNS_KEY, group_value, origin))
            continue
        if not isinstance(group_value, Mapping):
            errors.append(
                (
                    f'{shown}, key "{group_path}": {_show(group_value)} is not a group of keys; '
                    f"indent its keys below it: " + ", ".join(_GROUPS[group_path]) + ".",
                    None,
                )
            )
            continue
        for name, value in group_value.items():
            path = f"{group_path}.{name}"
            key = _GROUPS[group_path].get(name) if isinstance(name, str) else None
            if key is None:
                errors.append(_unknown_key(shown, path, group_path))
                continue
            if value is None:
                continue
            found.append(
                (
                    key,
                    value,
                    _Origin(
                        where=f'{shown}, key "{path}"',
                        source=SOURCE_CONFIG_FILE,
                        from_yaml=True,
                        base_dir=base_dir,
                        key_hint=str(name),
                    ),
                )
            )
    return found


def _find_config_file(config_path: Path | None, env: Mapping[str, str], cwd: Path) -> Path | None:
    if config_path is not None or env.get(CONFIG_ENVIRONMENT_VARIABLE, "").strip():
        if config_path is not None:
            given, where = Path(config_path), ""
        else:
            given = Path(env[CONFIG_ENVIRONMENT_VARIABLE].strip())
            where = f"environment variable {CONFIG_ENVIRONMENT_VARIABLE}: "
        path = given.expanduser()
        if not path.is_absolute():
            path = cwd / path
        if not path.is_file():
            problem = "is a folder, not a file" if path.is_dir() else "does not exist"
            raise ConfigError(
                f'{where}config file "{path}" {problem}.',
                tip="config.example.yaml, beside the README, shows every key.",
            )
        return path
    for candidate in (cwd / DEFAULT_CONFIG_FILE_NAME, user_config_path()):
        if candidate.is_file():
            return candidate
    return None


# ---------------------------------------------------------------------------------------------
# Putting it together.


# The CLI's options are named after the attributes, except these.
_CLI_OPTIONS = MappingProxyType({"username": "--user"})


def _cli_option(attr: str) -> str:
    return _CLI_OPTIONS.get(attr, "--" + attr.replace("_", "-"))


def load_settings(
    *,
    cli: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
    config_path: Path | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Resolve the settings: defaults < config file < environment (CCS_...) < command line."""
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else Path(cwd)
    errors: list[tuple[str, str | None]] = []
    values: dict[str, object] = {}
    sources: dict[str, str] = {}

    def take(key: _Key, raw: object, origin: _Origin) -> None:
        try:
            values[key.attr] = key.parse(raw, origin)
        except _Bad as bad:
            errors.append((f"{origin.where}: {bad.text}.", bad.tip))
            return
        sources[key.attr] = origin.source

    path = _find_config_file(config_path, env, cwd)
    if path is not None:
        shown = _display_path(path, cwd)
        data = _read_yaml(path, shown)
        for key, raw, origin in _file_values(data, shown, path.parent, errors):
            take(key, raw, origin)

    for attr, variable in ENVIRONMENT_VARIABLES.items():
        raw = env.get(variable)
        if raw is None or not raw.strip():
            continue
        origin = _Origin(
            where=f"environment variable {variable}",
            source=f"environment {variable}",
            from_yaml=False,
            base_dir=cwd,
        )
        take(_KEYS_BY_ATTR[attr], raw, origin)

    for attr, raw in (cli or {}).items():
        if raw is None:
            continue
        if attr not in _KEYS_BY_ATTR:
            # A wiring mistake in the CLI, not a user error.
            raise TypeError(
                f"load_settings(cli=...): {attr!r} is not a settings attribute; "
                "use the names of Settings' fields (config_path is its own argument)"
            )
        source = SOURCE_PROMPT if attr == "password" else SOURCE_COMMAND_LINE
        origin = _Origin(
            where=f"command line option {_cli_option(attr)}",
            source=source,
            from_yaml=False,
            base_dir=cwd,
        )
        take(_KEYS_BY_ATTR[attr], raw, origin)

    base = values.get("backoff_base", Settings.backoff_base)
    cap = values.get("backoff_cap", Settings.backoff_cap)
    if not errors and cap < base:  # type: ignore[operator]
        culprit = "backoff_cap" if "backoff_cap" in sources else "backoff_base"
        errors.append(
            (
                f"retries.backoff_cap ({cap:g} s, {sources.get('backoff_cap', SOURCE_DEFAULT)}) "
                f"is below retries.backoff_base ({base:g} s, "
                f"{sources.get('backoff_base', SOURCE_DEFAULT)}); make the cap at least the base.",
                f"Change {_KEYS_BY_ATTR[culprit].path}.",
            )
        )

    if errors:
        tips = list(dict.fromkeys(tip for _, tip in errors if tip))
        raise ConfigError("\n".join(text for text, _ in errors), tip="\n".join(tips) or None)

    return Settings(
        **values,  # type: ignore[arg-type]
        config_path=path,
        sources=FrozenMapping(sources),
    )
