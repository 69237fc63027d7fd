"""What the administrator sees while a run goes: the run's Console on the terminal (notices,
questions, the keyring), the progress, the throttling line, and the signals (Ctrl-C, SIGTERM,
SIGHUP)."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING

from ..tickets import Outcome, RowResult
from .common import _echo, log

if TYPE_CHECKING:  # imported where used, so that --help stays quick
    from ..settings import Secret


# At most one "the server is throttling" line in this many seconds.
THROTTLE_LINE_EVERY = 10.0


class TerminalProgress:
    """Progress for a person: a tqdm bar on a terminal, a line every tenth otherwise."""

    def __init__(self, total: int, *, quiet: bool) -> None:
        self.total = total
        self.quiet = quiet
        self.counts: Counter[str] = Counter()
        self.done = 0
        self.bar = None
        self._next_line = 0
        self.throttled = 0  # 429 answers seen
        self._quiet_until = 0.0  # no throttling line before this (time.monotonic())
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="ticket", file=sys.stderr, dynamic_ncols=True)

    def row_done(self, result: RowResult) -> None:
        self.done += 1
        self.counts[result.outcome.value] += 1
        log.info(
            "row %d %s -> %s %s%s (%d attempt%s, %s ms)",
            result.row_number,
            result.ticket_number,
            result.status if result.status is not None else "-",
            result.outcome.value,
            f": {result.message}" if result.message else "",
            result.attempts,
            "" if result.attempts == 1 else "s",
            result.duration_ms if result.duration_ms is not None else "-",
        )
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(
                updated=self.counts[Outcome.UPDATED.value],
                unchanged=self.counts[Outcome.UNCHANGED.value],
                failed=self.counts[Outcome.FAILED.value],
                refresh=False,
            )
        elif not self.quiet and (self.done >= self._next_line or self.done == self.total):
            step = max(1, self.total // 10)
            self._next_line = self.done + step
            # "done", not "sent": after Ctrl-C or a stop, the rest are done without being sent.
            not_sent = self.counts[Outcome.NOT_SENT.value]
            unknown = self.counts[Outcome.UNKNOWN.value]
            unchanged = self.counts[Outcome.UNCHANGED.value]
            conflicts = self.counts[Outcome.CONFLICT.value]
            _echo(
                f"  {self.done:,}/{self.total:,} done: "
                f"{self.counts[Outcome.UPDATED.value]:,} updated, "
                + (f"{unchanged:,} unchanged, " if unchanged else "")
                + (f"{conflicts:,} conflict{'s' if conflicts != 1 else ''}, " if conflicts else "")
                + f"{self.counts[Outcome.FAILED.value]:,} failed"
                + (f", {unknown:,} unknown" if unknown else "")
                + (f", {not_sent:,} not sent" if not_sent else "")
            )

    def retrying(
        self, row_number: int, ticket: str, attempt: int, reason: str, delay: float
    ) -> None:
        log.info("row %d %s: %s, retrying in %.1f s", row_number, ticket, reason, delay)
        if reason.startswith("HTTP 429"):
            self._throttled(delay)

    def _throttled(self, delay: float) -> None:
        """A line when the server starts throttling: once per pause, at most one every 10 s."""
        self.throttled += 1
        now = time.monotonic()
        if self.quiet or now < self._quiet_until:
            return
        self._quiet_until = now + max(delay, THROTTLE_LINE_EVERY)
        so_far = f", {self.throttled:,} so far" if self.throttled > 1 else ""
        then = (
            f"every request waits {delay:.0f} s (Retry-After), then the pace is lowered"
            if delay >= 1
            else "the pace is lowered"
        )
        self._say(f"  The server is throttling (HTTP 429{so_far}): {then}.")

    def _say(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            _echo(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Interrupts:
    """First Ctrl-C (or SIGTERM): stop dispatching. Second: stop waiting for requests in flight."""

    SENDING = (
        "Stopping: no new requests will be sent; waiting for the ones in flight "
        "(press Ctrl-C again to stop waiting)."
    )
    WRITING = "Finishing the results workbook first, so that no evidence is lost."

    def __init__(self, message: str = SENDING) -> None:
        self.cancel = threading.Event()
        self.abandon = threading.Event()
        self.message = message
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if not self.cancel.is_set():
            self.cancel.set()  # before the notice: once it is shown, no new request leaves
            try:
                _echo(f"\n{self.message}")
            except OSError:
                pass  # the terminal is gone (SIGHUP): the run still stops and writes its workbook
        else:
            self.abandon.set()

    def __enter__(self) -> Interrupts:
        # SIGHUP: the terminal or SSH session was closed; handled as SIGTERM (where it exists).
        for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK"):
            signum = getattr(signal, name, None)
            if signum is not None:
                try:
                    self._previous[signum] = signal.signal(signum, self._handle)
                except (ValueError, OSError):  # not the main thread, or not supported here
                    pass
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]


KEYRING_SERVICE = "batch-update"


class TerminalConsole:
    """The run's Console on the terminal: notices on stderr (not when quiet), questions asked
    when stdin is a terminal, a progress bar or lines, Ctrl-C and stop signals."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet

    def note(self, text: str) -> None:
        if not self.quiet:
            _echo(text)

    def warn(self, text: str) -> None:
        _echo(text)

    def can_ask(self) -> bool:
        return sys.stdin.isatty()

    def ask_username(self) -> str:
        import click

        return str(click.prompt("CCS user name (domain\\user)"))

    def ask_password(self, username: str, url: str) -> Secret | None:
        from ..settings import Secret

        password = _password_from_keyring(url, username)
        if password is None and self.can_ask():
            import click

            password = Secret(click.prompt(f"Password for {username} on {url}", hide_input=True))
        return password

    def confirm(self, question: str) -> bool:
        import click

        return bool(click.confirm(question, default=False, err=True))

    def progress(self, total: int) -> TerminalProgress:
        return TerminalProgress(total, quiet=self.quiet)

    def sending(self) -> Interrupts:
        return Interrupts()

    def writing(self) -> Interrupts:
        return Interrupts(Interrupts.WRITING)


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
