"""What every part of the command line shares: exit codes, the terminal's messages, names."""

from __future__ import annotations

import getpass
import logging
import os
import socket
from datetime import datetime, timezone
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import BatchUpdateError

if TYPE_CHECKING:  # imported where used, so that --help stays quick
    pass


log = logging.getLogger("batch_updater")


# Without a handler, logging's last resort would print "internal error" and its traceback on
# stderr, which is for --debug only.
log.addHandler(logging.NullHandler())


# The name of the handlers a run adds for --verbose and --log-file, so that they can be found
# and closed when the run ends (a second run in the same process must not write to the first
# run's log file or stream).
RUN_LOG_HANDLER = "batch-update run"


MAX_PROBLEMS_SHOWN = 20


class ExitStatus(IntEnum):
    """The exit codes, as documented in --help and the README."""

    OK = 0
    ROWS_FAILED = 1
    USAGE = 2
    STOPPED = 3
    INTERNAL_ERROR = 4  # a bug in batch-update, not a problem with the input or the server
    INTERRUPTED = 130


EXIT_CODES_HELP = """\b
Exit codes:
  0    every row Updated (or Valid in a dry run, or Skipped)
  1    some rows Failed, Unknown or Invalid (see the results workbook)
  2    usage, config or input-file error: nothing was sent
  3    the run stopped early (credentials refused, server unreachable,
       the account lacks the role, too many server errors)
  4    internal error: a bug in batch-update (please report it)
  130  interrupted by Ctrl-C (the workbook lists the rest as Not sent)"""


def _echo(message: str = "", *, err: bool = True) -> None:
    click.echo(message, err=err)


def _fail(error: BatchUpdateError) -> None:
    _echo(f"Error: {error.message}")
    if error.tip:
        _echo(f"Tip: {error.tip}")


def _operator() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # getuser raises different things on different platforms
        user = "unknown"
    domain = os.environ.get("USERDOMAIN")
    if domain and "\\" not in user:
        user = f"{domain}\\{user}"
    return f"{user} on {socket.gethostname()}"


class NothingToSend(Exception):
    """The command has nothing to do (e.g. a retry of a run with nothing to retry): said
    plainly, exit 0, nothing sent and no workbook written."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _quoted(path: Path) -> str:
    """A path as it can be typed back on a command line (double quotes work in every shell)."""
    text = str(path)
    return f'"{text}"' if any(c.isspace() or c in "&()'^;|<>$`" for c in text) else text


def _here_if_possible(folder: Path) -> Path:
    """A folder relative to the current one when it is inside it (names stay short on screen)."""
    try:
        return folder.relative_to(Path.cwd())
    except ValueError:
        return folder


def _when(moment: datetime | None) -> str:
    return (
        moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        if moment
        else "an unknown time"
    )


def _concurrency_text(concurrency: int | str) -> str:
    """ "4 at a time", or what automatic concurrency means, for the start-of-run line."""
    from ..runner import AUTO_MAX_WORKERS, AUTO_START_WORKERS

    if isinstance(concurrency, int):
        return f"{concurrency} at a time"
    return f"{AUTO_START_WORKERS} to {AUTO_MAX_WORKERS} at a time, as the response time needs"
