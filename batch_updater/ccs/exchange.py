"""One exchange with the server as the client reports it: an answer or a failed send as a Reply,
a failed token request as an error with advice."""

from __future__ import annotations

import json

import requests

from ..errors import ServerUnreachable, TlsError
from ..redact import Redactor
from .answers import (
    _NOT_CONNECTED,
    Reply,
    _connection_reason,
    _is_web_page,
    _location,
    _ms,
    _not_tls,
    _ReadTimeout,
    _ssl_reason,
    describe_status,
    extract_message,
    parse_retry_after,
)


def _no_answer(
    exc: requests.exceptions.RequestException | _ReadTimeout,
    started: float,
    timeout: tuple[float, float],
) -> Reply:
    """A send that got no answer: what went wrong, and whether it may have been applied anyway.

    `started` is the send's time.perf_counter(); `timeout` is (connect, read) in seconds. The
    checks go from the narrowest kind of failure to the widest (an SSLError and a ConnectTimeout
    are ConnectionErrors too).
    """
    if isinstance(exc, requests.exceptions.SSLError):
        return Reply(None, f"TLS error: {_ssl_reason(exc)}", elapsed_ms=_ms(started))
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return Reply(
            None,
            f"could not connect within {timeout[0]:g} s (timeout)",
            elapsed_ms=_ms(started),
        )
    if isinstance(exc, (requests.exceptions.Timeout, _ReadTimeout)):
        return Reply(
            None,
            f"no answer within {timeout[1]:g} s (timeout)",
            elapsed_ms=_ms(started),
            maybe_applied=True,
        )
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = _connection_reason(exc)
        return Reply(
            None,
            f"connection failed: {reason}",
            elapsed_ms=_ms(started),
            maybe_applied=reason not in _NOT_CONNECTED,
        )
    return Reply(
        None,
        f"request failed: {type(exc).__name__}",
        elapsed_ms=_ms(started),
        maybe_applied=True,
    )


def _answer(
    response: requests.Response,
    content: bytes,
    elapsed_ms: int,
    redactor: Redactor,
    *,
    keep_text: bool = False,
) -> Reply:
    """The Reply for an answer that came: its status, what it says (without any secret it
    repeats), its Retry-After, for a 200 in JSON the parsed body, and with keep_text the body
    as text (any secret in it removed)."""
    status = response.status_code
    content_type = response.headers.get("Content-Type", "")
    message = redactor.redact(extract_message(content, content_type))
    intercepted = False
    if 300 <= status < 400:
        message = (
            f"redirected to {redactor.redact(_location(response))}; not followed with credentials"
        )
    elif not message and status >= 400:
        message = describe_status(status, response.reason or "")
    elif 200 <= status < 300 and content.strip() and _is_web_page(content, content_type):
        # (Only a page that is there: an empty 204 may well carry a text/html header.)
        intercepted = True
        message = _web_page_message(status, message)
    return Reply(
        status,
        message,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        elapsed_ms=elapsed_ms,
        body=_json_body(status, content_type, content),
        intercepted=intercepted,
        text=redactor.redact(content.decode(response.encoding or "utf-8", "replace"))
        if keep_text
        else "",
    )


def _web_page_message(status: int, message: str) -> str:
    """What a 2xx that is a web page says: most likely the request never reached CCS."""
    return (
        f"HTTP {status} with a web page instead of the API's answer"
        + (f' ("{message}")' if message else "")
        + ": a proxy or a login page answered in the server's place, so the request "
        "most likely did not reach CCS; check the server URL and the proxy settings"
    )


def _json_body(status: int, content_type: str, content: bytes) -> object:
    """The parsed body of a 200 in JSON; None for any other answer, or for JSON that is not."""
    if status == 200 and "json" in content_type.lower():
        try:
            return json.loads(content)
        except ValueError:
            return None
    return None


def _token_request_error(
    exc: requests.exceptions.RequestException | _ReadTimeout,
    base_url: str,
    host: str,
    timeout: tuple[float, float],
) -> ServerUnreachable:
    """The error, with advice, for a token request that got no answer.

    A TlsError when the certificate could not be verified, else ServerUnreachable. The checks
    go from the narrowest kind of failure to the widest (an SSLError is a ConnectionError too).
    """
    if isinstance(exc, requests.exceptions.SSLError):
        if _not_tls(exc):
            return ServerUnreachable(
                f"{base_url} did not answer with TLS: is it http://, or the wrong port?",
                tip="Check the server URL (--url or CCS_URL): the CCS REST API answers https on "
                "port 12431 unless configured otherwise.",
            )
        return TlsError(
            f"Could not verify the TLS certificate of {host}: {_ssl_reason(exc)}.",
            tip="If the server uses an internal certificate authority, give its certificate "
            "with --ca-bundle PATH (or server.ca_bundle in the config file).",
        )
    if isinstance(exc, requests.exceptions.ConnectionError):
        return ServerUnreachable(
            f"Could not connect to {base_url}: {_connection_reason(exc)}.",
            tip="Check the server URL (--url or CCS_URL; the CCS REST API listens on port "
            "12431 unless configured otherwise) and that this machine can reach it.",
        )
    if isinstance(exc, (requests.exceptions.Timeout, _ReadTimeout)):
        return ServerUnreachable(
            f"{base_url} did not answer the token request within {timeout[1]:g} seconds.",
            tip="Check that the CCS Application Server service is running.",
        )
    return ServerUnreachable(f"The token request to {base_url} failed: {type(exc).__name__}.")
