"""What a run's settings are: Settings, Secret, the constants and the environment variables."""

from __future__ import annotations

import hmac
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import NoReturn, TypeVar

from ..tickets import Field, PriorityFormat, TextEnum

APP_NAME = "batch-update"
DEFAULT_CONFIG_FILE_NAME = "batch-update.yaml"
DEFAULT_PORT = 12431
API_PATH = "/ccs/api/v1"
MAX_RATE = 1000.0
MAX_CONCURRENCY = 64
# The default concurrency: workers added as the server's response time needs (see runner/pool.py).
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


_V = TypeVar("_V")


class FrozenMapping(Mapping[str, _V]):
    """A read-only dict for Settings' mappings: hashable, deep-copyable and picklable.

    (types.MappingProxyType is read-only too, but breaks copy.deepcopy and dataclasses.asdict.)
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, _V] | None = None) -> None:
        self._items: dict[str, _V] = dict(items or {})

    def __getitem__(self, key: str) -> _V:
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
    column_mapping: Mapping[str, Field] = field(default_factory=lambda: FrozenMapping())
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
    # plan
    # Every live change must go through plan and approve: a live run, rollback and a resume or
    # retry of anything but an approved plan's apply are refused; apply needs an approval.
    require_approval: bool = False
    plan_expiry_days: int = 7  # how long a plan from `batch-update plan` may be applied
    # provenance
    config_path: Path | None = None
    sources: Mapping[str, str] = field(default_factory=lambda: FrozenMapping())

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
