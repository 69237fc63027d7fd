"""Pure logic of the CCS client: error-message extraction, Retry-After, password encoding."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from batch_updater.ccs import (
    MAX_MESSAGE_LENGTH,
    encode_password,
    extract_message,
    parse_retry_after,
)


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (
            b'{"Message": "Ticket not found. Provide valid ticket number."}',
            "application/json",
            "Ticket not found. Provide valid ticket number.",
        ),
        (b'{"message": "lower case"}', "application/json", "lower case"),
        (
            b'{"error": "invalid_grant", "error_description": "The user name or password is incorrect."}',
            "application/json",
            "invalid_grant: The user name or password is incorrect.",
        ),
        (b'{"error": "throttled"}', "application/json", "throttled"),
        (b'"just a JSON string"', "application/json", "just a JSON string"),
        (b'[{"Message": "first of a list"}]', "application/json", "first of a list"),
        (b'{"Code": 17}', "application/json", '{"Code": 17}'),
        (b"Service Unavailable", "text/plain", "Service Unavailable"),
        (
            b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad</h1></body></html>",
            "text/html",
            "502 Bad Gateway",
        ),
        (
            b"<html><body><h1>Proxy   error</h1><script>x()</script><p>try &amp; again</p></body></html>",
            "text/html",
            "Proxy error try & again",
        ),
        (b"", "", ""),
        (b"   \n ", "text/plain", ""),
        (b"{not json", "application/json", "{not json"),
    ],
)
def test_extract_message(body: bytes, content_type: str, expected: str) -> None:
    assert extract_message(body, content_type) == expected


def test_extract_message_truncates_huge_bodies() -> None:
    message = extract_message(b"x" * 1_000_000, "text/plain")
    assert len(message) == MAX_MESSAGE_LENGTH
    assert message.endswith("…")


def test_extract_message_survives_invalid_utf8() -> None:
    assert extract_message(b"caf\xe9 error", "text/plain") == "caf\ufffd error"


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 2.5 ") == 2.5
    now = datetime(2026, 11, 30, 12, 0, 0, tzinfo=timezone.utc)
    date = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(date, now=now) == pytest.approx(30)
    past = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_password_encodings() -> None:
    assert encode_password("Pa+ss/w=rd é", "base64") == "UGErc3Mvdz1yZCDDqQ=="
    assert encode_password("Pa+ss/w=rd é", "plain") == "Pa+ss/w=rd é"
