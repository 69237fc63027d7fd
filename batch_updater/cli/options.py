"""The option groups the commands share, each one decorator: a command lists the groups it takes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def _group(*options: Callable[[F], F]) -> Callable[[F], F]:
    """One decorator of several options, listed in --help in the order written here."""

    def decorate(function: F) -> F:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


_simulate_option = click.option(
    "--simulate",
    is_flag=True,
    help="Run against the built-in CCS simulator on this machine (nothing real is touched).",
)
_yes_option = click.option(
    "-y", "--yes", is_flag=True, help="Do not ask for confirmation before a live run."
)
# The server, who logs in, and how the connection is checked.
_connection_options = _group(
    click.option("--url", help="CCS server, e.g. https://ccs01.corp.local:12431 [env CCS_URL]."),
    click.option(
        "--user", "username", help="CCS user name, e.g. corp\\svc-ccs [env CCS_USERNAME]."
    ),
    click.option(
        "--password-encoding",
        type=click.Choice(["base64", "plain"]),
        help="How the token request carries the password [default: base64].",
    ),
    click.option(
        "--insecure",
        is_flag=True,
        help="Do not verify the server's TLS certificate (warned on every run, recorded in the "
        "workbook).",
    ),
    click.option(
        "--allow-http",
        is_flag=True,
        help="Allow plain http:// to a server that is not on this machine.",
    ),
    click.option(
        "--ca-bundle",
        type=click.Path(path_type=Path, dir_okay=False),
        help="CA certificate(s) for an internal CA.",
    ),
)
# Where a command that reads without simulating goes (compare).
connection_options = _connection_options
# Where the run goes: the server, who logs in, and how the connection is checked.
server_options = _group(_simulate_option, _yes_option, _connection_options)
# Where a command that only reads goes (export, show): no confirmation to skip.
reading_options = _group(_simulate_option, _connection_options)

# How fast the requests go.
pace_options = _group(
    click.option("--rate", type=float, help="Requests per second, never exceeded [default: 5]."),
    click.option(
        "--concurrency",
        metavar="N|auto",
        help="Requests in flight at once; auto adds workers (4 to 32) as the server's response "
        "time needs [default: auto].",
    ),
)

sheet_option = click.option(
    "--sheet", help="Sheet to read [default: the only one, or one named like Tickets]."
)

out_option = click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Results workbook path [default: beside the input].",
)

csv_option = click.option(
    "--csv", "write_csv", is_flag=True, default=None, help="Also write the results as CSV."
)

# What evidence a run gathers beyond the server's answer.
evidence_options = _group(
    click.option(
        "--capture-before",
        is_flag=True,
        default=None,
        help="Read each ticket before updating it: Before columns and a rollback workbook.",
    ),
    click.option(
        "--verify",
        is_flag=True,
        default=None,
        help="Read each updated ticket back and compare it with what was sent.",
    ),
)

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Config file [default: ./batch-update.yaml, then the user config folder].",
)

quiet_option = click.option(
    "-q", "--quiet", is_flag=True, help="No progress bar, no notices; errors and the summary only."
)

# What the terminal and the log show of a run.
log_options = _group(
    click.option(
        "-v", "--verbose", is_flag=True, help="Log every request on the terminal (never secrets)."
    ),
    click.option(
        "--log-file",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Write the per-request log to this file.",
    ),
)

debug_option = click.option(
    "--debug", is_flag=True, help="Show the traceback of an internal error (for a bug report)."
)

again_option = click.option(
    "--again", is_flag=True, help="Run FILE even though a finished run already applied it."
)

overwrite_option = click.option(
    "--overwrite-conflicts",
    is_flag=True,
    help="Send a row even when its ticket changed in CCS since the export the sheet was made "
    "from (each such row says so in the workbook).",
)

rollback_again_option = click.option(
    "--again", is_flag=True, help="Roll RUN back even though it was rolled back already."
)

# Every option of a command that sends: the server, the pace, the outputs, the terminal.
sending_options = _group(
    server_options,
    pace_options,
    out_option,
    csv_option,
    config_option,
    quiet_option,
    log_options,
)

file_argument = click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
optional_file_argument = click.argument(
    "file", type=click.Path(path_type=Path, dir_okay=False), required=False
)
run_argument = click.argument("run_ref", metavar="RUN")
