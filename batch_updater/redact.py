"""Secrets out of server text: what a server says is shown and stored only after this.

Some gateways and error pages repeat the request they refuse: the token request's form (with the
URL-encoded password), or the Authorization header (with the Bearer token). Every message that
came from the server passes through `Redactor.redact` before it reaches the terminal, the
workbook, the journal or the log. It removes each known secret in every form a request carries
or an error page shows it (plain, Base64, URL-encoded, JSON- and HTML-escaped), and whatever a
Bearer header or a password/token field carries even when the value is not one we know.
"""

from __future__ import annotations

import base64
import html
import json
import re
import threading
from urllib.parse import quote, quote_plus

REDACTED = "[redacted]"

# A header or field that carries a secret, whatever its value: `Bearer abc`, `password=abc`,
# `"access_token": "abc"`. The value ends at a separator a form, a header or JSON would use.
_GENERIC = (
    re.compile(r"(?i)\b(bearer)(\s+)([A-Za-z0-9\-._~+/]+=*)"),
    # A form field (password=...) or a JSON member ("password": "..."), escaped or not; not
    # prose such as "password: incorrect".
    re.compile(
        r"(?i)\b(password|passwd|pwd|access_token|refresh_token|id_token|client_secret)"
        r"(\s*(?:=|%3D)\s*|(?:\\?[\"']|%22)\s*(?::|%3A)\s*(?:\\?[\"']|%22))"
        r"([^\s&\"',;}<\\]+)"
    ),
)


def _forms(secret: str) -> set[str]:
    """The ways a secret may appear in text a server sends back."""
    encoded = base64.b64encode(secret.encode("utf-8")).decode("ascii")
    forms: set[str] = set()
    for value in (secret, encoded):
        forms |= {
            value,
            quote_plus(value),
            quote(value, safe=""),
            json.dumps(value, ensure_ascii=False)[1:-1],
            json.dumps(value)[1:-1],
            html.escape(value),
            html.escape(value, quote=False),
        }
    return {form for form in forms if form}


class Redactor:
    """The secrets of one client (its password and every token it was given), safe for threads."""

    def __init__(self, *secrets: str) -> None:
        self._lock = threading.Lock()
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def __repr__(self) -> str:
        return f"<Redactor of {len(self._forms)} secret forms>"

    def add(self, secret: str | None) -> None:
        if not secret:
            return
        with self._lock:
            new = _forms(secret) - self._forms
            if new:
                self._forms |= new
                # Longest first, so that a form is removed whole, not its shorter cousin.
                ordered = sorted(self._forms, key=len, reverse=True)
                # Percent-escapes may come back in either case (%2B or %2b).
                self._pattern = re.compile("|".join(_escape(form) for form in ordered))

    def redact(self, text: str) -> str:
        """The text with every known secret, and every Bearer or password value, removed."""
        if not text:
            return text
        with self._lock:
            pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        for generic in _GENERIC:
            text = generic.sub(_keep_name, text)
        return text


def _escape(form: str) -> str:
    """A literal pattern for `form` in which percent-escapes match in either case."""
    parts = re.split(r"(%[0-9A-Fa-f]{2})", form)
    return "".join(
        f"%(?i:{part[1:]})" if i % 2 else re.escape(part) for i, part in enumerate(parts)
    )


def _keep_name(match: re.Match[str]) -> str:
    if match.group(3) == REDACTED or match.group(3).startswith(REDACTED):
        return match.group(0)
    return f"{match.group(1)}{match.group(2)}{REDACTED}"
