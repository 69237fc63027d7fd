"""The commands: a click group whose default command is `run`, each command's options, the exit.

`batch-update FILE` is `batch-update run FILE`; the other commands are named. Each command's
function turns its options into one call of the job (a run, a report, a listing) and returns an
exit status; `_guarded` turns the project's exceptions into one message and that exit code.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..errors import BatchUpdateError
from .common import EXIT_CODES_HELP, ExitStatus, NothingToSend, _echo, _fail, _quoted, log
from .options import (
    again_option,
    config_option,
    debug_option,
    evidence_options,
    file_argument,
    optional_file_argument,
    out_option,
    quiet_option,
    rollback_again_option,
    run_argument,
    sending_options,
    sheet_option,
)

# The commands that continue or undo a run end as a run does.
SAME_EXIT_CODES = "Exit codes: those of run (batch-update run --help)."

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100, "terminal_width": 100}

# The options that chose what the one command of 0.x did, and the command each became.
# Whether each takes a value, and the command to type instead.
LEGACY_OPTIONS = {
    "--resume": (False, "resume {file}"),
    "--retry-failed": (True, "retry {file} {value}"),
    "--report-only": (True, "report {value}"),
    "--runs": (False, "runs {optional_file}"),
    "--check-manifest": (True, "check {value}"),
    "--rollback": (True, "rollback {value}"),
}


class DefaultGroup(click.Group):
    """A group whose first argument, when it names no command, is the FILE of `run`.

    So `batch-update tickets.xlsx --dry-run` runs the sheet, and a file named like a command is
    still run with `batch-update run report`.
    """

    default_command = "run"
    own_options = ("-h", "--help", "--version")

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in self.own_options:
            self._refuse_a_mistyped_command(args[0])
            args = [self.default_command, *args]
        if args and args[0] == self.default_command:
            _refuse_a_legacy_option(self.commands[self.default_command], args[1:])
        return super().parse_args(ctx, args)

    def _refuse_a_mistyped_command(self, word: str) -> None:
        """A word close to a command's name that is not a file (no extension, not there) is a
        mistyped command, not a sheet: say which command was meant, rather than "not found"."""
        import difflib

        if word.startswith("-") or Path(word).suffix or Path(word).exists():
            return
        close = difflib.get_close_matches(word, list(self.commands), n=1, cutoff=0.6)
        if close:
            raise click.UsageError(
                f"No such command {word!r}. Did you mean {close[0]!r}? "
                f"(A file of that name is run with: batch-update run {word})"
            )

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)  # in the order they are defined, the most used first

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        path = ctx.command_path
        formatter.write(
            f"Usage: {path} FILE [OPTIONS]       (the same as: {path} run FILE [OPTIONS])\n"
            f"       {path} COMMAND [ARGS]...\n"
        )


def _guarded(function: Callable[..., ExitStatus]) -> Callable[..., None]:
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


@click.group(
    cls=DefaultGroup,
    context_settings=CONTEXT,
    epilog=EXIT_CODES_HELP,
)
@click.version_option(__version__, prog_name="batch-update")
def command() -> None:
    """Update CCS remediation tickets from a spreadsheet (.xlsx, .xlsm, .xls, .ods or .csv).

    Every row is checked before anything is sent; then one PATCH per ticket goes to the CCS
    server at a steady pace, and a results workbook records what happened to each row. Each run
    is journaled, so that it can be resumed, retried, rebuilt or rolled back.

    \b
    Examples:
      batch-update samples/tickets.xlsx --simulate     try it against the built-in simulator
      batch-update tickets.xlsx --dry-run              check the sheet, send nothing
      batch-update tickets.xlsx --url https://ccs01:12431 --user "corp\\svc-ccs"
      batch-update resume tickets.xlsx                 continue a run that did not finish
      batch-update COMMAND --help                      the options of one command
    """


def _refuse_a_legacy_option(run: click.Command, args: list[str]) -> None:
    """The options that chose a job before there were commands: a usage error that gives the
    command to type (found in the arguments, so that no option of `run` is kept for them)."""
    takes_value = {
        name
        for param in run.params
        if isinstance(param, click.Option) and not param.is_flag
        for name in param.opts
    }
    file = legacy = value = None
    index = 0
    while index < len(args):
        token = args[index]
        name, equals, inline = token.partition("=")
        if token == "--":
            file = file or (args[index + 1] if index + 1 < len(args) else None)
            break
        if name in LEGACY_OPTIONS:
            legacy = legacy or name
            if LEGACY_OPTIONS[name][0] and not equals:
                index += 1
                value = args[index] if index < len(args) else "RUN"
            elif equals:
                value = inline
        elif token.startswith("-"):
            index += 1 if name in takes_value and not equals else 0
        elif file is None:
            file = token
        index += 1
    if legacy is None:
        return
    typed = (
        LEGACY_OPTIONS[legacy][1]
        .format(
            file=_quoted(Path(file)) if file else "FILE",
            optional_file=_quoted(Path(file)) if file else "",
            value=value,
        )
        .rstrip()
    )
    raise click.UsageError(
        f"{legacy} is a command of its own now: batch-update {typed} "
        f"(its options: batch-update {typed.split()[0]} --help)."
    )


@command.command("run", context_settings=CONTEXT, epilog=EXIT_CODES_HELP)
@click.argument(
    "file", metavar="FILE", type=click.Path(path_type=Path, dir_okay=False), required=False
)
@click.option(
    "--dry-run", is_flag=True, help="Validate every row and write the workbook; send nothing."
)
@sheet_option
@evidence_options
@again_option
@sending_options
@debug_option
@_guarded
def run_command(file: Path | None, **options: Any) -> ExitStatus:
    """Update CCS remediation tickets from FILE (.xlsx, .xlsm, .xls, .ods or .csv).

    Every row is checked before anything is sent; then one PATCH per ticket goes to the CCS
    server at a steady pace, and a results workbook records what happened to each row.
    `run` is the default command: `batch-update FILE` is `batch-update run FILE`.

    \b
    Examples:
      batch-update samples/tickets.xlsx --simulate     try it against the built-in simulator
      batch-update tickets.xlsx --dry-run              check the sheet, send nothing
      batch-update tickets.xlsx --url https://ccs01:12431 --user "corp\\svc-ccs"
    """
    from .running import run_sheet

    if file is None:
        raise click.UsageError("Missing argument 'FILE': the spreadsheet of ticket changes.")
    return run_sheet(file, options)


@command.command("resume", context_settings=CONTEXT, epilog=SAME_EXIT_CODES)
@file_argument
@sheet_option
@evidence_options
@sending_options
@debug_option
@_guarded
def resume_command(file: Path, **options: Any) -> ExitStatus:
    """Continue the last unfinished run of FILE.

    Rows the earlier run updated are not sent again (they are carried into the new workbook
    with their evidence); rows it was sending when it ended are read back first; the rest are
    sent. It keeps the evidence settings of the run it continues: --capture-before and --verify
    may add evidence, never drop it.
    """
    from .running import run_sheet

    return run_sheet(file, options, resume=True)


@command.command("retry", context_settings=CONTEXT, epilog=SAME_EXIT_CODES)
@file_argument
@run_argument
@sheet_option
@evidence_options
@sending_options
@debug_option
@_guarded
def retry_command(file: Path, run_ref: str, **options: Any) -> ExitStatus:
    """Send again only the rows of FILE that Failed or were Not sent in RUN.

    RUN is a run id (`batch-update runs` lists them) or that run's results workbook. Rows it
    left Unknown are read back first.
    """
    from .running import run_sheet

    return run_sheet(file, options, retry_of=run_ref)


@command.command(
    "rollback",
    context_settings=CONTEXT,
    epilog=SAME_EXIT_CODES,
    short_help="Put back what RUN's tickets held before it updated them.",
)
@run_argument
@optional_file_argument
@rollback_again_option
@sending_options
@debug_option
@_guarded
def rollback_command(run_ref: str, file: Path | None, **options: Any) -> ExitStatus:
    """Put back what RUN's tickets held before it updated them, exactly as its journal captured them.

    RUN is a run id or its results workbook, of a run made with --capture-before. FILE (the
    sheet RUN sent) is needed only when the run's journal is in the folder of another input.
    The rollback is a run of its own: journaled, verified, and undoable in turn.
    """
    from .records import rollback_from_journal

    return rollback_from_journal(run_ref, {"file": file, **options})


@command.command("report", context_settings=CONTEXT)
@run_argument
@optional_file_argument
@out_option
@config_option
@quiet_option
@debug_option
@_guarded
def report_command(
    run_ref: str, file: Path | None, out: Path | None, config_path: Path | None, quiet: bool
) -> ExitStatus:
    """Write the results workbook of RUN from its journal; send nothing.

    RUN is a run id, its journal file or its results workbook. The workbook is the one the run
    wrote (or would have written, had it been able to), with a manifest of its own.
    """
    from .records import report_from_journal

    return report_from_journal(run_ref, file, out=out, config_path=config_path, quiet=quiet)


@command.command("runs", context_settings=CONTEXT)
@optional_file_argument
@config_option
@debug_option
@_guarded
def runs_command(file: Path | None, config_path: Path | None) -> ExitStatus:
    """List the recent runs (of FILE, or all), newest first, with how each ended."""
    from .records import list_recent_runs

    return list_recent_runs(file, config_path=config_path)


@command.command(
    "check",
    context_settings=CONTEXT,
    short_help="Check that a results workbook, its input and its journal are the run's own.",
    epilog="\b\nExit codes:\n  0    every file is the one the run produced\n"
    "  1    a file differs or is missing\n  2    RESULTS has no manifest, or it cannot be read",
)
@click.argument("results", metavar="RESULTS", type=click.Path(path_type=Path, dir_okay=False))
@debug_option
@_guarded
def check_command(results: Path) -> ExitStatus:
    """Check that RESULTS (a results workbook or its manifest), its input and its journal are the
    files the run produced (their SHA-256 against the manifest)."""
    from .records import check_manifest_files

    return check_manifest_files(results)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the batch-update command."""
    command.main(args=list(argv) if argv is not None else None, prog_name="batch-update")
