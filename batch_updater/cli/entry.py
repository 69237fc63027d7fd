"""The click command: its options, the help with the exit codes, and which job the options ask for."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .. import __version__
from ..errors import BatchUpdateError
from .common import EXIT_CODES_HELP, ExitStatus, NothingToSend, _echo, _fail, log
from .earlier import _release_run_lock
from .records import (
    check_manifest_files,
    list_recent_runs,
    report_from_journal,
    rollback_from_journal,
)
from .sweep import _close_logging, run

if TYPE_CHECKING:  # imported where used, so that --help stays quick
    pass


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
        status = ExitStatus.INTERNAL_ERROR
    finally:
        _close_logging()
        _release_run_lock()
    sys.exit(int(status))


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


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the batch-update command."""
    command.main(args=list(argv) if argv is not None else None, prog_name="batch-update")
