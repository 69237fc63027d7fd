"""The command line: options, wiring, exit codes, and what the administrator sees on the terminal.

A thin shell over the core: it builds the settings, calls read -> validate -> send -> report, and
turns the project's exceptions into one clear message and an exit code. It is the only module
that prints, prompts or exits, and the only one that imports click.
"""

from __future__ import annotations

import getpass
import ipaddress
import logging
import os
import platform
import signal
import socket
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from . import __version__
from .errors import AuthError, BatchUpdateError, InputError, OutputError, ServerUnreachable
from .journal import Continuation, Journal, RunRecord
from .rollback import RollbackRow
from .tickets import Outcome, PlannedRow, RowResult, RunInfo, Sheet, count_text

if TYPE_CHECKING:  # imported where used, so that --help stays quick
    from .settings import Secret, Settings

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
    INTERRUPTED = 130


EXIT_CODES_HELP = """\b
Exit codes:
  0    every row Updated (or Valid in a dry run, or Skipped)
  1    some rows Failed, Unknown or Invalid (see the results workbook)
  2    usage, config or input-file error: nothing was sent
  3    the run stopped early (credentials refused, server unreachable,
       the account lacks the role, too many server errors)
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


# -- progress ------------------------------------------------------------------------------------


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


# -- signals -------------------------------------------------------------------------------------


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


# -- the run -------------------------------------------------------------------------------------


def _planned_results(plan_rows: Sequence[PlannedRow], dry_run: bool) -> Iterator[RowResult]:
    """The results that validation alone decides: Invalid, Skipped, and Valid in a dry run."""
    for row in plan_rows:
        if row.blank:
            yield RowResult(row.row_number, Outcome.SKIPPED, message="blank row")
        elif not row.is_valid:
            yield RowResult(
                row.row_number,
                Outcome.INVALID,
                ticket_number=row.ticket_number or "",
                message="; ".join(str(p) for p in row.problems),
            )
        elif dry_run:
            yield RowResult(
                row.row_number,
                Outcome.VALID,
                ticket_number=row.ticket_number,
                message="would be sent",
                request_json=row.update.to_json_text() if row.update else None,
            )


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


def _exit_status(results: Sequence[RowResult], stopped: bool, interrupted: bool) -> ExitStatus:
    if interrupted:
        return ExitStatus.INTERRUPTED
    if stopped:
        return ExitStatus.STOPPED
    if any(r.outcome in (Outcome.FAILED, Outcome.UNKNOWN, Outcome.INVALID) for r in results):
        return ExitStatus.ROWS_FAILED
    if any(r.verification.startswith("Mismatch") for r in results):
        return ExitStatus.ROWS_FAILED  # the server does not hold what it accepted
    return ExitStatus.OK


def _configure_logging(verbose: bool, log_file: Path | None, input_path: Path) -> None:
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
        if log_file.exists() and input_path.exists() and os.path.samefile(log_file, input_path):
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


@click.command(
    context_settings={
        "help_option_names": ["-h", "--help"],
        "max_content_width": 100,
        "terminal_width": 100,
    },
    epilog=EXIT_CODES_HELP,
)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False), required=False)
@click.option(
    "--dry-run", is_flag=True, help="Validate every row and write the workbook; send nothing."
)
@click.option(
    "--simulate",
    is_flag=True,
    help="Run against the built-in CCS simulator on this machine (nothing real is touched).",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation before a live run.")
@click.option("--url", help="CCS server, e.g. https://ccs01.corp.local:12431 [env CCS_URL].")
@click.option("--user", "username", help="CCS user name, e.g. corp\\svc-ccs [env CCS_USERNAME].")
@click.option(
    "--password-encoding",
    type=click.Choice(["base64", "plain"]),
    help="How the token request carries the password [default: base64].",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Do not verify the server's TLS certificate (warned on every run, recorded in the workbook).",
)
@click.option(
    "--allow-http",
    is_flag=True,
    help="Allow plain http:// to a server that is not on this machine.",
)
@click.option(
    "--ca-bundle",
    type=click.Path(path_type=Path, dir_okay=False),
    help="CA certificate(s) for an internal CA.",
)
@click.option("--rate", type=float, help="Requests per second, never exceeded [default: 5].")
@click.option(
    "--concurrency",
    metavar="N|auto",
    help="Requests in flight at once; auto adds workers (4 to 32) as the server's response "
    "time needs [default: auto].",
)
@click.option("--sheet", help="Sheet to read [default: the only one, or one named like Tickets].")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Results workbook path [default: beside the input].",
)
@click.option(
    "--csv", "write_csv", is_flag=True, default=None, help="Also write the results as CSV."
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Config file [default: ./batch-update.yaml, then the user config folder].",
)
@click.option(
    "-q", "--quiet", is_flag=True, help="No progress bar, no notices; errors and the summary only."
)
@click.option(
    "-v", "--verbose", is_flag=True, help="Log every request on the terminal (never secrets)."
)
@click.option(
    "--log-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the per-request log to this file.",
)
@click.option(
    "--capture-before",
    is_flag=True,
    default=None,
    help="Read each ticket before updating it: Before columns and a rollback workbook.",
)
@click.option(
    "--verify",
    is_flag=True,
    default=None,
    help="Read each updated ticket back and compare it with what was sent.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the last unfinished run of FILE; rows already updated are not sent again.",
)
@click.option(
    "--retry-failed",
    metavar="RUN",
    help="Send only the rows that Failed or were Not sent in RUN (a run id or its results workbook).",
)
@click.option(
    "--again", is_flag=True, help="Run FILE even though a finished run already applied it."
)
@click.option(
    "--rollback",
    "rollback_of",
    metavar="RUN",
    help="Put back what RUN's tickets held before it updated them, exactly as its journal captured them (RUN: a run id or its results workbook; needs a run made with --capture-before).",
)
@click.option(
    "--report-only",
    metavar="RUN",
    help="Write the results workbook of RUN from its journal; send nothing.",
)
@click.option(
    "--check-manifest",
    metavar="RESULTS",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Check that RESULTS (a results workbook or its manifest), its input and its journal are the files the run produced.",
)
@click.option(
    "--runs", "list_runs", is_flag=True, help="List the recent runs (of FILE, or all) and exit."
)
@click.option(
    "--debug", is_flag=True, help="Show the traceback of an internal error (for a bug report)."
)
@click.version_option(__version__, prog_name="batch-update")
def command(**options: object) -> None:
    """Update CCS remediation tickets from FILE (.xlsx, .xlsm, .xls, .ods or .csv).

    Every row is checked before anything is sent; then one PATCH per ticket goes to the CCS
    server at a steady pace, and a results workbook records what happened to each row.

    \b
    Examples:
      batch-update samples/tickets.xlsx --simulate     try it against the built-in simulator
      batch-update tickets.xlsx --dry-run              check the sheet, send nothing
      batch-update tickets.xlsx --url https://ccs01:12431 --user corp\\svc-ccs
    """
    debug = bool(options.pop("debug"))
    try:
        status = _dispatch(options)
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
        status = ExitStatus.ROWS_FAILED
    finally:
        _close_logging()
        _release_run_lock()
    sys.exit(int(status))


class NothingToSend(Exception):
    """The command has nothing to do (e.g. --retry-failed of a run with nothing to retry): said
    plainly, exit 0, nothing sent and no workbook written."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _dispatch(options: dict[str, Any]) -> ExitStatus:
    """Run the mode the options ask for."""
    report_only = options.pop("report_only")
    listing = options.pop("list_runs")
    manifest = options.pop("check_manifest")
    rollback_of = options.pop("rollback_of")
    file = options.get("file")
    if manifest is not None:
        return check_manifest_files(manifest)
    if report_only or listing:
        options["rollback"] = rollback_of
        clashing = [
            f"--{name.replace('_', '-')}"
            for name in ("resume", "retry_failed", "again", "dry_run", "simulate", "rollback")
            if options.get(name)
        ]
        if clashing:
            raise click.UsageError(
                f"{'--report-only' if report_only else '--runs'} sends nothing; it cannot be combined with {', '.join(clashing)}."
            )
        if listing:
            return list_recent_runs(file, config_path=options.get("config_path"))
        return report_from_journal(
            str(report_only),
            file,
            out=options.get("out"),
            config_path=options.get("config_path"),
            quiet=bool(options.get("quiet")),
        )
    if rollback_of:
        clashing = [
            f"--{name.replace('_', '-')}"
            for name in ("resume", "retry_failed", "dry_run")
            if options.get(name)
        ]
        if clashing:
            raise click.UsageError(f"--rollback cannot be combined with {', '.join(clashing)}.")
        return rollback_from_journal(str(rollback_of), options)
    if file is None:
        raise click.UsageError("Missing argument 'FILE': the spreadsheet of ticket changes.")
    if options.get("resume") and options.get("retry_failed"):
        raise click.UsageError("--resume and --retry-failed cannot be used together.")
    if options.get("dry_run") and (options.get("resume") or options.get("retry_failed")):
        raise click.UsageError(
            "--dry-run checks the sheet only; it cannot be combined with --resume or --retry-failed."
        )
    return run(**options)


def run(
    file: Path,
    *,
    dry_run: bool = False,
    simulate: bool = False,
    yes: bool = False,
    quiet: bool = False,
    verbose: bool = False,
    config_path: Path | None = None,
    resume: bool = False,
    retry_failed: str | None = None,
    again: bool = False,
    insecure: bool = False,
    allow_http: bool = False,
    exact: dict[int, RollbackRow] | None = None,
    rolls_back: str | None = None,
    **cli: object,
) -> ExitStatus:
    """Read, validate, send and report; returns the exit status.

    exact: a rollback's rows by row number of FILE (its rollback workbook, the readable record):
    what is sent is their captured values, not the cells as the reader cleans them up.
    """
    from .manifest import manifest_path, write_manifest
    from .report import check_output_path, default_results_path, free_path, write_results
    from .settings import load_settings
    from .sheet import file_sha256, gc_paused, read_sheet
    from .validate import plan_rows, rules_from_settings, sheet_location

    started = datetime.now(timezone.utc)
    settings = load_settings(
        cli={k: v for k, v in cli.items() if k != "out"}, env=os.environ, config_path=config_path
    )
    _configure_logging(verbose, settings.log_file, file)
    if settings.config_path is not None and not quiet:
        _echo(f"Using config file {settings.config_path}")

    rules = rules_from_settings(settings)
    # Hashed on both sides of the read, so the SHA-256 the evidence gives is that of the bytes
    # the rows came from: a file being saved meanwhile (Excel on a share) is refused, not mixed.
    input_sha256 = file_sha256(file)
    sheet = read_sheet(
        file, settings.sheet, is_header_row=rules.is_header_row, max_rows=settings.max_rows
    )
    if file_sha256(file) != input_sha256:
        raise InputError(
            f"{file.name}: the file changed while it was being read.",
            tip="wait until it has been saved (and closed in Excel), then run again.",
        )
    plan = plan_rows(sheet, rules)
    if exact is not None:
        plan.rows = [_restoring(sheet, row, exact.get(row.row_number)) for row in plan.rows]
    if not plan.rows:
        raise InputError(
            f"{sheet_location(sheet)}: nothing to send: no rows under the header (row "
            f"{sheet.header_row}).",
            tip="add the ticket changes below the header row, or check that this is the right "
            "file and sheet (--sheet).",
        )
    notices = [*sheet.notices, *plan.notices]
    for notice in notices:
        # Hidden rows are a safety warning: shown even with --quiet.
        if not quiet or "hidden in Excel" in notice:
            _echo(f"Note: {notice}")
    invalid = [row for row in plan.rows if not row.blank and not row.is_valid]
    _show_problems(sheet, invalid, quiet=quiet)

    # The default name is to the second: a run started in the same second as the last one (the
    # same command twice in a row) takes the next free name. A name given with --out is the
    # user's: if it exists, check_output_path refuses it.
    out = cli.get("out") or free_path(
        default_results_path(file, started, settings.output_dir), companion=manifest_path
    )
    out = Path(out)  # type: ignore[arg-type]
    _check_workbook_name(out)
    check_output_path(out, input_path=file)
    check_output_path(manifest_path(out), input_path=file, option="--out")
    csv_path = out.with_suffix(".csv") if settings.write_csv else None
    if csv_path is not None:
        # Found now, not when the results are written: by then the tickets have been updated.
        check_output_path(csv_path, input_path=file)

    info = RunInfo(
        input_path=str(file.resolve()),
        input_sha256=input_sha256,
        sheet_name=sheet.sheet_name,
        tool_version=__version__,
        operator=_operator(),
        started=started,
        rate=settings.rate,
        concurrency=settings.concurrency,
        dry_run=dry_run,
        simulated=simulate,
        notes=[  # the sheet's own notices are written from sheet.notices
            *(
                [
                    f"{ROLLS_BACK} {rolls_back}: each ticket is given the values it held before that run "
                    "updated it, exactly as its journal captured them."
                ]
                if rolls_back
                else []
            ),
            *plan.notices,
        ],
        capture_before=settings.capture_before and not dry_run,
        verify=settings.verify and not dry_run,
        settings=settings.describe(),
        python_version=platform.python_version(),
    )
    valid = [row for row in plan.rows if row.is_valid]
    with gc_paused():  # a RowResult per row; no cycles, so the collector's rescans are waste
        decided = {r.row_number: r for r in _planned_results(plan.rows, dry_run)}

    interrupted = stopped = False
    journal = None
    record_failed = ""  # why the journal could not be written, if it could not
    disagreements: list[str] = []
    if dry_run:
        results = [decided[row.row_number] for row in plan.rows]
        if not quiet:
            _echo(
                f"Dry run: {len(valid):,} of {count_text(len(plan.rows), 'row')} would be sent; "
                "nothing was sent."
            )
    else:
        folder = _journal_folder(file, settings=settings)
        batch = _follow_earlier_run(
            folder,
            file,
            info,
            valid,
            resume=resume,
            retry_failed=retry_failed,
            again=again,
            quiet=quiet,
            server_url=None if simulate else settings.url,
        )
        decided.update(batch.carried)

        def start_journal() -> Journal:
            rows: list[PlannedRow | RowResult] = [
                *batch.send,
                *(decided[row.row_number] for row in plan.rows if row.row_number in decided),
            ]
            return _create_journal(folder, info, rows, sheet, batch)

        try:
            checks = [row for row in valid if row.row_number in batch.verify_carried]
            sent, interrupted, stopped, journal, record_failed = _send(
                [*batch.send, *checks],
                settings,
                info,
                start_journal,
                read_back=batch.read_back,
                known_before=batch.known_before,
                known_forbidden=batch.known_forbidden,
                check_carried=batch.verify_carried,
                simulate=simulate,
                yes=yes,
                quiet=quiet,
                transport=Transport(insecure=insecure, allow_http=allow_http),
            )
        except (AuthError, ServerUnreachable) as error:
            # The login failed: no request for a ticket was made, so there is no run to report.
            _fail(error)
            _echo(f"The run stopped early: {error.message.rstrip('.')}.")
            _echo("Nothing was sent; no results workbook was written.")
            return ExitStatus.STOPPED
        decided.update(sent)
        results = [decided[row.row_number] for row in plan.rows]
        if journal is not None:
            # One record: the workbook is written from the journal, as --report-only writes it,
            # so that the two cannot disagree; what the send loop returned is checked against it.
            # (When the journal could not be written, they differ where it could not: those
            # rows are what the journal holds, Unknown, and a resume reads them back.)
            if not record_failed:
                disagreements = _reconcile(journal, results)
            recorded = journal.results(include_pending=True)
            results = [recorded.get(row.row_number) or decided[row.row_number] for row in plan.rows]

    info.finished = datetime.now(timezone.utc)
    _note_input_change(file, info)
    status = _exit_status(results, stopped, interrupted)
    # Never overwrite: a file that appeared at the target during the run keeps its name.
    if out.exists():
        taken, out = out, free_path(out)
        _echo(f"Note: {taken} appeared during the run; the results go to {out} instead.")
    if csv_path is not None and csv_path.exists():
        csv_path = free_path(csv_path)
    try:
        with Interrupts(Interrupts.WRITING):
            write_results(out, sheet, results, info, csv_path=csv_path)
    except BatchUpdateError as error:
        if journal is None:
            raise  # a dry run: nothing was sent, so this is the plain output error it says
        # Tickets were updated: this is no "nothing was sent" exit 2. The journal has it all.
        failed = ExitStatus.ROWS_FAILED if status is ExitStatus.OK else status
        if not record_failed:
            journal.finish(
                _run_end(stopped, interrupted),
                int(failed),
                stopped_reason=info.stopped_reason,
                workers=info.workers,
                finished=info.finished,
            )
        journal.close()
        _fail(error)
        _echo(
            f"The results workbook could not be written, but every outcome is in the run journal "
            f"{journal.path}. Rebuild the workbook with: batch-update --report-only {info.run_id}"
        )
        return failed
    if journal is not None:
        if not record_failed:
            try:
                journal.finish(
                    _run_end(stopped, interrupted),
                    int(status),
                    out,
                    stopped_reason=info.stopped_reason,
                    workers=info.workers,
                    finished=info.finished,
                )
            except BatchUpdateError as error:  # e.g. the disk filled after the last row
                record_failed = error.message.rstrip(".")
        journal_copy = _copy_journal(journal, out)
        journal.close()
        if not record_failed:
            _prune_journals(folder, settings.journal_keep_days)
    else:
        journal_copy = None
    rollback = None
    if info.capture_before and not dry_run:
        rollback = _write_rollback(file, results, info, out.parent)
    manifest = write_manifest(
        info,
        out,
        files={"input": file, "journal": journal_copy},
        target=free_path(manifest_path(out)),  # a manifest that appeared meanwhile keeps its name
    )
    for line in _summary_lines(
        sheet, results, out, [csv_path] if csv_path else [], dry_run=dry_run
    ):
        click.echo(line)
    if rollback is not None:
        click.echo(f"Rollback workbook: {rollback}")
    click.echo(f"Manifest:         {manifest}")
    if info.stopped_reason:
        _echo(f"The run stopped early: {info.stopped_reason.rstrip('.')}.")
    if record_failed and journal is not None:
        _tell_journal_failed(
            file, journal, results, record_failed, stopped=bool(info.stopped_reason)
        )
    if disagreements:
        _echo(
            "INTERNAL ERROR: the send loop and the run journal disagree on "
            f"{len(disagreements)} row(s): "
            + "; ".join(disagreements[:5])
            + ". The journal is the record of what was sent, and the workbook was written from "
            "it; please report this."
        )
        return ExitStatus.ROWS_FAILED if status is ExitStatus.OK else status
    return status


def _tell_journal_failed(
    file: Path, journal: Journal, results: Sequence[RowResult], reason: str, *, stopped: bool
) -> None:
    """What a run whose journal could not be written leaves, and how to go on."""
    if not stopped:  # every row was sent; only the end of the run could not be recorded
        _echo(f"Warning: {reason}.")
    unknown = sum(1 for r in results if r.outcome is Outcome.UNKNOWN)
    held = (
        f"{count_text(unknown, 'row')} whose answer could not be recorded "
        f"{'is' if unknown == 1 else 'are'} Unknown, and a resume reads "
        f"{'that ticket' if unknown == 1 else 'those tickets'} back before deciding"
        if unknown
        else "no answer was lost"
    )
    _echo(
        f"The run journal {journal.path} holds every outcome recorded before it could no longer "
        f"be written; {held}. The run is not marked finished there."
    )
    _echo(
        f"Free some space on the journal's disk, then resume: batch-update {_quoted(file)} --resume"
    )


def _quoted(path: Path) -> str:
    """A path as it can be typed back on a command line (double quotes work in every shell)."""
    text = str(path)
    return f'"{text}"' if any(c.isspace() or c in "&()'^;|<>$`" for c in text) else text


def _check_workbook_name(out: Path) -> None:
    """The results are an .xlsx workbook: refuse a name that says otherwise (x.csv, x.xls, x)."""
    if out.suffix.lower() != ".xlsx":
        raise OutputError(
            f"--out {out}: the results workbook is an Excel .xlsx file; its name must end in .xlsx.",
            tip=f"use --out {out.with_suffix('.xlsx').name}"
            + (
                ", and add --csv for a CSV copy beside it." if out.suffix.lower() == ".csv" else "."
            ),
        )


ROLLS_BACK = "Rolls back run"


def rollback_from_journal(run_ref: str, options: dict[str, Any]) -> ExitStatus:
    """Apply the rollback of a run: its tickets' captured before values, sent exactly."""
    from .journal import find_run, list_runs
    from .report import default_rollback_path, free_path, write_rollback
    from .rollback import rollback_rows

    file = options.pop("file", None)
    folder = _journal_folder(file, options.get("config_path"))
    folders = _searched_folders(folder, file, quiet=bool(options.get("quiet")))
    record = find_run(folders, run_ref)
    if record is None:
        raise InputError(
            f'No run "{run_ref}" in {folder}.',
            tip="batch-update --runs lists the runs; give a run id, a journal file or a results workbook.",
        )
    if record.dry_run or record.simulated:
        raise InputError(
            f"Run {record.run_id} was a {'dry run' if record.dry_run else 'simulated rehearsal'}: "
            "it changed no real ticket, so there is nothing to roll back."
        )
    info = record.to_run_info()
    if not info.capture_before:
        raise InputError(
            f"Run {record.run_id} did not read the tickets before updating them, so its journal "
            "holds no values to put back.",
            tip="Only a run made with --capture-before can be rolled back.",
        )
    done = [
        earlier
        for earlier in list_runs(folders, on_skipped=lambda *_: None)
        if earlier.is_finished
        and not earlier.dry_run
        and not earlier.simulated
        and any(note.startswith(f"{ROLLS_BACK} {record.run_id}:") for note in earlier.notes)
    ]
    if done and not options.get("again"):
        raise InputError(
            f"Run {record.run_id} was rolled back already, by run {done[0].run_id} (started "
            f"{_when(done[0].started)}).",
            tip="add --again to put the values back once more.",
        )
    with Journal.open(record.path) as journal:
        sheet = journal.sheet()
        results = journal.results(include_pending=True)
    ordered = [results[row.row_number] for row in sheet.rows] if sheet else list(results.values())
    restoring = rollback_rows(ordered)
    if not restoring:
        click.echo(
            f"Run {record.run_id} updated no ticket whose values it had read first: nothing to roll back."
        )
        return ExitStatus.OK
    # The readable record of what is put back, and the input of the rollback run.
    where = (
        Path(record.results_path).parent
        if record.results_path
        else _here_if_possible(Path(record.input_path).parent)
    )
    path = free_path(default_rollback_path(Path(record.input_path), record.started, where))
    write_rollback(path, ordered, info)
    _echo(
        f"Rolling back run {record.run_id}: {count_text(len(restoring), 'ticket')}, to the values "
        f"its journal captured before the update (written to {path})."
    )
    options["capture_before"] = options.get("capture_before") or True  # undoable in turn
    options["verify"] = options.get("verify") or True  # shows each ticket holds them again
    options["again"] = True  # the guard for this rollback is the one above
    return run(
        path,
        exact={2 + index: row for index, row in enumerate(restoring)},
        rolls_back=record.run_id,
        **options,
    )


def _restoring(sheet: Sheet, planned: PlannedRow, restoring: RollbackRow | None) -> PlannedRow:
    """The rollback workbook's row as sent: the journal's captured values, or why not."""
    from .tickets import Problem
    from .validate import sheet_location

    if restoring is None:
        raise InputError(
            f"{sheet_location(sheet)}, row {planned.row_number}: not a row of the rollback."
        )
    update = restoring.update
    if update is None:
        return PlannedRow(
            planned.row_number,
            problems=(
                Problem(
                    None,
                    "cannot be restored: " + ("; ".join(restoring.notes) or "nothing to put back"),
                ),
            ),
        )
    return PlannedRow(planned.row_number, update=update)


def _note_input_change(file: Path, info: RunInfo) -> None:
    """Say in the evidence, and on the terminal, when the input was rewritten during the run."""
    from .sheet import file_sha256

    try:
        now: str | None = file_sha256(file)
    except BatchUpdateError:
        now = None  # moved or deleted: the manifest check will say it is missing
    if now is None or now == info.input_sha256:
        return
    note = (
        f"The input file {file.name} was changed during the run (SHA-256 when read "
        f"{info.input_sha256[:16]}..., at the end {now[:16]}...): these results are those of the "
        "sheet as it was read."
    )
    info.notes.append(note)
    _echo(f"Note: {note}")


def _reconcile(journal: Journal, results: Sequence[RowResult]) -> list[str]:
    """Rows on which the send loop's results and the journal disagree (outcome or HTTP status)."""
    recorded = journal.results(include_pending=True)
    disagreements = []
    for result in results:
        entry = recorded.get(result.row_number)
        if entry is None:
            disagreements.append(f"row {result.row_number} is missing from the journal")
        elif (entry.outcome, entry.status) != (result.outcome, result.status):
            disagreements.append(
                f"row {result.row_number}: send loop {result.outcome.value} {result.status or ''}, "
                f"journal {entry.outcome.value} {entry.status or ''}".replace("  ", " ")
            )
    extra = set(recorded) - {r.row_number for r in results}
    disagreements += [f"row {n} is in the journal only" for n in sorted(extra)]
    return disagreements


def _write_rollback(
    file: Path, results: Sequence[RowResult], info: RunInfo, folder: Path
) -> Path | None:
    from .report import default_rollback_path, free_path, write_rollback
    from .rollback import undoable

    if not any(undoable(r) for r in results):
        return None
    path = free_path(default_rollback_path(file, info.started, folder))
    count = write_rollback(path, results, info)
    log.info("rollback workbook %s: %d rows", path, count)
    return path


def _run_end(stopped: bool, interrupted: bool) -> str:
    from .journal import RunEnd

    if interrupted:
        return RunEnd.INTERRUPTED
    return RunEnd.STOPPED if stopped else RunEnd.FINISHED


def _prune_journals(folder: Path, keep_days: int) -> None:
    from .journal import prune

    if keep_days > 0:
        try:
            for gone in prune(folder, keep_days):
                log.info(
                    "deleted the journal of run %s (finished more than %d days ago)",
                    gone.run_id,
                    keep_days,
                )
        except BatchUpdateError as error:  # housekeeping must not spoil a run that went well
            log.warning("could not prune old journals: %s", error)


def _show_problems(sheet: Sheet, invalid: Sequence[PlannedRow], *, quiet: bool) -> None:
    from .validate import format_problem

    shown = 0
    for row in invalid:
        for problem in row.problems:
            if shown < MAX_PROBLEMS_SHOWN:
                _echo(format_problem(sheet, row.row_number, problem))
            shown += 1
    if shown > MAX_PROBLEMS_SHOWN:
        _echo(
            f"... and {shown - MAX_PROBLEMS_SHOWN:,} more problems; the results workbook lists every one."
        )
    if invalid and not quiet:
        _echo(f"{len(invalid):,} row{'s' if len(invalid) != 1 else ''} will not be sent (Invalid).")


def _journal_folder(
    file: Path | None, config_path: Path | None = None, *, settings: Settings | None = None
) -> Path:
    """Where journals are written: output.journal_dir, else the per-user state folder.

    The state folder is on this machine's own disk, whatever share the sheet is on (SQLite's
    WAL mode does not work on a network file system).
    """
    from .settings import load_settings, user_state_folder

    if settings is None:
        settings = load_settings(env=os.environ, config_path=config_path)
    if settings.journal_dir:
        return settings.journal_dir
    return user_state_folder() / "journals"


# Said once per process: journals of earlier versions are still read where they were.
_EARLIER_FOLDERS_NOTED: set[str] = set()


def _searched_folders(folder: Path, file: Path | None, *, quiet: bool = False) -> list[Path]:
    """The journal folder, and the .batch-update/ folder beside the input (or here) in which
    earlier versions wrote journals, if it holds any: those runs are still found (resume,
    retry, report, the duplicate guard); new journals are written in folder only."""
    from .journal import DEFAULT_JOURNAL_FOLDER, journal_paths

    earlier = (file.parent if file is not None else Path()) / DEFAULT_JOURNAL_FOLDER
    try:
        if earlier.resolve() == folder.resolve() or not journal_paths(earlier):
            return [folder]
    except OSError:
        return [folder]
    key = str(earlier.resolve())
    if not quiet and key not in _EARLIER_FOLDERS_NOTED:
        _echo(
            f"Note: also reading the journals of earlier versions in {earlier}; new journals "
            f"are kept in {folder}."
        )
    _EARLIER_FOLDERS_NOTED.add(key)
    return [folder, earlier]


def _here_if_possible(folder: Path) -> Path:
    """A folder relative to the current one when it is inside it (names stay short on screen)."""
    try:
        return folder.relative_to(Path.cwd())
    except ValueError:
        return folder


def _copy_journal(journal: Journal, out: Path) -> Path | None:
    """The finished journal copied beside the results workbook, as evidence; None if it fails."""
    from .manifest import journal_copy_path
    from .report import free_path

    try:
        return journal.copy_to(free_path(journal_copy_path(out)))
    except BatchUpdateError as error:  # the journal itself is kept; the manifest names no copy
        _echo(f"Note: {error.message} The run journal is {journal.path}.")
        return None


# The run lock of the sheet being run (one per process), released when the command ends.
_RUN_LOCK: list[object] = []


def _hold_run_lock(file: Path, info: RunInfo) -> None:
    """Hold the lock on the input's content for the rest of the run, or refuse at once.

    Keyed by the SHA-256 of the input, so that a copy of the sheet in another folder is the
    same sheet; kept in the per-user state folder, whatever output.journal_dir says.
    """
    from .journal import RunLock, RunLocked
    from .settings import user_state_folder

    _release_run_lock()
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": info.started.isoformat() if info.started else None,
        "input": info.input_path,
    }
    try:
        lock = RunLock.acquire(user_state_folder() / "locks", info.input_sha256, holder)
    except RunLocked as locked:
        other = locked.holder
        started = None
        try:
            started = datetime.fromisoformat(str(other.get("started")))
        except (TypeError, ValueError):
            pass
        who = f"run {other['run_id']}" if other.get("run_id") else "another batch-update"
        where = f" of {Path(str(other['input'])).name}" if other.get("input") else ""
        raise InputError(
            f"{file.name} is being run right now by {who}{where} (process "
            f"{other.get('pid', 'unknown')} on this machine, started {_when(started)}): a "
            "second run, resume or retry of the same sheet would send its rows a second time. "
            "Nothing was sent.",
            tip="Wait for that run to end, then use --resume or --retry-failed if it did not "
            "send everything. If that process is no longer running, its lock went with it: "
            "run the command again.",
        ) from None
    _RUN_LOCK.append(lock)


def _release_run_lock() -> None:
    while _RUN_LOCK:
        _RUN_LOCK.pop().release()  # type: ignore[attr-defined]


def check_manifest_files(results: Path) -> ExitStatus:
    """Recompute the hashes in a results workbook's manifest; exit 0 if all match, else 1."""
    from .manifest import check_manifest

    checks = check_manifest(results)
    results = Path(next(check.path for check in checks if check.role == "results"))
    for check in checks:
        click.echo(
            ("  ok       " if check.ok else "  CHANGED  " if check.found else "  MISSING  ")
            + check.describe()
        )
    if all(check.ok for check in checks):
        click.echo(
            f"{results.name}: the workbook, the input and the journal are the ones the run produced."
        )
        return ExitStatus.OK
    bad = [check.role for check in checks if not check.ok]
    click.echo(f"{results.name}: {', '.join(bad)} differ from what the run produced.")
    return ExitStatus.ROWS_FAILED


def list_recent_runs(
    file: Path | None, *, config_path: Path | None = None, limit: int = 20
) -> ExitStatus:
    """Print the recent runs in the journal folder, newest first, with how each ended."""
    from .journal import list_runs

    folder = _journal_folder(file, config_path)
    runs = list_runs(
        _searched_folders(folder, file),
        on_skipped=lambda path, error: _echo(f"Note: skipped {path.name}: {error}"),
    )
    if file is not None:
        runs = [r for r in runs if r.input_name.casefold() == file.name.casefold()]
    if not runs:
        click.echo(f"No runs recorded in {folder}.")
        return ExitStatus.OK
    click.echo(f"Runs in {folder} (newest first):")
    click.echo(
        f"  {'run':<22} {'started (UTC)':<17} {'ended':<23} {'rows':>6}  {'input':<24} results"
    )
    for record in runs[:limit]:
        mode = " (dry run)" if record.dry_run else " (simulated)" if record.simulated else ""
        results = Path(record.results_path).name if record.results_path else "-"
        click.echo(
            f"  {record.run_id:<22} {_when(record.started)[:16]:<17} {_how_it_ended(record) + mode:<23} "
            f"{record.row_count:>6,}  {record.input_name:<24} {results}"
        )
    if len(runs) > limit:
        click.echo(f"  ... and {len(runs) - limit} older runs.")
    return ExitStatus.OK


def report_from_journal(
    run_ref: str, file: Path | None, *, out: Path | None, config_path: Path | None, quiet: bool
) -> ExitStatus:
    """Write the results workbook of a run from its journal alone (nothing is sent)."""
    from .journal import find_run
    from .manifest import manifest_path, write_manifest
    from .report import check_output_path, default_results_path, free_path, write_results

    folder = _journal_folder(file, config_path)
    record = find_run(_searched_folders(folder, file, quiet=quiet), run_ref)
    if record is None:
        raise InputError(
            f'No run "{run_ref}" in {folder}.',
            tip="batch-update --runs lists the runs; give a run id, a journal file or a results workbook.",
        )
    with Journal.open(record.path, writable=True) as journal:
        sheet = journal.sheet()
        if sheet is None:
            raise InputError(
                f"The journal of run {record.run_id} does not hold the input sheet; its workbook cannot be rebuilt."
            )
        results = journal.results(include_pending=True)
        # As a run names its outputs: the workbook and its manifest both new (a manifest left
        # from a deleted workbook describes that workbook, and is kept).
        target = (
            Path(out)
            if out
            else free_path(
                default_results_path(
                    Path(record.input_path),
                    record.started,
                    _here_if_possible(Path(record.input_path).parent),
                ),
                companion=manifest_path,
            )
        )
        _check_workbook_name(target)
        check_output_path(target)
        check_output_path(manifest_path(target))
        info = record.to_run_info()
        info.run_id = record.run_id
        info.journal_path = str(Path(record.path).resolve())
        earlier_id = record.resumed_from or record.retry_of
        if earlier_id:
            # Worded as the run itself wrote it, start time included (when that journal is
            # still there), so that the rebuilt Summary says what the original said.
            earlier = find_run(
                [Path(record.path).parent, *_searched_folders(folder, file, quiet=True)],
                earlier_id,
                on_skipped=lambda *_: None,
            )
            info.follows = (
                f"resumes run {earlier_id}"
                if record.resumed_from
                else f"retries the failed rows of run {earlier_id}"
            ) + (f" (started {_when(earlier.started)})" if earlier is not None else "")
        info.notes.append(
            f"Rebuilt from the run journal {Path(record.path).name} on {_when(datetime.now(timezone.utc))}."
        )
        ordered = [results[row.row_number] for row in sheet.rows]
        write_results(target, sheet, ordered, info)
        if not record.results_path:
            journal.set_results_path(target)
        rollback = None
        if info.capture_before:
            # The run may have died before it wrote its rollback workbook: the journal has it all.
            rollback = _write_rollback(Path(record.input_path), ordered, info, target.parent)
    manifest = write_manifest(
        info, target, files={"input": Path(record.input_path), "journal": Path(record.path)}
    )
    click.echo(f"Results workbook of run {record.run_id}: {target}")
    if rollback is not None:
        click.echo(f"Rollback workbook: {rollback}")
    click.echo(f"Manifest: {manifest}")
    return ExitStatus.OK


def _follow_earlier_run(
    folder: Path,
    file: Path,
    info: RunInfo,
    valid: Sequence[PlannedRow],
    *,
    resume: bool,
    retry_failed: str | None,
    again: bool,
    quiet: bool,
    server_url: str | None = None,
) -> Continuation:
    """Which rows this run sends, given the earlier runs of the same input (resume, retry, guard).

    server_url: where this run will send (None: not known yet); rows an earlier run updated on
    another server, or on the simulator, are not updated here, so such a run is not continued.
    """
    from .journal import (
        Phase,
        RunEnd,
        continue_run,
        find_run,
        finished_run_with_input,
        latest_unfinished,
    )

    def skipped(path: Path, error: Exception) -> None:
        log.warning("ignoring %s: %s", path, error)

    # Held from before the earlier runs are read until the command ends: a second process on
    # the same sheet refuses here, before it has read a journal the first one is still writing.
    _hold_run_lock(file, info)
    shown_folder = folder
    folders = _searched_folders(folder, file, quiet=quiet)
    folder = folders  # type: ignore[assignment]  # every journal function takes a list of folders
    earlier = None
    if resume:
        earlier = latest_unfinished(
            folders,
            file.name,
            on_skipped=skipped,
            simulated=info.simulated,
            input_path=info.input_path,
            input_sha256=info.input_sha256,
        )
        if earlier is None:
            raise InputError(
                f"There is no unfinished run of {file.name} to resume in {shown_folder}.",
                tip="batch-update --runs lists the runs and how they ended.",
            )
        _check_same_server(earlier, info, server_url, quiet=quiet)
        info.follows = f"resumes run {earlier.run_id} (started {_when(earlier.started)})"
    elif retry_failed:
        earlier = find_run(folder, retry_failed, on_skipped=skipped)
        if earlier is None:
            raise InputError(
                f'No run "{retry_failed}" in {shown_folder}: give a run id, a journal file or the '
                "results workbook of the run to retry.",
                tip="batch-update --runs lists the runs.",
            )
        _check_same_server(earlier, info, server_url, quiet=quiet)
        if earlier.ended not in (RunEnd.FINISHED, RunEnd.STOPPED):
            raise InputError(
                f"Run {earlier.run_id} did not finish ({_how_it_ended(earlier)}); continue it with "
                "--resume instead, which also checks the rows it was sending when it ended."
            )
        info.follows = (
            f"retries the failed rows of run {earlier.run_id} (started {_when(earlier.started)})"
        )
    if earlier is not None:
        if earlier.input_sha256.lower() != info.input_sha256.lower():
            raise InputError(
                f"{file.name} has changed since run {earlier.run_id} read it (SHA-256 then "
                f"{earlier.input_sha256}, now {info.input_sha256}); its rows may no longer be "
                "the same rows, so it cannot be continued.",
                tip="Run the changed file as a new run (add --again if asked), or restore the "
                "file the run read.",
            )
        with Journal.open(earlier.path) as journal:
            batch = continue_run(journal, valid)
        if retry_failed and not batch.send:
            results = f" Its results: {earlier.results_path}." if earlier.results_path else ""
            raise NothingToSend(
                f"Nothing to retry: run {earlier.run_id} of {file.name} has no row that Failed "
                f"or was Not sent ({len(batch.carried):,} rows it updated are done). Nothing was "
                f"sent and no workbook was written.{results}"
            )
        if resume:
            batch.resumed_from = earlier.run_id
        else:
            batch.retry_of = earlier.run_id
        _keep_evidence(earlier, info, quiet=quiet)
        if info.verify:
            # The evidence covers the rows of both runs: an update the earlier run made but
            # never read back is read back now (never sent again).
            batch.verify_carried = {
                number: result
                for number, result in batch.carried.items()
                if not result.verification.startswith(("Verified", "Mismatch"))
            }
        if not quiet:
            _echo(
                f"Continuing run {earlier.run_id}: {count_text(len(batch.carried), 'row')} already "
                f"updated {'is' if len(batch.carried) == 1 else 'are'} not sent again"
                + (
                    f" ({len(batch.verify_carried):,} of them read back to verify them)"
                    if batch.verify_carried
                    else ""
                )
                + f"; {len(batch.send):,} to send"
                + (
                    f", {len(batch.read_back):,} of them read back first (their outcome was unknown)"
                    if batch.read_back
                    else ""
                )
                + "."
            )
        return batch

    if not again and not info.simulated:
        done = finished_run_with_input(folder, info.input_sha256, on_skipped=skipped)
        if done is not None:
            raise InputError(
                f"{file.name} was already applied by run {done.run_id} on {_when(done.started)}"
                + (f" (results: {Path(done.results_path).name})" if done.results_path else "")
                + ". Running it again would send every row again, and every ticket set to state 2 "
                "would start its Remediation Verification job again.",
                tip=f"Add --again to run it anyway, or --retry-failed {done.run_id} to send only "
                "the rows that failed or were not sent.",
            )
        pending = latest_unfinished(
            folder,
            file.name,
            on_skipped=skipped,
            simulated=info.simulated,
            input_path=info.input_path,
            input_sha256=info.input_sha256,
        )
        if (
            pending is not None
            and not pending.simulated
            and pending.input_sha256.lower() == info.input_sha256.lower()
        ):
            with Journal.open(pending.path) as journal:
                counts = journal.counts()
            if counts.get(Outcome.UPDATED, 0) or counts.get(Phase.SENDING, 0):
                raise InputError(
                    f"Run {pending.run_id} of {file.name} did not finish ({_how_it_ended(pending)}, "
                    f"started {_when(pending.started)}) and had already updated tickets.",
                    tip="Add --resume to continue it without sending those rows again, or "
                    "--again to start over and send every row.",
                )
    return Continuation(send=list(valid))


def _keep_evidence(earlier: RunRecord, info: RunInfo, *, quiet: bool) -> None:
    """A run that continues another keeps its evidence settings: a flag may add evidence, a
    continued run never drops it (the Before columns, the read-back and the rollback then
    cover the rows of both runs)."""
    was = earlier.to_run_info()
    kept = [
        flag
        for flag, before, now in (
            ("--capture-before", was.capture_before, info.capture_before),
            ("--verify", was.verify, info.verify),
        )
        if before and not now
    ]
    if not kept:
        return
    info.capture_before = info.capture_before or was.capture_before
    info.verify = info.verify or was.verify
    # Recorded as the settings this run used, so that the journal (and --report-only) agree.
    info.settings = {**info.settings, "capture_before": info.capture_before, "verify": info.verify}
    if not quiet:
        _echo(
            f"Note: run {earlier.run_id} was made with {' and '.join(kept)}; this run keeps "
            f"{'them' if len(kept) > 1 else 'it'}, so the evidence covers the rows of both runs."
        )


def _check_same_server(
    earlier: RunRecord, info: RunInfo, server_url: str | None, *, quiet: bool = False
) -> None:
    """Refuse to carry rows forward from a run that updated them on another server.

    A run that reached no ticket on its server (nothing updated, no request whose answer was
    not seen: a wrong URL, refused credentials) has nothing to carry forward: it is continued
    on the new server, and that is said.
    """
    if earlier.simulated != info.simulated:
        then, now = ("the simulator", "a live server")
        if not earlier.simulated:
            then, now = now, then
        raise InputError(
            f"Run {earlier.run_id} ran against {then} and this run goes to {now}: the rows it "
            "updated there were not updated here, so it cannot be continued.",
            tip="Run the file as a new run (add --again if asked), or repeat the run with "
            + ("--simulate." if earlier.simulated else "the same server, without --simulate."),
        )

    def same(a: str, b: str) -> bool:
        return a.rstrip("/").casefold() == b.rstrip("/").casefold()

    if server_url and earlier.server_url and not same(earlier.server_url, server_url):
        if _reached_nothing(earlier):
            if not quiet:
                _echo(
                    f"Note: run {earlier.run_id} went to {earlier.server_url} and updated no "
                    f"ticket there; this run sends its rows to {server_url}."
                )
            return
        raise InputError(
            f"Run {earlier.run_id} sent its updates to {earlier.server_url}; this run goes to "
            f"{server_url}: the rows it updated there were not updated here, so it cannot be "
            "continued.",
            tip=f"Use --url {earlier.server_url} to continue it, or run the file as a new run "
            "against the other server (add --again if asked).",
        )


def _reached_nothing(record: RunRecord) -> bool:
    """True if a run updated no ticket and has no request whose answer it did not see."""
    from .journal import Phase

    with Journal.open(record.path) as journal:
        counts = journal.counts()
    in_doubt = [key for key in counts if str(key) in ("Unknown", str(Phase.SENDING))]
    return not counts.get(Outcome.UPDATED, 0) and not any(counts[key] for key in in_doubt)


def _how_it_ended(record: RunRecord) -> str:
    """How a run ended, in words: a journal still marked "running" is "unfinished".

    Its process was killed, crashed or lost its machine (or is running elsewhere right now): either
    way it did not finish, and --resume continues it. "running" would suggest it is alive.
    """
    from .journal import RunEnd

    return "unfinished" if record.ended is RunEnd.RUNNING else record.ended.value


def _when(moment: datetime | None) -> str:
    return (
        moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        if moment
        else "an unknown time"
    )


def _create_journal(
    folder: Path,
    info: RunInfo,
    rows: Sequence[PlannedRow | RowResult],
    sheet: Sheet,
    batch: Continuation,
) -> Journal:
    from .journal import RunStart

    start = RunStart(
        input_path=info.input_path,
        input_sha256=info.input_sha256,
        sheet_name=info.sheet_name,
        settings=info.settings,  # described once, when the run started
        server_url=info.server_url,
        ccs_user=info.ccs_user,
        operator=info.operator,
        tool_version=info.tool_version,
        simulated=info.simulated,
        resumed_from=batch.resumed_from,
        retry_of=batch.retry_of,
        notes=tuple(info.notes),
        started=info.started,
    )
    journal = Journal.create(folder, start, rows, sheet=sheet)
    info.run_id = journal.run_id
    # Sending starts next. Everything built so far (the sheet, the plan) lives until the end of
    # the run: one full collection now, and freezing what survives, keeps a collector pass over
    # all of it from pausing the first paced requests (a pause bunches the requests after it).
    import gc

    gc.collect()
    gc.freeze()
    for lock in _RUN_LOCK:
        lock.name_run(journal.run_id)  # type: ignore[attr-defined]
    # Absolute, like the input path: the Summary must say where the journal is from anywhere.
    info.journal_path = str(Path(journal.path).resolve())
    return journal


def _concurrency_text(concurrency: int | str) -> str:
    """ "4 at a time", or what automatic concurrency means, for the start-of-run line."""
    from .runner import AUTO_MAX_WORKERS, AUTO_START_WORKERS

    if isinstance(concurrency, int):
        return f"{concurrency} at a time"
    return f"{AUTO_START_WORKERS} to {AUTO_MAX_WORKERS} at a time, as the response time needs"


def _send(
    valid: Sequence[PlannedRow],
    settings: Settings,
    info: RunInfo,
    start_journal: Callable[[], Journal],
    *,
    read_back: set[int],
    known_before: dict[int, dict[str, object]],
    known_forbidden: set[int],
    check_carried: dict[int, RowResult],
    simulate: bool,
    yes: bool,
    quiet: bool,
    transport: Transport,
) -> tuple[dict[int, RowResult], bool, bool, Journal | None, str]:
    """Connect, confirm, and send the valid rows.

    Returns (results by row, interrupted, stopped, the run's journal, why the journal could not
    be written or ""). The journal is created
    once the run is confirmed, before the first request; it holds every row from then on.
    """
    from .ccs import CcsClient
    from .pacing import RateLimiter
    from .runner import RetryPolicy, Sender, StopPolicy
    from .settings import AUTO, Secret

    with ExitStack() as stack:
        if simulate:
            from .sim import DEFAULT_USERS, Simulator

            admin = next(user for user in DEFAULT_USERS if user.remediation_admin)
            sim = stack.enter_context(Simulator(port=0, **SIMULATED_SERVER))
            url, username, password = sim.url, admin.name, Secret(admin.password)
            encoding = "base64"
            if not quiet:
                _echo(f"Simulated CCS server at {url} (nothing real is touched).")
        else:
            url, username, password, encoding = _credentials(settings, valid, transport)
        info.server_url = url
        info.ccs_user = username

        if not valid:
            return {}, False, False, start_journal(), ""
        ask = not simulate and not yes
        if ask and not sys.stdin.isatty():
            _confirm(
                len(valid) - len(check_carried), url, username, settings
            )  # refuses: no terminal
        # Certificates are verified unless the user said --insecure in so many words.
        verified = not (transport.insecure and not simulate)
        ca: bool | str = str(settings.ca_bundle) if settings.ca_bundle else True
        verify = ca if verified else False
        if not verified:
            warnings.filterwarnings("ignore", message="Unverified HTTPS request")
            _echo(
                f"WARNING: --insecure: the TLS certificate of {url} is NOT verified; anyone "
                "between this machine and the server could read the password and the tickets."
            )
            info.notes.append(
                "TLS certificate verification was turned OFF for this run (--insecure)."
            )
        client = CcsClient(
            url,
            username,
            password,
            password_encoding=encoding,
            verify=verify,
            timeout=(settings.connect_timeout, settings.read_timeout),
            token_lifetime=settings.token_lifetime,
        )
        stack.callback(client.close)
        # Logged in before the question and before the journal: a refused login or an
        # unreachable server stops here (AuthError, ServerUnreachable), with nothing sent and
        # no run to account for.
        client.login()
        if ask:
            _confirm(len(valid) - len(check_carried), url, username, settings)
        journal = start_journal()

        if not quiet:  # said before the bar is drawn, so that it stands above it
            _echo(
                f"Sending {len(valid) - len(check_carried):,} updates to {url} as {username} at "
                f"{settings.rate:g} requests/s ({_concurrency_text(settings.concurrency)}); "
                f"run {journal.run_id}."
            )
        progress = TerminalProgress(len(valid), quiet=quiet)
        stack.callback(progress.close)
        with Interrupts() as interrupts:
            sender = Sender(
                client,
                RateLimiter(settings.rate),
                concurrency=None if settings.concurrency == AUTO else int(settings.concurrency),
                retry=RetryPolicy(
                    max_attempts=settings.max_attempts,
                    backoff_base=settings.backoff_base,
                    backoff_cap=settings.backoff_cap,
                    max_throttled=settings.max_throttled,
                ),
                stop_policy=StopPolicy(
                    forbidden_at_start=settings.stop_forbidden_at_start,
                    transient_streak=settings.stop_transient_streak,
                ),
                progress=progress,
                on_sending=lambda row: journal.mark_sending(row.row_number),
                on_result=lambda result: journal.record(
                    result, verified=result.verification or None
                ),
                cancel=interrupts.cancel,
                abandon=interrupts.abandon,
                read_back_first=read_back,
                known_before=known_before,
                known_forbidden=known_forbidden,
                check_carried=check_carried,
                on_before=lambda row, before: journal.record_before(row.row_number, before),
                capture_before=info.capture_before,
                verify=info.verify,
            )
            report = sender.run(valid)
        progress.close()
        if report.stopped_reason and not report.interrupted:
            info.stopped_reason = report.stopped_reason
        elif report.interrupted:
            info.stopped_reason = "interrupted (Ctrl-C or a stop signal)"
        if settings.concurrency == AUTO:
            info.workers = report.workers
        if client.token_renewals:
            info.notes.append(
                f"The access token was renewed {client.token_renewals} time(s) during the run."
            )
        # Rows abandoned in flight stay "sending" in the journal: a resume reads them back.
        return (
            report.results,
            report.interrupted,
            report.stopped and not report.interrupted,
            journal,
            report.record_failed,
        )


# The simulated server of --simulate: the samples' tickets exist, a few are restricted (403) and
# one always fails (500), so that the demo shows every outcome a real sweep can have.
SIMULATED_SERVER: dict[str, Any] = {"tickets": 1000, "seed": 7, "fail_tickets": {"INCA0000777"}}


@dataclass(frozen=True)
class Transport:
    """The transport choices only the command line can make, never a config file."""

    insecure: bool = False
    allow_http: bool = False


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _credentials(
    settings: Settings, valid: Sequence[PlannedRow], transport: Transport
) -> tuple[str, str, Secret, str]:
    from .errors import ConfigError
    from .settings import Secret

    interactive = sys.stdin.isatty()
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
        if not interactive:
            raise ConfigError(
                "No CCS user name given.",
                tip="Pass --user 'corp\\svc-ccs', set CCS_USERNAME, or set auth.username in the config.",
            )
        username = click.prompt("CCS user name (domain\\user)")
    password = settings.password
    if password is None:
        password = _password_from_keyring(url, username)
    if password is None:
        if not interactive:
            raise ConfigError(
                f"No password for {username}.",
                tip="Set the CCS_PASSWORD environment variable (it is never read from the config "
                "file or the command line), or run in a terminal to be asked.",
            )
        password = Secret(click.prompt(f"Password for {username} on {url}", hide_input=True))
    encoding = getattr(settings.password_encoding, "value", settings.password_encoding)
    return url, username, password, str(encoding)


KEYRING_SERVICE = "batch-update"


def _password_from_keyring(url: str, username: str) -> Secret | None:
    """The password kept in the system keyring for this server and user, if the optional
    keyring package is installed and holds one (service "batch-update", name "user@url")."""
    try:
        import keyring  # type: ignore[import-not-found,unused-ignore]  # optional extra
    except ImportError:
        return None
    from .settings import Secret

    try:
        value = keyring.get_password(KEYRING_SERVICE, f"{username}@{url}")
    except Exception as exc:  # a locked or absent keyring backend: fall back to the prompt
        log.info("keyring not usable: %s", type(exc).__name__)
        return None
    return Secret(value) if value else None


def _confirm(count: int, url: str, username: str, settings: Settings) -> None:
    from .errors import ConfigError

    question = (
        f"About to update {count:,} ticket{'s' if count != 1 else ''} on {url} as {username} "
        f"at {settings.rate:g} requests/s. Continue?"
    )
    if not sys.stdin.isatty():
        raise ConfigError(
            question.replace(" Continue?", "") + " Refusing without a terminal to confirm.",
            tip="Add --yes to confirm in advance (for scheduled or scripted runs).",
        )
    if not click.confirm(question, default=False, err=True):
        raise ConfigError("Cancelled; nothing was sent.")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the batch-update command."""
    command.main(args=list(argv) if argv is not None else None, prog_name="batch-update")
