"""What the server answered: the Reply, its message, Retry-After, bodies read with a limit, and
the reasons behind a failed connection, in words an administrator can act on."""

from __future__ import annotations

import base64
import html
import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import requests

# Long enough for any server sentence, short enough for a spreadsheet cell and a log line.
MAX_MESSAGE_LENGTH = 500


# The most of an answer's body that is read: a ticket's JSON or an error page is far smaller,
# and a proxy that sends a 1 GB page must not fill the memory. The rest is not read (the
# connection is closed instead of reused).
MAX_BODY_BYTES = 1024 * 1024


_BODY_CHUNK = 64 * 1024


MESSAGE_KEYS = ("Message", "message", "error_description", "error", "detail", "title")


@dataclass(frozen=True)
class Reply:
    """What one request got back. status is None when no HTTP answer came (timeout, reset).

    sends counts the requests that went out for it: 1, 2 after a 401 and a new token, or 0 when
    the run stopped before it could be sent.
    """

    status: int | None
    message: str = ""
    retry_after: float | None = None
    elapsed_ms: int = 0
    body: object = None
    sends: int = 1
    # A 2xx that is a web page rather than the API's answer: a proxy or a login page answered
    # in the server's place, so the request most likely never reached it.
    intercepted: bool = False
    # No answer came, but the request may have reached the server and been applied (a read
    # timeout, a connection dropped after it was sent); False when it cannot have (a refused or
    # timed-out connection, a TLS failure before anything was sent).
    maybe_applied: bool = False
    # The body as text, secrets removed: kept only when asked for (`CcsClient.show_ticket`).
    text: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and not self.intercepted


def encode_password(password: str, encoding: str) -> str:
    """The password as the token request carries it: Base64 of its UTF-8 bytes, or plain."""
    if str(encoding) in ("base64", "PasswordEncoding.BASE64"):
        return base64.b64encode(password.encode("utf-8")).decode("ascii")
    return password


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After in seconds, from either form the HTTP spec allows (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _truncate(text: str, limit: int = MAX_MESSAGE_LENGTH) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def extract_message(body: bytes, content_type: str = "") -> str:
    """The server's message from an error body: JSON (several styles), HTML, text, or nothing."""
    if not body:
        return ""
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return ""
    if text[:1] in '{["' or "json" in content_type.lower():
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, str):
            return _truncate(_squash(data))
        if isinstance(data, list) and data and isinstance(data[0], dict):
            data = data[0]
        if isinstance(data, dict):
            found = [str(data[k]) for k in MESSAGE_KEYS if isinstance(data.get(k), (str, int))]
            if "error" in data and "error_description" in data:
                found = [f"{data['error']}: {data['error_description']}"]
            if found:
                return _truncate(_squash(found[0]))
            return _truncate(_squash(json.dumps(data, ensure_ascii=False)))
    if "<" in text and re.search(r"<(html|body|title|h1|!doctype)", text, re.I):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
        if title and title.group(1).strip():
            return _truncate(_squash(html.unescape(title.group(1))))
        stripped = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", text, flags=re.I | re.S)
        stripped = re.sub(r"<[^>]+>", " ", stripped)
        return _truncate(_squash(html.unescape(stripped)))
    return _truncate(_squash(text))


def describe_status(status: int, reason: str = "") -> str:
    """'HTTP 503 Service Unavailable' for a message when the server said nothing itself."""
    return f"HTTP {status} {reason}".strip()


class _ReadTimeout(Exception):
    """The body stopped coming (the read timeout passed between two of its chunks)."""


def _read_body(response: requests.Response, limit: int = MAX_BODY_BYTES) -> bytes:
    """At most `limit` bytes of a streamed body; the connection is closed if more was coming."""
    chunks: list[bytes] = []
    size = 0
    complete = False
    try:
        for chunk in response.iter_content(_BODY_CHUNK):
            chunks.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
        else:
            complete = True
    except requests.exceptions.ConnectionError as exc:
        response.close()
        # requests reports a read timeout inside the body as a ConnectionError.
        if "timed out" in str(exc).lower():
            raise _ReadTimeout() from exc
        raise
    except BaseException:
        response.close()
        raise
    if not complete:
        response.close()  # the rest is not wanted: do not read it to reuse the connection
    return b"".join(chunks)[:limit]


def _location(response: requests.Response) -> str:
    """The Location of a redirect as it may be shown: at most a line, no control characters."""
    location = response.headers.get("Location", "")
    location = "".join(ch for ch in location if ch.isprintable()).strip()
    if not location:
        return "(no location)"
    return _truncate(location, 200)


def _is_web_page(content: bytes, content_type: str) -> bool:
    if "html" in content_type.lower():
        return True
    start = content[:512].lstrip().lower()
    return start.startswith((b"<!doctype html", b"<html"))


def _describe_token_answer(response: requests.Response, content: bytes, data: object) -> str:
    """What a token answer without an access token held, without quoting it (it may hold one)."""
    if isinstance(data, dict):
        if "access_token" in data:
            value = data["access_token"]
            empty = value is None or (isinstance(value, str) and not value.strip())
            return 'its "access_token" is empty' if empty else 'its "access_token" is not text'
        keys = ", ".join(f'"{_truncate(str(key), 40)}"' for key in list(data)[:8])
        return f"its JSON has only {keys}" if keys else "its JSON is empty"
    if not content.strip():
        return "its body is empty"
    content_type = response.headers.get("Content-Type", "")
    if _is_web_page(content, content_type):
        title = extract_message(content, content_type)
        return f'it is a web page: "{_truncate(title, 80)}"' if title else "it is a web page"
    if data is not None:
        return f"its JSON is a {type(data).__name__}, not an object"
    return "its body is not JSON"


def _seconds(value: object) -> float | None:
    """A token answer's expires_in as seconds (a number or a numeric string), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, (int, float)) and 0 < value < 10**9:
        return float(value)
    return None


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


# What OpenSSL says when the other end answered, but not with TLS (a plain-http server).
_NOT_TLS = ("wrong version number", "record layer failure", "unknown protocol", "http request")


def _not_tls(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(needle in text for needle in _NOT_TLS)


def _ssl_reason(exc: Exception) -> str:
    if _not_tls(exc):
        return "the server did not answer with TLS (is it http://, or the wrong port?)"
    text = str(exc)
    match = re.search(r"certificate verify failed: ([^(\"')]+)", text)
    if match:
        return "certificate verify failed: " + match.group(1).strip()
    return _squash(text)[:200]


# Connection failures that mean the request never reached the server.
_NOT_CONNECTED = frozenset({"connection refused", "host name not found"})


def _connection_reason(exc: Exception) -> str:
    text = str(exc)
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "host name not found"),
        ("getaddrinfo failed", "host name not found"),
        ("nodename nor servname", "host name not found"),
        ("Connection reset", "connection reset by the server"),
        ("ConnectionResetError", "connection reset by the server"),  # Windows: WSAECONNRESET
        ("RemoteDisconnected", "the server closed the connection without answering"),
        ("Connection aborted", "the connection was aborted"),
        ("timed out", "timed out"),
    ):
        if needle in text:
            return reason
    return _squash(text)[:200]
