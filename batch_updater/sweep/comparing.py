"""`compare`: this sweep against the last one (or any two runs), ticket by ticket, from their
journals, never from workbooks a person may have edited.

Each run's rows are read from the journal copy beside its results workbook when its manifest
vouches for it (the copy's SHA-256 checked: a changed copy is refused), else from the run
journal. The tickets our last write touched are read from CCS (in pages, through the limiter)
to find the ones someone changed since, unless `offline`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ..comparison import Comparison, by_ticket, changed_since, compare, ticket_key, written_tickets
from ..errors import AuthError, InputError, ServerUnreachable
from ..journal import Journal, JournalError, RunRecord
from ..tickets import RowResult, count_text
from .common import _when
from .earlier import _journal_folder, _searched_folders
from .outcome import ExitStatus, Transport
from .server import logged_in

if TYPE_CHECKING:
    from ..ccs import CcsClient
    from ..settings import Settings
    from .console import Console

NO_SUCH_RUN_TIP = (
    "batch-update runs lists the runs; give a run id, a journal file or a results workbook."
)


@dataclass(frozen=True)
class CompareRequest:
    """A comparison of two runs: B, and A (None: the run before B of the same input)."""

    run_b: str
    run_a: str | None = None
    offline: bool = False
    out: Path | None = None
    transport: Transport = field(default_factory=Transport)
    simulate: bool = False  # never: a simulator keeps no tickets between runs (see Reach)


@dataclass(frozen=True)
class RunSide:
    """One run of the comparison: its record, its rows, where they were read and how checked."""

    record: RunRecord
    results: Sequence[RowResult]
    source: str  # the journal the rows were read from
    checked: str  # what the manifest check found


@dataclass(frozen=True)
class CompareOutcome:
    status: ExitStatus
    comparison: Comparison
    a: RunSide
    b: RunSide
    baseline: str  # how run A was chosen
    current: str  # how the tickets' current values were read (or why not)
    workbook: Path | None = None


def compare_runs(request: CompareRequest, settings: Settings, console: Console) -> CompareOutcome:
    """Compare two runs, read what our last writes became, and write the comparison workbook."""
    from ..report import check_output_path, free_path, write_comparison

    folder = _journal_folder(None, settings=settings)
    folders = _searched_folders(folder, None, console.note)
    record_b = _record(request.run_b, folders, folder)
    if request.run_a is not None:
        record_a = _record(request.run_a, folders, folder)
        baseline = f"run {record_a.run_id}, as asked"
    else:
        record_a, baseline = _previous(record_b, folders)
    if record_a.run_id == record_b.run_id:
        raise InputError(f"Run {record_b.run_id} is given twice: compare two different runs.")
    a, b = _side(record_a, request.run_a), _side(record_b, request.run_b)
    earlier = _earlier_rows(record_b, folders)
    _say_if_apart(record_a, record_b, console)
    comparison = compare(a.results, b.results, earlier)
    current = _current(request, settings, console, comparison, record_b)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    target = request.out or free_path(
        (settings.output_dir or Path.cwd())
        / f"{Path(record_b.input_name).stem}.compare-{stamp}.xlsx"
    )
    check_output_path(target)
    outcome = CompareOutcome(ExitStatus.OK, comparison, a, b, baseline, current)
    with console.writing():
        write_comparison(target, summary_items(outcome), comparison)
    return replace(outcome, workbook=target)


def _say_if_apart(a: RunRecord, b: RunRecord, console: Console) -> None:
    """Warn when the two runs went to different servers (or one to the simulator)."""
    from .server import same_server

    if a.simulated != b.simulated or not same_server(a.server_url or "-", b.server_url or "-"):
        where_a = "the simulator" if a.simulated else a.server_url
        where_b = "the simulator" if b.simulated else b.server_url
        console.warn(
            f"Warning: run A went to {where_a}, run B to {where_b}: their tickets are not the "
            "same tickets, whatever their numbers."
        )


def _record(ref: str, folders: list[Path], shown: Path) -> RunRecord:
    """A run by id, journal file or results workbook; a workbook whose run journal is gone is
    read from the journal copy beside it."""
    from ..journal import find_run, read_run
    from ..manifest import journal_copy_path

    try:
        record = find_run(folders, ref)
    except JournalError as exc:
        raise InputError(f"{ref}: {exc}", tip=NO_SUCH_RUN_TIP) from exc
    if record is None and Path(ref).is_file() and journal_copy_path(Path(ref)).is_file():
        try:
            record = read_run(journal_copy_path(Path(ref)))
        except JournalError as exc:
            raise InputError(f"{ref}: its journal copy cannot be read: {exc}") from exc
    if record is None:
        raise InputError(
            f'No run "{ref}" in {shown}, and no journal copy beside it: its journal is missing.',
            tip=NO_SUCH_RUN_TIP,
        )
    return record


def _runs_of_input(record: RunRecord, folders: list[Path]) -> list[RunRecord]:
    """The live (or, for a simulated run, simulated) runs of the same input name, newest first."""
    from ..journal import list_runs

    return [
        run
        for run in list_runs(folders)
        if run.input_name.casefold() == record.input_name.casefold()
        and not run.dry_run
        and run.simulated == record.simulated
    ]


def _previous(record: RunRecord, folders: list[Path]) -> tuple[RunRecord, str]:
    """The run before B of the same input: the newest one started before it that is not part
    of B's own sweep (a run B resumes or retries, or one of theirs)."""
    runs = _runs_of_input(record, folders)
    own = _chain(record, runs)
    earlier = [
        run
        for run in runs
        if (run.started, run.run_id) < (record.started, record.run_id) and run.run_id not in own
    ]
    if not earlier:
        raise InputError(
            f"There is no run of {record.input_name} before run {record.run_id} to compare "
            "it with.",
            tip="Name both runs: batch-update compare RUN_A RUN_B (batch-update runs lists them).",
        )
    chosen = earlier[0]
    skipped = (
        f"; runs {', '.join(sorted(own - {record.run_id}))} are B's own sweep"
        if len(own) > 1
        else ""
    )
    return chosen, (
        f"run {chosen.run_id} (started {_when(chosen.started)}), the last run of "
        f"{record.input_name} before B{skipped}"
    )


def _chain(record: RunRecord, runs: Sequence[RunRecord]) -> set[str]:
    """B and the runs it continues (resumed from, retried), back to the first."""
    by_id = {run.run_id: run for run in runs}
    chain, run = {record.run_id}, record
    while (run.resumed_from or run.retry_of) in by_id:
        run = by_id[run.resumed_from or run.retry_of]  # type: ignore[index]
        chain.add(run.run_id)
    return chain


def _side(record: RunRecord, given: str | None) -> RunSide:
    """The run's rows, from the journal copy its manifest vouches for, else its journal."""
    from ..manifest import check_manifest, manifest_path

    workbook = _workbook_of(record, given)
    source, checked = record.path, "no manifest (the run wrote no results workbook)"
    if workbook is not None and manifest_path(workbook).is_file():
        checks = {check.role: check for check in check_manifest(workbook)}
        journal = checks.get("journal")
        if journal is not None and journal.found is not None and not journal.ok:
            raise InputError(
                f"The journal copy of run {record.run_id} ({journal.path}) has changed since "
                f"the run wrote it (SHA-256 now {journal.found[:16]}..., its manifest records "
                f"{journal.expected[:16]}...): it is not the run's record, so it is not compared.",
                tip=f"Restore the copy from where the evidence is kept; batch-update check "
                f"{workbook.name} says which files changed.",
            )
        if journal is not None and journal.ok:
            source = Path(journal.path)
        bad = [role for role, check in checks.items() if not check.ok]
        checked = (
            "manifest checked: every file unchanged"
            if not bad
            else f"manifest checked: {', '.join(bad)} changed or missing (the rows are read "
            "from the journal, not the workbook)"
        )
    elif workbook is not None:
        checked = f"no manifest beside {workbook.name}"
    try:
        with Journal.open(source) as journal_file:
            if journal_file.run_id != record.run_id:
                raise InputError(
                    f"{source} is the journal of run {journal_file.run_id}, not {record.run_id}."
                )
            results = list(journal_file.results(include_pending=True).values())
    except JournalError as exc:
        raise InputError(f"The journal of run {record.run_id} cannot be read: {exc}") from exc
    return RunSide(record, results, str(source), checked)


def _workbook_of(record: RunRecord, given: str | None) -> Path | None:
    """The results workbook whose manifest vouches for the run's rows: the one given, the one
    beside a journal copy given, else the one the run recorded."""
    from ..journal import JOURNAL_SUFFIX

    if given and given.casefold().endswith(JOURNAL_SUFFIX):
        beside = Path(given[: -len(JOURNAL_SUFFIX)] + ".xlsx")
        return beside if beside.is_file() else None
    if given and Path(given).is_file():
        return Path(given)
    return Path(record.results_path) if record.results_path else None


def _earlier_rows(record_b: RunRecord, folders: list[Path]) -> list[Mapping[str, RowResult]]:
    """The rows by ticket of the sweeps of the input before B, newest first (for 'in a row'):
    one run a sweep (the newest of each chain of runs that resume or retry each other), B's own
    sweep left out. Every earlier run is read: they are few (one a month)."""
    runs = [
        run
        for run in _runs_of_input(record_b, folders)
        if (run.started, run.run_id) < (record_b.started, record_b.run_id)
    ]
    seen: set[str] = set(_chain(record_b, [*runs, record_b]))
    rows: list[Mapping[str, RowResult]] = []
    for run in runs:
        if run.run_id in seen:
            continue
        seen |= _chain(run, runs)
        try:
            with Journal.open(run.path) as journal:
                rows.append(by_ticket(journal.results(include_pending=True).values()))
        except JournalError:
            break  # an unreadable journal ends the count there
    return rows


def _current(
    request: CompareRequest,
    settings: Settings,
    console: Console,
    comparison: Comparison,
    record_b: RunRecord,
) -> str:
    """Read the tickets our last writes touched, and find the ones changed since; in words."""
    wanted = written_tickets(comparison)
    if request.offline:
        return "not read (--offline): Changed in CCS is not known"
    if not wanted:
        return "nothing to read: neither run updated a ticket"
    if record_b.simulated:
        return "not read: the runs went to the built-in simulator, which keeps no tickets"
    from .server import same_server

    if settings.url and not same_server(settings.url, record_b.server_url):
        console.note(
            f"Note: reading the tickets from {record_b.server_url}, where run B wrote them "
            f"(the config names {settings.url})."
        )
    settings = replace(settings, url=record_b.server_url)
    try:
        with ExitStack() as stack:
            _, client = logged_in(stack, settings, request, console)
            current, how = _read(client, settings, wanted, console)
    except (AuthError, ServerUnreachable) as error:
        console.warn(f"Warning: the tickets could not be read: {error.message}")
        return f"not read ({error.message.rstrip('.')}): Changed in CCS is not known"
    changed = changed_since(comparison, current)
    return f"{how}; {count_text(len(changed), 'ticket')} changed since our last write"


def _read(
    client: CcsClient, settings: Settings, wanted: Sequence[str], console: Console
) -> tuple[dict[str, Mapping[str, object]], str]:
    """The tickets, in pages while that is cheaper, the rest one by one (GET)."""
    from ..tickets import ticket_field
    from .looking import page_reader, pages_budget

    current: dict[str, Mapping[str, object]] = {}
    keys = {ticket_key(number) for number in wanted}
    with console.sending() as stops:
        reader = page_reader(client, settings, stops.cancel, console)
        read = reader.read((), wanted=wanted, max_pages=pages_budget(len(wanted)))
        if read.stopped:
            raise KeyboardInterrupt
        for ticket in read.tickets if not read.failure else ():
            key = ticket_key(str(ticket_field(ticket, "TicketNumber")[1] or ""))
            if key in keys:
                current[key] = ticket
        singles = 0
        for number in wanted:
            if ticket_key(number) in current:
                continue
            held = reader.read_one(number)
            if held is None:
                raise KeyboardInterrupt
            singles += 1
            if isinstance(held, Mapping):
                current[ticket_key(number)] = held
    how = (
        f"read from {client.base_url} as it is now: {count_text(read.requests, 'Search request')}"
        + (f", {count_text(singles, 'ticket')} one by one (GET)" if singles else "")
    )
    return current, how


def summary_items(outcome: CompareOutcome) -> list[tuple[str, object]]:
    """The comparison workbook's Summary: the counts, then both runs, then how it was made."""
    counts = outcome.comparison.counts()
    items: list[tuple[str, object]] = [(str(category), count) for category, count in counts.items()]
    items.append(("Rows without a ticket number", outcome.comparison.not_keyed))
    items.append(("Baseline (run A)", outcome.baseline))
    for name, side in (("A", outcome.a), ("B", outcome.b)):
        record = side.record
        items += [
            (f"Run {name}", record.run_id),
            (f"Run {name}: input", f"{record.input_path} (SHA-256 {record.input_sha256})"),
            (f"Run {name}: started (UTC)", _when(record.started)),
            (f"Run {name}: ended", record.ended.value),
            (f"Run {name}: server, CCS user", f"{record.server_url}, {record.ccs_user}"),
            (f"Run {name}: operator", record.operator),
            (f"Run {name}: results workbook", record.results_path or "none"),
            (f"Run {name}: rows read from", side.source),
            (f"Run {name}: evidence", side.checked),
        ]
    items.append(("Current values", outcome.current))
    return items
