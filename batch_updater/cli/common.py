"""What every part of the command line shares: exit codes, the terminal's messages, names."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..errors import BatchUpdateError
from ..sweep.common import (
    MAX_PROBLEMS_SHOWN,
    _concurrency_text,
    _here_if_possible,
    _operator,
    _quoted,
    _when,
    log,
)
from ..sweep.outcome import ExitStatus, NothingToSend

if TYPE_CHECKING:  # imported where used, so that --help stays quick
    pass

__all__ = [
    "MAX_PROBLEMS_SHOWN",
    "ExitStatus",
    "NothingToSend",
    "_concurrency_text",
    "_here_if_possible",
    "_operator",
    "_quoted",
    "_when",
    "log",
]

# The name of the handlers a run adds for --verbose and --log-file, so that they can be found
# and closed when the run ends (a second run in the same process must not write to the first
# run's log file or stream).
RUN_LOG_HANDLER = "batch-update run"


EXIT_CODES_HELP = """\b
Exit codes:
  0    every row Updated or Unchanged (or Valid in a dry run, or Skipped)
  1    some rows Failed, Unknown, Invalid or Conflict (see the results workbook)
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
