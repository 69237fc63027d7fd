"""The simulator's run-time settings: one frozen, validated object, swapped whole on every change.

A request handler reads the current object once and uses it to the end, so a `configure()` in
the middle of a request never gives that request half old and half new settings.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

from .auth import PasswordEncoding

DEFAULT_ACCESS_TOKEN_LIFETIME = 3600.0
DEFAULT_REFRESH_TOKEN_LIFETIME = 5400.0
DEFAULT_MAX_DESCRIPTION_LENGTH = 4000
DEFAULT_RETRY_AFTER = 1
# The largest Search PageSize answered; the vendor does not document one, so a client must find
# out by a 400 (the contract's halving), and this makes the simulator play that.
DEFAULT_MAX_PAGE_SIZE = 1000

# The fields a PATCH may change, by their documented spelling.
UPDATABLE_FIELDS = ("TicketState", "TicketDescription", "Priority", "AssignedTo")


class RetryAfterFormat(str, Enum):
    """How a 429 says when to come back: a number of seconds, or an HTTP date."""

    SECONDS = "seconds"
    HTTP_DATE = "http-date"


class KeyCase(str, Enum):
    """How the keys of a ticket in a GET or Search answer are spelt.

    The vendor pages that show these answers are not available, and ASP.NET Web API serialisers
    differ: PascalCase (`TicketNumber`) as the PATCH body is documented, or camelCase
    (`ticketNumber`). A client must take either.
    """

    PASCAL = "pascal"
    CAMEL = "camel"


class SearchShape(str, Enum):
    """How a Search answer holds its tickets: a bare JSON array, or an object around it.

    `wrapped` is `{"TotalCount": <matches in all pages>, "Tickets": [...]}` (camelCase with
    key_case camel), one of the shapes the contract says a client must survive.
    """

    LIST = "list"
    WRAPPED = "wrapped"


class Verification(str, Enum):
    """What the Remediation Verification job does to a ticket set to 2 (Remediation Performed).

    `off` leaves it at 2, as the simulator always did; `verified` and `failed` move it on to 3
    or 4 when the job finishes, as CCS does, so that a client's read-back meets the job's doing.
    """

    OFF = "off"
    VERIFIED = "verified"
    FAILED = "failed"

    @property
    def outcome(self) -> int | None:
        """The ticket state the job leaves behind, or None when there is no job."""
        return {"verified": 3, "failed": 4}.get(self.value)


@dataclass(frozen=True)
class SimSettings:
    """Everything about the simulator's behaviour that can change while it runs."""

    password_encoding: PasswordEncoding = PasswordEncoding.BASE64
    access_token_lifetime: float = DEFAULT_ACCESS_TOKEN_LIFETIME
    refresh_token_lifetime: float = DEFAULT_REFRESH_TOKEN_LIFETIME
    # The vendor page marks Priority mandatory; False accepts updates without it.
    require_priority: bool = True
    max_description_length: int = DEFAULT_MAX_DESCRIPTION_LENGTH
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    # Requests per second over a sliding window; None: no limit.
    rate_limit: float | None = None
    retry_after: float = DEFAULT_RETRY_AFTER
    retry_after_format: RetryAfterFormat = RetryAfterFormat.SECONDS
    error_rate: float = 0.0
    unavailable_rate: float = 0.0
    drop_rate: float = 0.0
    # Faults and the rate limit spare the token endpoint unless this is True.
    token_faults: bool = False
    # False: the token answer says nothing of the token's lifetime (no expires_in), as the
    # vendor's page shows it; the client must assume one.
    token_expires_in: bool = True
    fail_tickets: frozenset[str] = frozenset()
    # PATCHes of these tickets are answered 200 {"Success": false, "Message": "ERROR: ticket
    # locked"} and not applied, as some gateways and plug-ins answer a refused update.
    failure_body_tickets: frozenset[str] = frozenset()
    # PATCHes of these tickets are applied, then the connection is closed without an answer,
    # as when a proxy or the network loses the answer on its way back.
    lost_answer_tickets: frozenset[str] = frozenset()
    # True: every answer of HTTP 400 or more repeats the request it refuses (its Authorization
    # header and its body, the token request's form with the password in it), as some gateways
    # and error pages do.
    echo_requests: bool = False
    denied_tickets: frozenset[str] = frozenset()
    sticky_fields: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # -- how tickets are read back (the contract's "Reading tickets": every shape a client must
    # survive). The defaults are the simulator's own shape: PascalCase keys, a Search answer that
    # is a bare JSON array, pages counted from 0, PageSize up to 1000, no verification job.
    key_case: KeyCase = KeyCase.PASCAL
    search_shape: SearchShape = SearchShape.LIST
    # A Search with a larger PageSize is refused 400, as a server with an undocumented limit does.
    max_page_size: int = DEFAULT_MAX_PAGE_SIZE
    # The number of the first page. 1 plays a server counting from 1: Page=0 and Page=1 both
    # answer the first page, so a client counting from 0 sees it twice and must notice.
    first_page: int = 0
    verification: Verification = Verification.OFF
    # Seconds from the PATCH to state 2 until the job has moved the ticket; 0: moved by the time
    # of the next read.
    verification_delay: float = 0.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise through the back door, once, here
        for name, kind in (
            ("password_encoding", PasswordEncoding),
            ("retry_after_format", RetryAfterFormat),
            ("key_case", KeyCase),
            ("search_shape", SearchShape),
            ("verification", Verification),
        ):
            set_(self, name, _choice(kind, name, getattr(self, name)))
        for name in ("access_token_lifetime", "refresh_token_lifetime"):
            set_(self, name, _number(name, getattr(self, name), minimum=0.0, exclusive=True))
        for name in ("latency_ms", "jitter_ms", "retry_after", "verification_delay"):
            set_(self, name, _number(name, getattr(self, name), minimum=0.0))
        for name in ("error_rate", "unavailable_rate", "drop_rate"):
            set_(self, name, _number(name, getattr(self, name), minimum=0.0, maximum=1.0))
        if self.rate_limit is not None:
            limit = _number("rate_limit", self.rate_limit, minimum=0.0, exclusive=True)
            set_(self, "rate_limit", limit)
        length = self.max_description_length
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise ValueError(f"max_description_length must be a whole number >= 0, not {length!r}.")
        size = self.max_page_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"max_page_size must be a whole number >= 1, not {size!r}.")
        first = self.first_page
        if isinstance(first, bool) or not isinstance(first, int) or first not in (0, 1):
            raise ValueError(f"first_page must be 0 or 1, not {first!r}.")
        set_(self, "require_priority", bool(self.require_priority))
        set_(self, "token_faults", bool(self.token_faults))
        set_(self, "token_expires_in", bool(self.token_expires_in))
        set_(self, "echo_requests", bool(self.echo_requests))
        set_(self, "fail_tickets", _ticket_set("fail_tickets", self.fail_tickets))
        set_(
            self,
            "failure_body_tickets",
            _ticket_set("failure_body_tickets", self.failure_body_tickets),
        )
        set_(self, "denied_tickets", _ticket_set("denied_tickets", self.denied_tickets))
        set_(
            self,
            "lost_answer_tickets",
            _ticket_set("lost_answer_tickets", self.lost_answer_tickets),
        )
        set_(self, "sticky_fields", _sticky(self.sticky_fields))

    def replace(self, **changes: Any) -> SimSettings:
        """A copy with `changes` applied; an unknown name is a TypeError with a suggestion."""
        check_setting_names(changes)
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The settings as plain JSON values (sets as sorted lists)."""
        data: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, Enum):
                value = value.value
            elif isinstance(value, frozenset):
                value = sorted(value)
            elif isinstance(value, Mapping):
                value = {key: sorted(names) for key, names in value.items()}
            data[item.name] = value
        return data


SETTING_NAMES = tuple(item.name for item in dataclasses.fields(SimSettings))


def check_setting_names(names: Iterable[str]) -> None:
    """Raise TypeError, with a did-you-mean, for any name that is not a setting."""
    for name in names:
        if name not in SETTING_NAMES:
            close = difflib.get_close_matches(name, SETTING_NAMES, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise TypeError(f"{name!r} is not a simulator setting.{hint}")


def _choice(kind: type[Enum], name: str, value: Any) -> Any:
    try:
        return kind(value.value if isinstance(value, Enum) else value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise ValueError(f"{name} must be one of {allowed}, not {value!r}.") from None


def _number(
    name: str,
    value: Any,
    *,
    minimum: float,
    maximum: float | None = None,
    exclusive: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ValueError(f"{name} must be a number, not {value!r}.")
    too_low = value <= minimum if exclusive else value < minimum
    if too_low or (maximum is not None and value > maximum):
        low = f"> {minimum:g}" if exclusive else f">= {minimum:g}"
        high = f" and <= {maximum:g}" if maximum is not None else ""
        raise ValueError(f"{name} must be {low}{high}, not {value!r}.")
    return value


def _ticket_set(name: str, value: Any) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a collection of ticket numbers, not {value!r}.")
    return frozenset(str(number).strip().upper() for number in value)


def _sticky(value: Any) -> Mapping[str, frozenset[str]]:
    if not isinstance(value, Mapping):
        raise ValueError(f"sticky_fields must map ticket numbers to field names, not {value!r}.")
    canonical = {name.lower(): name for name in UPDATABLE_FIELDS}
    result: dict[str, frozenset[str]] = {}
    for number, names in value.items():
        if isinstance(names, str):
            names = [names]
        fields = set()
        for name in names:
            if str(name).lower() not in canonical:
                raise ValueError(
                    f"sticky_fields[{number!r}]: {name!r} is not a field; "
                    f"use {', '.join(UPDATABLE_FIELDS)}."
                )
            fields.add(canonical[str(name).lower()])
        result[str(number).strip().upper()] = frozenset(fields)
    return MappingProxyType(result)
