"""The server a command talks to: the built-in simulator, or the one given with its
credentials (asked of the console when missing), and the CCS client with its TLS choice."""

from __future__ import annotations

import ipaddress
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from .outcome import Transport

if TYPE_CHECKING:
    from ..ccs import CcsClient
    from ..plans import Plan
    from ..settings import Secret, Settings
    from .console import Console


class Reach(Protocol):
    """What a command's request says about reaching the server (RunRequest, ExportRequest...)."""

    @property
    def simulate(self) -> bool: ...

    @property
    def transport(self) -> Transport: ...


# The simulated server of --simulate: the samples' tickets exist, a few are restricted (403) and
# one always fails (500), so that the demo shows every outcome a real sweep can have.
SIMULATED_SERVER: dict[str, Any] = {"tickets": 1000, "seed": 7, "fail_tickets": {"INCA0000777"}}


@dataclass(frozen=True)
class Login:
    url: str
    username: str
    password: Secret
    encoding: str


def server(
    stack: ExitStack,
    settings: Settings,
    request: Reach,
    console: Console,
    *,
    not_as: str = "",
) -> Login:
    """The built-in simulator (started for the run), or the server and credentials given.

    not_as: an account the simulator must not log in as (an approver is not the planner): its
    other account is used, which may read tickets but not change them.
    """
    if not request.simulate:
        return _credentials(settings, request.transport, console)
    from ..plans import same_account
    from ..settings import Secret
    from ..sim import DEFAULT_USERS, Simulator

    user = next(
        user
        for user in sorted(DEFAULT_USERS, key=lambda user: not user.remediation_admin)
        if not (not_as and same_account(user.name, not_as))
    )
    sim = stack.enter_context(Simulator(port=0, **SIMULATED_SERVER))
    console.note(f"Simulated CCS server at {sim.url} (nothing real is touched).")
    return Login(sim.url, user.name, Secret(user.password), "base64")


def logged_in(
    stack: ExitStack,
    settings: Settings,
    request: Reach,
    console: Console,
    *,
    not_as: str = "",
    before: Callable[[Login], None] | None = None,
) -> tuple[Login, CcsClient]:
    """The server (or the simulator), and a client logged in to it, closed with the stack.
    A refused login or an unreachable server raises (AuthError, ServerUnreachable). before:
    a check of who logs in, made before any request (it raises to refuse)."""
    login = server(stack, settings, request, console, not_as=not_as)
    if before is not None:
        before(login)
    client = client_for(login, settings, request, console)
    stack.callback(client.close)
    client.login()
    return login, client


def verified(request: Reach) -> bool:
    """Certificates are verified unless the user said --insecure in so many words."""
    return not (request.transport.insecure and not request.simulate)


def client_for(login: Login, settings: Settings, request: Reach, console: Console) -> CcsClient:
    from ..ccs import CcsClient

    checked = verified(request)
    ca: bool | str = str(settings.ca_bundle) if settings.ca_bundle else True
    if not checked:
        warnings.filterwarnings("ignore", message="Unverified HTTPS request")
        console.warn(
            f"WARNING: --insecure: the TLS certificate of {login.url} is NOT verified; anyone "
            "between this machine and the server could read the password and the tickets."
        )
    return CcsClient(
        login.url,
        login.username,
        login.password,
        password_encoding=login.encoding,
        verify=ca if checked else False,
        timeout=(settings.connect_timeout, settings.read_timeout),
        token_lifetime=settings.token_lifetime,
    )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _credentials(settings: Settings, transport: Transport, console: Console) -> Login:
    from ..errors import ConfigError

    url = settings.url
    if not url:
        raise ConfigError(
            "No CCS server given.",
            tip="Pass --url https://ccs01.corp.local:12431, set CCS_URL, or set server.url in "
            "batch-update.yaml. To try the tool first, add --simulate.",
        )
    parts = urlsplit(url)
    if (
        parts.scheme == "http"
        and not _is_loopback(parts.hostname or "")
        and not transport.allow_http
    ):
        raise ConfigError(
            f"{url} is plain http: the password and the tickets would cross the network unencrypted.",
            tip=f"Use https://{parts.netloc}, or add --allow-http if this really is what you want.",
        )
    username = settings.username
    if not username:
        if not console.can_ask():
            raise ConfigError(
                "No CCS user name given.",
                tip="Pass --user 'corp\\svc-ccs', set CCS_USERNAME, or set auth.username in the config.",
            )
        username = console.ask_username()
    password = settings.password
    if password is None:
        password = console.ask_password(username, url)
    if password is None:
        raise ConfigError(
            f"No password for {username}.",
            tip="Set the CCS_PASSWORD environment variable (it is never read from the config "
            "file or the command line), or run in a terminal to be asked.",
        )
    encoding = getattr(settings.password_encoding, "value", settings.password_encoding)
    return Login(url, username, password, str(encoding))


def plan_server(plan: Plan, request: Reach, settings: Settings, doing: str) -> Settings:
    """The settings for the server a plan was made against (or the simulator, again): its URL
    when the config names none; refused when the config names another, or the plan was made
    against the simulator and this is not (or the other way round). doing: "apply it"."""
    from ..errors import ConfigError

    made = plan.text("server")
    if plan.simulated != request.simulate:
        raise ConfigError(
            f"{plan.path.name} was made against {'the simulator' if plan.simulated else made}; "
            "nothing was done.",
            tip=f"Add --simulate to {doing}."
            if plan.simulated
            else f"{doing.capitalize()} without --simulate.",
        )
    if request.simulate:
        return settings
    if not settings.url:
        return replace(settings, url=made)
    if not same_server(settings.url, made):
        raise ConfigError(
            f"{plan.path.name} was made against {made}; this config goes to {settings.url}. "
            "Nothing was done.",
            tip=f"Use --url {made} to {doing} there, or make a plan against {settings.url}.",
        )
    return settings


def same_server(a: str, b: str) -> bool:
    """Whether two server URLs name one server (scheme, host and port, any case, any slash)."""
    from ..settings import normalize_url

    try:
        return normalize_url(a).rstrip("/").casefold() == normalize_url(b).rstrip("/").casefold()
    except ValueError:
        return False
