"""Sending a sheet's valid rows: the server (or the built-in simulator), the credentials, the
confirmation, the journal started, and the sender wired to the journal and the console."""

from __future__ import annotations

import ipaddress
import warnings
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..journal import Journal
from ..tickets import PlannedRow, RowResult, RunInfo
from .common import _concurrency_text
from .continuation import Continuation
from .outcome import RunRequest, Transport

if TYPE_CHECKING:
    from ..ccs import CcsClient
    from ..runner import EarlierRows, SendPolicies, SendReport
    from ..settings import Secret, Settings
    from .console import Console


# The simulated server of --simulate: the samples' tickets exist, a few are restricted (403) and
# one always fails (500), so that the demo shows every outcome a real sweep can have.
SIMULATED_SERVER: dict[str, Any] = {"tickets": 1000, "seed": 7, "fail_tickets": {"INCA0000777"}}


@dataclass(frozen=True)
class Sent:
    """What sending left: each row's result, how it ended, the run's journal and facts."""

    results: dict[int, RowResult]
    interrupted: bool
    stopped: bool
    journal: Journal
    record_failed: str  # why the journal could not be written, or ""
    info: RunInfo  # the run's facts, with what sending learnt (server, run id, how it ended)


@dataclass(frozen=True)
class _Login:
    url: str
    username: str
    password: Secret
    encoding: str


def send_rows(
    rows: Sequence[PlannedRow],
    settings: Settings,
    info: RunInfo,
    start_journal: Callable[[RunInfo], tuple[Journal, RunInfo]],
    batch: Continuation,
    request: RunRequest,
    console: Console,
) -> Sent:
    """Connect, confirm, and send the rows (batch: what an earlier run leaves to this one).

    The journal is created once the run is confirmed, before the first request (start_journal:
    the journal of the run with these facts, and the facts with its run id); it holds every row
    from then on. A refused login or an unreachable server raises (AuthError,
    ServerUnreachable) before the journal exists: nothing was sent, there is no run.
    """
    with ExitStack() as stack:
        login = _server(stack, settings, request, console)
        info = replace(info, server_url=login.url, ccs_user=login.username)
        if not rows:
            journal, info = start_journal(info)
            return Sent({}, False, False, journal, "", info)
        count = len(rows) - len(batch.verify_carried)  # the rows that are sent, not only read
        ask = not request.simulate and not request.yes
        if ask and not console.can_ask():
            _confirm(count, login, settings, console)  # refuses: nobody to ask
        client = _client(login, settings, request, console)
        stack.callback(client.close)
        if not _verified(request):
            info = info.noting(
                "TLS certificate verification was turned OFF for this run (--insecure)."
            )
        # Logged in before the question and before the journal: a refused login or an
        # unreachable server stops here, with nothing sent and no run to account for.
        client.login()
        if ask:
            _confirm(count, login, settings, console)
        journal, info = start_journal(info)
        # Said before the progress starts, so that it stands above a progress bar.
        console.note(
            f"Sending {count:,} updates to {login.url} as {login.username} at "
            f"{settings.rate:g} requests/s ({_concurrency_text(settings.concurrency)}); "
            f"run {journal.run_id}."
        )
        report = _sender_run(client, rows, settings, info, journal, batch, console)
        # Rows abandoned in flight stay "sending" in the journal: a resume reads them back.
        return Sent(
            report.results,
            report.interrupted,
            report.stopped and not report.interrupted,
            journal,
            report.record_failed,
            _ended(report, client, settings, info),
        )


def _server(stack: ExitStack, settings: Settings, request: RunRequest, console: Console) -> _Login:
    """The built-in simulator (started for the run), or the server and credentials given."""
    if not request.simulate:
        return _credentials(settings, request.transport, console)
    from ..settings import Secret
    from ..sim import DEFAULT_USERS, Simulator

    admin = next(user for user in DEFAULT_USERS if user.remediation_admin)
    sim = stack.enter_context(Simulator(port=0, **SIMULATED_SERVER))
    console.note(f"Simulated CCS server at {sim.url} (nothing real is touched).")
    return _Login(sim.url, admin.name, Secret(admin.password), "base64")


def _verified(request: RunRequest) -> bool:
    """Certificates are verified unless the user said --insecure in so many words."""
    return not (request.transport.insecure and not request.simulate)


def _client(login: _Login, settings: Settings, request: RunRequest, console: Console) -> CcsClient:
    from ..ccs import CcsClient

    verified = _verified(request)
    ca: bool | str = str(settings.ca_bundle) if settings.ca_bundle else True
    if not verified:
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
        verify=ca if verified else False,
        timeout=(settings.connect_timeout, settings.read_timeout),
        token_lifetime=settings.token_lifetime,
    )


def _sender_run(
    client: CcsClient,
    rows: Sequence[PlannedRow],
    settings: Settings,
    info: RunInfo,
    journal: Journal,
    batch: Continuation,
    console: Console,
) -> SendReport:
    """The sender, wired to the journal (intent before each send, outcome when known)."""
    from ..pacing import RateLimiter
    from ..runner import Sender, SenderHooks

    progress = console.progress(len(rows))
    try:
        with console.sending() as stops:
            sender = Sender(
                client,
                RateLimiter(settings.rate),
                _policies(settings, info),
                SenderHooks(
                    progress=progress,
                    on_sending=lambda row: journal.mark_sending(row.row_number),
                    on_result=lambda result: journal.record(
                        result, verified=result.verification or None
                    ),
                    on_before=lambda row, before: journal.record_before(row.row_number, before),
                    cancel=stops.cancel,
                    abandon=stops.abandon,
                ),
                _earlier_rows(batch),
            )
            return sender.run(rows)
    finally:
        progress.close()


def _policies(settings: Settings, info: RunInfo) -> SendPolicies:
    """The sender's policies from the settings (the evidence as the run decided it: a resume
    keeps the evidence settings of the run it continues)."""
    from ..runner import RetryPolicy, SendPolicies, StopPolicy
    from ..settings import AUTO

    return SendPolicies(
        concurrency=None if settings.concurrency == AUTO else int(settings.concurrency),
        retry=RetryPolicy(
            max_attempts=settings.max_attempts,
            backoff_base=settings.backoff_base,
            backoff_cap=settings.backoff_cap,
            max_throttled=settings.max_throttled,
        ),
        stop=StopPolicy(
            forbidden_at_start=settings.stop_forbidden_at_start,
            transient_streak=settings.stop_transient_streak,
        ),
        capture_before=info.capture_before,
        verify=info.verify,
    )


def _earlier_rows(batch: Continuation) -> EarlierRows:
    from ..runner import EarlierRows

    return EarlierRows(
        read_back_first=frozenset(batch.read_back),
        known_before=batch.known_before,
        known_forbidden=frozenset(batch.known_forbidden),
        check_carried=batch.verify_carried,
    )


def _ended(report: SendReport, client: CcsClient, settings: Settings, info: RunInfo) -> RunInfo:
    """The run's facts with how sending ended: why it stopped, the workers, token renewals."""
    from ..settings import AUTO

    stopped_reason = info.stopped_reason
    if report.stopped_reason and not report.interrupted:
        stopped_reason = report.stopped_reason
    elif report.interrupted:
        stopped_reason = "interrupted (Ctrl-C or a stop signal)"
    info = replace(
        info,
        stopped_reason=stopped_reason,
        workers=report.workers if settings.concurrency == AUTO else info.workers,
    )
    if client.token_renewals:
        info = info.noting(
            f"The access token was renewed {client.token_renewals} time(s) during the run."
        )
    return info


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _credentials(settings: Settings, transport: Transport, console: Console) -> _Login:
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
    return _Login(url, username, password, str(encoding))


def _confirm(count: int, login: _Login, settings: Settings, console: Console) -> None:
    from ..errors import ConfigError

    question = (
        f"About to update {count:,} ticket{'s' if count != 1 else ''} on {login.url} as "
        f"{login.username} at {settings.rate:g} requests/s. Continue?"
    )
    if not console.can_ask():
        raise ConfigError(
            question.replace(" Continue?", "") + " Refusing without a terminal to confirm.",
            tip="Add --yes to confirm in advance (for scheduled or scripted runs).",
        )
    if not console.confirm(question):
        raise ConfigError("Cancelled; nothing was sent.")
