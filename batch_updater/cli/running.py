"""A run of a sheet from the command line: the settings and the log set up, the run called
with the terminal as its console, and its outcome told (the summary, the files, the warnings)."""

from __future__ import annotations

import logging
import os
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import OutputError
from ..tickets import Outcome, RowResult, Sheet, count_text
from .common import RUN_LOG_HANDLER, ExitStatus, _echo, _fail

if TYPE_CHECKING:  # imported where used, so that --help stays quick
    from ..rollback import RollbackRow
    from ..settings import Settings
    from ..sweep import RunOutcome
    from .terminal import TerminalConsole


def run_sheet(
    file: Path,
    options: Mapping[str, Any],
    *,
    resume: bool = False,
    retry_of: str | None = None,
    exact: Mapping[int, RollbackRow] | None = None,
    rolls_back: str | None = None,
) -> ExitStatus:
    """Run FILE as the command's options say; returns the exit status.

    resume, retry_of: what the command continues; exact, rolls_back: a rollback's rows and the
    run it undoes (see RunRequest).
    """
    from ..sweep import RunRequest, Transport, run

    given, console, verbose, config_path = on_terminal(options)
    request = RunRequest(
        file,
        dry_run=bool(given.pop("dry_run", False)),
        simulate=bool(given.pop("simulate", False)),
        yes=bool(given.pop("yes", False)),
        resume=resume,
        retry_of=retry_of,
        again=bool(given.pop("again", False)),
        overwrite_conflicts=bool(given.pop("overwrite_conflicts", False)),
        out=given.pop("out", None),
        transport=Transport(
            insecure=bool(given.pop("insecure", False)),
            allow_http=bool(given.pop("allow_http", False)),
        ),
        exact=exact,
        rolls_back=rolls_back,
    )
    settings = command_settings(given, config_path, verbose, file, console)
    return tell_run(run(request, settings, console))


def tell_run(outcome: RunOutcome) -> ExitStatus:
    """A run's outcome told on the terminal; its exit status."""
    print_safely(lambda: _tell(outcome))
    return outcome.status


def print_safely(tell: Callable[[], None]) -> None:
    """Print what a command found; when our output is piped into a reader that has gone
    (| head), say nothing more: what the command wrote is written (and let the interpreter's
    last flush find nowhere to fail)."""
    try:
        tell()
    except BrokenPipeError:
        _silence_output()


def on_terminal(options: Mapping[str, Any]) -> tuple[dict[str, Any], TerminalConsole, bool, Any]:
    """A command's options with the terminal's own taken out: what is left (the settings'
    last layer), the console, --verbose and --config."""
    from .terminal import TerminalConsole

    given = dict(options)
    console = TerminalConsole(quiet=bool(given.pop("quiet", False)))
    return given, console, bool(given.pop("verbose", False)), given.pop("config_path", None)


def _silence_output() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):
            pass


def command_settings(
    given: dict[str, Any],
    config_path: Path | None,
    verbose: bool,
    kept_from_log: Path | None,
    console: TerminalConsole,
) -> Settings:
    """The settings of a command (what is left of its options is their last layer), with the log
    set up (never over `kept_from_log`, the command's input) and the config file named."""
    from ..settings import load_settings

    settings = load_settings(cli=given, env=os.environ, config_path=config_path)
    _configure_logging(verbose, settings.log_file, kept_from_log)
    if settings.config_path is not None:
        console.note(f"Using config file {settings.config_path}")
    return settings


def _tell(outcome: RunOutcome) -> None:
    """The outcome of a run on the terminal: what stopped it, the summary and files, warnings."""
    if outcome.error is not None:
        _fail(outcome.error)
    if outcome.sheet is not None and outcome.workbook is not None:
        extra = [outcome.csv] if outcome.csv else []
        for line in _summary_lines(
            outcome.sheet, outcome.results, outcome.workbook, extra, dry_run=outcome.dry_run
        ):
            click.echo(line)
        if outcome.rollback is not None:
            click.echo(f"Rollback workbook: {outcome.rollback}")
        click.echo(f"Manifest:         {outcome.manifest}")
    for warning in outcome.warnings:
        _echo(warning)


def _summary_lines(
    sheet: Sheet, results: Sequence[RowResult], out: Path, extra: Sequence[Path], *, dry_run: bool
) -> list[str]:
    counts = Counter(r.outcome for r in results)
    statuses = Counter(r.status for r in results if r.outcome is Outcome.FAILED)
    lines = [
        f"{count_text(len(results), 'row')} in {sheet.file_name}"
        + (f' (sheet "{sheet.sheet_name}")' if sheet.sheet_name else "")
        + ":"
    ]
    always = (
        (Outcome.VALID, Outcome.INVALID)
        if dry_run
        else (Outcome.UPDATED, Outcome.FAILED, Outcome.INVALID)
    )
    for outcome in Outcome:
        if counts[outcome] or outcome in always:
            detail = ""
            if outcome is Outcome.FAILED and statuses:
                detail = (
                    "   ("
                    + ", ".join(
                        f"{'HTTP ' + str(s) if s is not None else 'no answer'}: {n}"
                        for s, n in sorted(
                            statuses.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)
                        )
                    )
                    + ")"
                )
            lines.append(f"  {outcome.value:<16}{counts[outcome]:>7,}{detail}")
    checks = Counter(r.verification.split(":", 1)[0] for r in results if r.verification)
    if checks:
        lines.append(
            "  Read back: "
            + ", ".join(
                f"{checks[k]:,} {k}" for k in ("Verified", "Mismatch", "Not checked") if checks[k]
            )
        )
    lines.append(f"Results workbook: {out}")
    for path in extra:
        lines.append(f"Results CSV:      {path}")
    return lines


def _configure_logging(verbose: bool, log_file: Path | None, input_path: Path | None) -> None:
    _close_logging()
    logger = logging.getLogger("batch_updater")
    logger.setLevel(logging.DEBUG if (verbose or log_file) else logging.WARNING)
    logger.propagate = False
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")
    handlers: list[logging.Handler] = []
    if verbose:
        stream = logging.StreamHandler(sys.stderr)
        stream.setLevel(logging.INFO)
        handlers.append(stream)
    if log_file:
        if (
            input_path is not None
            and log_file.exists()
            and input_path.exists()
            and os.path.samefile(log_file, input_path)
        ):
            raise OutputError(
                f"{log_file} is the input file; batch-update never writes to its input.",
                tip="Choose another name for the log with --log-file.",
            )
        try:
            handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
        except OSError as exc:
            raise OutputError(
                f"Cannot write the log file {log_file}: {exc.strerror or exc}.",
                tip="Choose a file in a folder you can write to with --log-file.",
            ) from exc
    for handler in handlers:
        handler.set_name(RUN_LOG_HANDLER)
        handler.setFormatter(formatter)
        logger.addHandler(handler)


def _close_logging() -> None:
    """Remove and close the handlers of the last run, releasing its log file."""
    logger = logging.getLogger("batch_updater")
    for handler in list(logger.handlers):
        if handler.get_name() == RUN_LOG_HANDLER:
            logger.removeHandler(handler)
            handler.close()
