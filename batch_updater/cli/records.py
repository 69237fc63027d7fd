"""The commands over recorded runs: the report rebuilt from a journal, the list of runs, the manifest check, the rollback."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import InputError
from ..journal import Journal, RunRecord
from ..sweep.earlier import _how_it_ended, _journal_folder, _searched_folders
from ..sweep.evidence import check_workbook_name, write_rollback_of
from ..sweep.run import ROLLS_BACK
from ..tickets import count_text
from .common import ExitStatus, _echo, _here_if_possible, _when

if TYPE_CHECKING:  # imported where used, so that --help stays quick
    pass


def rollback_from_journal(run_ref: str, options: dict[str, Any]) -> ExitStatus:
    """Apply the rollback of a run: its tickets' captured before values, sent exactly."""
    from ..journal import find_run, list_runs
    from ..report import default_rollback_path, free_path, write_rollback
    from ..rollback import rollback_rows

    file = options.pop("file", None)
    folder = _journal_folder(file, options.get("config_path"))
    folders = _searched_folders(folder, file, None if options.get("quiet") else _echo)
    record = find_run(folders, run_ref)
    if record is None:
        raise InputError(
            f'No run "{run_ref}" in {folder}.',
            tip="batch-update runs lists the runs; give a run id, a journal file or a results workbook.",
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
    from .running import run_sheet

    return run_sheet(
        path,
        options,
        exact={2 + index: row for index, row in enumerate(restoring)},
        rolls_back=record.run_id,
    )


def check_manifest_files(results: Path) -> ExitStatus:
    """Recompute the hashes in a results workbook's manifest; exit 0 if all match, else 1."""
    from ..manifest import check_manifest

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
    from ..journal import list_runs

    folder = _journal_folder(file, config_path)
    runs = list_runs(
        _searched_folders(folder, file, _echo),
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
    from ..journal import find_run
    from ..manifest import manifest_path, write_manifest
    from ..report import check_output_path, default_results_path, free_path, write_results

    folder = _journal_folder(file, config_path)
    record = find_run(_searched_folders(folder, file, None if quiet else _echo), run_ref)
    if record is None:
        raise InputError(
            f'No run "{run_ref}" in {folder}.',
            tip="batch-update runs lists the runs; give a run id, a journal file or a results workbook.",
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
        check_workbook_name(target)
        check_output_path(target)
        check_output_path(manifest_path(target))
        info = replace(
            record.to_run_info(),
            run_id=record.run_id,
            journal_path=str(Path(record.path).resolve()),
            follows=_follows(record, folder, file),
        ).noting(
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
        info, target, files={"input": Path(record.input_path), "journal": Path(record.path)}
    )
    click.echo(f"Results workbook of run {record.run_id}: {target}")
    if rollback is not None:
        click.echo(f"Rollback workbook: {rollback}")
    click.echo(f"Manifest: {manifest}")
    return ExitStatus.OK


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
