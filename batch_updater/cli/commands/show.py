"""`batch-update show TICKET`: one ticket exactly as the server sends it."""

from __future__ import annotations

from typing import Any

import click

from ..common import ExitStatus
from ..guard import CONTEXT, SAME_EXIT_CODES, guarded
from ..options import config_option, debug_option, log_options, reading_options


@click.command("show", context_settings=CONTEXT, epilog=SAME_EXIT_CODES)
@click.argument("ticket")
@reading_options
@config_option
@log_options
@debug_option
@guarded
def show_command(ticket: str, **options: Any) -> ExitStatus:
    """Print the JSON the server returns for TICKET, exactly as sent.

    For support: it shows which key spelling and which fields your CCS version uses. No
    password or token appears in it. Exit 1 if the server does not return the ticket.
    """
    from ..exporting import show_ticket

    return show_ticket(ticket, options)
