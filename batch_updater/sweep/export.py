"""`export`: the tickets a Search query matches, read in pages, as a workbook to edit.

The workbook has the columns the reader recognises, the context the server gives (asset,
standard, dates...), hidden "as exported" columns, and a hidden sheet with the export's
identity, so that a sweep of the edited sheet knows what each ticket held when it was made.
It talks to the user only through the Console, like the run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..errors import AuthError, BatchUpdateError, ConfigError, ServerUnreachable
from ..exported import ExportedTicket, ExportIdentity, context_keys, rows_sha256
from ..tickets import Field, count_text
from .common import _operator, log
from .outcome import ExitStatus, Transport
from .server import logged_in

if TYPE_CHECKING:
    from ..ccs import CcsClient
    from ..runner.pages import PageRead
    from ..settings import Settings
    from .console import Console

DEFAULT_PAGE_SIZE = 500
# A Search filter: a field name, "=", a value; the vendor's syntax has no way to quote "," or ")".
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z ]*")
_UNQUOTABLE = set(",()")


@dataclass(frozen=True)
class ExportRequest:
    """An export, as the user asked for it (the settings come separately)."""

    out: Path | None = None
    query: tuple[tuple[str, str], ...] = ()  # Search fields, e.g. (("TicketState", "1"),)
    simulate: bool = False
    transport: Transport = field(default_factory=Transport)
    page_size: int = DEFAULT_PAGE_SIZE


@dataclass(frozen=True)
class ExportOutcome:
    """How an export went: what the command line prints, and the exit status."""

    status: ExitStatus
    message: str
    identity: ExportIdentity | None = None
    workbook: Path | None = None
    manifest: Path | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    error: BatchUpdateError | None = None  # why nothing could be read (the login failed...)
    tip: str = ""  # what to try, when the export failed
    timings: Mapping[str, float] = field(default_factory=dict)  # seconds: login, read, write
    pages: int = 0  # the pages that held tickets (the Search requests needed)


def search_query(states: Sequence[str], filters: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """The Search fields of `--state` and `--filter Field=value` options; ConfigError if bad.

    Field names may be the API's (`AssignedTo`) or the sheet's (`Assigned To`, `State`); a
    state may be its number or its name. Each field once: Search's comma means AND.
    """
    from ..validate import alias_field, parse_state

    query: dict[str, str] = {}
    given = [("--state", f"State={state}") for state in states]
    given += [("--filter", text) for text in filters]
    for option, text in given:
        name, equals, value = text.partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not _FIELD_NAME.fullmatch(name) or not value:
            raise ConfigError(
                f"{option} {text!r}: expected Field=value, e.g. --filter AssignedTo=corp\\jdoe "
                "or --filter Standard=PCI."
            )
        if _UNQUOTABLE & set(value):
            raise ConfigError(
                f"{option} {text!r}: a value cannot hold a comma or a parenthesis (CCS's Search "
                "has no way to quote them)."
            )
        fld = alias_field(name)
        api_name = fld.value if fld is not None else name.replace(" ", "")
        if fld is Field.TICKET_STATE:
            state = parse_state(value)
            if state is None:
                raise ConfigError(
                    f"{option} {text!r}: {value!r} is not a ticket state.",
                    tip="A state is its number or its name: 1 Open, 2 Remediation Performed, "
                    "3 Verified, 4 Failed, 5 Not Applicable.",
                )
            value = str(int(state))
        if api_name in query and query[api_name] != value:
            raise ConfigError(
                f"{option} {text!r}: {api_name} is asked for twice "
                f"({query[api_name]} and {value}); a Search matches one value per field."
            )
        query[api_name] = value
    return tuple(query.items())


def context_headers(keys: Sequence[str]) -> list[tuple[str, str]]:
    """(key, header) for every context key: the key in words ("LastModified" -> "Last
    Modified"), and "(exported)" after any header that reads like a ticket field, so that a
    sweep of the sheet never takes a context column for a value to send."""
    from ..validate import alias_field, looks_like_field

    headers: list[tuple[str, str]] = []
    taken = {"ticket number", "state", "priority", "assigned to", "description"}
    for key in keys:
        words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", key)
        header = " ".join(words.replace("_", " ").split()) or key
        header = header[:1].upper() + header[1:]
        if alias_field(header) is not None or looks_like_field(header) is not None:
            header = f"{header} (exported)"
        while header.casefold() in taken:
            header = f"{header} (2)"
        taken.add(header.casefold())
        headers.append((key, header))
    return headers


def _default_path(settings: Settings, moment: datetime) -> Path:
    from ..report import free_path

    folder = settings.output_dir or Path.cwd()
    name = f"tickets-export-{moment.strftime('%Y%m%d-%H%M%S')}.xlsx"
    return free_path(folder / name, companion=_manifest_of)


def _manifest_of(path: Path) -> Path:
    from ..manifest import manifest_path

    return manifest_path(path)


def export(request: ExportRequest, settings: Settings, console: Console) -> ExportOutcome:
    """Read the tickets the query matches, in pages, and write them as a workbook to edit."""
    from ..report import check_output_path

    started = datetime.now(timezone.utc).replace(microsecond=0)
    target = request.out or _default_path(settings, started)
    check_output_path(target)
    query_text = ",".join(f"{name}={value}" for name, value in request.query)
    timings: dict[str, float] = {}
    try:
        with ExitStack() as stack:
            began = time.perf_counter()
            login, client = logged_in(stack, settings, request, console)
            timings["login"] = time.perf_counter() - began
            console.note(
                f"Reading tickets from {login.url} as {login.username}"
                f"{' where ' + query_text if query_text else ''}, in pages of "
                f"{request.page_size}, at {settings.rate:g} requests/s."
            )
            began = time.perf_counter()
            read = _read_pages(client, settings, request, console)
            timings["read"] = time.perf_counter() - began
    except (AuthError, ServerUnreachable) as error:
        # The login failed, or the server could not be reached: nothing was read.
        return ExportOutcome(ExitStatus.STOPPED, "Nothing was exported.", error=error)
    if read.stopped:
        return ExportOutcome(ExitStatus.INTERRUPTED, "Interrupted; nothing was written.")
    if read.failure:
        return ExportOutcome(
            ExitStatus.STOPPED,
            f"Reading the tickets failed after {count_text(read.requests, 'Search request')}: "
            f"{read.failure}. Nothing was written.",
            notes=read.notes,
            tip="If the server refused the query (HTTP 400), check the --filter field names; "
            "`batch-update show TICKET` prints a ticket as your CCS gives it.",
        )
    tickets = [t for t in (ExportedTicket.from_answer(raw) for raw in read.tickets) if t]
    identity = ExportIdentity(
        server_url=login.url,
        ccs_user=login.username,
        query=request.query,
        exported_at=started,
        count=len(tickets),
        rows_sha256=rows_sha256(tickets),
        tool_version=__version__,
        operator=_operator(),
        page_size=read.page_size,
        requests=read.requests,
        simulated=request.simulate,
    )
    if not tickets:
        where = f" {query_text}" if query_text else ""
        return ExportOutcome(
            ExitStatus.OK,
            f"No ticket matched{where or ' (the account sees no ticket)'}; nothing was written.",
            identity,
            notes=read.notes,
        )
    began = time.perf_counter()
    outcome = _write(target, tickets, identity, settings, read, console)
    timings["write"] = time.perf_counter() - began
    return replace(outcome, timings=timings, pages=read.pages)


def _read_pages(
    client: CcsClient, settings: Settings, request: ExportRequest, console: Console
) -> PageRead:
    from ..pacing import RateLimiter
    from ..runner.pages import PageReader
    from .sending import retry_policy

    def tell(reason: str, delay: float) -> None:
        console.note(f"Retrying {reason}, in {delay:.1f} s.")

    with console.sending() as stops:
        reader = PageReader(
            client,
            RateLimiter(settings.rate),
            retry_policy(settings),
            halt=stops.cancel,
            page_size=request.page_size,
            tell=tell,
        )
        read = reader.read(request.query)
    for note in read.notes:
        log.info("export: %s", note)
    return read


def _write(
    target: Path,
    tickets: list[ExportedTicket],
    identity: ExportIdentity,
    settings: Settings,
    read: PageRead,
    console: Console,
) -> ExportOutcome:
    from ..manifest import write_export_manifest
    from ..report import write_export

    with console.writing():
        write_export(
            target,
            tickets,
            identity,
            context_headers=context_headers(context_keys(tickets)),
            priorities=settings.priorities,
        )
        manifest = write_export_manifest(identity, target)
    return ExportOutcome(
        ExitStatus.OK,
        f"Exported {count_text(len(tickets), 'ticket')} in "
        f"{count_text(read.requests, 'Search request')} (pages of {read.page_size}).",
        identity,
        target,
        manifest,
        read.notes,
    )
