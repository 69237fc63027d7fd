"""The CCS client: tokens (got, renewed before expiry, renewed on 401), one update, one read."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from .. import __version__
from ..errors import AuthError, ServerUnreachable
from ..redact import Redactor
from ..tickets import TicketUpdate
from .answers import (
    Reply,
    _describe_token_answer,
    _location,
    _ms,
    _read_body,
    _ReadTimeout,
    _seconds,
    encode_password,
    extract_message,
)
from .exchange import _answer, _no_answer, _token_request_error

TOKEN_PATH = "/ccs/api/v1/oauth/tokens"


TICKETS_PATH = "/ccs/api/v1/RemediationTickets/"


TICKET_QUERY_PATH = "/ccs/api/v1/RemediationTickets"


DEFAULT_TIMEOUT = (10.0, 60.0)


USER_AGENT = f"batch-update/{__version__}"


# The answers to a token request that mean "these credentials are refused".
CREDENTIALS_REFUSED = frozenset({400, 401, 403})


# How long an access token lives when the token answer does not say (the contract's default).
DEFAULT_TOKEN_LIFETIME = 3600.0


# Sends of one request at most, when every 401 is a token that ran out on its way.
MAX_SENDS = 3


# A token is renewed this long before it runs out: a minute, or less for a short-lived token,
# but never less than the slowest recent answer takes (the server checks the token on arrival,
# or after its work) and always leaving a token a quarter of its life to serve.
RENEW_AHEAD = 60.0


# The shortest lifetime learned from a token that stopped working (a restart of the service
# soon after a token was issued must not make every request fetch a token of its own).
MIN_LEARNED_LIFETIME = 0.25


@dataclass
class _Token:
    """One access token and what is known of it."""

    value: str
    generation: int
    received: float  # time.monotonic() when the token answer came
    lifetime: float  # seconds: the answer's expires_in, else the configured (or learned) one
    announced: bool  # the lifetime is the server's own expires_in
    after_refusal: bool  # got because the token before it was refused at once
    served: bool = False  # the server accepted a request with it

    def age(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.received


class SecretLike(Protocol):
    def reveal(self) -> str: ...


# Called right before a request goes out; returns False if the run is stopping instead.
Pace = Callable[[], bool]


class CcsClient:
    """A client for one CCS server and one account, safe to use from many threads."""

    def __init__(
        self,
        base_url: str,
        username: str,
        password: SecretLike,
        *,
        password_encoding: str = "base64",
        verify: bool | str = True,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        token_lifetime: float = DEFAULT_TOKEN_LIFETIME,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self._password_encoding = str(getattr(password_encoding, "value", password_encoding))
        # Whatever the server says is shown only without the password and the tokens in it.
        self._redactor = Redactor(password.reveal())
        # TLS is verified; with no CA bundle given, the system's (REQUESTS_CA_BUNDLE or
        # CURL_CA_BUNDLE if set, as requests itself would use, else certifi's).
        if verify is True:
            verify = (
                os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            )
        self._verify = verify
        self._timeout = timeout
        self._local = threading.local()
        self._token_lock = threading.Lock()
        self._token: _Token | None = None
        self._refresh_token: str | None = None
        self._token_generation = 0
        # A token answer without expires_in lives this long; lowered when a token that served
        # stops working sooner (a server configured for shorter tokens).
        self._token_lifetime = float(token_lifetime)
        self._renewal_reason = ""
        self.token_renewals = 0
        self._answer_times: deque[float] = deque(maxlen=32)  # seconds, the latest answers
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CcsClient({self.base_url!r}, user={self.username!r})"

    @property
    def host(self) -> str:
        parts = urlsplit(self.base_url)
        return parts.netloc or self.base_url

    # -- sessions -----------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            # The environment is read once here, not by requests on every request: with
            # trust_env on, a ~/.netrc entry for the CCS host would replace the Bearer header
            # (every PATCH 401, the run stops), and re-reading it cost a third of the client's
            # CPU. Proxies still come from HTTPS_PROXY/NO_PROXY, as users expect.
            session.trust_env = False
            session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
            session.verify = self._verify
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        """Close every worker's connections."""
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    # -- tokens -------------------------------------------------------------------------------

    def login(self) -> None:
        """Get the first token; raises AuthError, TlsError or ServerUnreachable with advice."""
        with self._token_lock:
            self._password_grant()

    def _token_request(self, form: dict[str, str]) -> tuple[requests.Response, bytes]:
        """The answer to a token request and (at most MAX_BODY_BYTES of) its body."""
        started = time.monotonic()
        try:
            response = self._session().post(
                self.base_url + TOKEN_PATH,
                data=form,  # requests form-encodes and URL-encodes every value
                headers={"Accept": "application/json"},
                timeout=self._timeout,
                allow_redirects=False,
                verify=self._verify,
                stream=True,
            )
            # The body is read here, under the same translation of errors as the request.
            content = _read_body(response)
            # How long the server takes to answer, before any ticket request has said so.
            self._answer_times.append(time.monotonic() - started)
            return response, content
        except (requests.exceptions.RequestException, _ReadTimeout) as exc:
            raise _token_request_error(exc, self.base_url, self.host, self._timeout) from exc

    def _store_tokens(self, response: requests.Response, content: bytes) -> None:
        try:
            data = json.loads(content)
        except ValueError:
            data = None
        access = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(access, str) or not access.strip():
            raise ServerUnreachable(
                f"{self.base_url} answered the token request with HTTP {response.status_code} "
                "but without an access token "
                f"({self._redactor.redact(_describe_token_answer(response, content, data))}); "
                "is this the CCS server?",
                tip="Check the server URL (--url or CCS_URL): it must be the CCS REST API "
                "(https://host:12431), not a web page or a proxy in front of it.",
            )
        self._redactor.add(access)
        refresh = data.get("refresh_token")
        self._refresh_token = refresh if isinstance(refresh, str) and refresh else None
        self._redactor.add(self._refresh_token)
        self._token_generation += 1
        expires_in = _seconds(data.get("expires_in"))
        self._token = _Token(
            access,
            self._token_generation,
            received=time.monotonic(),
            lifetime=expires_in if expires_in is not None else self._token_lifetime,
            announced=expires_in is not None,
            after_refusal=self._renewal_reason == "refused",
        )

    def _password_grant(self) -> None:
        response, content = self._token_request(
            {
                "grant_type": "password",
                "username": self.username,
                "password": encode_password(self._password.reveal(), self._password_encoding),
            }
        )
        if 300 <= response.status_code < 400:
            raise ServerUnreachable(
                f"{self.base_url} redirected the token request to {self._location(response)}; "
                "credentials are not sent after a redirect.",
                tip="Set the server URL to the address the server redirects to.",
            )
        status = response.status_code
        if status != 200:
            message = self._server_text(content, response.headers.get("Content-Type", ""))
            said = f" (HTTP {status}" + (f": {message}" if message else "") + ")"
            if status in (404, 405):
                raise ServerUnreachable(
                    f"{self.base_url} has no token endpoint at {TOKEN_PATH}{said}; is this the "
                    "CCS server?",
                    tip="Check the server URL (--url or CCS_URL): it must be the CCS REST API "
                    "(https://host:12431), not a web page or a proxy in front of it.",
                )
            if status not in CREDENTIALS_REFUSED:
                # A server error or a busy proxy says nothing about the password.
                raise ServerUnreachable(
                    f"{self.base_url} could not issue a token{said}.",
                    tip="The CCS server, or a proxy in front of it, is failing; check the CCS "
                    "Application Server service and try again later.",
                )
            raise AuthError(
                f"The CCS server refused the user name or password for {self.username} "
                f"(HTTP {response.status_code}" + (f": {message}" if message else "") + ").",
                tip="Check CCS_USERNAME and CCS_PASSWORD, and auth.password_encoding in the "
                "config (base64 or plain: the server expects one of them).",
            )
        self._store_tokens(response, content)

    def _refresh_grant(self) -> bool:
        if not self._refresh_token:
            return False
        try:
            response, content = self._token_request(
                {"grant_type": "refresh_token", "refresh_token": self._refresh_token}
            )
        except ServerUnreachable:
            return False
        if response.status_code != 200:
            return False
        try:
            self._store_tokens(response, content)
        except ServerUnreachable:
            return False
        return True

    def _renew_token(self, seen_generation: int, reason: str) -> None:
        """Get a new token, once for all threads: the one of `seen_generation` will not do.

        `reason` is "refused" (the server refused it at once: its successor must not be refused
        too), "expired" (it served and stopped working, or ran out on the way) or "ahead" (it is
        about to run out). AuthError only when the token endpoint refuses the credentials.
        """
        with self._token_lock:
            if self._token_generation != seen_generation:
                return  # another worker already renewed it
            self.token_renewals += 1
            self._renewal_reason = reason
            try:
                if not self._refresh_grant():
                    self._password_grant()
            finally:
                self._renewal_reason = ""

    def _current_token(self) -> _Token:
        """The token to send, renewed first if it would run out before the answer comes."""
        with self._token_lock:
            if self._token is None:
                self._password_grant()
            token = self._token
            assert token is not None
        if token.age() + self._renew_ahead(token.lifetime) > token.lifetime:
            try:
                self._renew_token(token.generation, "ahead")
            except ServerUnreachable:
                return token  # keep the one there is: a 401 will renew it again
            with self._token_lock:
                token = self._token or token
        return token

    def _renew_ahead(self, lifetime: float) -> float:
        with self._token_lock:
            slowest = max(self._answer_times, default=0.0)
        return min(0.75 * lifetime, max(slowest * 1.25 + 0.05, min(RENEW_AHEAD, lifetime * 0.05)))

    def _after_401(self, token: _Token, sent_at: float, sends: int, reply: Reply) -> Reply | None:
        """A 401 came back for `token`: renew it and return None to re-send, or say why not."""
        ran_out = token.age() >= 0.9 * token.lifetime  # it may have expired on its way
        if not token.served and not ran_out:
            if token.after_refusal:
                refused = AuthError(
                    f"The CCS server refused {self.username} twice in a row with HTTP 401 "
                    f'("{reply.message or "Unauthorized"}"), even with a new token.',
                    tip="The account may have been disabled or its password changed during the "
                    "run; check it in CCS and run again (rows already updated are in the "
                    "results workbook).",
                )
                refused.sends = sends
                raise refused
            reason = "refused"
        else:
            reason = "expired"
            if token.served and not token.announced:
                # It served, then stopped working before the assumed lifetime: the server's
                # tokens are shorter-lived than assumed (or the service restarted).
                with self._token_lock:
                    self._token_lifetime = min(
                        self._token_lifetime, max(sent_at - token.received, MIN_LEARNED_LIFETIME)
                    )
        if sends >= MAX_SENDS:
            return replace(
                reply,
                status=None,
                message=f"HTTP 401 {sends} times: each new token ran out before the server read "
                "the request",
            )
        try:
            self._renew_token(token.generation, reason)
        except ServerUnreachable as exc:
            # The server went away between the 401 and the new token: for this row that
            # is a network failure like any other (retried, and counted towards the stop
            # policy), not an exception that would end the worker.
            return replace(
                reply,
                status=None,
                message=f"HTTP 401, and no new token: {exc.message.rstrip('.')}",
            )
        return None

    # -- what the server says ------------------------------------------------------------------

    def _server_text(self, content: bytes, content_type: str) -> str:
        """The server's message from a body, without any secret it may repeat."""
        return self._redactor.redact(extract_message(content, content_type))

    def _location(self, response: requests.Response) -> str:
        return self._redactor.redact(_location(response))

    # -- requests -----------------------------------------------------------------------------

    def _send(self, method: str, url: str, pace: Pace | None, **kwargs: Any) -> Reply:
        """Send one request with the current token; on 401 renew the token and send again.

        `pace` is called right before each send, after the token is in hand, so that a send
        waiting for a token renewal cannot hold a slot and then burst out with the others.
        """
        sends = 0
        while True:
            token = self._current_token()
            if pace is not None:
                if not pace():
                    return Reply(None, "not sent: the run is stopping", sends=sends)
                # Its turn may have come late enough for the token to be near its end.
                token = self._current_token()
            sent_at = time.monotonic()
            reply = self._send_once(method, url, token.value, **kwargs)
            sends += 1
            if sends > 1:
                reply = replace(reply, sends=sends)
            if reply.status is not None:
                with self._token_lock:
                    self._answer_times.append(time.monotonic() - sent_at)
            if reply.status != 401:
                if reply.status is not None and reply.status < 500:
                    token.served = True
                return reply
            stop = self._after_401(token, sent_at, sends, reply)
            if stop is not None:
                return stop

    def _send_once(
        self,
        method: str,
        url: str,
        token: str,
        *,
        content_type: str | None = None,
        keep_text: bool = False,
        **kwargs: Any,
    ) -> Reply:
        """One request with `token`: what came back, or why nothing did, as a Reply."""
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        started = time.perf_counter()
        try:
            response = self._session().request(
                method,
                url,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
                verify=self._verify,
                stream=True,
                **kwargs,
            )
            content = _read_body(response)
        except (requests.exceptions.RequestException, _ReadTimeout) as exc:
            return _no_answer(exc, started, self._timeout)
        return _answer(response, content, _ms(started), self._redactor, keep_text=keep_text)

    def update(self, update: TicketUpdate, pace: Pace | None = None) -> Reply:
        """PATCH one ticket. 204 means updated; anything else is described in the Reply."""
        return self._send(
            "PATCH",
            self.base_url + TICKETS_PATH,
            pace,
            data=update.to_json_text().encode("utf-8"),
            content_type="application/json; charset=utf-8",
        )

    def get_ticket(self, ticket_number: str, pace: Pace | None = None) -> Reply:
        """Read one ticket (GET ...?TicketNumber=); the parsed JSON is in Reply.body."""
        return self._send(
            "GET", self.base_url + TICKET_QUERY_PATH, pace, params={"TicketNumber": ticket_number}
        )

    def show_ticket(self, ticket_number: str, pace: Pace | None = None) -> Reply:
        """Read one ticket, keeping the answer's text as the server sent it (Reply.text, any
        secret in it removed), for `batch-update show`."""
        return self._send(
            "GET",
            self.base_url + TICKET_QUERY_PATH,
            pace,
            params={"TicketNumber": ticket_number},
            keep_text=True,
        )

    def search(
        self,
        fields: Sequence[tuple[str, str]],
        page: int,
        page_size: int,
        pace: Pace | None = None,
    ) -> Reply:
        """One page of Search: GET ...RemediationTickets?Fields=(A=1,B=2)&Page=&PageSize=.

        `fields` are the vendor's filters (`=` is the only operator, a comma means AND); none
        reads every ticket the account may see. The parsed JSON is in Reply.body, in whatever
        shape the server gives it (see `shapes.tickets_in`).
        """
        params: dict[str, str | int] = {}
        if fields:
            params["Fields"] = "(" + ",".join(f"{name}={value}" for name, value in fields) + ")"
        params["Page"] = page
        params["PageSize"] = page_size
        return self._send("GET", self.base_url + TICKET_QUERY_PATH, pace, params=params)
