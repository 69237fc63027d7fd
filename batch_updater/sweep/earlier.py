"""Earlier runs of the same sheet: where journals are, the run lock, resume, retry and the
duplicate guard: the one place that decides what a run owes to the runs before it."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..journal import Journal, RunRecord
from ..tickets import Outcome, PlannedRow, RowResult, RunInfo, Sheet, count_text
from .common import _quoted, _when, log
from .continuation import Continuation
from .outcome import NothingToSend

if TYPE_CHECKING:  # imported where used, so that --help stays quick
    from ..settings import Settings
    from .console import Console
    from .outcome import RunRequest


def _journal_folder(
    file: Path | None, config_path: Path | None = None, *, settings: Settings | None = None
) -> Path:
    """Where journals are written: output.journal_dir, else the per-user state folder.

    The state folder is on this machine's own disk, whatever share the sheet is on (SQLite's
    WAL mode does not work on a network file system).
    """
    from ..settings import load_settings, user_state_folder

    if settings is None:
        settings = load_settings(env=os.environ, config_path=config_path)
    if settings.journal_dir:
        return settings.journal_dir
    return user_state_folder() / "journals"


# Said once per process: journals of earlier versions are still read where they were.
_EARLIER_FOLDERS_NOTED: set[str] = set()


def _searched_folders(
    folder: Path, file: Path | None, note: Callable[[str], None] | None = None
) -> list[Path]:
    """The journal folder, and the .batch-update/ folder beside the input (or here) in which
    earlier versions wrote journals, if it holds any: those runs are still found (resume,
    retry, report, the duplicate guard); new journals are written in folder only. note: where
    to say so (once per process)."""
    from ..journal import DEFAULT_JOURNAL_FOLDER, journal_paths

    earlier = (file.parent if file is not None else Path()) / DEFAULT_JOURNAL_FOLDER
    try:
        if earlier.resolve() == folder.resolve() or not journal_paths(earlier):
            return [folder]
    except OSError:
        return [folder]
    key = str(earlier.resolve())
    if note is not None and key not in _EARLIER_FOLDERS_NOTED:
        note(
            f"Note: also reading the journals of earlier versions in {earlier}; new journals "
            f"are kept in {folder}."
        )
    _EARLIER_FOLDERS_NOTED.add(key)
    return [folder, earlier]


# The run lock of the sheet being run (one per process), released when the command ends.
_RUN_LOCK: list[object] = []


def _hold_run_lock(file: Path, info: RunInfo) -> None:
    """Hold the lock on the input's content for the rest of the run, or refuse at once.

    Keyed by the SHA-256 of the input, so that a copy of the sheet in another folder is the
    same sheet; kept in the per-user state folder, whatever output.journal_dir says.
    """
    from ..journal import RunLock, RunLocked
    from ..settings import user_state_folder

    _release_run_lock()
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": info.started.isoformat() if info.started else None,
        "input": info.input_path,
    }
    try:
        lock = RunLock.acquire(user_state_folder() / "locks", info.input_sha256, holder)
    except RunLocked as locked:
        other = locked.holder
        started = None
        try:
            started = datetime.fromisoformat(str(other.get("started")))
        except (TypeError, ValueError):
            pass
        who = f"run {other['run_id']}" if other.get("run_id") else "another batch-update"
        where = f" of {Path(str(other['input'])).name}" if other.get("input") else ""
        raise InputError(
            f"{file.name} is being run right now by {who}{where} (process "
            f"{other.get('pid', 'unknown')} on this machine, started {_when(started)}): a "
            "second run, resume or retry of the same sheet would send its rows a second time. "
            "Nothing was sent.",
            tip="Wait for that run to end, then use batch-update resume or batch-update retry if it "
            "did not send everything. If that process is no longer running, its lock went with it: "
            "run the command again.",
        ) from None
    _RUN_LOCK.append(lock)


def _release_run_lock() -> None:
    while _RUN_LOCK:
        _RUN_LOCK.pop().release()  # type: ignore[attr-defined]


def _skipped(path: Path, error: Exception) -> None:
    log.warning("ignoring %s: %s", path, error)


def _follow_earlier_run(
    folder: Path,
    request: RunRequest,
    info: RunInfo,
    valid: Sequence[PlannedRow],
    console: Console,
    server_url: str | None = None,
) -> tuple[Continuation, RunInfo]:
    """Which rows this run sends, given the earlier runs of the same input (resume, retry,
    guard), and the run's facts with what it follows and the evidence it keeps.

    server_url: where this run will send (None: not known yet); rows an earlier run updated on
    another server, or on the simulator, are not updated here, so such a run is not continued.
    """
    # Held from before the earlier runs are read until the command ends: a second process on
    # the same sheet refuses here, before it has read a journal the first one is still writing.
    _hold_run_lock(request.file, info)
    folders = _searched_folders(folder, request.file, console.note)
    if request.resume:
        earlier = _run_to_resume(folders, folder, request.file, info)
        _check_same_server(earlier, info, server_url, console)
        follows = f"resumes run {earlier.run_id} (started {_when(earlier.started)})"
    elif request.retry_of:
        earlier = _run_to_retry(folders, folder, request)
        _check_same_server(earlier, info, server_url, console)
        _check_finished(earlier, request.file)
        follows = (
            f"retries the failed rows of run {earlier.run_id} (started {_when(earlier.started)})"
        )
    else:
        # An apply is guarded by its plan instead (applied once, and only to tickets that
        # still hold what was planned: see sweep.applying).
        if not request.again and not info.simulated and info.plan is None:
            _guard(folders, request.file, info)
        return Continuation(send=list(valid)), info
    return _continue(earlier, request, replace(info, follows=follows), valid, console)


def _latest_unfinished(folders: list[Path], file: Path, info: RunInfo) -> RunRecord | None:
    """The latest run of this input that did not finish (its own kind: live or simulated)."""
    from ..journal import latest_unfinished

    return latest_unfinished(
        folders,
        file.name,
        on_skipped=_skipped,
        simulated=info.simulated,
        input_path=info.input_path,
        input_sha256=info.input_sha256,
    )


def _run_to_resume(folders: list[Path], shown: Path, file: Path, info: RunInfo) -> RunRecord:
    earlier = _latest_unfinished(folders, file, info)
    if earlier is None:
        raise InputError(
            f"There is no unfinished run of {file.name} to resume in {shown}.",
            tip="batch-update runs lists the runs and how they ended.",
        )
    return earlier


def _run_to_retry(folders: list[Path], shown: Path, request: RunRequest) -> RunRecord:
    from ..journal import find_run

    assert request.retry_of is not None
    earlier = find_run(folders, request.retry_of, on_skipped=_skipped)
    if earlier is None:
        raise InputError(
            f'No run "{request.retry_of}" in {shown}: give a run id, a journal file or the '
            "results workbook of the run to retry.",
            tip="batch-update runs lists the runs.",
        )
    return earlier


def _check_finished(earlier: RunRecord, file: Path) -> None:
    """Only a finished (or stopped) run is retried; one that did not finish is resumed."""
    from ..journal import RunEnd

    if earlier.ended not in (RunEnd.FINISHED, RunEnd.STOPPED):
        raise InputError(
            f"Run {earlier.run_id} did not finish ({_how_it_ended(earlier)}); continue it with "
            f"batch-update resume {_quoted(file)} instead, which also checks the rows it "
            "was sending when it ended."
        )


def _continue(
    earlier: RunRecord,
    request: RunRequest,
    info: RunInfo,
    valid: Sequence[PlannedRow],
    console: Console,
) -> tuple[Continuation, RunInfo]:
    """What a resume or a retry of `earlier` sends, reads back and carries; the facts with
    the evidence settings it keeps."""
    from .continuation import continue_run

    file = request.file
    if earlier.input_sha256.lower() != info.input_sha256.lower():
        raise InputError(
            f"{file.name} has changed since run {earlier.run_id} read it (SHA-256 then "
            f"{earlier.input_sha256}, now {info.input_sha256}); its rows may no longer be "
            "the same rows, so it cannot be continued.",
            tip="Run the changed file as a new run (add --again if asked), or restore the "
            "file the run read.",
        )
    info = _same_plan(earlier, info, valid)
    with Journal.open(earlier.path) as journal:
        batch = continue_run(journal, valid)
    if request.retry_of and not batch.send:
        results = f" Its results: {earlier.results_path}." if earlier.results_path else ""
        raise NothingToSend(
            f"Nothing to retry: run {earlier.run_id} of {file.name} has no row that Failed "
            f"or was Not sent ({len(batch.carried):,} rows it updated are done). Nothing was "
            f"sent and no workbook was written.{results}"
        )
    if request.resume:
        batch.resumed_from = earlier.run_id
    else:
        batch.retry_of = earlier.run_id
    info = _keep_evidence(earlier, info, console)
    if info.verify:
        # The evidence covers the rows of both runs: an update the earlier run made but
        # never read back is read back now (never sent again).
        batch.verify_carried = {
            number: result
            for number, result in batch.carried.items()
            if not result.verification.startswith(("Verified", "Mismatch"))
        }
    console.note(_continuing(earlier, batch))
    return batch, info


def _same_plan(earlier: RunRecord, info: RunInfo, valid: Sequence[PlannedRow]) -> RunInfo:
    """A resume or retry of a plan's apply applies the same plan (from the earlier run's
    journal, checked again: its hash, its expiry, its changes against the sheet's rows); with
    plan.require_approval, only an approved plan's apply is continued."""
    from ..errors import ConfigError
    from ..plans import check_against_rows, check_expiry, plan_of_record

    plan = earlier.plan
    if plan is not None:
        recorded = plan_of_record(plan)
        check_expiry(recorded, continuing=earlier.run_id)
        check_against_rows(recorded, {row.row_number: row.update for row in valid})
    if info.settings.get("require_approval") is True and not (plan and plan.get("approved")):
        raise ConfigError(
            f"plan.require_approval is on, and run {earlier.run_id} did not apply an approved "
            "plan: continuing it would make a change nobody approved. Nothing was sent.",
            tip="Make a plan of the rows still to change (batch-update plan FILE), have it "
            "approved, and apply it.",
        )
    return replace(info, plan=plan) if plan is not None else info


def _continuing(earlier: RunRecord, batch: Continuation) -> str:
    return (
        f"Continuing run {earlier.run_id}: {count_text(len(batch.carried), 'row')} already "
        f"updated {'is' if len(batch.carried) == 1 else 'are'} not sent again"
        + (
            f" ({len(batch.verify_carried):,} of them read back to verify them)"
            if batch.verify_carried
            else ""
        )
        + f"; {len(batch.send):,} to send"
        + (
            f", {len(batch.read_back):,} of them read back first (their outcome was unknown)"
            if batch.read_back
            else ""
        )
        + "."
    )


def _guard(folders: list[Path], file: Path, info: RunInfo) -> None:
    """The duplicate-run guard: a sheet a finished run applied, or an unfinished run of it that
    updated tickets, is refused (--again runs it anyway)."""
    from ..journal import Phase, finished_run_with_input

    done = finished_run_with_input(folders, info.input_sha256, on_skipped=_skipped)
    if done is not None:
        raise InputError(
            f"{file.name} was already applied by run {done.run_id} on {_when(done.started)}"
            + (f" (results: {Path(done.results_path).name})" if done.results_path else "")
            + ". Running it again reads every ticket and sends each row whose ticket no longer "
            "holds its values: a change made in CCS since that run would be undone.",
            tip=f"Add --again to run it anyway, or use batch-update retry {_quoted(file)} "
            f"{done.run_id} to send only the rows that failed or were not sent.",
        )
    pending = _latest_unfinished(folders, file, info)
    if (
        pending is None
        or pending.simulated
        or pending.input_sha256.lower() != info.input_sha256.lower()
    ):
        return
    with Journal.open(pending.path) as journal:
        counts = journal.counts()
    if counts.get(Outcome.UPDATED, 0) or counts.get(Phase.SENDING, 0):
        raise InputError(
            f"Run {pending.run_id} of {file.name} did not finish ({_how_it_ended(pending)}, "
            f"started {_when(pending.started)}) and had already updated tickets.",
            tip=f"Continue it with batch-update resume {_quoted(file)}, which does not send "
            "those rows again, or add --again to start over and send every row.",
        )


def _keep_evidence(earlier: RunRecord, info: RunInfo, console: Console) -> RunInfo:
    """A run that continues another keeps its evidence settings: a flag may add evidence, a
    continued run never drops it (the Before columns, the read-back and the rollback then
    cover the rows of both runs)."""
    was = earlier.to_run_info()
    kept = [
        flag
        for flag, before, now in (
            ("--capture-before", was.capture_before, info.capture_before),
            ("--verify", was.verify, info.verify),
        )
        if before and not now
    ]
    if not kept:
        return info
    capture_before = info.capture_before or was.capture_before
    verify = info.verify or was.verify
    # Recorded as the settings this run used, so that the journal (and `batch-update report`) agree.
    info = replace(
        info,
        capture_before=capture_before,
        verify=verify,
        settings={**info.settings, "capture_before": capture_before, "verify": verify},
    )
    console.note(
        f"Note: run {earlier.run_id} was made with {' and '.join(kept)}; this run keeps "
        f"{'them' if len(kept) > 1 else 'it'}, so the evidence covers the rows of both runs."
    )
    return info


def _check_same_server(
    earlier: RunRecord, info: RunInfo, server_url: str | None, console: Console
) -> None:
    """Refuse to carry rows forward from a run that updated them on another server.

    A run that reached no ticket on its server (nothing updated, no request whose answer was
    not seen: a wrong URL, refused credentials) has nothing to carry forward: it is continued
    on the new server, and that is said.
    """
    if earlier.simulated != info.simulated:
        then, now = ("the simulator", "a live server")
        if not earlier.simulated:
            then, now = now, then
        raise InputError(
            f"Run {earlier.run_id} ran against {then} and this run goes to {now}: the rows it "
            "updated there were not updated here, so it cannot be continued.",
            tip="Run the file as a new run (add --again if asked), or repeat the run with "
            + ("--simulate." if earlier.simulated else "the same server, without --simulate."),
        )

    def same(a: str, b: str) -> bool:
        return a.rstrip("/").casefold() == b.rstrip("/").casefold()

    if server_url and earlier.server_url and not same(earlier.server_url, server_url):
        if _reached_nothing(earlier):
            console.note(
                f"Note: run {earlier.run_id} went to {earlier.server_url} and updated no "
                f"ticket there; this run sends its rows to {server_url}."
            )
            return
        raise InputError(
            f"Run {earlier.run_id} sent its updates to {earlier.server_url}; this run goes to "
            f"{server_url}: the rows it updated there were not updated here, so it cannot be "
            "continued.",
            tip=f"Use --url {earlier.server_url} to continue it, or run the file as a new run "
            "against the other server (add --again if asked).",
        )


def _reached_nothing(record: RunRecord) -> bool:
    """True if a run updated no ticket and has no request whose answer it did not see."""
    from ..journal import Phase

    with Journal.open(record.path) as journal:
        counts = journal.counts()
    in_doubt = [key for key in counts if str(key) in ("Unknown", str(Phase.SENDING))]
    return not counts.get(Outcome.UPDATED, 0) and not any(counts[key] for key in in_doubt)


def _how_it_ended(record: RunRecord) -> str:
    """How a run ended, in words: a journal still marked "running" is "unfinished".

    Its process was killed, crashed or lost its machine (or is running elsewhere right now): either
    way it did not finish, and `batch-update resume` continues it. "running" would suggest it is alive.
    """
    from ..journal import RunEnd

    return "unfinished" if record.ended is RunEnd.RUNNING else record.ended.value


def _create_journal(
    folder: Path,
    info: RunInfo,
    rows: Sequence[PlannedRow | RowResult],
    sheet: Sheet,
    batch: Continuation,
) -> tuple[Journal, RunInfo]:
    """The run's journal, created with every row; the facts with its run id and path."""
    journal = Journal.create(
        folder, info, rows, sheet=sheet, resumed_from=batch.resumed_from, retry_of=batch.retry_of
    )
    # Sending starts next. Everything built so far (the sheet, the plan) lives until the end of
    # the run: one full collection now, and freezing what survives, keeps a collector pass over
    # all of it from pausing the first paced requests (a pause bunches the requests after it).
    import gc

    gc.collect()
    gc.freeze()
    for lock in _RUN_LOCK:
        lock.name_run(journal.run_id)  # type: ignore[attr-defined]
    # Absolute, like the input path: the Summary must say where the journal is from anywhere.
    return journal, replace(
        info, run_id=journal.run_id, journal_path=str(Path(journal.path).resolve())
    )
