"""The server a command talks to: the built-in simulator, or the one given with its
credentials (asked of the console when missing), and the CCS client with its TLS choice."""

from __future__ import annotations

import ipaddress
import warnings
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from .outcome import Transport

if TYPE_CHECKING:
    from ..ccs import CcsClient
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


def server(stack: ExitStack, settings: Settings, request: Reach, console: Console) -> Login:
    """The built-in simulator (started for the run), or the server and credentials given."""
    if not request.simulate:
        return _credentials(settings, request.transport, console)
    from ..settings import Secret
    from ..sim import DEFAULT_USERS, Simulator

    admin = next(user for user in DEFAULT_USERS if user.remediation_admin)
    sim = stack.enter_context(Simulator(port=0, **SIMULATED_SERVER))
    console.note(f"Simulated CCS server at {sim.url} (nothing real is touched).")
    return Login(sim.url, admin.name, Secret(admin.password), "base64")


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
