"""Who may call the simulated server: its users, their role and permissions, and their tokens.

Tokens follow the contract: an access token and a refresh token per grant, each with its own
lifetime; a refresh grant consumes its refresh token and hands out a new pair; a service restart
forgets every access token but keeps the refresh tokens.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .store import RESTRICTED_STANDARD

# Above this many live tokens, expired ones are swept out when a new one is issued, so that a
# long benchmark that logs in often does not grow the tables without bound.
_SWEEP_THRESHOLD = 10_000


class PasswordEncoding(str, Enum):
    """How the password grant carries the password: Base64 (the vendor page) or as typed."""

    BASE64 = "base64"
    PLAIN = "plain"


@dataclass(frozen=True)
class SimUser:
    """A CCS account: `domain\\user` name, password, role, and standards/assets it may not touch."""

    name: str
    password: str
    remediation_admin: bool = True
    denied_standards: frozenset[str] = frozenset()
    denied_assets: frozenset[str] = frozenset()

    def may_access(self, ticket: Mapping[str, Any]) -> bool:
        """Whether the user has permission on the ticket's standard and asset."""
        return (
            ticket.get("Standard") not in self.denied_standards
            and ticket.get("Asset") not in self.denied_assets
        )


DEFAULT_USERS = (
    SimUser(
        "corp\\ccsadmin",
        "Demo-Passw0rd!",
        remediation_admin=True,
        denied_standards=frozenset({RESTRICTED_STANDARD}),
    ),
    SimUser("corp\\auditor", "Audit-Passw0rd!", remediation_admin=False),
)


@dataclass(frozen=True)
class Grant:
    """The tokens handed out by one successful grant."""

    user: SimUser
    access_token: str
    refresh_token: str
    expires_in: float


class TokenBook:
    """The users, and the tokens issued to them; safe to use from many threads."""

    def __init__(self, users: Iterable[SimUser]) -> None:
        self.users = tuple(users)
        self._by_name = {user.name.casefold(): user for user in self.users}
        if len(self._by_name) != len(self.users):
            raise ValueError("two users have the same name (compared case-insensitively).")
        self._lock = threading.Lock()
        # token -> (user, monotonic expiry)
        self._access: dict[str, tuple[SimUser, float]] = {}
        self._refresh: dict[str, tuple[SimUser, float]] = {}
        self._issued: list[str] = []  # every token ever handed out, for tests to look for

    def password_grant(
        self,
        username: str,
        password: str,
        encoding: PasswordEncoding,
        access_lifetime: float,
        refresh_lifetime: float,
    ) -> Grant | None:
        """New tokens if the user exists and the password matches, else None."""
        user = self._by_name.get(username.casefold())
        if user is None:
            return None
        expected = user.password
        if encoding is PasswordEncoding.BASE64:
            expected = base64.b64encode(expected.encode("utf-8")).decode("ascii")
        if not hmac.compare_digest(expected.encode("utf-8"), password.encode("utf-8")):
            return None
        return self._issue(user, access_lifetime, refresh_lifetime)

    def refresh_grant(
        self, refresh_token: str, access_lifetime: float, refresh_lifetime: float
    ) -> Grant | None:
        """A new pair for a live refresh token (which is used up), else None."""
        with self._lock:
            entry = self._refresh.pop(refresh_token, None)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return self._issue(entry[0], access_lifetime, refresh_lifetime)

    def user_for(self, access_token: str) -> SimUser | None:
        """The user a live access token belongs to, else None."""
        # No lock: one dict lookup is atomic in CPython, and this runs on every request.
        entry = self._access.get(access_token)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def issued(self) -> tuple[str, ...]:
        """Every access and refresh token handed out so far."""
        with self._lock:
            return tuple(self._issued)

    def restart(self) -> None:
        """What a restart of the CCS service does: every access token is forgotten."""
        with self._lock:
            self._access.clear()

    def _issue(self, user: SimUser, access_lifetime: float, refresh_lifetime: float) -> Grant:
        now = time.monotonic()
        grant = Grant(user, secrets.token_urlsafe(32), secrets.token_urlsafe(32), access_lifetime)
        with self._lock:
            if len(self._access) + len(self._refresh) > _SWEEP_THRESHOLD:
                for table in (self._access, self._refresh):
                    for token in [t for t, (_, expiry) in table.items() if expiry <= now]:
                        del table[token]
            self._access[grant.access_token] = (user, now + access_lifetime)
            self._refresh[grant.refresh_token] = (user, now + refresh_lifetime)
            self._issued += (grant.access_token, grant.refresh_token)
        return grant
