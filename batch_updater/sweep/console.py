"""What a run needs from the person (or the program) that started it: the Console protocol.

The run talks to the user only through these calls: it never prints, prompts or reads stdin.
The command line implements them on the terminal (`cli.terminal.TerminalConsole`); tests and
benchmarks pass consoles of their own.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

from ..tickets import RowResult

if TYPE_CHECKING:
    from ..settings import Secret


class Progress(Protocol):
    """Told of every row as it is done, and of every retry: the sender's `runner.Progress`,
    plus close(). Written out, not inherited, so that importing the run (for --help) does not
    import the sender and its HTTP library."""

    def row_done(self, result: RowResult) -> None: ...

    def retrying(
        self, row_number: int, ticket: str, attempt: int, reason: str, delay: float
    ) -> None: ...

    def close(self) -> None: ...


class Stops(Protocol):
    """The user's wish to stop while requests go: `cancel` (send no new request), then
    `abandon` (stop waiting for the ones in flight)."""

    cancel: threading.Event
    abandon: threading.Event


class Console(Protocol):
    """The user, as a run sees them."""

    def note(self, text: str) -> None:
        """Something worth knowing (a quiet console may leave it out)."""

    def warn(self, text: str) -> None:
        """Something the user must see, even on a quiet console (a safety warning, a failure)."""

    def can_ask(self) -> bool:
        """True if questions can be put to someone (a terminal); False for scheduled runs."""

    def ask_username(self) -> str:
        """The CCS user name, asked for (only called when can_ask())."""

    def ask_password(self, username: str, url: str) -> Secret | None:
        """The password of username on url: from a store of the console's (a keyring), or
        asked for when can_ask(); None when it is not to be had."""

    def confirm(self, question: str) -> bool:
        """The answer to a yes/no question (only called when can_ask())."""

    def progress(self, total: int) -> Progress:
        """Progress of `total` rows, from the first request to the last answer."""

    def sending(self) -> AbstractContextManager[Stops]:
        """For the time requests go: the stop events the user's Ctrl-C (or a signal) sets."""

    def writing(self) -> AbstractContextManager[object]:
        """For the time the evidence is written: a Ctrl-C waits until it is."""
