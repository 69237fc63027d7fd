"""What every command shares: its context (help options, width), and the guard that turns the
project's exceptions into one message and an exit code."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from ..errors import BatchUpdateError
from .common import ExitStatus, NothingToSend, _echo, _fail, log

# The commands that continue or undo a run end as a run does.
SAME_EXIT_CODES = "Exit codes: those of run (batch-update run --help)."

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100, "terminal_width": 100}


def guarded(function: Callable[..., ExitStatus]) -> Callable[..., None]:
    """A command's function, its exceptions turned into a message and its status into the exit."""

    @functools.wraps(function)
    def command(*args: Any, debug: bool = False, **options: Any) -> None:
        try:
            status = function(*args, **options)
        except NothingToSend as done:
            _echo(done.message)
            status = ExitStatus.OK
        except BatchUpdateError as error:
            if debug:
                raise
            _fail(error)
            status = ExitStatus.USAGE
        except click.ClickException:
            raise  # usage errors: click prints them with the usage line and exits 2
        except (KeyboardInterrupt, click.Abort):
            # Ctrl-C before sending started (while reading, validating or at a prompt: click's
            # prompts turn Ctrl-C, and the end of input, into Abort).
            if debug:
                raise
            _echo("\nInterrupted; nothing was sent.")
            status = ExitStatus.INTERRUPTED
        except BrokenPipeError:
            # Our output is piped into a reader that has gone (| head): what the command did is
            # done; say nothing more. (A run keeps its own status: see running.print_safely.)
            from .running import _silence_output

            _silence_output()
            status = ExitStatus.OK
        except Exception as exc:  # a bug: say so plainly, keep the traceback for --debug
            if debug:
                raise
            log.exception("internal error")
            _echo(
                f"Internal error: {type(exc).__name__}: {exc}\n"
                "This is a bug in batch-update. Run again with --debug to see the traceback, and "
                "report it with the command you ran."
            )
            status = ExitStatus.INTERNAL_ERROR
        finally:
            from ..sweep.earlier import _release_run_lock
            from .running import _close_logging

            _close_logging()
            _release_run_lock()
        sys.exit(int(status))

    return command
