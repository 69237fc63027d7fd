"""What `export` and `show` print: the core function called with the terminal as its console,
and its outcome told."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from .common import ExitStatus, _echo, _fail
from .running import command_settings, on_terminal


def _transport(given: dict[str, Any]) -> Any:
    from ..sweep import Transport

    return Transport(
        insecure=bool(given.pop("insecure", False)),
        allow_http=bool(given.pop("allow_http", False)),
    )


def export_tickets(options: Mapping[str, Any]) -> ExitStatus:
    """Export as the command's options say; returns the exit status."""
    from ..sweep import ExportRequest, export, search_query

    given, console, verbose, config_path = on_terminal(options)
    state = given.pop("state", None)
    request = ExportRequest(
        out=given.pop("out", None),
        query=search_query([state] if state else [], given.pop("filters", ())),
        simulate=bool(given.pop("simulate", False)),
        transport=_transport(given),
        page_size=int(given.pop("page_size", 500)),
    )
    settings = command_settings(given, config_path, verbose, request.out, console)
    outcome = export(request, settings, console)
    for note in outcome.notes:
        console.note(f"Note: {note}.")
    if outcome.error is not None:
        _fail(outcome.error)
    if outcome.status is ExitStatus.OK:
        click.echo(outcome.message)
    else:
        _echo(outcome.message)
        if outcome.tip:
            _echo(f"Tip: {outcome.tip}")
    if outcome.workbook is not None:
        click.echo(f"Export workbook:  {outcome.workbook}")
        click.echo(f"Manifest:         {outcome.manifest}")
        console.note(
            "Edit State, Priority, Assigned To or Description (an empty cell leaves a field as "
            f"it is), then run: batch-update {_typed(outcome.workbook)}"
        )
    return outcome.status


def _typed(path: Any) -> str:
    from ..sweep.common import _quoted

    return _quoted(path)


def show_ticket(ticket: str, options: Mapping[str, Any]) -> ExitStatus:
    """Show one ticket as the server sends it; returns the exit status."""
    from ..sweep import ShowRequest, show
    from .terminal import TerminalConsole

    given = dict(options)
    console = TerminalConsole(quiet=True)  # stdout is the server's answer, nothing else
    verbose = bool(given.pop("verbose", False))
    config_path = given.pop("config_path", None)
    request = ShowRequest(
        ticket, simulate=bool(given.pop("simulate", False)), transport=_transport(given)
    )
    settings = command_settings(given, config_path, verbose, None, console)
    outcome = show(request, settings, console)
    if outcome.text:
        click.echo(outcome.text.rstrip("\n"))
    if outcome.status is ExitStatus.OK:
        spelling = f"; keys in {outcome.key_spelling}" if outcome.key_spelling else ""
        _echo(f"({outcome.message} from {outcome.server_url}{spelling})")
    else:
        _echo(f"{ticket}: {outcome.message}")
    return outcome.status
