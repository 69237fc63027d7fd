"""`batch-update export`: the tickets a Search matches, as a workbook to edit and run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..common import ExitStatus
from ..guard import CONTEXT, SAME_EXIT_CODES, guarded
from ..options import (
    config_option,
    debug_option,
    log_options,
    pace_options,
    quiet_option,
    reading_options,
)


@click.command("export", context_settings=CONTEXT, epilog=SAME_EXIT_CODES)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Workbook to write [default: tickets-export-<UTC time>.xlsx in the current folder].",
)
@click.option(
    "--state", metavar="STATE", help="Only tickets in this state: 1-5 or its name, e.g. Open."
)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Only tickets whose FIELD is VALUE, e.g. Standard=PCI or AssignedTo=corp\\jdoe; "
    "repeat to narrow further (all must match).",
)
@click.option(
    "--page-size",
    type=click.IntRange(10, 10_000),
    default=500,
    show_default=True,
    help="Tickets per Search request; a size the server refuses is halved.",
)
@reading_options
@pace_options
@config_option
@quiet_option
@log_options
@debug_option
@guarded
def export_command(**options: Any) -> ExitStatus:
    """Export the tickets a Search matches as a workbook to edit, then run.

    The workbook has the columns a run reads (Ticket Number, State, Priority, Assigned To,
    Description) with drop-down lists for State and Priority, the context the server gives
    (asset, standard, dates), and hidden columns and a hidden sheet that record what each ticket
    held at export time. Nothing is changed on the server.
    """
    from ..exporting import export_tickets

    return export_tickets(options)
