"""Bad answers from the server: each becomes a row outcome or a run-level error with a clear message.

A tiny canned server runs in the test (stdlib http.server on 127.0.0.1:0, in a thread): it hands
out tokens as CCS does, answers the reads (GET: Search and one ticket) from the tickets it holds,
and answers each PATCH from a script, so that the client meets what proxies and broken servers
really send over real HTTP: HTML error pages, huge bodies, a 200 where 204 was expected, a hang,
a reset connection, redirects, a token answer without a token. The reads can be scripted too.
Most cases drive CcsClient and runner.Sender directly (fast pacing, short backoff); the last
ones run the installed command end to end.
"""

from __future__ import annotations

import json
import secrets
import socket
import struct
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from helpers import (
    ADMIN,
    FAST_RETRIES_YAML,
    by_row,
    live_env,
    make_sender,
    pick,
    read_results,
    results_files,
    run_command,
    write_sheet,
)

from batch_updater.ccs import MAX_MESSAGE_LENGTH, CcsClient
from batch_updater.cli import ExitStatus
from batch_updater.errors import AuthError, ServerUnreachable
from batch_updater.pacing import RateLimiter
from batch_updater.runner import UNANSWERED, RetryPolicy, StopPolicy
from batch_updater.settings import Secret
from batch_updater.tickets import Outcome, PlannedRow, RowResult, TicketUpdate

TOKEN_PATH = "/ccs/api/v1/oauth/tokens"
SEARCH = "Page=0&PageSize=500"  # the query of one page of every ticket the account sees
TIMEOUT = (2.0, 0.4)  # connect, read: a hang is seen within 0.4 s
FAST = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_cap=0.02)


# --- the canned server ---------------------------------------------------------------------------

# An answer writes the whole reply to the handler; it may also hang or break the connection.
Answer = Callable[["_Handler"], None]


def reply(status: int, body: bytes | str = b"", content_type: str = "", **headers: str) -> Answer:
    """An answer with this status, body and headers."""
    data = body.encode("utf-8") if isinstance(body, str) else body

    def send(handler: _Handler) -> None:
        handler.send_response(status)
        if content_type:
            handler.send_header("Content-Type", content_type)
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return send


def huge(status: int, size: int, head: bytes = b"", content_type: str = "text/plain") -> Answer:
    """An answer whose body is `size` bytes long, written in pieces (never held in memory)."""

    def send(handler: _Handler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(size))
        handler.end_headers()
        handler.wfile.write(head)
        piece = b"x" * 65536
        left = size - len(head)
        while left > 0:
            handler.wfile.write(piece[: min(left, len(piece))])
            left -= len(piece)

    return send


def hang(handler: _Handler) -> None:
    """No answer at all, until the server closes."""
    handler.server.closing.wait(30)  # type: ignore[attr-defined]
    handler.close_connection = True


def reset(handler: _Handler) -> None:
    """Break the connection with a TCP reset instead of answering."""
    # SO_LINGER on, timeout 0: close() sends RST. (Windows' linger holds two shorts.)
    linger = struct.pack("HH" if sys.platform == "win32" else "ii", 1, 0)
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    handler.close_connection = True
    handler.connection.close()


def html_page(title: str, text: str = "") -> str:
    return (
        f"<!DOCTYPE html><html><head><title>{title}</title><style>p {{color: red}}</style>"
        f"</head><body><h1>{title}</h1><p>{text}</p></body></html>"
    )


def tokens_as_ccs(handler: _Handler) -> None:
    """The token endpoint of a working CCS server: a fresh pair for every grant."""
    pair = {
        "access_token": secrets.token_urlsafe(16),
        "refresh_token": secrets.token_urlsafe(16),
        "token_type": "bearer",
        "expires_in": 3600,
    }
    reply(200, json.dumps(pair), "application/json")(handler)


@dataclass
class Seen:
    """One request as the canned server saw it."""

    method: str
    path: str  # with the query string
    ticket: str | None
    form: str = ""
    body: object = None  # a PATCH's JSON

    @property
    def query(self) -> str:
        return urlsplit(self.path).query


def held_ticket(number: str, state: int = 1, priority: str = "Medium") -> dict[str, object]:
    """A ticket as the canned server holds it (and as CCS answers a read of it)."""
    return {
        "TicketNumber": number,
        "TicketState": state,
        "Priority": priority,
        "AssignedTo": "",
        "TicketDescription": "",
    }


def reads_as_ccs(held: dict[str, dict[str, object]], ticket: str | None, query: str) -> Answer:
    """The reads of a working CCS server: one ticket (?TicketNumber=), or a page of Search
    (every ticket held, on page 0 as the contract counts pages)."""
    if ticket is not None:
        if ticket.upper() not in held:
            return reply(404, '{"Message": "Ticket not found."}', "application/json")
        return reply(200, json.dumps(held[ticket.upper()]), "application/json")
    page = int(parse_qs(query).get("Page", ["0"])[0])
    tickets = list(held.values()) if page == 0 else []
    answer = {"TotalCount": len(held), "Tickets": tickets}
    return reply(200, json.dumps(answer), "application/json")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_POST(self) -> None:
        form = self._body().decode("utf-8", "replace")
        self.server.record(Seen("POST", self.path, None, form))
        self.server.token_answer(len(self.server.token_requests()))(self)

    def do_GET(self) -> None:
        query = urlsplit(self.path).query
        ticket = parse_qs(query).get("TicketNumber", [None])[-1]
        self.server.record(Seen("GET", self.path, ticket))
        self.server.read_answer(ticket, query)(self)

    def do_PATCH(self) -> None:
        body = self._body()
        try:
            parsed = json.loads(body)
            ticket = parsed.get("TicketNumber")
        except ValueError:
            parsed, ticket = None, None
        self.server.record(Seen("PATCH", self.path, ticket, body=parsed))
        # The attempt counts this ticket's PATCHes only: the reads before them do not count.
        attempt = sum(1 for s in self.server.seen if s.method == "PATCH" and s.ticket == ticket)
        self.server.patch_answer(ticket, attempt)(self)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.closing = threading.Event()
        self.lock = threading.Lock()
        self.seen: list[Seen] = []
        self.held: dict[str, dict[str, object]] = {}  # the tickets, by number in upper case
        self.patch_answer: Callable[[str | None, int], Answer] = lambda t, n: reply(204)
        self.token_answer: Callable[[int], Answer] = lambda n: tokens_as_ccs
        self.read_answer: Callable[[str | None, str], Answer] = lambda ticket, query: reads_as_ccs(
            self.held, ticket, query
        )

    def record(self, seen: Seen) -> None:
        with self.lock:
            self.seen.append(seen)

    def token_requests(self) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.path == TOKEN_PATH]

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # broken pipes after a reset or a client that stopped reading are expected


@dataclass
class Canned:
    """The running canned server: set `patch` and `tokens` to script it."""

    server: _Server
    thread: threading.Thread = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def script(
        self,
        patch: Sequence[Answer] | Callable[[str | None, int], Answer] | None = None,
        tokens: Sequence[Answer] | None = None,
        search: Answer | None = None,
    ) -> None:
        """PATCH answers (in order, the last repeated, or by ticket and attempt), token answers,
        and the answer to every Search page (the reads of one ticket stay as CCS answers them)."""
        if search is not None:
            self.server.read_answer = lambda ticket, query: (
                search if ticket is None else reads_as_ccs(self.server.held, ticket, query)
            )
        if patch is not None:
            if callable(patch):
                self.server.patch_answer = patch
            else:
                answers = list(patch)
                self.server.patch_answer = lambda ticket, attempt: answers[
                    min(len(self.patches()) - 1, len(answers) - 1)
                ]
        if tokens is not None:
            token_answers = list(tokens)
            self.server.token_answer = lambda n: token_answers[min(n - 1, len(token_answers) - 1)]

    @property
    def seen(self) -> list[Seen]:
        with self.server.lock:
            return list(self.server.seen)

    def hold(self, *tickets: dict[str, object]) -> None:
        """The tickets the server holds (and answers reads with)."""
        for ticket in tickets:
            self.server.held[str(ticket["TicketNumber"]).upper()] = ticket

    def patches(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "PATCH"]

    def reads(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "GET"]

    def grants(self) -> list[str]:
        return [s.form.split("&")[0] for s in self.server.token_requests()]


@pytest.fixture
def canned() -> Iterator[Canned]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield Canned(server, thread)
    finally:
        server.closing.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


# --- driving the client and the runner -----------------------------------------------------------


def client_for(canned: Canned) -> CcsClient:
    return CcsClient(canned.url, ADMIN, Secret("P+ss/w=rd!"), timeout=TIMEOUT)


def planned(*numbers: int) -> list[PlannedRow]:
    return [
        PlannedRow(n + 1, update=TicketUpdate(f"INCA{n:07d}", priority="High")) for n in numbers
    ]


def send(canned: Canned, rows: Sequence[PlannedRow], **options: object) -> dict[int, RowResult]:
    client = client_for(canned)
    client.login()
    options.setdefault("retry", FAST)
    options.setdefault("concurrency", 1)
    sender = make_sender(client, RateLimiter(1000), **options)
    try:
        report = sender.run(rows)
    finally:
        client.close()
    send.report = report  # type: ignore[attr-defined]
    return report.results


def only(results: dict[int, RowResult]) -> RowResult:
    (result,) = results.values()
    return result


# --- error pages from a proxy ----------------------------------------------------------------------


def test_an_html_error_page_gives_its_title_and_is_retried(canned: Canned) -> None:
    page = html_page("502 Bad Gateway", "nginx/1.25.3")
    canned.script(patch=[reply(502, page, "text/html; charset=utf-8")])

    result = only(send(canned, planned(1)))

    assert (result.outcome, result.status, result.attempts) == (Outcome.FAILED, 502, 3)
    assert result.message == (
        "502 Bad Gateway (gave up after 3 attempts: HTTP 502, HTTP 502, HTTP 502)"
    )
    assert len(canned.patches()) == 3


def test_an_html_page_without_a_title_gives_its_text(canned: Canned) -> None:
    page = (
        "<html><body><script>track()</script><h1>Access   denied</h1>"
        "<p>Blocked by policy &amp; rules.</p></body></html>"
    )
    canned.script(patch=[reply(403, page, "text/html")])

    result = only(send(canned, planned(1)))

    assert (result.outcome, result.status, result.attempts) == (Outcome.FAILED, 403, 1)
    assert result.message == "Access denied Blocked by policy & rules."


def test_a_plain_text_error_is_the_message(canned: Canned) -> None:
    canned.script(patch=[reply(400, "Request header too large\r\n", "text/plain")])

    result = only(send(canned, planned(1)))

    assert (result.outcome, result.status, result.message) == (
        Outcome.FAILED,
        400,
        "Request header too large",
    )


def test_an_error_without_a_body_gets_the_status_text(canned: Canned) -> None:
    canned.script(patch=[reply(504)])

    result = only(send(canned, planned(1)))

    assert result.message == (
        "HTTP 504 Gateway Timeout (gave up after 3 attempts: HTTP 504, HTTP 504, HTTP 504)"
    )


def test_json_that_is_not_an_object_is_shown_as_it_is(canned: Canned) -> None:
    canned.script(patch=[reply(400, '["bad", "request"]', "application/json")])

    assert only(send(canned, planned(1))).message == '["bad", "request"]'


# --- huge bodies ----------------------------------------------------------------------------------


def test_a_huge_body_is_cut_to_the_message_limit_and_not_held_in_memory(canned: Canned) -> None:
    size = 50 * 1024 * 1024
    canned.script(patch=[huge(500, size)])
    client = client_for(canned)
    client.login()

    tracemalloc.start()
    try:
        answer = client.update(TicketUpdate("INCA0000001", priority="High"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        client.close()

    assert answer.status == 500
    assert len(answer.message) == MAX_MESSAGE_LENGTH
    assert answer.message == "x" * (MAX_MESSAGE_LENGTH - 1) + "…"
    assert peak < 8 * 1024 * 1024, f"peak {peak:,} bytes for a {size:,}-byte body"


def test_a_huge_error_page_still_gives_its_title(canned: Canned) -> None:
    head = b"<html><head><title>Gateway Timeout</title></head><body>"
    canned.script(patch=[huge(504, 20 * 1024 * 1024, head, "text/html")])

    result = only(send(canned, planned(1), retry=RetryPolicy(1, 0.01, 0.02)))

    assert (result.status, result.message) == (
        504,
        "Gateway Timeout (gave up after 1 attempts: HTTP 504)",
    )


# --- a 200 where 204 was expected -----------------------------------------------------------------


def test_a_200_with_json_counts_as_updated_and_says_so(canned: Canned) -> None:
    canned.script(patch=[reply(200, '{"TicketNumber": "INCA0000001"}', "application/json")])

    result = only(send(canned, planned(1)))

    assert (result.outcome, result.status, result.attempts) == (Outcome.UPDATED, 200, 1)
    assert result.message == (
        'HTTP 200 where 204 was expected; treated as updated: {"TicketNumber": "INCA0000001"}'
    )


def test_an_empty_200_counts_as_updated_and_says_so(canned: Canned) -> None:
    canned.script(patch=[reply(200)])

    result = only(send(canned, planned(1)))

    assert (result.outcome, result.message) == (
        Outcome.UPDATED,
        "HTTP 200 where 204 was expected; treated as updated",
    )


def test_a_200_web_page_is_a_proxy_not_an_update(canned: Canned) -> None:
    # A proxy's sign-in page answers 200: the ticket was not updated, whatever the status says.
    canned.script(patch=[reply(200, html_page("Sign in to the web proxy"), "text/html")])

    result = only(send(canned, planned(1)))

    assert (result.outcome, result.status, result.attempts) == (Outcome.FAILED, 200, 1)
    assert result.message == (
        'HTTP 200 with a web page instead of the API\'s answer ("Sign in to the web proxy"): a '
        "proxy or a login page answered in the server's place, so the request most likely did "
        "not reach CCS; check the server URL and the proxy settings"
    )


# --- no answer: a hang, a reset ------------------------------------------------------------------


def test_a_hang_times_out_is_retried_and_then_fails(canned: Canned) -> None:
    canned.script(patch=[hang])

    started = time.monotonic()
    result = only(send(canned, planned(1)))

    # No answer came: the server may have applied the update, so the row is Unknown, not Failed.
    assert (result.outcome, result.status, result.attempts) == (Outcome.UNKNOWN, None, 3)
    timeout = "no answer within 0.4 s (timeout)"
    assert result.message == (
        f"{timeout} (gave up after 3 attempts: {timeout}, {timeout}, {timeout}); {UNANSWERED}"
    )
    assert len(canned.patches()) == 3
    assert time.monotonic() - started < 10


def test_a_hang_then_an_answer_is_updated_on_the_retry(canned: Canned) -> None:
    canned.script(patch=[hang, reply(204)])

    result = only(send(canned, planned(1)))

    assert (result.outcome, result.status, result.attempts) == (Outcome.UPDATED, 204, 2)
    assert result.message == "updated on attempt 2 after no answer within 0.4 s (timeout)"


def test_a_reset_connection_is_retried(canned: Canned) -> None:
    canned.script(patch=[reset, reply(204)])

    result = only(send(canned, planned(1)))

    assert (result.outcome, result.status, result.attempts) == (Outcome.UPDATED, 204, 2)
    assert result.message == "updated on attempt 2 after connection failed"


def test_resets_every_time_fail_the_row_and_the_run_goes_on(canned: Canned) -> None:
    canned.script(patch=lambda ticket, attempt: reset if ticket == "INCA0000001" else reply(204))

    results = send(canned, planned(1, 2))

    # Reset after the request was sent: it may have been applied (Unknown, read back later).
    assert results[2].outcome is Outcome.UNKNOWN and results[2].status is None
    reason = "connection failed"
    assert results[2].message == (
        f"{reason}: connection reset by the server (gave up after 3 attempts: {reason}, "
        f"{reason}, {reason}); {UNANSWERED}"
    )
    assert (results[3].outcome, results[3].status) == (Outcome.UPDATED, 204)


# --- redirects ------------------------------------------------------------------------------------


def test_a_redirected_patch_fails_naming_the_location_and_is_not_followed(
    canned: Canned,
) -> None:
    elsewhere = "https://ccs-new.corp.example:12431/ccs/api/v1/RemediationTickets/"
    canned.script(patch=[reply(307, Location=elsewhere)])

    result = only(send(canned, planned(1)))

    assert (result.outcome, result.status, result.attempts) == (Outcome.FAILED, 307, 1)
    assert result.message == f"redirected to {elsewhere}; not followed with credentials"
    assert [s.method for s in canned.seen] == ["POST", "PATCH"]


def test_a_redirected_token_request_stops_the_run_naming_the_location(canned: Canned) -> None:
    elsewhere = "https://sso.corp.example/login?next=/ccs"
    canned.script(tokens=[reply(302, Location=elsewhere)])

    with pytest.raises(ServerUnreachable) as caught:
        client_for(canned).login()

    assert str(caught.value) == (
        f"{canned.url} redirected the token request to {elsewhere}; credentials are not sent "
        "after a redirect."
    )
    assert caught.value.tip == "Set the server URL to the address the server redirects to."
    assert len(canned.seen) == 1


# --- token answers that are not tokens -----------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        (
            reply(200, '{"token_type": "bearer", "expires_in": 3600}', "application/json"),
            'its JSON has only "token_type", "expires_in"',
        ),
        (reply(200, '{"access_token": ""}', "application/json"), 'its "access_token" is empty'),
        (reply(200, '{"access_token": 42}', "application/json"), 'its "access_token" is not text'),
        (reply(200, '["a", "b"]', "application/json"), "its JSON is a list, not an object"),
        (reply(200, "OK", "text/plain"), "its body is not JSON"),
        (reply(200), "its body is empty"),
        (
            reply(200, html_page("Corporate sign-in"), "text/html"),
            'it is a web page: "Corporate sign-in"',
        ),
    ],
    ids=["no-token", "empty-token", "number-token", "json-list", "text", "empty", "html"],
)
def test_a_token_answer_without_a_token_is_a_clear_run_error(
    canned: Canned, answer: Answer, what: str
) -> None:
    canned.script(tokens=[answer])

    with pytest.raises(ServerUnreachable) as caught:
        client_for(canned).login()

    assert str(caught.value) == (
        f"{canned.url} answered the token request with HTTP 200 but without an access token "
        f"({what}); is this the CCS server?"
    )
    assert caught.value.tip == (
        "Check the server URL (--url or CCS_URL): it must be the CCS REST API "
        "(https://host:12431), not a web page or a proxy in front of it."
    )


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (
            reply(503, html_page("Service Unavailable"), "text/html"),
            ServerUnreachable,
            "{url} could not issue a token (HTTP 503: Service Unavailable).",
        ),
        (
            reply(404, "Not Found", "text/plain"),
            ServerUnreachable,
            "{url} has no token endpoint at /ccs/api/v1/oauth/tokens (HTTP 404: Not Found); is "
            "this the CCS server?",
        ),
        (
            reply(
                401,
                html_page("401 - Unauthorized: Access is denied due to invalid credentials."),
                "text/html",
            ),
            AuthError,
            "The CCS server refused the user name or password for corp\\ccsadmin (HTTP 401: 401 - "
            "Unauthorized: Access is denied due to invalid credentials.).",
        ),
    ],
    ids=["503", "404", "401-html"],
)
def test_a_refused_token_request_says_whose_fault_it_is(
    canned: Canned, answer: Answer, error: type[Exception], message: str
) -> None:
    canned.script(tokens=[answer])

    with pytest.raises(error) as caught:
        client_for(canned).login()

    assert str(caught.value) == message.format(url=canned.url)


def test_a_hanging_token_request_is_a_run_error(canned: Canned) -> None:
    canned.script(tokens=[hang])

    with pytest.raises(ServerUnreachable) as caught:
        client_for(canned).login()

    assert str(caught.value) == (
        f"{canned.url} did not answer the token request within 0.4 seconds."
    )


# --- 401 ------------------------------------------------------------------------------------------


def test_a_401_with_an_html_body_renews_the_token_once_then_stops_the_run(
    canned: Canned,
) -> None:
    page = html_page("401 - Unauthorized: Access is denied due to invalid credentials.")
    canned.script(patch=[reply(401, page, "text/html")])

    results = send(canned, planned(1, 2, 3))
    report = send.report  # type: ignore[attr-defined]

    assert results[2].outcome is Outcome.FAILED
    assert results[2].message == (
        "HTTP 401 twice, even with a new token: credentials refused; the run stopped"
    )
    assert (results[3].outcome, results[4].outcome) == (Outcome.NOT_SENT, Outcome.NOT_SENT)
    assert report.auth_failed
    assert report.stopped_reason == (
        'The CCS server refused corp\\ccsadmin twice in a row with HTTP 401 ("401 - '
        'Unauthorized: Access is denied due to invalid credentials."), even with a new token.'
    )
    assert canned.grants() == ["grant_type=password", "grant_type=refresh_token"]
    assert len(canned.patches()) == 2


def test_a_server_gone_while_renewing_the_token_fails_the_row_not_the_worker(
    canned: Canned,
) -> None:
    # The first token is fine; then every PATCH gets 401 and every new token request is reset.
    canned.script(patch=[reply(401)], tokens=[tokens_as_ccs, reset])

    results = send(canned, planned(1, 2), stop_policy=StopPolicy(transient_streak=0))

    gone = f"HTTP 401, and no new token: Could not connect to {canned.url}: connection reset by the server"
    for row in (2, 3):
        assert (results[row].outcome, results[row].status) == (Outcome.FAILED, None)
        assert results[row].message == (
            f"{gone} (gave up after 3 attempts: HTTP 401, and no new token, HTTP 401, and no "
            "new token, HTTP 401, and no new token)"
        )


# --- end to end: the installed command -----------------------------------------------------------


def run_against(canned: Canned, tmp_path: Path, rows: list[list[object]]) -> object:
    # A live run reads the tickets before it changes them: unless a test says otherwise, the
    # server holds each of the sheet's tickets as Open and Medium, so that every row changes it.
    for row in rows:
        if str(row[0]).upper() not in canned.server.held:
            canned.hold(held_ticket(str(row[0])))
    write_sheet(tmp_path / "tickets.xlsx", rows)
    (tmp_path / "fast.yaml").write_text(FAST_RETRIES_YAML, encoding="utf-8")
    return run_command(
        [
            "tickets.xlsx",
            "--url",
            canned.url,
            "--user",
            ADMIN,
            "--yes",
            "--rate",
            "100",
            "--config",
            "fast.yaml",
        ],
        tmp_path,
        env=live_env(tmp_path / "home", password="P+ss/w=rd!"),
    )


def test_end_to_end_a_login_page_instead_of_a_token_stops_before_any_patch(
    tmp_path: Path, canned: Canned
) -> None:
    canned.script(tokens=[reply(200, html_page("Corporate sign-in"), "text/html")])

    done = run_against(canned, tmp_path, [["INCA0000001", 2, "High"], ["INCA0000002", 3, "Low"]])

    assert done.returncode == ExitStatus.STOPPED, done.stderr
    error = (
        f"{canned.url} answered the token request with HTTP 200 but without an access token "
        '(it is a web page: "Corporate sign-in"); is this the CCS server?'
    )
    lines = done.stderr.splitlines()
    assert f"Error: {error}" in lines
    assert lines[-2:] == [
        f"The run stopped early: {error.rstrip('.')}.",
        "Nothing was sent; no results workbook was written.",
    ]
    assert "Traceback" not in done.stderr
    assert canned.patches() == []
    assert results_files(tmp_path) == []


def test_end_to_end_bad_answers_become_row_outcomes(tmp_path: Path, canned: Canned) -> None:
    answers = {
        "INCA0000001": reply(502, html_page("502 Bad Gateway"), "text/html"),
        "INCA0000002": reply(200, '{"ok": true}', "application/json"),
        "INCA0000003": reply(302, Location="https://elsewhere.example/ccs"),
        "INCA0000004": huge(500, 5 * 1024 * 1024, b"Internal proxy error: "),
        "INCA0000005": reply(204),
    }
    canned.script(patch=lambda ticket, attempt: answers.get(ticket or "", reply(204)))
    rows = [[ticket, 2, "High"] for ticket in answers]

    done = run_against(canned, tmp_path, rows)

    assert done.returncode == ExitStatus.ROWS_FAILED, done.stderr
    assert "Traceback" not in done.stderr
    (workbook,) = results_files(tmp_path)
    results = by_row(read_results(workbook))
    got = {row: (r["Outcome"], r["HTTP Status"], r["Attempts"]) for row, r in results.items()}
    assert got == {
        2: ("Failed", 502, 4),
        3: ("Updated", 200, 1),
        4: ("Failed", 302, 1),
        5: ("Failed", 500, 4),
        6: ("Updated", 204, 1),
    }
    assert results[2]["Message"] == (
        "502 Bad Gateway (gave up after 4 attempts: HTTP 502, HTTP 502, HTTP 502, HTTP 502)"
    )
    assert results[3]["Message"] == (
        'HTTP 200 where 204 was expected; treated as updated: {"ok": true}'
    )
    assert results[4]["Message"] == (
        "redirected to https://elsewhere.example/ccs; not followed with credentials"
    )
    cut = ("Internal proxy error: " + "x" * MAX_MESSAGE_LENGTH)[: MAX_MESSAGE_LENGTH - 1] + "…"
    assert results[5]["Message"] == (
        f"{cut} (gave up after 4 attempts: HTTP 500, HTTP 500, HTTP 500, HTTP 500)"
    )
    assert results[6]["Message"] in ("", None)
    # The tool reads before it changes: one Search (the server answers it as CCS does, with the
    # five tickets, Open and Medium), then the planted answers came to the PATCHes, each of which
    # holds the fields that differ (the state) and Priority.
    seen = [s for s in canned.seen if s.method != "POST"]
    assert [(s.method, s.query) for s in seen[:1]] == [("GET", SEARCH)]
    assert {s.method for s in seen[1:]} == {"PATCH"}
    for row, ticket in enumerate(answers, start=2):
        patches = [s for s in canned.patches() if s.ticket == ticket]
        sent = {"TicketNumber": ticket, "TicketState": 2, "Priority": "High"}
        assert [s.body for s in patches] == [sent] * results[row]["Attempts"], ticket


STOPPED_BY_401 = (
    "The run stopped early: The CCS server refused corp\\ccsadmin twice in a row with HTTP 401 "
    '("401 - Unauthorized: Access is denied due to invalid credentials."), even with a new token.'
)


def run_with_401s(canned: Canned, tmp_path: Path):
    page = html_page("401 - Unauthorized: Access is denied due to invalid credentials.")
    canned.script(patch=[reply(401, page, "text/html")])
    return run_against(canned, tmp_path, [["INCA0000001", 2, "High"], ["INCA0000002", 3, "Low"]])


def test_end_to_end_a_401_with_html_stops_the_run(tmp_path: Path, canned: Canned) -> None:
    done = run_with_401s(canned, tmp_path)

    assert done.returncode == ExitStatus.STOPPED, done.stderr
    assert done.stderr.splitlines()[-1] == STOPPED_BY_401
    assert "Traceback" not in done.stderr
    (workbook,) = results_files(tmp_path)
    results = by_row(read_results(workbook))
    assert results[2]["Message"] == (
        "HTTP 401 twice, even with a new token: credentials refused; the run stopped"
    )
    assert (results[2]["Outcome"], results[2]["HTTP Status"]) == ("Failed", 401)
    assert "Updated" not in {r["Outcome"] for r in results.values()}
    # The tool reads before it changes: the Search was answered (the 401s are planted on the
    # PATCHes), so the tickets were known and the 401s came to the PATCHes.
    seen = [s for s in canned.seen if s.method != "POST"]
    assert [(s.method, s.query) for s in seen[:1]] == [("GET", SEARCH)]
    assert {s.method for s in seen[1:]} == {"PATCH"}
    # Attempts counts every time the row's PATCH went out: with each new token, three in all.
    first = [s for s in seen if s.method == "PATCH" and s.ticket == results[2]["Ticket Number"]]
    assert results[2]["Attempts"] == len(first) == 3
    # The first token served that Search, so the first PATCH's 401 is taken for a token that
    # stopped working (as after a server restart) and it is renewed; the new token is refused
    # at once, renewed once more, and that one refused too: the run stops. No more tokens.
    assert canned.grants() == [
        "grant_type=password",
        "grant_type=refresh_token",
        "grant_type=refresh_token",
    ]


def test_end_to_end_a_401_with_html_to_the_search_stops_before_anything_is_sent(
    tmp_path: Path, canned: Canned
) -> None:
    page = html_page("401 - Unauthorized: Access is denied due to invalid credentials.")
    canned.script(search=reply(401, page, "text/html"))

    done = run_against(canned, tmp_path, [["INCA0000001", 2, "High"], ["INCA0000002", 3, "Low"]])

    # Refused before the question and before the run's journal: nothing was sent, and there
    # is no run to account for (as for a refused login).
    assert done.returncode == ExitStatus.STOPPED, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-2:] == [
        STOPPED_BY_401,
        "Nothing was sent; no results workbook was written.",
    ]
    assert [(s.method, s.query) for s in canned.seen if s.method != "POST"] == [
        ("GET", SEARCH),
        ("GET", SEARCH),  # sent again with a new token, refused again
    ]
    assert canned.grants() == ["grant_type=password", "grant_type=refresh_token"]
    assert results_files(tmp_path) == []


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (
            reply(501, html_page("501 Not Implemented"), "text/html"),
            "HTTP 501: 501 Not Implemented",
        ),
        (
            reply(200, html_page("Sign in to the web proxy"), "text/html"),
            "HTTP 200 with a web page instead of the API's answer (\"Sign in to the web "
            "proxy\"): a proxy or a login page answered in the server's place, so the request "
            "most likely did not reach CCS; check the server URL and the proxy settings",
        ),
    ],
    ids=["501-html", "200-web-page"],
)
def test_end_to_end_a_search_that_fails_reads_each_ticket_before_its_patch(
    tmp_path: Path, canned: Canned, answer: Answer, said: str
) -> None:
    canned.script(search=answer)

    done = run_against(canned, tmp_path, [["INCA0000001", 2, "High"], ["INCA0000002", 3, "Low"]])

    assert done.returncode == ExitStatus.OK, done.stderr
    assert (
        f"Current state: the tickets could not be read in pages ({said}), so 2 tickets read one "
        "by one (GET), each right before its update."
    ) in done.stderr.splitlines()
    (workbook,) = results_files(tmp_path)
    results = by_row(read_results(workbook))
    # Each row: its ticket read (GET), then its PATCH.
    got = {row: (r["Outcome"], r["HTTP Status"], r["Attempts"]) for row, r in results.items()}
    assert got == {2: ("Updated", 204, 2), 3: ("Updated", 204, 2)}
    seen = [s for s in canned.seen if s.method != "POST"]
    assert [(s.method, s.query) for s in seen[:1]] == [("GET", SEARCH)]  # not retried
    for ticket in ("INCA0000001", "INCA0000002"):
        mine = [(s.method, s.query) for s in seen if s.ticket == ticket]
        assert mine == [("GET", f"TicketNumber={ticket}"), ("PATCH", "")], ticket


def test_end_to_end_tickets_that_cannot_be_read_are_not_changed(
    tmp_path: Path, canned: Canned
) -> None:
    # A proxy's sign-in page answers every read: what the tickets hold is not known.
    canned.server.read_answer = lambda ticket, query: reply(
        200, html_page("Sign in to the web proxy"), "text/html"
    )

    done = run_against(canned, tmp_path, [["INCA0000001", 2, "High"], ["INCA0000002", 3, "Low"]])

    assert done.returncode == ExitStatus.ROWS_FAILED, done.stderr
    assert "Traceback" not in done.stderr
    (workbook,) = results_files(tmp_path)
    results = by_row(read_results(workbook))
    page = (
        "HTTP 200 with a web page instead of the API's answer (\"Sign in to the web "
        "proxy\"): a proxy or a login page answered in the server's place, so the request most "
        "likely did not reach CCS; check the server URL and the proxy settings"
    )
    for row in (2, 3):
        assert pick(results[row], "Outcome", "HTTP Status", "Attempts", "Request") == (
            "Failed",
            200,
            1,
            None,
        )
        assert results[row]["Message"] == (
            f"the ticket could not be read before sending ({page}), so what it holds is not "
            "known; nothing was sent"
        )
    assert canned.patches() == []
    assert sorted(s.query for s in canned.reads()) == [
        SEARCH,
        "TicketNumber=INCA0000001",
        "TicketNumber=INCA0000002",
    ]


def test_an_empty_204_labelled_html_is_still_an_update(canned: Canned) -> None:
    # Some servers put a Content-Type on every answer, even one without a body.
    canned.script(patch=[reply(204, content_type="text/html; charset=utf-8")])

    result = only(send(canned, planned(1)))

    assert (result.outcome, result.status, result.message) == (Outcome.UPDATED, 204, "")
