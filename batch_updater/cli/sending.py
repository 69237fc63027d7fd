"""Sending a sheet's valid rows: the server (or the built-in simulator), the credentials, the
confirmation, the journal started, the sender wired to it, and the terminal while it runs."""

from __future__ import annotations

import ipaddress
import sys
import warnings
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from ..journal import Journal
from ..tickets import PlannedRow, RowResult, RunInfo
from .common import (
    _concurrency_text,
    _echo,
    log,
)
from .terminal import Interrupts, TerminalProgress

if TYPE_CHECKING:  # imported where used, so that --help stays quick
    from ..settings import Secret, Settings


def _send(
    valid: Sequence[PlannedRow],
    settings: Settings,
    info: RunInfo,
    start_journal: Callable[[], Journal],
    *,
    read_back: set[int],
    known_before: dict[int, dict[str, object]],
    known_forbidden: set[int],
    check_carried: dict[int, RowResult],
    simulate: bool,
    yes: bool,
    quiet: bool,
    transport: Transport,
) -> tuple[dict[int, RowResult], bool, bool, Journal | None, str]:
    """Connect, confirm, and send the valid rows.

    Returns (results by row, interrupted, stopped, the run's journal, why the journal could not
    be written or ""). The journal is created
    once the run is confirmed, before the first request; it holds every row from then on.
    """
    from ..ccs import CcsClient
    from ..pacing import RateLimiter
    from ..runner import RetryPolicy, Sender, StopPolicy
    from ..settings import AUTO, Secret

    with ExitStack() as stack:
        if simulate:
            from ..sim import DEFAULT_USERS, Simulator

            admin = next(user for user in DEFAULT_USERS if user.remediation_admin)
            sim = stack.enter_context(Simulator(port=0, **SIMULATED_SERVER))
            url, username, password = sim.url, admin.name, Secret(admin.password)
            encoding = "base64"
            if not quiet:
                _echo(f"Simulated CCS server at {url} (nothing real is touched).")
        else:
            url, username, password, encoding = _credentials(settings, valid, transport)
        info.server_url = url
        info.ccs_user = username

        if not valid:
            return {}, False, False, start_journal(), ""
        ask = not simulate and not yes
        if ask and not sys.stdin.isatty():
            _confirm(
                len(valid) - len(check_carried), url, username, settings
            )  # refuses: no terminal
        # Certificates are verified unless the user said --insecure in so many words.
        verified = not (transport.insecure and not simulate)
        ca: bool | str = str(settings.ca_bundle) if settings.ca_bundle else True
        verify = ca if verified else False
        if not verified:
            warnings.filterwarnings("ignore", message="Unverified HTTPS request")
            _echo(
                f"WARNING: --insecure: the TLS certificate of {url} is NOT verified; anyone "
                "between this machine and the server could read the password and the tickets."
            )
            info.notes.append(
                "TLS certificate verification was turned OFF for this run (--insecure)."
            )
        client = CcsClient(
            url,
            username,
            password,
            password_encoding=encoding,
            verify=verify,
            timeout=(settings.connect_timeout, settings.read_timeout),
            token_lifetime=settings.token_lifetime,
        )
        stack.callback(client.close)
        # Logged in before the question and before the journal: a refused login or an
        # unreachable server stops here (AuthError, ServerUnreachable), with nothing sent and
        # no run to account for.
        client.login()
        if ask:
            _confirm(len(valid) - len(check_carried), url, username, settings)
        journal = start_journal()

        if not quiet:  # said before the bar is drawn, so that it stands above it
            _echo(
                f"Sending {len(valid) - len(check_carried):,} updates to {url} as {username} at "
                f"{settings.rate:g} requests/s ({_concurrency_text(settings.concurrency)}); "
                f"run {journal.run_id}."
            )
        progress = TerminalProgress(len(valid), quiet=quiet)
        stack.callback(progress.close)
        with Interrupts() as interrupts:
            sender = Sender(
                client,
                RateLimiter(settings.rate),
                concurrency=None if settings.concurrency == AUTO else int(settings.concurrency),
                retry=RetryPolicy(
                    max_attempts=settings.max_attempts,
                    backoff_base=settings.backoff_base,
                    backoff_cap=settings.backoff_cap,
                    max_throttled=settings.max_throttled,
                ),
                stop_policy=StopPolicy(
                    forbidden_at_start=settings.stop_forbidden_at_start,
                    transient_streak=settings.stop_transient_streak,
                ),
                progress=progress,
                on_sending=lambda row: journal.mark_sending(row.row_number),
                on_result=lambda result: journal.record(
                    result, verified=result.verification or None
                ),
                cancel=interrupts.cancel,
                abandon=interrupts.abandon,
                read_back_first=read_back,
                known_before=known_before,
                known_forbidden=known_forbidden,
                check_carried=check_carried,
                on_before=lambda row, before: journal.record_before(row.row_number, before),
                capture_before=info.capture_before,
                verify=info.verify,
            )
            report = sender.run(valid)
        progress.close()
        if report.stopped_reason and not report.interrupted:
            info.stopped_reason = report.stopped_reason
        elif report.interrupted:
            info.stopped_reason = "interrupted (Ctrl-C or a stop signal)"
        if settings.concurrency == AUTO:
            info.workers = report.workers
        if client.token_renewals:
            info.notes.append(
                f"The access token was renewed {client.token_renewals} time(s) during the run."
            )
        # Rows abandoned in flight stay "sending" in the journal: a resume reads them back.
        return (
            report.results,
            report.interrupted,
            report.stopped and not report.interrupted,
            journal,
            report.record_failed,
        )


# The simulated server of --simulate: the samples' tickets exist, a few are restricted (403) and
# one always fails (500), so that the demo shows every outcome a real sweep can have.
SIMULATED_SERVER: dict[str, Any] = {"tickets": 1000, "seed": 7, "fail_tickets": {"INCA0000777"}}


@dataclass(frozen=True)
class Transport:
    """The transport choices only the command line can make, never a config file."""

    insecure: bool = False
    allow_http: bool = False


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _credentials(
    settings: Settings, valid: Sequence[PlannedRow], transport: Transport
) -> tuple[str, str, Secret, str]:
    from ..errors import ConfigError
    from ..settings import Secret

    interactive = sys.stdin.isatty()
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
        if not interactive:
            raise ConfigError(
                "No CCS user name given.",
                tip="Pass --user 'corp\\svc-ccs', set CCS_USERNAME, or set auth.username in the config.",
            )
        username = click.prompt("CCS user name (domain\\user)")
    password = settings.password
    if password is None:
        password = _password_from_keyring(url, username)
    if password is None:
        if not interactive:
            raise ConfigError(
                f"No password for {username}.",
                tip="Set the CCS_PASSWORD environment variable (it is never read from the config "
                "file or the command line), or run in a terminal to be asked.",
            )
        password = Secret(click.prompt(f"Password for {username} on {url}", hide_input=True))
    encoding = getattr(settings.password_encoding, "value", settings.password_encoding)
    return url, username, password, str(encoding)


KEYRING_SERVICE = "batch-update"


def _password_from_keyring(url: str, username: str) -> Secret | None:
    """The password kept in the system keyring for this server and user, if the optional
    keyring package is installed and holds one (service "batch-update", name "user@url")."""
    try:
        import keyring  # type: ignore[import-not-found,unused-ignore]  # optional extra
    except ImportError:
        return None
    from ..settings import Secret

    try:
        value = keyring.get_password(KEYRING_SERVICE, f"{username}@{url}")
    except Exception as exc:  # a locked or absent keyring backend: fall back to the prompt
        log.info("keyring not usable: %s", type(exc).__name__)
        return None
    return Secret(value) if value else None


def _confirm(count: int, url: str, username: str, settings: Settings) -> None:
    from ..errors import ConfigError

    question = (
        f"About to update {count:,} ticket{'s' if count != 1 else ''} on {url} as {username} "
        f"at {settings.rate:g} requests/s. Continue?"
    )
    if not sys.stdin.isatty():
        raise ConfigError(
            question.replace(" Continue?", "") + " Refusing without a terminal to confirm.",
            tip="Add --yes to confirm in advance (for scheduled or scripted runs).",
        )
    if not click.confirm(question, default=False, err=True):
        raise ConfigError("Cancelled; nothing was sent.")
