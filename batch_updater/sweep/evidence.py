"""The evidence of a run: where it goes (chosen before anything is sent), the results workbook
written from the journal, the journal finished and copied, the rollback workbook, the manifest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BatchUpdateError, OutputError
from ..tickets import Outcome, RowResult, RunInfo, Sheet, count_text
from .common import _quoted, log
from .outcome import ExitStatus, RunOutcome, RunRequest, exit_status

if TYPE_CHECKING:
    from ..journal import Journal
    from ..settings import Settings
    from .console import Console


@dataclass(frozen=True)
class Outputs:
    """Where the results go, checked before anything is sent."""

    workbook: Path
    csv: Path | None


@dataclass(frozen=True)
class Recorded:
    """Each row's result as the run ends, and what is known of how it ended."""

    info: RunInfo  # the run's facts, as the run learnt them
    results: list[RowResult]
    journal: Journal | None = None  # None for a dry run
    folder: Path | None = None  # where the journal is
    record_failed: str = ""  # why the journal could not be written, if it could not
    stopped: bool = False
    interrupted: bool = False
    disagreements: Sequence[str] = field(default_factory=list)


def choose_outputs(request: RunRequest, settings: Settings, started: datetime) -> Outputs:
    """The workbook's name (and the CSV's), refused now if it cannot be written: by the time
    the results are written, the tickets have been updated."""
    from ..manifest import manifest_path
    from ..report import check_output_path, default_results_path, free_path

    # The default name is to the second: a run started in the same second as the last one (the
    # same command twice in a row) takes the next free name. A name given with --out is the
    # user's: if it exists, check_output_path refuses it.
    out = request.out or free_path(
        default_results_path(request.file, started, settings.output_dir), companion=manifest_path
    )
    check_workbook_name(out)
    check_output_path(out, input_path=request.file)
    check_output_path(manifest_path(out), input_path=request.file, option="--out")
    csv_path = out.with_suffix(".csv") if settings.write_csv else None
    if csv_path is not None:
        check_output_path(csv_path, input_path=request.file)
    return Outputs(out, csv_path)


def _plan_files(info: RunInfo) -> dict[str, Path | None]:
    """The plan file and its approval, for the manifest of a run that applied a plan."""
    if not info.plan:
        return {}
    approval = str(info.plan.get("approval_file") or "")
    return {
        "plan": Path(str(info.plan.get("path") or "")),
        "approval": Path(approval) if approval else None,
    }


def write_evidence(
    request: RunRequest,
    settings: Settings,
    console: Console,
    sheet: Sheet,
    outputs: Outputs,
    recorded: Recorded,
) -> RunOutcome:
    """Write the workbook (and CSV), finish and copy the journal, write the rollback workbook and
    the manifest; the outcome the user is told."""
    from ..manifest import manifest_path, write_manifest
    from ..report import free_path

    info = _note_input_change(
        request.file, replace(recorded.info, finished=datetime.now(timezone.utc)), console
    )
    results, journal = recorded.results, recorded.journal
    status = exit_status(results, recorded.stopped, recorded.interrupted)
    out, csv_path = _still_free(outputs, console)
    try:
        _write_results(out, sheet, results, info, csv_path, console)
    except BatchUpdateError as error:
        if journal is None:
            raise  # a dry run: nothing was sent, so this is the plain output error it says
        return _workbook_failed(error, status, info, recorded, journal)
    record_failed = recorded.record_failed
    journal_copy = None
    if journal is not None:
        record_failed = _finish_journal(journal, status, out, info, recorded)
        journal_copy = _copy_journal(journal, out, console)
        journal.close()
        if not record_failed and recorded.folder is not None:
            _prune_journals(recorded.folder, settings.journal_keep_days)
    rollback = None
    if info.capture_before and not request.dry_run:
        rollback = write_rollback_of(request.file, results, info, out.parent)
    manifest = write_manifest(
        info,
        out,
        files={"input": request.file, "journal": journal_copy, **_plan_files(info)},
        target=free_path(manifest_path(out)),  # a manifest that appeared meanwhile keeps its name
    )
    warnings = _warnings_after(request.file, info, results, record_failed, recorded)
    if recorded.disagreements:
        status = ExitStatus.INTERNAL_ERROR
    return RunOutcome(
        status,
        sheet,
        results,
        dry_run=request.dry_run,
        workbook=out,
        csv=csv_path,
        rollback=rollback,
        manifest=manifest,
        warnings=warnings,
        workers=info.workers or (info.concurrency if isinstance(info.concurrency, int) else 0),
    )


def _still_free(outputs: Outputs, console: Console) -> tuple[Path, Path | None]:
    """Never overwrite: a file that appeared at the target during the run keeps its name."""
    from ..report import free_path

    out, csv_path = outputs.workbook, outputs.csv
    if out.exists():
        taken, out = out, free_path(out)
        console.warn(f"Note: {taken} appeared during the run; the results go to {out} instead.")
    if csv_path is not None and csv_path.exists():
        csv_path = free_path(csv_path)
    return out, csv_path


def _write_results(
    out: Path,
    sheet: Sheet,
    results: Sequence[RowResult],
    info: RunInfo,
    csv_path: Path | None,
    console: Console,
) -> None:
    from ..report import write_results

    with console.writing():
        write_results(out, sheet, results, info, csv_path=csv_path)


def _workbook_failed(
    error: BatchUpdateError,
    status: ExitStatus,
    info: RunInfo,
    recorded: Recorded,
    journal: Journal,
) -> RunOutcome:
    """Tickets were updated: this is no "nothing was sent" exit 2. The journal has it all."""
    failed = ExitStatus.ROWS_FAILED if status is ExitStatus.OK else status
    if not recorded.record_failed:
        journal.finish(
            _run_end(recorded.stopped, recorded.interrupted),
            int(failed),
            stopped_reason=info.stopped_reason,
            workers=info.workers,
            finished=info.finished,
            notes=info.notes,
        )
    journal.close()
    return RunOutcome(
        failed,
        None,
        recorded.results,
        error=error,
        warnings=[
            "The results workbook could not be written, but every outcome is in the run journal "
            f"{journal.path}. Rebuild the workbook with: batch-update report {info.run_id}"
        ],
    )


def _finish_journal(
    journal: Journal, status: ExitStatus, out: Path, info: RunInfo, recorded: Recorded
) -> str:
    """How the run ended, in its journal; why that could not be written, or ""."""
    if recorded.record_failed:
        return recorded.record_failed
    try:
        journal.finish(
            _run_end(recorded.stopped, recorded.interrupted),
            int(status),
            out,
            stopped_reason=info.stopped_reason,
            workers=info.workers,
            finished=info.finished,
            notes=info.notes,
        )
    except BatchUpdateError as error:  # e.g. the disk filled after the last row
        return error.message.rstrip(".")
    return ""


def _warnings_after(
    file: Path,
    info: RunInfo,
    results: Sequence[RowResult],
    record_failed: str,
    recorded: Recorded,
) -> list[str]:
    """What the user must read after the summary: an early stop, a journal that could not be
    written, a disagreement between the send loop and the journal."""
    warnings = []
    if info.stopped_reason:
        warnings.append(f"The run stopped early: {info.stopped_reason.rstrip('.')}.")
    if record_failed and recorded.journal is not None:
        warnings += _journal_failed(
            file, recorded.journal, results, record_failed, stopped=bool(info.stopped_reason)
        )
    if recorded.disagreements:
        warnings.append(
            "INTERNAL ERROR: the send loop and the run journal disagree on "
            f"{len(recorded.disagreements)} row(s): "
            + "; ".join(recorded.disagreements[:5])
            + ". The journal is the record of what was sent, and the workbook was written from "
            "it; please report this."
        )
    return warnings


def _journal_failed(
    file: Path, journal: Journal, results: Sequence[RowResult], reason: str, *, stopped: bool
) -> list[str]:
    """What a run whose journal could not be written leaves, and how to go on."""
    lines = []
    if not stopped:  # every row was sent; only the end of the run could not be recorded
        lines.append(f"Warning: {reason}.")
    unknown = sum(1 for r in results if r.outcome is Outcome.UNKNOWN)
    held = (
        f"{count_text(unknown, 'row')} whose answer could not be recorded "
        f"{'is' if unknown == 1 else 'are'} Unknown, and a resume reads "
        f"{'that ticket' if unknown == 1 else 'those tickets'} back before deciding"
        if unknown
        else "no answer was lost"
    )
    lines.append(
        f"The run journal {journal.path} holds every outcome recorded before it could no longer "
        f"be written; {held}. The run is not marked finished there."
    )
    lines.append(
        f"Free some space on the journal's disk, then resume: batch-update resume {_quoted(file)}"
    )
    return lines


def check_workbook_name(out: Path) -> None:
    """The results are an .xlsx workbook: refuse a name that says otherwise (x.csv, x.xls, x)."""
    if out.suffix.lower() != ".xlsx":
        raise OutputError(
            f"--out {out}: the results workbook is an Excel .xlsx file; its name must end in .xlsx.",
            tip=f"use --out {out.with_suffix('.xlsx').name}"
            + (
                ", and add --csv for a CSV copy beside it." if out.suffix.lower() == ".csv" else "."
            ),
        )


def _note_input_change(file: Path, info: RunInfo, console: Console) -> RunInfo:
    """Say in the evidence, and to the user, when the input was rewritten during the run."""
    from ..sheet import file_sha256

    try:
        now: str | None = file_sha256(file)
    except BatchUpdateError:
        now = None  # moved or deleted: the manifest check will say it is missing
    if now is None or now == info.input_sha256:
        return info
    note = (
        f"The input file {file.name} was changed during the run (SHA-256 when read "
        f"{info.input_sha256[:16]}..., at the end {now[:16]}...): these results are those of the "
        "sheet as it was read."
    )
    console.warn(f"Note: {note}")
    return info.noting(note)


def write_rollback_of(
    file: Path, results: Sequence[RowResult], info: RunInfo, folder: Path
) -> Path | None:
    """The rollback workbook of a run that captured before values; None if nothing is undoable."""
    from ..report import default_rollback_path, free_path, write_rollback
    from ..rollback import undoable

    if not any(undoable(r) for r in results):
        return None
    path = free_path(default_rollback_path(file, info.started, folder))
    count = write_rollback(path, results, info)
    log.info("rollback workbook %s: %d rows", path, count)
    return path


def _run_end(stopped: bool, interrupted: bool) -> str:
    from ..journal import RunEnd

    if interrupted:
        return RunEnd.INTERRUPTED
    return RunEnd.STOPPED if stopped else RunEnd.FINISHED


def _prune_journals(folder: Path, keep_days: int) -> None:
    from ..journal import prune

    if keep_days > 0:
        try:
            for gone in prune(folder, keep_days):
                log.info(
                    "deleted the journal of run %s (finished more than %d days ago)",
                    gone.run_id,
                    keep_days,
                )
        except BatchUpdateError as error:  # housekeeping must not spoil a run that went well
            log.warning("could not prune old journals: %s", error)


def _copy_journal(journal: Journal, out: Path, console: Console) -> Path | None:
    """The finished journal copied beside the results workbook, as evidence; None if it fails."""
    from ..manifest import journal_copy_path
    from ..report import free_path

    try:
        return journal.copy_to(free_path(journal_copy_path(out)))
    except BatchUpdateError as error:  # the journal itself is kept; the manifest names no copy
        console.warn(f"Note: {error.message} The run journal is {journal.path}.")
        return None
