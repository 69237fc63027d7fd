"""What the administrator sees while a run goes: the progress, the throttling line, and the signals (Ctrl-C, SIGTERM, SIGHUP)."""

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
    pass


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
                failed=self.counts[Outcome.FAILED.value],
                refresh=False,
            )
        elif not self.quiet and (self.done >= self._next_line or self.done == self.total):
            step = max(1, self.total // 10)
            self._next_line = self.done + step
            # "done", not "sent": after Ctrl-C or a stop, the rest are done without being sent.
            not_sent = self.counts[Outcome.NOT_SENT.value]
            unknown = self.counts[Outcome.UNKNOWN.value]
            _echo(
                f"  {self.done:,}/{self.total:,} done: "
                f"{self.counts[Outcome.UPDATED.value]:,} updated, "
                f"{self.counts[Outcome.FAILED.value]:,} failed"
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
