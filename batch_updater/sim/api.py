"""The CCS API as the simulator answers it: routes, checks in the server's order, exact messages.

Given one request (method, target, headers, body) this module decides the answer; it knows
nothing of sockets. The order of the checks of a PATCH is the contract's: authentication, role,
the body, the ticket number, the state, "nothing to update", the other fields, the ticket's
existence, then the permission on its standard and asset. Injected faults come before all of
it, as they would from a proxy or a crashing server.

How tickets are read back is left open by the vendor (the contract's "Reading tickets"), so
every shape a client must survive is a setting. By default a ticket in a GET or Search answer
has PascalCase keys (`TicketNumber`, `TicketState`, `TicketStatus`, ... `LastModified`), a
Search answers a bare JSON array, pages count from 0, PageSize goes up to 1000, and a ticket
set to 2 stays at 2. `key_case="camel"`, `search_shape="wrapped"` (`{"TotalCount": n,
"Tickets": [...]}`), `max_page_size`, `first_page=1` and `verification="verified"/"failed"`
(with `verification_delay`) play the other servers. Search parameter names (`Page`, `PageSize`,
`Fields`) and PATCH field names are matched in any case, as the vendor's sample needs.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, unquote

from .auth import SimUser, TokenBook
from .faults import Fault, FaultInjector
from .requestlog import Endpoint, RequestLog, RequestRecord
from .settings import KeyCase, RetryAfterFormat, SearchShape, SimSettings
from .store import TicketState, TicketStore, as_priority, as_ticket_state

TOKENS_ROUTE = "/ccs/api/v1/oauth/tokens"
TICKETS_ROUTE = "/ccs/api/v1/remediationtickets"
SIM_ROUTE = "/_sim"

MSG_UNAUTHORIZED = "Authorization has been denied for this request."
MSG_FORBIDDEN = "You are not authorized to perform this task. Access is denied."
MSG_BAD_TICKET_NUMBER = "Ticket number is invalid or empty."
MSG_BAD_TICKET_STATE = "Provide valid ticket state."
MSG_NOTHING_TO_UPDATE = "Provide ticket details to update."
MSG_BAD_TICKET_DETAILS = "Provide valid ticket details."
MSG_TICKET_NOT_FOUND = "Ticket not found. Provide valid ticket number."
MSG_SERVER_ERROR = (
    "Server encountered an error while serving request. "
    "Please contact administrator if problem persists."
)
MSG_BAD_CREDENTIALS = "The user name or password is incorrect."
MSG_BAD_REFRESH_TOKEN = "The refresh token is invalid or has expired."
MSG_UNSUPPORTED_GRANT = "The authorization grant type is not supported by the authorization server."

JSON_TYPE = "application/json; charset=utf-8"
DEFAULT_PAGE_SIZE = 50

_PATCH_FIELDS = {
    name.lower(): name
    for name in ("TicketNumber", "TicketState", "TicketDescription", "Priority", "AssignedTo")
}
# Search filters the simulator understands; TicketProviderType is accepted and ignored because
# every simulated ticket comes from the one provider.
_SEARCH_FIELDS = {
    name.lower(): name
    for name in ("TicketState", "Priority", "AssignedTo", "Standard", "Asset", "TicketNumber")
}
_IGNORED_SEARCH_FIELDS = {"ticketprovidertype"}
_NOT_JSON = object()

logger = logging.getLogger(__name__)


MSG_TICKET_LOCKED = "ERROR: ticket locked"


# What the API reads of a request's headers: a look-up by name (the server's Message is
# case-insensitive, as HTTP is; tests may pass a plain mapping).
Headers = Mapping[str, str] | Message


@dataclass(frozen=True)
class Request:
    """One HTTP request as the API sees it."""

    method: str
    target: str
    headers: Headers
    body: bytes
    t: float
    wall: float


@dataclass(frozen=True)
class Response:
    """One HTTP answer; `body` is bytes, `headers` any extra ones."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class _Facts:
    """What the log wants to know of a request, filled in as the request is handled."""

    ticket: str | None = None
    user: str | None = None
    body: dict[str, Any] | None = None
    fault: Fault | None = None


class _Refusal(Exception):
    """A check failed: answer `status` with the ASP.NET-style `Message`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_response(status: int, data: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """A JSON answer."""
    body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    return Response(status, body, JSON_TYPE, headers)


def message_response(status: int, message: str) -> Response:
    """The server's error answer: `{"Message": ...}`."""
    return json_response(status, {"Message": message})


SERVER_ERROR = message_response(500, MSG_SERVER_ERROR)
UNAVAILABLE = Response(503, b"Service Unavailable", "text/plain; charset=us-ascii")


def _echoed(response: Response, request: Request) -> Response:
    """The answer with the request repeated in its message, as a careless gateway writes it."""
    said = ""
    try:
        data = json.loads(response.body)
        if isinstance(data, dict):
            said = str(data.get("Message") or data.get("error_description") or "")
    except ValueError:
        said = response.body.decode("utf-8", "replace")
    echo = (
        f"{said} [request: {request.method} {request.target}; Authorization: "
        f"{request.headers.get('Authorization', '')}; body: "
        f"{request.body.decode('utf-8', 'replace')}]"
    )
    return json_response(response.status, {"Message": echo}, response.headers)


class CcsApi:
    """Answers requests the way the CCS server does (and records every one)."""

    def __init__(
        self,
        *,
        store: TicketStore,
        tokens: TokenBook,
        log: RequestLog,
        faults: FaultInjector,
        settings: Callable[[], SimSettings],
        configure: Callable[..., SimSettings],
        restart: Callable[[], None],
        wait: Callable[[float], Any],
    ) -> None:
        self._store = store
        self._tokens = tokens
        self._log = log
        self._faults = faults
        self._settings = settings
        self._configure = configure
        self._restart = restart
        self._wait = wait

    def handle(self, request: Request) -> Response | None:
        """The answer to `request`, or None to drop the connection without one."""
        path, _, query = request.target.partition("?")
        route = path.rstrip("/").lower()
        if route == SIM_ROUTE or route.startswith(SIM_ROUTE + "/"):
            return self._inspect(request.method, path, route, query, request.body)
        settings = self._settings()
        endpoint = {TOKENS_ROUTE: Endpoint.TOKENS, TICKETS_ROUTE: Endpoint.TICKETS}.get(
            route, Endpoint.OTHER
        )
        facts = _Facts()
        parsed: Any = _NOT_JSON
        if request.method == "PATCH" and endpoint == Endpoint.TICKETS:
            parsed = _parse_json(request.body)
            if isinstance(parsed, dict):
                facts.body = parsed
                facts.ticket = _ticket_in(parsed)
        elif endpoint == Endpoint.TICKETS:
            facts.ticket = _query_value(query, "ticketnumber")

        # The throttle and the fault draw happen on arrival; the wait comes after, as it would
        # behind a proxy that decides before the server gets to work.
        if endpoint != Endpoint.TOKENS or settings.token_faults:
            if settings.rate_limit is not None and self._faults.throttled(
                request.t, settings.rate_limit
            ):
                facts.fault = Fault.RATE_LIMITED
            else:
                facts.fault = self._faults.draw(settings)
        delay = self._faults.delay(settings)
        if delay > 0:
            self._wait(delay)

        response: Response | None
        try:
            if facts.fault is not None:
                response = _fault_response(facts.fault, settings)
            elif endpoint == Endpoint.TOKENS:
                response = self._token(request, settings, facts)
            elif endpoint == Endpoint.TICKETS:
                response = self._tickets(request, query, parsed, settings, facts)
            else:
                response = message_response(
                    404, f"No HTTP resource was found that matches the request URI '{path}'."
                )
        except Exception:
            logger.exception("ccs-sim: unexpected error answering %s %s", request.method, path)
            response = SERVER_ERROR
        if settings.echo_requests and response is not None and response.status >= 400:
            response = _echoed(response, request)
        self._log.append(
            RequestRecord(
                t=request.t,
                wall=request.wall,
                method=request.method,
                path=path,
                query=query,
                endpoint=endpoint,
                ticket=facts.ticket,
                user=facts.user,
                status=None if response is None else response.status,
                body=facts.body,
                fault=None if facts.fault is None else facts.fault.value,
                elapsed=time.monotonic() - request.t,
            )
        )
        return response

    # -- tokens ---------------------------------------------------------------------------

    def _token(self, request: Request, settings: SimSettings, facts: _Facts) -> Response:
        if request.method != "POST":
            return _not_allowed(request.method, "POST")
        form = _parse_form(request.body)
        grant_type = form.get("grant_type", "").lower()
        lifetimes = (settings.access_token_lifetime, settings.refresh_token_lifetime)
        if grant_type == "password":
            username, password = form.get("username", ""), form.get("password", "")
            facts.user = username or None
            grant = None
            if username and password:
                grant = self._tokens.password_grant(
                    username, password, settings.password_encoding, *lifetimes
                )
            if grant is None:
                return _oauth_error("invalid_grant", MSG_BAD_CREDENTIALS)
        elif grant_type == "refresh_token":
            grant = self._tokens.refresh_grant(form.get("refresh_token", ""), *lifetimes)
            if grant is None:
                return _oauth_error("invalid_grant", MSG_BAD_REFRESH_TOKEN)
        else:
            return _oauth_error("unsupported_grant_type", MSG_UNSUPPORTED_GRANT)
        facts.user = grant.user.name
        lifetime = grant.expires_in
        answer: dict[str, object] = {
            "access_token": grant.access_token,
            "token_type": "bearer",
            "expires_in": int(lifetime) if float(lifetime).is_integer() else lifetime,
            "refresh_token": grant.refresh_token,
        }
        if not settings.token_expires_in:
            del answer["expires_in"]
        return json_response(200, answer, (("Cache-Control", "no-store"), ("Pragma", "no-cache")))

    # -- tickets --------------------------------------------------------------------------

    def _tickets(
        self, request: Request, query: str, parsed: Any, settings: SimSettings, facts: _Facts
    ) -> Response | None:
        if request.method not in ("GET", "PATCH"):
            return _not_allowed(request.method, "GET, PATCH")
        try:
            user = self._authorize(request.headers, facts)
            if facts.ticket is not None and facts.ticket.upper() in settings.fail_tickets:
                facts.fault = Fault.FAIL_TICKET
                return SERVER_ERROR
            if request.method == "PATCH":
                if (
                    facts.ticket is not None
                    and facts.ticket.upper() in settings.failure_body_tickets
                ):
                    facts.fault = Fault.FAILURE_BODY
                    return json_response(200, {"Success": False, "Message": MSG_TICKET_LOCKED})
                applied = self._patch(user, parsed, settings)
                if (
                    facts.ticket is not None
                    and facts.ticket.upper() in settings.lost_answer_tickets
                ):
                    facts.fault = Fault.LOST_ANSWER
                    return None  # applied, but the answer never leaves
                return applied
            if facts.ticket is not None:
                return self._get(user, facts.ticket, settings)
            return self._search(user, query, settings)
        except _Refusal as refusal:
            if refusal.status == 401:
                return json_response(
                    401, {"Message": refusal.message}, (("WWW-Authenticate", "Bearer"),)
                )
            return message_response(refusal.status, refusal.message)

    def _authorize(self, headers: Headers, facts: _Facts) -> SimUser:
        scheme, _, token = (headers.get("Authorization") or "").partition(" ")
        user = self._tokens.user_for(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise _Refusal(401, MSG_UNAUTHORIZED)
        facts.user = user.name
        if not user.remediation_admin:
            raise _Refusal(403, MSG_FORBIDDEN)
        return user

    def _patch(self, user: SimUser, parsed: Any, settings: SimSettings) -> Response:
        number, changes = parse_update(parsed, settings)
        ticket = self._ticket_for(user, number, settings)
        outcome = settings.verification.outcome
        self._store.update(
            ticket["TicketNumber"],
            changes,
            settings.sticky_fields.get(number.upper(), frozenset()),
            verification=None if outcome is None else (outcome, settings.verification_delay),
        )
        return Response(204)

    def _get(self, user: SimUser, number: str, settings: SimSettings) -> Response:
        if not number.strip():
            raise _Refusal(400, MSG_BAD_TICKET_NUMBER)
        ticket = self._ticket_for(user, number, settings)
        return json_response(200, public_ticket(ticket, settings.key_case))

    def _ticket_for(self, user: SimUser, number: str, settings: SimSettings) -> dict[str, Any]:
        ticket = self._store.get(number)
        if ticket is None:
            raise _Refusal(404, MSG_TICKET_NOT_FOUND)
        if number.upper() in settings.denied_tickets or not user.may_access(ticket):
            raise _Refusal(403, MSG_FORBIDDEN)
        return ticket

    def _search(self, user: SimUser, query: str, settings: SimSettings) -> Response:
        params = {key.lower(): values[-1] for key, values in parse_qs(query).items()}
        filters: dict[str, str] = {}
        for term in params.get("fields", "").strip().strip("()").split(","):
            if not term.strip():
                continue
            name, equals, value = term.partition("=")
            key = name.strip().lower()
            if key in _IGNORED_SEARCH_FIELDS:
                continue
            if not equals or key not in _SEARCH_FIELDS:
                raise _Refusal(400, MSG_BAD_TICKET_DETAILS)
            filters[_SEARCH_FIELDS[key]] = value.strip().lower()
        page = _as_count(params.get("page", str(settings.first_page)))
        # A server never defaults above its own limit.
        default_size = min(DEFAULT_PAGE_SIZE, settings.max_page_size)
        size = _as_count(params.get("pagesize", str(default_size)))
        if page is None or size is None or not 1 <= size <= settings.max_page_size:
            raise _Refusal(400, MSG_BAD_TICKET_DETAILS)
        # Counting from 1, page 0 is taken for page 1 (as such a server does): a client that
        # counts from 0 gets the first page twice.
        index = max(page - settings.first_page, 0)
        denied = settings.denied_tickets

        def match(ticket: Mapping[str, Any]) -> bool:
            return (
                all(str(ticket[name]).lower() == value for name, value in filters.items())
                and ticket["TicketNumber"].upper() not in denied
                and user.may_access(ticket)
            )

        found, total = self._store.search(match, index * size, size)
        tickets = [public_ticket(ticket, settings.key_case) for ticket in found]
        if settings.search_shape is SearchShape.LIST:
            return json_response(200, tickets)
        return json_response(
            200, _cased({"TotalCount": total, "Tickets": tickets}, settings.key_case)
        )

    # -- inspection -----------------------------------------------------------------------

    def _inspect(self, method: str, path: str, route: str, query: str, body: bytes) -> Response:
        if route == "/_sim/restart":
            if method != "POST":
                return _not_allowed(method, "POST")
            self._restart()
            return Response(204)
        if route == "/_sim/configure" or route == "/_sim/settings":
            if method == "GET":
                return json_response(200, self._settings().to_json())
            if method != "POST" or route != "/_sim/configure":
                return _not_allowed(method, "GET, POST")
            changes = _parse_json(body)
            if not isinstance(changes, dict):
                return message_response(400, "Send the settings to change as a JSON object.")
            try:
                return json_response(200, self._configure(**changes).to_json())
            except (TypeError, ValueError) as exc:
                return message_response(400, str(exc))
        if method != "GET":
            return _not_allowed(method, "GET")
        if route == "/_sim/tickets":
            return json_response(200, self._store.snapshot())
        if route.startswith("/_sim/tickets/"):
            number = unquote(path.rstrip("/").rsplit("/", 1)[-1])
            ticket = self._store.get(number)
            if ticket is None:
                return message_response(404, MSG_TICKET_NOT_FOUND)
            return json_response(200, ticket)
        if route == "/_sim/counts":
            return json_response(200, self._log.counts())
        if route == "/_sim/requests":
            return json_response(200, [record.to_json() for record in self._log.snapshot()])
        return message_response(404, f"No simulator resource at '{path}'.")


def parse_update(parsed: Any, settings: SimSettings) -> tuple[str, dict[str, Any]]:
    """The ticket number and the changes a PATCH body asks for; _Refusal if the server says no."""
    if not isinstance(parsed, dict):
        raise _Refusal(400, MSG_BAD_TICKET_DETAILS)
    fields: dict[str, Any] = {}
    for key, value in parsed.items():
        name = _PATCH_FIELDS.get(key.lower())
        # Unknown keys, and one key given twice in different cases, are not valid details.
        if name is None or name in fields:
            raise _Refusal(400, MSG_BAD_TICKET_DETAILS)
        fields[name] = value
    number = fields.pop("TicketNumber", None)
    if not isinstance(number, str) or not number.strip():
        raise _Refusal(400, MSG_BAD_TICKET_NUMBER)
    changes: dict[str, Any] = {}
    if "TicketState" in fields:
        # Floats are refused even when whole (2.0): the client is to send the integer.
        state = as_ticket_state(fields["TicketState"])
        if state is None:
            raise _Refusal(400, MSG_BAD_TICKET_STATE)
        changes["TicketState"] = state
    if not fields:
        raise _Refusal(400, MSG_NOTHING_TO_UPDATE)
    if "Priority" in fields:
        priority = as_priority(fields["Priority"])
        if priority is None:
            raise _Refusal(400, MSG_BAD_TICKET_DETAILS)
        changes["Priority"] = priority
    elif settings.require_priority:
        raise _Refusal(400, MSG_BAD_TICKET_DETAILS)
    if "TicketDescription" in fields:
        description = fields["TicketDescription"]
        if not isinstance(description, str) or len(description) > settings.max_description_length:
            raise _Refusal(400, MSG_BAD_TICKET_DETAILS)
        changes["TicketDescription"] = description
    if "AssignedTo" in fields:
        if not isinstance(fields["AssignedTo"], str):
            raise _Refusal(400, MSG_BAD_TICKET_DETAILS)
        changes["AssignedTo"] = fields["AssignedTo"]
    return number, changes


def public_ticket(ticket: Mapping[str, Any], key_case: KeyCase = KeyCase.PASCAL) -> dict[str, Any]:
    """A ticket as the GET and Search answers show it, its keys spelt as `key_case` says."""
    shown = {
        "TicketNumber": ticket["TicketNumber"],
        "TicketState": ticket["TicketState"],
        "TicketStatus": TicketState(ticket["TicketState"]).status,
        "TicketDescription": ticket["TicketDescription"],
        "Priority": ticket["Priority"],
        "AssignedTo": ticket["AssignedTo"],
        "Standard": ticket["Standard"],
        "Asset": ticket["Asset"],
        "LastModified": ticket["LastModified"],
    }
    return _cased(shown, key_case)


def _cased(data: dict[str, Any], key_case: KeyCase) -> dict[str, Any]:
    """`data` with its (PascalCase) keys in `key_case`: camel lowers the first letter only."""
    if key_case is KeyCase.PASCAL:
        return data
    return {key[:1].lower() + key[1:]: value for key, value in data.items()}


def _fault_response(fault: Fault, settings: SimSettings) -> Response | None:
    if fault is Fault.DROP:
        return None
    if fault is Fault.UNAVAILABLE:
        return UNAVAILABLE
    if fault is Fault.RATE_LIMITED:
        wait = settings.retry_after
        if settings.retry_after_format is RetryAfterFormat.HTTP_DATE:
            retry_after = formatdate(time.time() + wait, usegmt=True)
        else:
            retry_after = str(math.ceil(wait))  # the header takes whole seconds
        # Worded like an API gateway's 429 (lower-case "message"), not like the CCS server.
        return json_response(
            429,
            {
                "statusCode": 429,
                "message": f"Rate limit is exceeded. Try again in {wait:g} seconds.",
            },
            (("Retry-After", retry_after),),
        )
    return SERVER_ERROR


def _oauth_error(error: str, description: str) -> Response:
    return json_response(
        400,
        {"error": error, "error_description": description},
        (("Cache-Control", "no-store"), ("Pragma", "no-cache")),
    )


def _not_allowed(method: str, allowed: str) -> Response:
    return json_response(
        405,
        {"Message": f"The requested resource does not support http method '{method}'."},
        (("Allow", allowed),),
    )


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return _NOT_JSON


def _parse_form(body: bytes) -> dict[str, str]:
    """Form fields of a token request, sent as a form, as JSON, or as a form labelled JSON."""
    text = body.decode("utf-8", errors="replace")
    if text.lstrip().startswith("{"):
        data = _parse_json(body)
        if isinstance(data, dict):
            return {str(key): str(value) for key, value in data.items()}
    return {key: values[0] for key, values in parse_qs(text, keep_blank_values=True).items()}


def _query_value(query: str, name: str) -> str | None:
    """The value of a query parameter whose name matches `name` in any case, else None."""
    if not query:
        return None
    for key, values in parse_qs(query, keep_blank_values=True).items():
        if key.lower() == name:
            return values[-1]
    return None


def _ticket_in(body: Mapping[str, Any]) -> str | None:
    for key, value in body.items():
        if key.lower() == "ticketnumber" and isinstance(value, str):
            return value
    return None


def _as_count(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() else None
