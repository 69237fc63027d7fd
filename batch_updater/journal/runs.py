"""Finding runs (in one or several folders, by input path and content) and pruning old ones."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path, PurePath

from .files import _remove_journal_files
from .records import (
    DEFAULT_JOURNAL_FOLDER,
    DEFAULT_KEEP_DAYS,
    JOURNAL_SUFFIX,
    JournalError,
    RunRecord,
    _now,
    _same_file,
    _same_name,
    _same_path_text,
    _utc,
)
from .store import Journal

# -- finding runs --------------------------------------------------------------------------------


def default_journal_folder(input_path: str | PurePath) -> Path:
    """The default journal folder: .batch-update/ beside the input file."""
    return Path(input_path).parent / DEFAULT_JOURNAL_FOLDER


def journal_paths(folder: str | PurePath | Sequence[str | PurePath]) -> list[Path]:
    """The journal files in a folder, or in several (by name; not opened), sorted by name."""
    if not isinstance(folder, (str, PurePath)):
        found: dict[str, Path] = {}
        for one in folder:
            for path in journal_paths(one):
                found.setdefault(os.path.normcase(str(path.resolve())), path)
        return sorted(found.values(), key=lambda p: p.name)
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"*{JOURNAL_SUFFIX}") if p.is_file())


def read_run(path: str | PurePath) -> RunRecord:
    """The run record of one journal file (JournalError if it is not a readable journal)."""
    with Journal.open(path) as journal:
        return journal.run


def list_runs(
    folder: str | PurePath | Sequence[str | PurePath],
    *,
    on_skipped: Callable[[Path, JournalError], None] | None = None,
) -> list[RunRecord]:
    """Every run journalled in a folder, newest first.

    A file that is not a readable journal (corrupt, foreign, newer format, locked, empty) is left
    alone and passed to on_skipped, so the caller can say so; it never stops the listing.
    """
    runs: list[RunRecord] = []
    for path in journal_paths(folder):
        try:
            runs.append(read_run(path))
        except JournalError as exc:
            if on_skipped is not None:
                on_skipped(path, exc)
    runs.sort(key=lambda run: (run.started, run.run_id), reverse=True)
    return runs


def latest_unfinished(
    folder: str | PurePath | Sequence[str | PurePath],
    input_name: str,
    *,
    on_skipped: Callable[[Path, JournalError], None] | None = None,
    simulated: bool | None = None,
    input_path: str | PurePath | None = None,
    input_sha256: str | None = None,
) -> RunRecord | None:
    """The run to resume for this input file name: its latest live run, if that did not finish.

    Dry runs are ignored. Only the latest live run counts: once a run (a resume, say) finished,
    older unfinished runs of the same input have nothing left to resume. A run still "running"
    may be dead (killed) or alive in another process: see RunRecord.host and .pid.

    simulated: only runs against the simulator (True) or only the others (False); None: both.
    A rehearsal and a real sweep never continue each other: what one updated, the other's server
    does not hold, and a finished rehearsal must not hide an unfinished real sweep.

    input_path, input_sha256: the run of this input is one that read the same content (a copy in
    another folder is the same sheet), or one of the same file (same path and name: its content
    may have changed since, which the caller refuses with its own message). Without them, any
    run of an input with this file name.
    """
    wanted = input_sha256.lower() if input_sha256 else None
    for run in list_runs(folder, on_skipped=on_skipped):
        if run.dry_run:
            continue
        same_content = wanted is not None and run.input_sha256.lower() == wanted
        same_file = _same_name(run.input_name, input_name) and (
            input_path is None or _same_path_text(run.input_path, input_path)
        )
        if not (same_content or same_file):
            continue
        if simulated is not None and run.simulated != simulated:
            continue
        return None if run.is_finished else run
    return None


def finished_run_with_input(
    folder: str | PurePath | Sequence[str | PurePath],
    input_sha256: str,
    *,
    on_skipped: Callable[[Path, JournalError], None] | None = None,
    include_simulated: bool = False,
) -> RunRecord | None:
    """The newest finished live run (not a dry run) of an input with this exact content.

    Runs against the simulator are left out unless include_simulated: they touched no server.
    """
    wanted = input_sha256.lower()
    for run in list_runs(folder, on_skipped=on_skipped):
        if run.simulated and not include_simulated:
            continue
        if run.is_finished and not run.dry_run and run.input_sha256.lower() == wanted:
            return run
    return None


def runs_of_plan(
    folder: str | PurePath | Sequence[str | PurePath],
    plan_sha256: str,
    *,
    on_skipped: Callable[[Path, JournalError], None] | None = None,
) -> list[RunRecord]:
    """The runs that applied the plan with this SHA-256 (or resumed or retried its apply),
    newest first: a plan is applied once."""
    return [
        run for run in list_runs(folder, on_skipped=on_skipped) if run.plan_sha256 == plan_sha256
    ]


def find_run(
    folder: str | PurePath | Sequence[str | PurePath],
    run_id_or_path: str | PurePath,
    *,
    on_skipped: Callable[[Path, JournalError], None] | None = None,
) -> RunRecord | None:
    """A run by id, by journal file, or by the results workbook it wrote; None if not found.

    A path to a journal file is read directly (JournalError if it is not one). Any other path is
    taken as a results workbook and matched with the runs' results paths (same file, else the
    one run whose results workbook has that file name).
    """
    text = str(run_id_or_path)
    candidate = Path(text)
    if text.endswith(JOURNAL_SUFFIX):
        folders = [folder] if isinstance(folder, (str, PurePath)) else list(folder)
        for path in (candidate, *(Path(one) / candidate.name for one in folders)):
            if path.is_file():
                return read_run(path)
        return None
    runs = list_runs(folder, on_skipped=on_skipped)
    for run in runs:
        if run.run_id == text:
            return run
    if not (isinstance(run_id_or_path, PurePath) or any(sep in text for sep in "/\\.")):
        return None
    by_name: list[RunRecord] = []
    for run in runs:
        if not run.results_path:
            continue
        if _same_file(Path(run.results_path), candidate):
            return run
        if _same_name(PurePath(run.results_path).name, candidate.name):
            by_name.append(run)
    return by_name[0] if len(by_name) == 1 else None


def prune(
    folder: str | PurePath,
    keep_days: int = DEFAULT_KEEP_DAYS,
    *,
    now: datetime | None = None,
    on_skipped: Callable[[Path, JournalError], None] | None = None,
) -> list[RunRecord]:
    """Delete the journals of closed runs older than keep_days; return the runs deleted.

    Closed: finished, or resumed by a later run that is itself deleted; a dry run (it sent
    nothing) counts as closed whatever its end. A run still referenced (resumed or retried) by a
    run that is kept is kept too, so evidence chains stay whole. Unfinished runs that nobody
    resumed are never deleted, nor are files that are not readable journals.
    """
    if keep_days < 0:
        raise ValueError("keep_days must be 0 or more")
    cutoff = (_utc(now) if now is not None else _now()) - timedelta(days=keep_days)
    runs = list_runs(folder, on_skipped=on_skipped)
    old = {run.run_id for run in runs if (run.finished or run.started) < cutoff}
    closed = {run.run_id for run in runs if run.run_id in old and (run.is_finished or run.dry_run)}
    # protected only grows, so the loop ends: a run once needed by a kept run stays kept.
    protected: set[str] = set()
    while True:
        doomed = closed - protected
        grown = True
        while grown:
            # An old unfinished run that a deleted run resumed is closed: it goes with it.
            superseded = (
                {
                    run.resumed_from
                    for run in runs
                    if run.run_id in doomed and run.resumed_from in old
                }
                - doomed
                - protected
            )
            doomed |= superseded
            grown = bool(superseded)
        needed = {
            reference
            for run in runs
            if run.run_id not in doomed
            for reference in (run.resumed_from, run.retry_of)
            if reference in doomed
        }
        if not needed:
            break
        protected |= needed
    deleted: list[RunRecord] = []
    for run in runs:
        if run.run_id not in doomed:
            continue
        try:
            _remove_journal_files(run.path, strict=True)
        except OSError as exc:
            if on_skipped is not None:
                on_skipped(
                    run.path,
                    JournalError(f"Cannot delete the journal {run.path}: {exc.strerror or exc}."),
                )
            continue
        deleted.append(run)
    return deleted
