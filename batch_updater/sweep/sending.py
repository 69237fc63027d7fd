"""Sending a sheet's valid rows: the server (or the built-in simulator), the credentials, the
confirmation, the journal started, and the sender wired to the journal and the console."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..journal import Journal
from ..tickets import PlannedRow, RowResult, RunInfo, count_text
from .common import _concurrency_text
from .confirming import verify_in_pages
from .continuation import Continuation
from .looking import Looked, SheetFacts, look
from .outcome import RunRequest
from .server import Login, Reach, client_for, same_server, server, verified

if TYPE_CHECKING:
    from ..ccs import CcsClient
    from ..plans import PlanRow
    from ..runner import CurrentState, EarlierRows, RetryPolicy, SendPolicies, SendReport
    from ..settings import Settings
    from .console import Console


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
class Prepared:
    """What sending is given besides the rows: how to start the journal (the journal of the run
    with these facts, and the facts with its run id), what an earlier run leaves to this one,
    and what the sheet says of its tickets as they were when it was made."""

    start_journal: Callable[[RunInfo], tuple[Journal, RunInfo]]
    batch: Continuation
    facts: SheetFacts = field(default_factory=SheetFacts)


@dataclass(frozen=True)
class _Known:
    """What the run knows of its rows before sending: what an earlier run leaves to this one,
    and what the tickets hold now (None for a rollback, which sends what was captured)."""

    batch: Continuation
    current: CurrentState | None


def send_rows(
    rows: Sequence[PlannedRow],
    settings: Settings,
    info: RunInfo,
    prepared: Prepared,
    request: RunRequest,
    console: Console,
) -> Sent:
    """Connect, look at the tickets, confirm, and send the rows that change.

    The journal is created once the run is confirmed, before the first request; it holds every
    row from then on. A refused login or an unreachable server raises (AuthError,
    ServerUnreachable) before the journal exists: nothing was sent, there is no run.
    """
    batch = prepared.batch
    with ExitStack() as stack:
        login = server(stack, settings, request, console)
        info = replace(info, server_url=login.url, ccs_user=login.username)
        if not rows:
            journal, info = prepared.start_journal(info)
            return Sent({}, False, False, journal, "", info)
        count = len(rows) - len(batch.verify_carried)  # the rows that are sent, not only read
        ask = not request.simulate and not request.yes
        if ask and not console.can_ask():
            _confirm(count, login, settings, console)  # refuses: nobody to ask
        client = client_for(login, settings, request, console)
        stack.callback(client.close)
        if not verified(request):
            info = info.noting(
                "TLS certificate verification was turned OFF for this run (--insecure)."
            )
        # Logged in before the question and before the journal: a refused login or an
        # unreachable server stops here, with nothing sent and no run to account for.
        client.login()
        current = None
        if request.exact is None:  # a rollback sends exactly what was captured
            looked = _look(client, settings, rows, prepared, request, console, _planned(info))
            current, count = replace(looked.current, verify_in_pages=info.verify), looked.to_send
            info = info.noting(looked.how + ".")
        if ask and count:
            _confirm(count, login, settings, console)
        journal, info = prepared.start_journal(info)
        # Said before the progress starts, so that it stands above a progress bar.
        console.note(_sending_line(count, current, login, settings, journal.run_id))
        known = _Known(batch, current)
        report = _sender_run(client, rows, settings, info, journal, known, console)
        results = report.results
        interrupted, record_failed = report.interrupted, report.record_failed
        if current is not None and current.verify_in_pages:
            # Every row is sent: the read-back cannot lose the run (it says what it could not do).
            back = verify_in_pages(
                client, settings, report, current, prepared.facts, journal, console
            )
            results = back.results
            info = info.noting(back.said) if back.said else info
            if back.interrupted and not interrupted:
                interrupted = True
                info = replace(
                    info,
                    stopped_reason="interrupted (Ctrl-C or a stop signal) during the read-back",
                )
            record_failed = record_failed or back.record_failed
        # Rows abandoned in flight stay "sending" in the journal: a resume reads them back.
        return Sent(
            results,
            interrupted,
            report.stopped and not interrupted,
            journal,
            record_failed,
            _ended(report, client, settings, info),
        )


def _sending_line(
    count: int, current: CurrentState | None, login: Login, settings: Settings, run_id: str
) -> str:
    """What is about to be sent, where, as whom, how fast, in which run (or that nothing is)."""
    if not count:
        return (
            "Nothing to send: every ticket already holds its row's values, or changed since "
            f"the export (or the plan); each row's outcome is recorded (run {run_id})."
        )
    return (
        f"Sending {'up to ' if current is not None and current.look_first else ''}"
        f"{count_text(count, 'update')} to {login.url} as {login.username} at "
        f"{settings.rate:g} requests/s ({_concurrency_text(settings.concurrency)}); "
        f"run {run_id}."
    )


def warn_if_exported_elsewhere(
    facts: SheetFacts, client: CcsClient, request: Reach, console: Console
) -> None:
    """Say so when the sheet was exported from another server than the one this run reads."""
    exported_from = facts.export_server
    if exported_from and not request.simulate and not same_server(exported_from, client.base_url):
        console.warn(
            f"Warning: this sheet was exported from {exported_from}; this run goes to "
            f"{client.base_url}. Its Exported values are that server's: a ticket that differs "
            "here is reported as a Conflict, and not sent."
        )


def _planned(info: RunInfo) -> Mapping[int, PlanRow] | None:
    """The rows of the plan the run applies (checked again), or None for a run of a sheet."""
    from ..plans import plan_of_record

    return plan_of_record(info.plan).rows if info.plan is not None else None


def _look(
    client: CcsClient,
    settings: Settings,
    rows: Sequence[PlannedRow],
    prepared: Prepared,
    request: RunRequest,
    console: Console,
    planned: Mapping[int, PlanRow] | None = None,
) -> Looked:
    """What the tickets hold now, said on the terminal: how it was read, and what it found."""
    checks = prepared.batch.verify_carried
    warn_if_exported_elsewhere(prepared.facts, client, request, console)
    looked = look(
        client,
        settings,
        [row for row in rows if row.row_number not in checks],
        prepared.facts,
        console,
        overwrite_conflicts=request.overwrite_conflicts,
        planned=planned,
        read_back=prepared.batch.read_back,
    )
    since = "the plan" if planned is not None else "the export"
    found = [
        (
            f"{looked.unchanged:,} already {'holds its' if looked.unchanged == 1 else 'hold their'}"
            " values"
        )
        if looked.unchanged
        else "",
        f"{looked.conflicts:,} changed in CCS since {since} (Conflict)" if looked.conflicts else "",
    ]
    console.note(
        looked.how + "." + (" " + "; ".join(f for f in found if f) + "." if any(found) else "")
    )
    return looked


def _sender_run(
    client: CcsClient,
    rows: Sequence[PlannedRow],
    settings: Settings,
    info: RunInfo,
    journal: Journal,
    known: _Known,
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
                    on_sending=lambda row: journal.mark_sending(
                        row.row_number,
                        request_json=row.update.to_json_text() if row.update else None,
                    ),
                    on_result=lambda result: journal.record(
                        result, verified=result.verification or None
                    ),
                    on_before=lambda row, before: journal.record_before(row.row_number, before),
                    cancel=stops.cancel,
                    abandon=stops.abandon,
                ),
                _earlier_rows(known.batch),
                known.current,
            )
            return sender.run(rows)
    finally:
        progress.close()


def _policies(settings: Settings, info: RunInfo) -> SendPolicies:
    """The sender's policies from the settings (the evidence as the run decided it: a resume
    keeps the evidence settings of the run it continues)."""
    from ..runner import SendPolicies, StopPolicy
    from ..settings import AUTO

    return SendPolicies(
        concurrency=None if settings.concurrency == AUTO else int(settings.concurrency),
        retry=retry_policy(settings),
        stop=StopPolicy(
            forbidden_at_start=settings.stop_forbidden_at_start,
            transient_streak=settings.stop_transient_streak,
        ),
        capture_before=info.capture_before,
        verify=info.verify,
    )


def retry_policy(settings: Settings) -> RetryPolicy:
    """How each request is retried, from the settings (PATCH, GET and Search page alike)."""
    from ..runner import RetryPolicy

    return RetryPolicy(
        max_attempts=settings.max_attempts,
        backoff_base=settings.backoff_base,
        backoff_cap=settings.backoff_cap,
        max_throttled=settings.max_throttled,
    )


def _earlier_rows(batch: Continuation) -> EarlierRows:
    from ..runner import EarlierRows

    return EarlierRows(
        read_back_first=frozenset(batch.read_back),
        known_before=batch.known_before,
        known_sent=batch.known_sent,
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


def _confirm(count: int, login: Login, settings: Settings, console: Console) -> None:
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
