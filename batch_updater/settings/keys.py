"""Every key of the config file: its group, its attribute, its parser.

Written by hand rather than as pydantic models, on purpose: each value is parsed where it comes
from (a key of the file, an environment variable, an option), so that its message names that
origin and says what would be accepted for that key ("rate: a number of requests per second
above 0 and at most 1000, e.g. 5"); the layers (defaults < file < environment < command line)
keep where each value came from (`Settings.source_of`). pydantic validates a merged model, so
it would need one validator per key per layer and a translation of its error types back into
these messages: this table again, plus that. It would also add about 80 ms to every start
(measured: importing it and building one small model), for no value the table does not have.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ..tickets import PriorityFormat
from .model import MAX_ATTEMPTS, MAX_CONCURRENCY, MAX_RATE, PasswordEncoding
from .values import (
    _CONCURRENCY_ACCEPTED,
    _auto_or,
    _enum_parser,
    _float_in,
    _int_in,
    _parse_bool,
    _parse_ca_bundle,
    _parse_columns,
    _parse_ignored_columns,
    _parse_journal_dir,
    _parse_password,
    _parse_path,
    _parse_priorities,
    _parse_sheet,
    _parse_ticket_pattern,
    _parse_url,
    _parse_username,
    _Parser,
)


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
    _Key("require_approval", "plan", "require_approval", _parse_bool),
    _Key(
        "plan_expiry_days",
        "plan",
        "expiry_days",
        _int_in(1, 365, accepted="a whole number of days from 1 to 365, e.g. 7"),
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
            "plan",
        )
    }
)
