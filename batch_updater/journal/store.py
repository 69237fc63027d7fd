"""The Journal: one run's record, written row by row as the run goes (see the package docstring)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path, PurePath

from ..tickets import (
    Outcome,
    PlannedRow,
    RowResult,
    RunInfo,
    Sheet,
    SheetRow,
)
from .files import (
    _ROW_COLUMNS,
    _ROW_COLUMNS_WITHOUT_BEFORE,
    _before_text,
    _check_format,
    _claim_file,
    _connect,
    _has_column,
    _journal_error,
    _journal_row,
    _open_existing,
    _read_run,
    _remove_journal_files,
)
from .records import (
    _READ_CHUNK,
    JournalError,
    JournalRow,
    Phase,
    RunEnd,
    RunRecord,
    _decode_cell,
    _now,
    _path_text,
    _text_time,
    _utc,
    new_run_id,
)
from .writing import _initialise


class Journal:
    """One run's journal. Create it with Journal.create(), read an old one with Journal.open()."""

    def __init__(self, path: Path, connection: sqlite3.Connection, *, writable: bool) -> None:
        """Use Journal.create() or Journal.open()."""
        self.path = path
        self.writable = writable
        self._db = connection
        self._lock = threading.Lock()
        self._run = _read_run(connection, path)
        # Columns added after format 1 was first written; older journals lack them.
        self._keeps_before = _has_column(connection, "journal_row", "before_json")
        self._keeps_workers = _has_column(connection, "journal_run", "workers")

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        folder: str | PurePath,
        run: RunInfo,
        rows: Iterable[PlannedRow | RowResult],
        *,
        sheet: Sheet | None = None,
        resumed_from: str | None = None,
        retry_of: str | None = None,
    ) -> Journal:
        """Create the run's journal: the run record and every row, in one transaction.

        run: the run's facts as it starts (the journal adds the run id, host and pid); its
        settings are the plain JSON-able Settings.describe(), never secrets, and its input_path
        should be absolute. resumed_from, retry_of: the run id this run resumes, or whose failed
        rows it retries. Valid PlannedRows are written as planned, with their request JSON;
        RowResults (Invalid, Skipped, Valid in a dry run, Skipped as already updated...) are
        written done. Pass the sheet to keep its headers and cell values, so that the workbook
        can be rebuilt even if the input file is later changed or gone.
        """
        started = _utc(run.started)
        run_id = new_run_id(started)
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(
                f"Cannot create the journal folder {folder}: {exc.strerror or exc}.",
                tip="Choose another folder for journals with output.journal_dir in the config, "
                "or check its permissions.",
            ) from exc
        path = _claim_file(folder, run.input_path, run_id)
        for _ in range(5):
            if path is not None:
                break
            run_id = new_run_id(started)
            path = _claim_file(folder, run.input_path, run_id)
        if path is None:
            raise JournalError(f"Cannot find a free journal file name in {folder}.")
        try:
            connection = _connect(path)
            try:
                _initialise(
                    connection,
                    run,
                    run_id,
                    rows,
                    sheet,
                    resumed_from=resumed_from,
                    retry_of=retry_of,
                )
            except BaseException:
                connection.close()
                raise
        except BaseException as exc:
            _remove_journal_files(path)
            if isinstance(exc, sqlite3.Error):
                raise _journal_error(path, exc, "create") from exc
            raise
        return cls(path, connection, writable=True)

    @classmethod
    def open(cls, path: str | PurePath, *, writable: bool = False) -> Journal:
        """Open an existing journal; read-only unless writable (e.g. to mark a dead run ended)."""
        path = Path(path)
        connection = _open_existing(path, writable=writable)
        try:
            _check_format(connection, path)
            journal = cls(path, connection, writable=writable)
        except sqlite3.Error as exc:
            connection.close()
            raise _journal_error(path, exc, "read") from exc
        except BaseException:
            connection.close()
            raise
        return journal

    def close(self) -> None:
        """Close the file (checkpointing it, so that the .sqlite file alone is complete)."""
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error as exc:  # pragma: no cover - close rarely fails
                raise _journal_error(self.path, exc, "close") from exc

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r}, run_id={self._run.run_id!r})"

    def copy_to(self, target: str | PurePath) -> Path:
        """A consistent copy of the journal as one self-contained file (SQLite's backup API, not
        a file copy: a WAL database's main file alone may lack its newest commits).

        Never over an existing file (JournalError); the copy is in rollback-journal mode, so that
        it is complete without a -wal file beside it wherever it is kept.
        """
        target = Path(target)
        try:
            with open(target, "xb"):
                pass
        except FileExistsError as exc:
            raise JournalError(
                f"{target} exists already; batch-update will not overwrite it."
            ) from exc
        except OSError as exc:
            raise JournalError(
                f"Cannot write the journal copy {target}: {exc.strerror or exc}."
            ) from exc
        try:
            destination = sqlite3.connect(str(target))
            try:
                with self._lock:
                    self._db.backup(destination)
                destination.execute("PRAGMA journal_mode=DELETE")
                destination.commit()
            finally:
                destination.close()
        except sqlite3.Error as exc:
            _remove_journal_files(target)
            raise _journal_error(target, exc, "copy") from exc
        return target

    # -- the run -------------------------------------------------------------------------------

    @property
    def run(self) -> RunRecord:
        """The run record (as of the last change made through this object)."""
        return self._run

    @property
    def run_id(self) -> str:
        """The run's id, e.g. 20240531-142501-3f9a."""
        return self._run.run_id

    def finish(
        self,
        ended: RunEnd | str,
        exit_code: int,
        results_path: str | PurePath | None = None,
        *,
        stopped_reason: str = "",
        finished: datetime | None = None,
        workers: int | None = None,
        notes: Sequence[str] | None = None,
    ) -> RunRecord:
        """Record how the run ended, its exit code and the results workbook; returns the record.

        workers: with automatic concurrency, the most requests that were in flight at once.
        notes: the run's notes as it ends (those learnt while sending added); None keeps them.
        """
        ended = RunEnd(ended)
        if ended is RunEnd.RUNNING:
            raise ValueError('finish() needs how the run ended; "running" is not an end')
        at = _text_time(_utc(finished) if finished is not None else _now())
        if workers is not None and self._keeps_workers:
            self._write(
                "UPDATE journal_run SET workers = ? WHERE id = 1",
                (int(workers),),
                "record the end of the run in",
            )
        if notes is not None:
            self._write(
                "UPDATE journal_run SET notes_json = ? WHERE id = 1",
                (json.dumps(list(notes), ensure_ascii=False),),
                "record the end of the run in",
            )
        self._write(
            "UPDATE journal_run SET finished = ?, ended = ?, exit_code = ?, results_path = ?, "
            "stopped_reason = ? WHERE id = 1",
            (at, ended.value, int(exit_code), _path_text(results_path), stopped_reason),
            "record the end of the run in",
        )
        self._checkpoint()
        return self._reload_run()

    def set_results_path(self, results_path: str | PurePath) -> RunRecord:
        """Record where the results workbook was written (e.g. by a later `batch-update report`)."""
        self._write(
            "UPDATE journal_run SET results_path = ? WHERE id = 1",
            (_path_text(results_path),),
            "record the results workbook in",
        )
        return self._reload_run()

    # -- rows: writing -------------------------------------------------------------------------

    def mark_sending(
        self, row_number: int, at: datetime | None = None, *, request_json: str | None = None
    ) -> None:
        """Commit the intent to send this row; call it before each request for the row goes out.

        Counts the attempt and keeps the first attempt's time as sent_at. request_json: the
        body about to be sent, when it is not the one planned (only the fields that differ);
        None keeps the planned one. Refuses (JournalError) a row that already has its outcome,
        so that a row is never sent twice by mistake.
        """
        sent_at = _text_time(_utc(at) if at is not None else _now())
        with self._lock:
            try:
                changed = self._db.execute(
                    "UPDATE journal_row SET phase = 'sending', attempts = attempts + 1, "
                    "sent_at = COALESCE(sent_at, ?), request_json = COALESCE(?, request_json) "
                    "WHERE row_number = ? AND phase != 'done'",
                    (sent_at, request_json, row_number),
                ).rowcount
                if changed:
                    return
                found = self._db.execute(
                    "SELECT outcome FROM journal_row WHERE row_number = ?", (row_number,)
                ).fetchone()
            except sqlite3.Error as exc:
                raise _journal_error(self.path, exc, "write to") from exc
        if found is None:
            raise JournalError(f"Row {row_number} is not in the journal {self.path.name}.")
        raise JournalError(
            f"Row {row_number} already has its outcome ({found[0]}) in the journal "
            f"{self.path.name}; it must not be sent again."
        )

    def record_before(self, row_number: int, before: Mapping[str, object]) -> None:
        """Keep the ticket's values as read before its PATCH (--capture-before), before sending.

        Written ahead of the request, so that a run killed while the PATCH was in flight still
        leaves what is needed to undo it. (A journal from before this column keeps nothing.)
        """
        if self._keeps_before:
            self._write(
                "UPDATE journal_row SET before_json = ? WHERE row_number = ?",
                (_before_text(before), row_number),
                "write to",
            )

    def record(self, result: RowResult, *, verified: str | None = None) -> None:
        """Commit a row's outcome (phase done); a row not in the journal is added, never lost.

        verified: how the outcome was established other than by the answer to a PATCH, e.g.
        "read back 2024-05-31T14:30:00Z: matches"; None keeps what is recorded. The ticket's
        before values (--capture-before) are kept too, so that a rebuilt workbook has them.
        """
        values = {
            "ticket_number": result.ticket_number,
            "request_json": result.request_json,
            "outcome": Outcome(result.outcome).value,
            "status": result.status,
            "message": result.message,
            "attempts": result.attempts,
            "sent_at": _text_time(_utc(result.sent_at)) if result.sent_at is not None else None,
            "finished_at": _text_time(_now()),
            "duration_ms": result.duration_ms,
            "verified": verified,
        }
        if self._keeps_before:
            values["before_json"] = _before_text(result.before)
        # verified and before_json keep what is recorded when given none (COALESCE).
        kept = {"verified", "before_json"}
        assignments = ", ".join(
            f"{name} = COALESCE(?, {name})" if name in kept else f"{name} = ?" for name in values
        )
        with self._lock:
            try:
                changed = self._db.execute(
                    f"UPDATE journal_row SET phase = 'done', {assignments} WHERE row_number = ?",
                    (*values.values(), result.row_number),
                ).rowcount
                if not changed:
                    self._db.execute(
                        f"INSERT INTO journal_row (row_number, phase, {', '.join(values)}) "
                        f"VALUES (?, 'done', {', '.join('?' * len(values))})",
                        (result.row_number, *values.values()),
                    )
            except sqlite3.Error as exc:
                raise _journal_error(self.path, exc, "write to") from exc

    # -- rows: reading -------------------------------------------------------------------------

    def rows(self) -> Iterator[JournalRow]:
        """Every row, in row order (read in chunks: memory stays flat, writers are not blocked)."""
        return self._select("")

    def rows_in_phase(self, phase: Phase | str) -> list[JournalRow]:
        """The rows in one phase, in row order, e.g. the rows caught "sending" by a crash."""
        return list(self._select("phase = ?", (Phase(phase).value,)))

    def row(self, row_number: int) -> JournalRow | None:
        """One row, or None if the journal does not have it."""
        return next(self._select("row_number = ?", (row_number,)), None)

    def results(self, *, include_pending: bool = False) -> dict[int, RowResult]:
        """The RowResult of every done row, exactly as recorded, by row number.

        include_pending adds rows without an outcome as stand-ins (see JournalRow.to_result):
        what a report rebuilt from a crashed run shows. Resume must not use the stand-ins.
        """
        where = "" if include_pending else "phase = 'done'"
        return {row.row_number: row.to_result() for row in self._select(where)}

    def counts(self) -> dict[Outcome | Phase, int]:
        """How many rows per outcome; rows without one are counted under their phase."""
        with self._lock:
            try:
                found = self._db.execute(
                    "SELECT phase, outcome, COUNT(*) FROM journal_row GROUP BY phase, outcome"
                ).fetchall()
            except sqlite3.Error as exc:
                raise _journal_error(self.path, exc, "read") from exc
        counts: dict[Outcome | Phase, int] = {}
        for phase, outcome, count in found:
            key: Outcome | Phase = Outcome(outcome) if outcome is not None else Phase(phase)
            counts[key] = counts.get(key, 0) + count
        return counts

    def sheet(self) -> Sheet | None:
        """The input sheet as it was read (headers and cell values), if it was stored."""
        with self._lock:
            try:
                stored = self._db.execute("SELECT sheet_json FROM journal_run").fetchone()
            except sqlite3.Error as exc:
                raise _journal_error(self.path, exc, "read") from exc
        if stored is None or stored[0] is None:
            return None
        meta = json.loads(stored[0])
        rows: list[SheetRow] = []
        after = -1
        while True:
            with self._lock:
                try:
                    chunk = self._db.execute(
                        "SELECT row_number, cells_json FROM journal_cells WHERE row_number > ? "
                        "ORDER BY row_number LIMIT ?",
                        (after, _READ_CHUNK),
                    ).fetchall()
                except sqlite3.Error as exc:
                    raise _journal_error(self.path, exc, "read") from exc
            if not chunk:
                break
            for row_number, cells in chunk:
                values = json.loads(cells, object_hook=_decode_cell)
                rows.append(SheetRow(row_number, tuple(values)))
            after = chunk[-1][0]
        return Sheet(
            path=meta["path"],
            sheet_name=meta["sheet_name"],
            header_row=meta["header_row"],
            headers=list(meta["headers"]),
            rows=rows,
            notices=list(meta["notices"]),
        )

    # -- internals -----------------------------------------------------------------------------

    def _select(self, where: str, params: tuple[object, ...] = ()) -> Iterator[JournalRow]:
        condition = f"({where}) AND " if where else ""
        columns = _ROW_COLUMNS if self._keeps_before else _ROW_COLUMNS_WITHOUT_BEFORE
        after = -(2**62)
        while True:
            with self._lock:
                try:
                    chunk = self._db.execute(
                        f"SELECT {columns} FROM journal_row WHERE {condition}row_number > ? "
                        "ORDER BY row_number LIMIT ?",
                        (*params, after, _READ_CHUNK),
                    ).fetchall()
                except sqlite3.Error as exc:
                    raise _journal_error(self.path, exc, "read") from exc
            for found in chunk:
                yield _journal_row(found)
            if len(chunk) < _READ_CHUNK:
                return
            after = chunk[-1][0]

    def _write(self, sql: str, params: tuple[object, ...], doing: str) -> None:
        with self._lock:
            try:
                self._db.execute(sql, params)
            except sqlite3.Error as exc:
                raise _journal_error(self.path, exc, doing) from exc

    def _checkpoint(self) -> None:
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass  # a reader in another process may hold it back; the WAL still has it all

    def _reload_run(self) -> RunRecord:
        with self._lock:
            try:
                self._run = _read_run(self._db, self.path)
            except sqlite3.Error as exc:
                raise _journal_error(self.path, exc, "read") from exc
        return self._run
