"""A run of a sheet: read, validate, send (or not, for a dry run), write the evidence, and say how it went."""

from __future__ import annotations

import logging
import os
import platform
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .. import __version__
from ..errors import AuthError, BatchUpdateError, InputError, OutputError, ServerUnreachable
from ..journal import Journal
from ..rollback import RollbackRow
from ..tickets import Outcome, PlannedRow, RowResult, RunInfo, Sheet, count_text
from .common import (
    MAX_PROBLEMS_SHOWN,
    RUN_LOG_HANDLER,
    ExitStatus,
    _echo,
    _fail,
    _operator,
    _quoted,
    log,
)
from .earlier import _create_journal, _follow_earlier_run, _journal_folder
from .sending import Transport, _send
from .terminal import Interrupts

if TYPE_CHECKING:  # imported where used, so that --help stays quick
    pass


def _planned_results(plan_rows: Sequence[PlannedRow], dry_run: bool) -> Iterator[RowResult]:
    """The results that validation alone decides: Invalid, Skipped, and Valid in a dry run."""
    for row in plan_rows:
        if row.blank:
            yield RowResult(row.row_number, Outcome.SKIPPED, message="blank row")
        elif not row.is_valid:
            yield RowResult(
                row.row_number,
                Outcome.INVALID,
                ticket_number=row.ticket_number or "",
                message="; ".join(str(p) for p in row.problems),
            )
        elif dry_run:
            yield RowResult(
                row.row_number,
                Outcome.VALID,
                ticket_number=row.ticket_number,
                message="would be sent",
                request_json=row.update.to_json_text() if row.update else None,
            )


def _summary_lines(
    sheet: Sheet, results: Sequence[RowResult], out: Path, extra: Sequence[Path], *, dry_run: bool
) -> list[str]:
    counts = Counter(r.outcome for r in results)
    statuses = Counter(r.status for r in results if r.outcome is Outcome.FAILED)
    lines = [
        f"{count_text(len(results), 'row')} in {sheet.file_name}"
        + (f' (sheet "{sheet.sheet_name}")' if sheet.sheet_name else "")
        + ":"
    ]
    always = (
        (Outcome.VALID, Outcome.INVALID)
        if dry_run
        else (Outcome.UPDATED, Outcome.FAILED, Outcome.INVALID)
    )
    for outcome in Outcome:
        if counts[outcome] or outcome in always:
            detail = ""
            if outcome is Outcome.FAILED and statuses:
                detail = (
                    "   ("
                    + ", ".join(
                        f"{'HTTP ' + str(s) if s is not None else 'no answer'}: {n}"
                        for s, n in sorted(
                            statuses.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)
                        )
                    )
                    + ")"
                )
            lines.append(f"  {outcome.value:<16}{counts[outcome]:>7,}{detail}")
    checks = Counter(r.verification.split(":", 1)[0] for r in results if r.verification)
    if checks:
        lines.append(
            "  Read back: "
            + ", ".join(
                f"{checks[k]:,} {k}" for k in ("Verified", "Mismatch", "Not checked") if checks[k]
            )
        )
    lines.append(f"Results workbook: {out}")
    for path in extra:
        lines.append(f"Results CSV:      {path}")
    return lines


def _exit_status(results: Sequence[RowResult], stopped: bool, interrupted: bool) -> ExitStatus:
    if interrupted:
        return ExitStatus.INTERRUPTED
    if stopped:
        return ExitStatus.STOPPED
    if any(r.outcome in (Outcome.FAILED, Outcome.UNKNOWN, Outcome.INVALID) for r in results):
        return ExitStatus.ROWS_FAILED
    if any(r.verification.startswith("Mismatch") for r in results):
        return ExitStatus.ROWS_FAILED  # the server does not hold what it accepted
    return ExitStatus.OK


def _configure_logging(verbose: bool, log_file: Path | None, input_path: Path) -> None:
    _close_logging()
    logger = logging.getLogger("batch_updater")
    logger.setLevel(logging.DEBUG if (verbose or log_file) else logging.WARNING)
    logger.propagate = False
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")
    handlers: list[logging.Handler] = []
    if verbose:
        stream = logging.StreamHandler(sys.stderr)
        stream.setLevel(logging.INFO)
        handlers.append(stream)
    if log_file:
        if log_file.exists() and input_path.exists() and os.path.samefile(log_file, input_path):
            raise OutputError(
                f"{log_file} is the input file; batch-update never writes to its input.",
                tip="Choose another name for the log with --log-file.",
            )
        try:
            handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
        except OSError as exc:
            raise OutputError(
                f"Cannot write the log file {log_file}: {exc.strerror or exc}.",
                tip="Choose a file in a folder you can write to with --log-file.",
            ) from exc
    for handler in handlers:
        handler.set_name(RUN_LOG_HANDLER)
        handler.setFormatter(formatter)
        logger.addHandler(handler)


def _close_logging() -> None:
    """Remove and close the handlers of the last run, releasing its log file."""
    logger = logging.getLogger("batch_updater")
    for handler in list(logger.handlers):
        if handler.get_name() == RUN_LOG_HANDLER:
            logger.removeHandler(handler)
            handler.close()


def run(
    file: Path,
    *,
    dry_run: bool = False,
    simulate: bool = False,
    yes: bool = False,
    quiet: bool = False,
    verbose: bool = False,
    config_path: Path | None = None,
    resume: bool = False,
    retry_failed: str | None = None,
    again: bool = False,
    insecure: bool = False,
    allow_http: bool = False,
    exact: dict[int, RollbackRow] | None = None,
    rolls_back: str | None = None,
    **cli: object,
) -> ExitStatus:
    """Read, validate, send and report; returns the exit status.

    exact: a rollback's rows by row number of FILE (its rollback workbook, the readable record):
    what is sent is their captured values, not the cells as the reader cleans them up.
    """
    from ..manifest import manifest_path, write_manifest
    from ..report import check_output_path, default_results_path, free_path, write_results
    from ..settings import load_settings
    from ..sheet import file_sha256, gc_paused, read_sheet
    from ..validate import plan_rows, rules_from_settings, sheet_location

    started = datetime.now(timezone.utc)
    settings = load_settings(
        cli={k: v for k, v in cli.items() if k != "out"}, env=os.environ, config_path=config_path
    )
    _configure_logging(verbose, settings.log_file, file)
    if settings.config_path is not None and not quiet:
        _echo(f"Using config file {settings.config_path}")

    rules = rules_from_settings(settings)
    # Hashed on both sides of the read, so the SHA-256 the evidence gives is that of the bytes
    # the rows came from: a file being saved meanwhile (Excel on a share) is refused, not mixed.
    input_sha256 = file_sha256(file)
    sheet = read_sheet(
        file, settings.sheet, is_header_row=rules.is_header_row, max_rows=settings.max_rows
    )
    if file_sha256(file) != input_sha256:
        raise InputError(
            f"{file.name}: the file changed while it was being read.",
            tip="wait until it has been saved (and closed in Excel), then run again.",
        )
    plan = plan_rows(sheet, rules)
    if exact is not None:
        plan.rows = [_restoring(sheet, row, exact.get(row.row_number)) for row in plan.rows]
    if not plan.rows:
        raise InputError(
            f"{sheet_location(sheet)}: nothing to send: no rows under the header (row "
            f"{sheet.header_row}).",
            tip="add the ticket changes below the header row, or check that this is the right "
            "file and sheet (--sheet).",
        )
    notices = [*sheet.notices, *plan.notices]
    for notice in notices:
        # Hidden rows are a safety warning: shown even with --quiet.
        if not quiet or "hidden in Excel" in notice:
            _echo(f"Note: {notice}")
    invalid = [row for row in plan.rows if not row.blank and not row.is_valid]
    _show_problems(sheet, invalid, quiet=quiet)

    # The default name is to the second: a run started in the same second as the last one (the
    # same command twice in a row) takes the next free name. A name given with --out is the
    # user's: if it exists, check_output_path refuses it.
    out = cli.get("out") or free_path(
        default_results_path(file, started, settings.output_dir), companion=manifest_path
    )
    out = Path(out)  # type: ignore[arg-type]
    _check_workbook_name(out)
    check_output_path(out, input_path=file)
    check_output_path(manifest_path(out), input_path=file, option="--out")
    csv_path = out.with_suffix(".csv") if settings.write_csv else None
    if csv_path is not None:
        # Found now, not when the results are written: by then the tickets have been updated.
        check_output_path(csv_path, input_path=file)

    info = RunInfo(
        input_path=str(file.resolve()),
        input_sha256=input_sha256,
        sheet_name=sheet.sheet_name,
        tool_version=__version__,
        operator=_operator(),
        started=started,
        rate=settings.rate,
        concurrency=settings.concurrency,
        dry_run=dry_run,
        simulated=simulate,
        notes=[  # the sheet's own notices are written from sheet.notices
            *(
                [
                    f"{ROLLS_BACK} {rolls_back}: each ticket is given the values it held before that run "
                    "updated it, exactly as its journal captured them."
                ]
                if rolls_back
                else []
            ),
            *plan.notices,
        ],
        capture_before=settings.capture_before and not dry_run,
        verify=settings.verify and not dry_run,
        settings=settings.describe(),
        python_version=platform.python_version(),
    )
    valid = [row for row in plan.rows if row.is_valid]
    with gc_paused():  # a RowResult per row; no cycles, so the collector's rescans are waste
        decided = {r.row_number: r for r in _planned_results(plan.rows, dry_run)}

    interrupted = stopped = False
    journal = None
    record_failed = ""  # why the journal could not be written, if it could not
    disagreements: list[str] = []
    if dry_run:
        results = [decided[row.row_number] for row in plan.rows]
        if not quiet:
            _echo(
                f"Dry run: {len(valid):,} of {count_text(len(plan.rows), 'row')} would be sent; "
                "nothing was sent."
            )
    else:
        folder = _journal_folder(file, settings=settings)
        batch = _follow_earlier_run(
            folder,
            file,
            info,
            valid,
            resume=resume,
            retry_failed=retry_failed,
            again=again,
            quiet=quiet,
            server_url=None if simulate else settings.url,
        )
        decided.update(batch.carried)

        def start_journal() -> Journal:
            rows: list[PlannedRow | RowResult] = [
                *batch.send,
                *(decided[row.row_number] for row in plan.rows if row.row_number in decided),
            ]
            return _create_journal(folder, info, rows, sheet, batch)

        try:
            checks = [row for row in valid if row.row_number in batch.verify_carried]
            sent, interrupted, stopped, journal, record_failed = _send(
                [*batch.send, *checks],
                settings,
                info,
                start_journal,
                read_back=batch.read_back,
                known_before=batch.known_before,
                known_forbidden=batch.known_forbidden,
                check_carried=batch.verify_carried,
                simulate=simulate,
                yes=yes,
                quiet=quiet,
                transport=Transport(insecure=insecure, allow_http=allow_http),
            )
        except (AuthError, ServerUnreachable) as error:
            # The login failed: no request for a ticket was made, so there is no run to report.
            _fail(error)
            _echo(f"The run stopped early: {error.message.rstrip('.')}.")
            _echo("Nothing was sent; no results workbook was written.")
            return ExitStatus.STOPPED
        decided.update(sent)
        results = [decided[row.row_number] for row in plan.rows]
        if journal is not None:
            # One record: the workbook is written from the journal, as `batch-update report` writes it,
            # so that the two cannot disagree; what the send loop returned is checked against it.
            # (When the journal could not be written, they differ where it could not: those
            # rows are what the journal holds, Unknown, and a resume reads them back.)
            if not record_failed:
                disagreements = _reconcile(journal, results)
            recorded = journal.results(include_pending=True)
            results = [recorded.get(row.row_number) or decided[row.row_number] for row in plan.rows]

    info.finished = datetime.now(timezone.utc)
    _note_input_change(file, info)
    status = _exit_status(results, stopped, interrupted)
    # Never overwrite: a file that appeared at the target during the run keeps its name.
    if out.exists():
        taken, out = out, free_path(out)
        _echo(f"Note: {taken} appeared during the run; the results go to {out} instead.")
    if csv_path is not None and csv_path.exists():
        csv_path = free_path(csv_path)
    try:
        with Interrupts(Interrupts.WRITING):
            write_results(out, sheet, results, info, csv_path=csv_path)
    except BatchUpdateError as error:
        if journal is None:
            raise  # a dry run: nothing was sent, so this is the plain output error it says
        # Tickets were updated: this is no "nothing was sent" exit 2. The journal has it all.
        failed = ExitStatus.ROWS_FAILED if status is ExitStatus.OK else status
        if not record_failed:
            journal.finish(
                _run_end(stopped, interrupted),
                int(failed),
                stopped_reason=info.stopped_reason,
                workers=info.workers,
                finished=info.finished,
            )
        journal.close()
        _fail(error)
        _echo(
            f"The results workbook could not be written, but every outcome is in the run journal "
            f"{journal.path}. Rebuild the workbook with: batch-update report {info.run_id}"
        )
        return failed
    if journal is not None:
        if not record_failed:
            try:
                journal.finish(
                    _run_end(stopped, interrupted),
                    int(status),
                    out,
                    stopped_reason=info.stopped_reason,
                    workers=info.workers,
                    finished=info.finished,
                )
            except BatchUpdateError as error:  # e.g. the disk filled after the last row
                record_failed = error.message.rstrip(".")
        journal_copy = _copy_journal(journal, out)
        journal.close()
        if not record_failed:
            _prune_journals(folder, settings.journal_keep_days)
    else:
        journal_copy = None
    rollback = None
    if info.capture_before and not dry_run:
        rollback = _write_rollback(file, results, info, out.parent)
    manifest = write_manifest(
        info,
        out,
        files={"input": file, "journal": journal_copy},
        target=free_path(manifest_path(out)),  # a manifest that appeared meanwhile keeps its name
    )
    for line in _summary_lines(
        sheet, results, out, [csv_path] if csv_path else [], dry_run=dry_run
    ):
        click.echo(line)
    if rollback is not None:
        click.echo(f"Rollback workbook: {rollback}")
    click.echo(f"Manifest:         {manifest}")
    if info.stopped_reason:
        _echo(f"The run stopped early: {info.stopped_reason.rstrip('.')}.")
    if record_failed and journal is not None:
        _tell_journal_failed(
            file, journal, results, record_failed, stopped=bool(info.stopped_reason)
        )
    if disagreements:
        _echo(
            "INTERNAL ERROR: the send loop and the run journal disagree on "
            f"{len(disagreements)} row(s): "
            + "; ".join(disagreements[:5])
            + ". The journal is the record of what was sent, and the workbook was written from "
            "it; please report this."
        )
        return ExitStatus.INTERNAL_ERROR
    return status


def _tell_journal_failed(
    file: Path, journal: Journal, results: Sequence[RowResult], reason: str, *, stopped: bool
) -> None:
    """What a run whose journal could not be written leaves, and how to go on."""
    if not stopped:  # every row was sent; only the end of the run could not be recorded
        _echo(f"Warning: {reason}.")
    unknown = sum(1 for r in results if r.outcome is Outcome.UNKNOWN)
    held = (
        f"{count_text(unknown, 'row')} whose answer could not be recorded "
        f"{'is' if unknown == 1 else 'are'} Unknown, and a resume reads "
        f"{'that ticket' if unknown == 1 else 'those tickets'} back before deciding"
        if unknown
        else "no answer was lost"
    )
    _echo(
        f"The run journal {journal.path} holds every outcome recorded before it could no longer "
        f"be written; {held}. The run is not marked finished there."
    )
    _echo(
        f"Free some space on the journal's disk, then resume: batch-update resume {_quoted(file)}"
    )


def _check_workbook_name(out: Path) -> None:
    """The results are an .xlsx workbook: refuse a name that says otherwise (x.csv, x.xls, x)."""
    if out.suffix.lower() != ".xlsx":
        raise OutputError(
            f"--out {out}: the results workbook is an Excel .xlsx file; its name must end in .xlsx.",
            tip=f"use --out {out.with_suffix('.xlsx').name}"
            + (
                ", and add --csv for a CSV copy beside it." if out.suffix.lower() == ".csv" else "."
            ),
        )


def _note_input_change(file: Path, info: RunInfo) -> None:
    """Say in the evidence, and on the terminal, when the input was rewritten during the run."""
    from ..sheet import file_sha256

    try:
        now: str | None = file_sha256(file)
    except BatchUpdateError:
        now = None  # moved or deleted: the manifest check will say it is missing
    if now is None or now == info.input_sha256:
        return
    note = (
        f"The input file {file.name} was changed during the run (SHA-256 when read "
        f"{info.input_sha256[:16]}..., at the end {now[:16]}...): these results are those of the "
        "sheet as it was read."
    )
    info.notes.append(note)
    _echo(f"Note: {note}")


def _reconcile(journal: Journal, results: Sequence[RowResult]) -> list[str]:
    """Rows on which the send loop's results and the journal disagree (outcome or HTTP status)."""
    recorded = journal.results(include_pending=True)
    disagreements = []
    for result in results:
        entry = recorded.get(result.row_number)
        if entry is None:
            disagreements.append(f"row {result.row_number} is missing from the journal")
        elif (entry.outcome, entry.status) != (result.outcome, result.status):
            disagreements.append(
                f"row {result.row_number}: send loop {result.outcome.value} {result.status or ''}, "
                f"journal {entry.outcome.value} {entry.status or ''}".replace("  ", " ")
            )
    extra = set(recorded) - {r.row_number for r in results}
    disagreements += [f"row {n} is in the journal only" for n in sorted(extra)]
    return disagreements


def _write_rollback(
    file: Path, results: Sequence[RowResult], info: RunInfo, folder: Path
) -> Path | None:
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


def _show_problems(sheet: Sheet, invalid: Sequence[PlannedRow], *, quiet: bool) -> None:
    from ..validate import format_problem

    shown = 0
    for row in invalid:
        for problem in row.problems:
            if shown < MAX_PROBLEMS_SHOWN:
                _echo(format_problem(sheet, row.row_number, problem))
            shown += 1
    if shown > MAX_PROBLEMS_SHOWN:
        _echo(
            f"... and {shown - MAX_PROBLEMS_SHOWN:,} more problems; the results workbook lists every one."
        )
    if invalid and not quiet:
        _echo(f"{len(invalid):,} row{'s' if len(invalid) != 1 else ''} will not be sent (Invalid).")


def _copy_journal(journal: Journal, out: Path) -> Path | None:
    """The finished journal copied beside the results workbook, as evidence; None if it fails."""
    from ..manifest import journal_copy_path
    from ..report import free_path

    try:
        return journal.copy_to(free_path(journal_copy_path(out)))
    except BatchUpdateError as error:  # the journal itself is kept; the manifest names no copy
        _echo(f"Note: {error.message} The run journal is {journal.path}.")
        return None


ROLLS_BACK = "Rolls back run"


def _restoring(sheet: Sheet, planned: PlannedRow, restoring: RollbackRow | None) -> PlannedRow:
    """The rollback workbook's row as sent: the journal's captured values, or why not."""
    from ..tickets import Problem
    from ..validate import sheet_location

    if restoring is None:
        raise InputError(
            f"{sheet_location(sheet)}, row {planned.row_number}: not a row of the rollback."
        )
    update = restoring.update
    if update is None:
        return PlannedRow(
            planned.row_number,
            problems=(
                Problem(
                    None,
                    "cannot be restored: " + ("; ".join(restoring.notes) or "nothing to put back"),
                ),
            ),
        )
    return PlannedRow(planned.row_number, update=update)
