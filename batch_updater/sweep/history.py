"""The runs recorded in the journals, for the commands over them: the list of runs, a run's
workbook rebuilt from its journal, and the rollback of a run made ready to send. Each returns
what the command line prints; notes go to `note` (None: said nowhere)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..journal import Journal, RunRecord
from .common import _here_if_possible, _when
from .earlier import _journal_folder, _searched_folders
from .evidence import _plan_files, check_workbook_name, write_rollback_of
from .run import ROLLS_BACK

if TYPE_CHECKING:
    from ..rollback import RollbackRow
    from ..tickets import RowResult

Note = Callable[[str], None]

NO_SUCH_RUN_TIP = (
    "batch-update runs lists the runs; give a run id, a journal file or a results workbook."
)


@dataclass(frozen=True)
class Listing:
    """The runs recorded in a journal folder (and the folders of earlier versions), newest first."""

    folder: Path
    runs: list[RunRecord]


@dataclass(frozen=True)
class Rebuilt:
    """A run's evidence written again from its journal."""

    run_id: str
    workbook: Path
    rollback: Path | None
    manifest: Path


@dataclass(frozen=True)
class Rollback:
    """The rollback of a run, ready to send: its readable record (the rollback workbook, which
    is also the input of the rollback run) and the rows to send, by that workbook's row."""

    run_id: str
    workbook: Path | None  # None: the run updated no ticket whose values it had read first
    rows: dict[int, RollbackRow]


def recent_runs(file: Path | None, config_path: Path | None, note: Note | None) -> Listing:
    """The recorded runs (of FILE's name, when given), newest first."""
    from ..journal import list_runs

    folder = _journal_folder(file, config_path)
    runs = list_runs(
        _searched_folders(folder, file, note),
        on_skipped=lambda path, error: (
            note(f"Note: skipped {path.name}: {error}") if note else None
        ),
    )
    if file is not None:
        runs = [r for r in runs if r.input_name.casefold() == file.name.casefold()]
    return Listing(folder, runs)


def _find(
    run_ref: str, file: Path | None, config_path: Path | None, note: Note | None
) -> tuple[RunRecord, Path, list[Path]]:
    from ..journal import find_run

    folder = _journal_folder(file, config_path)
    folders = _searched_folders(folder, file, note)
    record = find_run(folders, run_ref)
    if record is None:
        raise InputError(f'No run "{run_ref}" in {folder}.', tip=NO_SUCH_RUN_TIP)
    return record, folder, folders


def rebuild_report(
    run_ref: str,
    file: Path | None,
    out: Path | None,
    config_path: Path | None,
    note: Note | None,
) -> Rebuilt:
    """Write the results workbook of a run from its journal alone (nothing is sent)."""
    from ..manifest import manifest_path, write_manifest
    from ..report import check_output_path, write_results

    record, folder, _ = _find(run_ref, file, config_path, note)
    with Journal.open(record.path, writable=True) as journal:
        sheet = journal.sheet()
        if sheet is None:
            raise InputError(
                f"The journal of run {record.run_id} does not hold the input sheet; its workbook cannot be rebuilt."
            )
        results = journal.results(include_pending=True)
        target = _rebuilt_path(record, out)
        check_workbook_name(target)
        check_output_path(target)
        check_output_path(manifest_path(target))
        info = replace(record.to_run_info(), follows=_follows(record, folder, file)).noting(
            f"Rebuilt from the run journal {Path(record.path).name} on {_when(datetime.now(timezone.utc))}."
        )
        ordered = [results[row.row_number] for row in sheet.rows]
        write_results(target, sheet, ordered, info)
        if not record.results_path:
            journal.set_results_path(target)
        rollback = None
        if info.capture_before:
            # The run may have died before it wrote its rollback workbook: the journal has it all.
            rollback = write_rollback_of(Path(record.input_path), ordered, info, target.parent)
    manifest = write_manifest(
        info,
        target,
        files={
            "input": Path(record.input_path),
            "journal": Path(record.path),
            **_plan_files(info),
        },
    )
    return Rebuilt(record.run_id, target, rollback, manifest)


def _rebuilt_path(record: RunRecord, out: Path | None) -> Path:
    """As a run names its outputs: the workbook and its manifest both new (a manifest left
    from a deleted workbook describes that workbook, and is kept)."""
    from ..manifest import manifest_path
    from ..report import default_results_path, free_path

    if out:
        return Path(out)
    return free_path(
        default_results_path(
            Path(record.input_path),
            record.started,
            _here_if_possible(Path(record.input_path).parent),
        ),
        companion=manifest_path,
    )


def _follows(record: RunRecord, folder: Path, file: Path | None) -> str:
    """What a run resumed or retried, worded as the run itself wrote it, start time included
    (when that journal is still there), so that a rebuilt Summary says what the original said."""
    from ..journal import find_run

    earlier_id = record.resumed_from or record.retry_of
    if not earlier_id:
        return ""
    earlier = find_run(
        [Path(record.path).parent, *_searched_folders(folder, file)],
        earlier_id,
        on_skipped=lambda *_: None,
    )
    return (
        f"resumes run {earlier_id}"
        if record.resumed_from
        else f"retries the failed rows of run {earlier_id}"
    ) + (f" (started {_when(earlier.started)})" if earlier is not None else "")


def prepare_rollback(
    run_ref: str,
    file: Path | None,
    config_path: Path | None,
    again: bool,
    note: Note | None,
) -> Rollback:
    """The rollback of a run: its tickets' captured before values, exactly, and the rollback
    workbook written as their readable record. Refused for a run that cannot be rolled back,
    or was already (unless again)."""
    from ..report import default_rollback_path, free_path, write_rollback
    from ..rollback import rollback_rows

    record, _, folders = _find(run_ref, file, config_path, note)
    _check_undoable(record)
    _check_not_rolled_back(record, folders, again)
    with Journal.open(record.path) as journal:
        sheet = journal.sheet()
        results = journal.results(include_pending=True)
    ordered: list[RowResult] = (
        [results[row.row_number] for row in sheet.rows] if sheet else list(results.values())
    )
    restoring = rollback_rows(ordered)
    if not restoring:
        return Rollback(record.run_id, None, {})
    # The readable record of what is put back, and the input of the rollback run.
    where = (
        Path(record.results_path).parent
        if record.results_path
        else _here_if_possible(Path(record.input_path).parent)
    )
    path = free_path(default_rollback_path(Path(record.input_path), record.started, where))
    write_rollback(path, ordered, record.to_run_info())
    return Rollback(record.run_id, path, {2 + index: row for index, row in enumerate(restoring)})


def _check_undoable(record: RunRecord) -> None:
    if record.dry_run or record.simulated:
        raise InputError(
            f"Run {record.run_id} was a {'dry run' if record.dry_run else 'simulated rehearsal'}: "
            "it changed no real ticket, so there is nothing to roll back."
        )
    if not record.to_run_info().capture_before:
        raise InputError(
            f"Run {record.run_id} was made without --capture-before, so its journal holds no "
            "values to put back.",
            tip="Only a run made with --capture-before can be rolled back.",
        )


def _check_not_rolled_back(record: RunRecord, folders: list[Path], again: bool) -> None:
    from ..journal import list_runs

    done = [
        earlier
        for earlier in list_runs(folders, on_skipped=lambda *_: None)
        if earlier.is_finished
        and not earlier.dry_run
        and not earlier.simulated
        and any(note.startswith(f"{ROLLS_BACK} {record.run_id}:") for note in earlier.notes)
    ]
    if done and not again:
        raise InputError(
            f"Run {record.run_id} was rolled back already, by run {done[0].run_id} (started "
            f"{_when(done[0].started)}).",
            tip="add --again to put the values back once more.",
        )
