"""The run journal: what was sent and what came back, in one SQLite file per run.

Nothing is lost. Before a PATCH goes out, the row's intent is committed (phase "sending"); the
moment its outcome is known, the outcome is committed (phase "done"). A run killed at any moment
leaves a journal that says, row by row, what is certain (done), what is unknown (sending: the
request may or may not have reached the server) and what was never tried (planned). Rows that
validation decided (Invalid, Skipped, Valid in a dry run) are written at creation, and the input
sheet itself can be stored, so the journal alone can rebuild the whole results workbook.

Files. Journals live in a folder the caller passes (by default the per-user state folder on local
disk: SQLite's WAL mode does not work on a network file system, and sheets often live on shares;
earlier versions kept them in `.batch-update/` beside the input), one per run, named
`<input stem>.<UTC yyyymmdd-HHMMSS>-<4 hex>.journal.sqlite`, e.g.
`tickets.20240531-142501-3f9a.journal.sqlite`: the middle part is the run id, names sort by
time within one input, and every name is valid on Windows.

Durability. The file is in WAL mode with `synchronous=NORMAL`: each commit is appended to the
write-ahead log with a write() but without an fsync. That survives the failure we defend against,
a killed process (kill -9, a crash, a closed terminal), because the data is in the operating
system's cache the moment write() returns. It does not promise the last commits survive a power
cut or an OS crash (the file stays consistent; the newest rows may roll back). `synchronous=FULL`
would add an fsync per commit: milliseconds on a laptop SSD, far more on a network drive, for every
request. A journal is checkpointed into its main file when the run finishes, so the `.sqlite`
file alone is complete once the run has ended; while it runs, keep the `-wal` file beside it.

Threads. One connection, used under one lock (`check_same_thread=False`). The send loop must
wait for the "sending" commit before it may send, so a writer thread fed by a queue would only add
a hand-off and a wait; a lock gives the same single writer with the commit done when the call
returns. A commit takes tens of microseconds, so workers never queue on it at the paces CCS takes.

Secrets. The journal stores what the caller gives it and never asks for a secret. As a second
line of defence, a settings dict with a key that names a secret (password, token, secret, api
key, credentials...) is refused with ValueError unless its value is empty or masked ("****").

sqlite3 is imported here and nowhere else; every sqlite3 error is turned into a JournalError that
names the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import secrets
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from enum import Enum
from pathlib import Path, PurePath

from .errors import BatchUpdateError
from .tickets import (
    Outcome,
    PlannedRow,
    RowResult,
    RunInfo,
    Sheet,
    SheetRow,
    TextEnum,
    TicketUpdate,
    update_applied,
)

SCHEMA_VERSION = 1
# "BUPD" in the SQLite header's application_id: tells our journals from any other SQLite file.
APPLICATION_ID = 0x42555044
DEFAULT_JOURNAL_FOLDER = ".batch-update"
DEFAULT_KEEP_DAYS = 90
JOURNAL_SUFFIX = ".journal.sqlite"
# How long a call waits for another connection's write lock before giving up.
BUSY_TIMEOUT_SECONDS = 10.0

_READ_CHUNK = 2000
_WRITE_BATCH = 5000
_MAX_STEM_LENGTH = 60
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {
    f"{port}{n}" for port in ("COM", "LPT") for n in range(1, 10)
}
_SECRET_WORDS = {
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "credential",
    "credentials",
    "authorization",
    "cookie",
}
_SECRET_PAIRS = {"apikey", "accesskey", "privatekey", "secretkey", "clientsecret"}
_PENDING_SENDING_MESSAGE = (
    "the run ended while this request was in flight: no answer was seen, so the outcome is "
    "unknown; a resume (--resume) reads the ticket back before deciding"
)
_PENDING_PLANNED_MESSAGE = "not sent: the run ended before this row was sent"


class JournalError(BatchUpdateError):
    """A journal cannot be created, read or written (not a journal, newer format, locked...)."""


class Phase(TextEnum):
    """Where a row stands: not tried yet, request possibly on the wire, outcome recorded."""

    PLANNED = "planned"
    SENDING = "sending"
    DONE = "done"


class RunEnd(TextEnum):
    """How a run ended; RUNNING until finish() is called (or forever, if the process died)."""

    RUNNING = "running"
    FINISHED = "finished"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


@dataclass(frozen=True)
class RunStart:
    """What the caller knows about a run when it starts; the journal adds id, host and pid.

    settings is the plain JSON-able settings dict (Settings.describe()): never secrets.
    input_path should be absolute; input_name defaults to its file name.
    """

    input_path: str | PurePath
    input_sha256: str
    sheet_name: str
    settings: Mapping[str, object]
    server_url: str = ""
    ccs_user: str = ""
    operator: str = ""
    tool_version: str = ""
    dry_run: bool = False
    simulated: bool = False
    resumed_from: str | None = None
    retry_of: str | None = None
    notes: tuple[str, ...] = ()
    started: datetime | None = None
    input_name: str | None = None
    # The interpreter the run ran under (the journal is written by the run's own process).
    python_version: str = field(default_factory=platform.python_version)


@dataclass(frozen=True)
class RunRecord:
    """The run as the journal holds it."""

    run_id: str
    path: Path
    input_path: str
    input_name: str
    input_sha256: str
    sheet_name: str
    settings_digest: str
    settings_json: str
    server_url: str
    ccs_user: str
    operator: str
    tool_version: str
    host: str
    pid: int | None
    dry_run: bool
    simulated: bool
    resumed_from: str | None
    retry_of: str | None
    notes: tuple[str, ...]
    started: datetime
    finished: datetime | None
    ended: RunEnd
    exit_code: int | None
    results_path: str | None
    stopped_reason: str
    row_count: int
    schema_version: int
    workers: int | None = None  # automatic concurrency: the most requests in flight at once
    python_version: str = ""  # "" in journals written before it was kept

    @property
    def is_finished(self) -> bool:
        """True when the run ended normally (every row has its outcome)."""
        return self.ended is RunEnd.FINISHED

    @property
    def settings(self) -> dict[str, object]:
        """The settings dict the run was started with."""
        return json.loads(self.settings_json)

    def to_run_info(self) -> RunInfo:
        """The RunInfo for the results workbook's Summary sheet, as the run recorded it."""
        settings = self.settings
        rate = settings.get("rate")
        concurrency = settings.get("concurrency")
        return RunInfo(
            input_path=self.input_path,
            input_sha256=self.input_sha256,
            sheet_name=self.sheet_name,
            tool_version=self.tool_version,
            operator=self.operator,
            started=self.started,
            finished=self.finished,
            server_url=self.server_url,
            ccs_user=self.ccs_user,
            rate=float(rate) if isinstance(rate, (int, float)) else None,
            concurrency=concurrency if isinstance(concurrency, (int, str)) else None,
            dry_run=self.dry_run,
            simulated=self.simulated,
            stopped_reason=self.stopped_reason,
            notes=list(self.notes),
            verify=settings.get("verify") is True and not self.dry_run,
            capture_before=settings.get("capture_before") is True and not self.dry_run,
            workers=self.workers,
            settings=settings,
            python_version=self.python_version,
        )


@dataclass(frozen=True)
class JournalRow:
    """One row as the journal holds it. outcome is None until the phase is DONE."""

    row_number: int
    ticket_number: str
    request_json: str | None
    phase: Phase
    outcome: Outcome | None
    status: int | None
    message: str
    attempts: int
    sent_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    verified: str | None
    before: dict[str, object] | None = (
        None  # the ticket as read before its PATCH (--capture-before)
    )

    def to_result(self) -> RowResult:
        """The RowResult: exact for a done row; for a row without an outcome, a stand-in.

        A planned row becomes Not sent; a row caught sending becomes Unknown. Stand-ins are for the report only; resume must read such rows back.
        """
        if self.phase is Phase.DONE and self.outcome is not None:
            outcome, message = self.outcome, self.message
        elif self.phase is Phase.SENDING:
            outcome, message = Outcome.UNKNOWN, _PENDING_SENDING_MESSAGE
        else:
            outcome, message = Outcome.NOT_SENT, _PENDING_PLANNED_MESSAGE
        return RowResult(
            row_number=self.row_number,
            outcome=outcome,
            ticket_number=self.ticket_number,
            status=self.status,
            message=message,
            attempts=self.attempts,
            sent_at=self.sent_at,
            duration_ms=self.duration_ms,
            request_json=self.request_json,
            before=self.before,
            verification=self.verified or "",
        )


_SCHEMA = """
CREATE TABLE journal_run (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    run_id TEXT NOT NULL,
    input_path TEXT NOT NULL,
    input_name TEXT NOT NULL,
    input_sha256 TEXT NOT NULL,
    sheet_name TEXT NOT NULL,
    settings_digest TEXT NOT NULL,
    settings_json TEXT NOT NULL,
    server_url TEXT NOT NULL,
    ccs_user TEXT NOT NULL,
    operator TEXT NOT NULL,
    tool_version TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER,
    dry_run INTEGER NOT NULL,
    simulated INTEGER NOT NULL,
    resumed_from TEXT,
    retry_of TEXT,
    notes_json TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT,
    ended TEXT NOT NULL,
    exit_code INTEGER,
    results_path TEXT,
    stopped_reason TEXT NOT NULL DEFAULT '',
    row_count INTEGER NOT NULL,
    sheet_json TEXT,
    workers INTEGER,
    python_version TEXT
);
CREATE TABLE journal_row (
    row_number INTEGER PRIMARY KEY,
    ticket_number TEXT NOT NULL,
    request_json TEXT,
    phase TEXT NOT NULL CHECK (phase IN ('planned', 'sending', 'done')),
    outcome TEXT,
    status INTEGER,
    message TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    sent_at TEXT,
    finished_at TEXT,
    duration_ms INTEGER,
    verified TEXT,
    before_json TEXT
);
CREATE TABLE journal_cells (
    row_number INTEGER PRIMARY KEY,
    cells_json TEXT NOT NULL
);
"""

_ROW_COLUMNS = (
    "row_number, ticket_number, request_json, phase, outcome, status, message, attempts, "
    "sent_at, finished_at, duration_ms, verified, before_json"
)
# Journals written before before_json was added (same format version) are read with a NULL there.
_ROW_COLUMNS_WITHOUT_BEFORE = _ROW_COLUMNS.replace("before_json", "NULL")


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
        run: RunStart,
        rows: Iterable[PlannedRow | RowResult],
        *,
        sheet: Sheet | None = None,
    ) -> Journal:
        """Create the run's journal: the run record and every row, in one transaction.

        Valid PlannedRows are written as planned, with their request JSON; RowResults (Invalid,
        Skipped, Valid in a dry run, Skipped as already updated...) are written done. Pass the
        sheet to keep its headers and cell values, so that the workbook can be rebuilt even if the
        input file is later changed or gone.
        """
        settings_json = canonical_settings_json(run.settings)
        started = _utc(run.started) if run.started is not None else _now()
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
                _initialise(connection, run, run_id, started, settings_json, rows, sheet)
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
    ) -> RunRecord:
        """Record how the run ended, its exit code and the results workbook; returns the record.

        workers: with automatic concurrency, the most requests that were in flight at once.
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
        self._write(
            "UPDATE journal_run SET finished = ?, ended = ?, exit_code = ?, results_path = ?, "
            "stopped_reason = ? WHERE id = 1",
            (at, ended.value, int(exit_code), _path_text(results_path), stopped_reason),
            "record the end of the run in",
        )
        self._checkpoint()
        return self._reload_run()

    def set_results_path(self, results_path: str | PurePath) -> RunRecord:
        """Record where the results workbook was written (e.g. by a later --report-only)."""
        self._write(
            "UPDATE journal_run SET results_path = ? WHERE id = 1",
            (_path_text(results_path),),
            "record the results workbook in",
        )
        return self._reload_run()

    # -- rows: writing -------------------------------------------------------------------------

    def mark_sending(self, row_number: int, at: datetime | None = None) -> None:
        """Commit the intent to send this row; call it before each request for the row goes out.

        Counts the attempt and keeps the first attempt's time as sent_at. Refuses (JournalError)
        a row that already has its outcome, so that a row is never sent twice by mistake.
        """
        sent_at = _text_time(_utc(at) if at is not None else _now())
        with self._lock:
            try:
                changed = self._db.execute(
                    "UPDATE journal_row SET phase = 'sending', attempts = attempts + 1, "
                    "sent_at = COALESCE(sent_at, ?) WHERE row_number = ? AND phase != 'done'",
                    (sent_at, row_number),
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
            doomed |= superseded  # type: ignore[arg-type]
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
        protected |= needed  # type: ignore[arg-type]
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


# -- one run of a sheet at a time ----------------------------------------------------------------

if os.name == "nt":
    import msvcrt
else:
    import fcntl

# Windows locks a byte range, and a locked range cannot be read by others: the lock is taken on
# one byte far past the holder's description, which stays readable.
_LOCK_BYTE = 1 << 30


class RunLocked(JournalError):
    """Another live process holds the run lock of this input; holder says who (may be empty)."""

    def __init__(self, holder: Mapping[str, object]) -> None:
        super().__init__("another run of this input is in progress")
        self.holder = dict(holder)


class RunLock:
    """An exclusive lock on one input's content for the life of a run, held by the OS.

    The lock file `<folder>/<input SHA-256>.lock` holds a description of its holder (pid, host,
    start, run id), but the lock itself is fcntl.flock (POSIX) or msvcrt.locking (Windows): it
    goes when the process goes, killed or not, so a dead run never blocks the next one. The file
    is left in place (deleting it would let two processes lock two different files).
    """

    def __init__(self, path: Path, handle: object, holder: dict[str, object]) -> None:
        self.path = path
        self._handle = handle
        self.holder = holder

    @classmethod
    def acquire(
        cls, folder: str | PurePath, input_sha256: str, holder: Mapping[str, object]
    ) -> RunLock:
        """Take the lock at once or raise RunLocked; JournalError if the folder is unusable."""
        folder = Path(folder)
        path = folder / f"{input_sha256.lower()}.lock"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a+b")  # noqa: SIM115 - held for the life of the run, closed by release()
        except OSError as exc:
            raise JournalError(
                f"Cannot create the run lock {path}: {exc.strerror or exc}.",
                tip="Check the permissions of the per-user state folder.",
            ) from exc
        try:
            _lock_file(handle)
        except OSError:
            handle.seek(0)
            text = handle.read(4096)
            handle.close()
            try:
                found = json.loads(text.decode("utf-8")) if text.strip() else {}
            except ValueError:
                found = {}
            raise RunLocked(found if isinstance(found, dict) else {}) from None
        lock = cls(path, handle, dict(holder))
        lock._describe()
        return lock

    def name_run(self, run_id: str) -> None:
        """Add the run id to the holder's description, once the journal has given it one."""
        self.holder["run_id"] = run_id
        self._describe()

    def _describe(self) -> None:
        handle = self._handle
        try:
            handle.seek(0)  # type: ignore[attr-defined]
            handle.truncate()  # type: ignore[attr-defined]
            handle.write(json.dumps(self.holder, default=str).encode("utf-8"))  # type: ignore[attr-defined]
            handle.flush()  # type: ignore[attr-defined]
        except OSError:  # the description is a courtesy; the lock is what counts
            pass

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        try:
            _unlock_file(handle)
        except OSError:
            pass
        handle.close()  # type: ignore[attr-defined]

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock_file(handle: object) -> None:
    if os.name == "nt":
        handle.seek(_LOCK_BYTE)  # type: ignore[attr-defined]
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    else:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # type: ignore[attr-defined]


def _unlock_file(handle: object) -> None:
    if os.name == "nt":
        handle.seek(_LOCK_BYTE)  # type: ignore[attr-defined]
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]
    else:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)  # type: ignore[attr-defined]


# -- names, settings, times ----------------------------------------------------------------------


def new_run_id(started: datetime | None = None) -> str:
    """A short unique run id: UTC time to the second and 4 random hex digits."""
    moment = _utc(started) if started is not None else _now()
    return f"{moment:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def journal_file_name(input_path: str | PurePath, run_id: str) -> str:
    """`<sanitised input stem>.<run id>.journal.sqlite`, valid on Windows."""
    return f"{safe_stem(input_path)}.{run_id}{JOURNAL_SUFFIX}"


def safe_stem(input_path: str | PurePath) -> str:
    """The input's file stem, made safe for a file name on Windows and POSIX."""
    name = re.split(r"[\\/]", str(input_path))[-1]
    stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
    stem = re.sub(r'[<>:"/\\|?*\x00-\x1f\x7f]', "_", stem)
    stem = re.sub(r"\s+", " ", stem).strip(" .")[:_MAX_STEM_LENGTH].rstrip(" .")
    if not stem:
        return "input"
    if stem.split(".")[0].upper() in _WINDOWS_RESERVED:
        stem = f"_{stem}"
    return stem


def canonical_settings_json(settings: Mapping[str, object]) -> str:
    """The settings as canonical JSON (sorted keys, no spaces); ValueError if a secret is in it."""
    try:
        text = json.dumps(
            settings,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
            default=_plain_setting,
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the settings cannot be written to the journal as JSON: {exc}") from exc
    _refuse_secrets(json.loads(text), "")
    return text


def settings_digest(settings: Mapping[str, object]) -> str:
    """SHA-256 (hex) of the settings' canonical JSON."""
    return hashlib.sha256(canonical_settings_json(settings).encode("utf-8")).hexdigest()


def _plain_setting(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value, key=str) if isinstance(value, (set, frozenset)) else list(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not a plain value")


def _is_secret_key(key: str) -> bool:
    words = re.findall(r"[a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).lower())
    if not words:
        return False
    return words[-1] in _SECRET_WORDS or "".join(words[-2:]) in _SECRET_PAIRS


def _is_masked(value: object) -> bool:
    return value is None or (isinstance(value, str) and set(value) <= {"*"})


def _refuse_secrets(value: object, where: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            place = f"{where}.{key}" if where else str(key)
            if _is_secret_key(str(key)) and not _is_masked(item):
                raise ValueError(
                    f'the settings key "{place}" holds a secret; the journal never stores '
                    'secrets: mask it ("********") or leave it out'
                )
            _refuse_secrets(item, place)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_secrets(item, f"{where}[{index}]")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no time zone; the journal keeps aware UTC times only")
    return moment.astimezone(timezone.utc)


def _text_time(moment: datetime) -> str:
    # Fixed width, so that text order is time order in queries.
    return moment.isoformat(timespec="microseconds")


def _parse_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def _path_text(path: str | PurePath | None) -> str | None:
    return None if path is None else str(path)


def _same_name(a: str, b: str) -> bool:
    if os.name == "nt":
        return a.casefold() == b.casefold()
    return a == b


def _same_path_text(a: str | PurePath, b: str | PurePath) -> bool:
    """The same absolute path, as recorded (case-insensitively on Windows)."""
    return os.path.normcase(os.path.normpath(str(a))) == os.path.normcase(os.path.normpath(str(b)))


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


# -- sheet cells -------------------------------------------------------------------------------


def _encode_cell(value: object) -> object:
    # Called by json for anything that is not plain JSON: keep its type so it comes back as it was.
    if isinstance(value, datetime):
        return {"$t": "datetime", "v": value.isoformat()}
    if isinstance(value, date):
        return {"$t": "date", "v": value.isoformat()}
    if isinstance(value, time):
        return {"$t": "time", "v": value.isoformat()}
    if isinstance(value, timedelta):
        return {"$t": "timedelta", "v": [value.days, value.seconds, value.microseconds]}
    return {"$t": "text", "v": str(value)}


def _decode_cell(tagged: dict[str, object]) -> object:
    kind, value = tagged.get("$t"), tagged.get("v")
    if kind == "datetime":
        return datetime.fromisoformat(str(value))
    if kind == "date":
        return date.fromisoformat(str(value))
    if kind == "time":
        return time.fromisoformat(str(value))
    if kind == "timedelta":
        days, seconds, micros = value  # type: ignore[misc]
        return timedelta(days=days, seconds=seconds, microseconds=micros)
    if kind == "float":
        return float(str(value))
    return value


def _cells_json(values: tuple[object, ...]) -> str:
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        values = tuple(
            {"$t": "float", "v": repr(v)} if isinstance(v, float) and not math.isfinite(v) else v
            for v in values
        )
    return json.dumps(values, ensure_ascii=False, default=_encode_cell, allow_nan=False)


# -- the file ------------------------------------------------------------------------------------


def _claim_file(folder: Path, input_path: str | PurePath, run_id: str) -> Path | None:
    path = folder / journal_file_name(input_path, run_id)
    try:
        # Exclusive creation: two runs started in the same second never share a file.
        with open(path, "xb"):
            pass
    except FileExistsError:
        return None
    except OSError as exc:
        raise JournalError(
            f"Cannot create the journal {path}: {exc.strerror or exc}.",
            tip="Choose another folder for journals, or check its permissions.",
        ) from exc
    return path


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(
        str(path), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
    )
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        connection.close()
        raise
    return connection


def _open_existing(path: Path, *, writable: bool) -> sqlite3.Connection:
    if not path.is_file():
        raise JournalError(f"The journal {path} does not exist.")
    uri = path.resolve().as_uri()
    attempts = [f"{uri}?mode=rw"]
    if not writable:
        attempts.append(f"{uri}?mode=ro")
        if not Path(f"{path}-wal").exists():
            # A copy on a read-only share: nothing can be locked there, nothing can change it.
            attempts.append(f"{uri}?immutable=1")
    last: sqlite3.Error | None = None
    for target in attempts:
        try:
            connection = sqlite3.connect(
                target,
                uri=True,
                timeout=BUSY_TIMEOUT_SECONDS,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            last = exc
            continue
        try:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            if writable:
                connection.execute("PRAGMA synchronous=NORMAL")
            else:
                connection.execute("PRAGMA query_only=ON")
            return connection
        except sqlite3.DatabaseError as exc:
            connection.close()
            last = exc
            if not _is_open_failure(exc):
                break
    assert last is not None
    raise _journal_error(path, last, "open")


def _is_open_failure(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "unable to open" in text or "readonly" in text or "read-only" in text


def _check_format(connection: sqlite3.Connection, path: Path) -> None:
    application_id = connection.execute("PRAGMA application_id").fetchone()[0]
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    tables = {
        name
        for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    if application_id != APPLICATION_ID:
        if not tables:
            raise JournalError(
                f"{path} is an empty journal: its run was killed while the journal was being "
                "created (or is being created right now), before anything was sent.",
                tip="It holds nothing; it can be deleted.",
            )
        raise JournalError(f"{path} is an SQLite file but not a batch-update journal.")
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"{path} was written by a newer batch-update (journal format {version}; this "
            f"version reads formats up to {SCHEMA_VERSION}).",
            tip="Upgrade batch-update to read it.",
        )
    if version < 1 or "journal_run" not in tables or "journal_row" not in tables:
        raise JournalError(f"{path} is not a complete batch-update journal (format {version}).")


def _initialise(
    connection: sqlite3.Connection,
    run: RunStart,
    run_id: str,
    started: datetime,
    settings_json: str,
    rows: Iterable[PlannedRow | RowResult],
    sheet: Sheet | None,
) -> None:
    created = _text_time(started)
    seen: set[int] = set()
    request_text = TicketUpdate.to_json_text
    planned: list[tuple[object, ...]] = []
    decided: list[tuple[object, ...]] = []

    def flush() -> None:
        # Planned rows name only four columns: the defaults fill the rest, twice as fast.
        if planned:
            connection.executemany(
                "INSERT INTO journal_row (row_number, ticket_number, request_json, phase) "
                "VALUES (?, ?, ?, 'planned')",
                planned,
            )
            planned.clear()
        if decided:
            connection.executemany(
                f"INSERT INTO journal_row ({_ROW_COLUMNS}) "
                "VALUES (?, ?, ?, 'done', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                decided,
            )
            decided.clear()

    def write_rows() -> None:
        for item in rows:
            number = item.row_number
            if number in seen:
                raise ValueError(f"row {number} is given twice; each row is journalled once")
            seen.add(number)
            if isinstance(item, PlannedRow):
                update = item.update
                if update is None or item.problems or item.blank:
                    raise ValueError(
                        f"row {number} is not valid; journal it as a RowResult with its outcome"
                    )
                planned.append((number, update.ticket_number, request_text(update)))
            elif isinstance(item, RowResult):
                decided.append(
                    (
                        number,
                        item.ticket_number,
                        item.request_json,
                        Outcome(item.outcome).value,
                        item.status,
                        item.message,
                        item.attempts,
                        _text_time(_utc(item.sent_at)) if item.sent_at is not None else None,
                        created,
                        item.duration_ms,
                        item.verification or None,
                        _before_text(item.before),
                    )
                )
            else:
                raise TypeError(
                    f"cannot journal a {type(item).__name__}; give a PlannedRow or a RowResult"
                )
            if len(planned) + len(decided) >= _WRITE_BATCH:
                flush()
        flush()

    input_path = str(run.input_path)
    input_name = run.input_name or re.split(r"[\\/]", input_path)[-1]
    sheet_json = None
    if sheet is not None:
        sheet_json = json.dumps(
            {
                "path": sheet.path,
                "sheet_name": sheet.sheet_name,
                "header_row": sheet.header_row,
                "headers": list(sheet.headers),
                "notices": list(sheet.notices),
            },
            ensure_ascii=False,
        )
    connection.execute("BEGIN IMMEDIATE")
    try:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                connection.execute(statement)
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        write_rows()
        if sheet is not None:
            connection.executemany(
                "INSERT INTO journal_cells (row_number, cells_json) VALUES (?, ?)",
                ((row.row_number, _cells_json(tuple(row.values))) for row in sheet.rows),
            )
        connection.execute(
            "INSERT INTO journal_run (id, run_id, input_path, input_name, input_sha256, "
            "sheet_name, settings_digest, settings_json, server_url, ccs_user, operator, "
            "tool_version, host, pid, dry_run, simulated, resumed_from, retry_of, notes_json, "
            "started, finished, ended, exit_code, results_path, stopped_reason, row_count, "
            "sheet_json, python_version) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "?, ?, ?, ?, NULL, ?, NULL, NULL, '', ?, ?, ?)",
            (
                run_id,
                input_path,
                input_name,
                run.input_sha256.lower(),
                run.sheet_name,
                hashlib.sha256(settings_json.encode("utf-8")).hexdigest(),
                settings_json,
                run.server_url,
                run.ccs_user,
                run.operator,
                run.tool_version,
                socket.gethostname(),
                os.getpid(),
                int(run.dry_run),
                int(run.simulated),
                run.resumed_from,
                run.retry_of,
                json.dumps(list(run.notes), ensure_ascii=False),
                created,
                RunEnd.RUNNING.value,
                len(seen),
                sheet_json,
                run.python_version,
            ),
        )
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _read_run(connection: sqlite3.Connection, path: Path) -> RunRecord:
    cursor = connection.execute(
        "SELECT run_id, input_path, input_name, input_sha256, sheet_name, settings_digest, "
        "settings_json, server_url, ccs_user, operator, tool_version, host, pid, dry_run, "
        "simulated, resumed_from, retry_of, notes_json, started, finished, ended, exit_code, "
        "results_path, stopped_reason, row_count FROM journal_run WHERE id = 1"
    )
    found = cursor.fetchone()
    if found is None:
        raise JournalError(f"{path} has no run record: it is not a complete batch-update journal.")
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    workers = None
    if _has_column(connection, "journal_run", "workers"):
        workers = connection.execute("SELECT workers FROM journal_run WHERE id = 1").fetchone()[0]
    python_version = ""
    if _has_column(connection, "journal_run", "python_version"):
        python_version = (
            connection.execute("SELECT python_version FROM journal_run WHERE id = 1").fetchone()[0]
            or ""
        )
    (
        run_id,
        input_path,
        input_name,
        input_sha256,
        sheet_name,
        digest,
        settings_json,
        server_url,
        ccs_user,
        operator,
        tool_version,
        host,
        pid,
        dry_run,
        simulated,
        resumed_from,
        retry_of,
        notes_json,
        started,
        finished,
        ended,
        exit_code,
        results_path,
        stopped_reason,
        row_count,
    ) = found
    return RunRecord(
        run_id=run_id,
        path=path,
        input_path=input_path,
        input_name=input_name,
        input_sha256=input_sha256,
        sheet_name=sheet_name,
        settings_digest=digest,
        settings_json=settings_json,
        server_url=server_url,
        ccs_user=ccs_user,
        operator=operator,
        tool_version=tool_version,
        host=host,
        pid=pid,
        dry_run=bool(dry_run),
        simulated=bool(simulated),
        resumed_from=resumed_from,
        retry_of=retry_of,
        notes=tuple(json.loads(notes_json)),
        started=_parse_time(started),  # type: ignore[arg-type]
        finished=_parse_time(finished),
        ended=RunEnd(ended),
        exit_code=exit_code,
        results_path=results_path,
        stopped_reason=stopped_reason,
        row_count=row_count,
        schema_version=version,
        workers=workers,
        python_version=python_version,
    )


def _has_column(connection: sqlite3.Connection, table: str, column: str) -> bool:
    """Journals written before a column was added (same format version) lack it."""
    return any(info[1] == column for info in connection.execute(f"PRAGMA table_info({table})"))


def _journal_row(found: tuple[object, ...]) -> JournalRow:
    (
        row_number,
        ticket_number,
        request_json,
        phase,
        outcome,
        status,
        message,
        attempts,
        sent_at,
        finished_at,
        duration_ms,
        verified,
        before_json,
    ) = found
    return JournalRow(
        row_number=row_number,  # type: ignore[arg-type]
        ticket_number=ticket_number,  # type: ignore[arg-type]
        request_json=request_json,  # type: ignore[arg-type]
        phase=Phase(phase),
        outcome=Outcome(outcome) if outcome is not None else None,
        status=status,  # type: ignore[arg-type]
        message=message,  # type: ignore[arg-type]
        attempts=attempts,  # type: ignore[arg-type]
        sent_at=_parse_time(sent_at),  # type: ignore[arg-type]
        finished_at=_parse_time(finished_at),  # type: ignore[arg-type]
        duration_ms=duration_ms,  # type: ignore[arg-type]
        verified=verified,  # type: ignore[arg-type]
        before=_before_values(before_json),
    )


def _before_text(before: Mapping[str, object] | None) -> str | None:
    """The ticket's before values as JSON for the journal (None: not captured)."""
    if before is None:
        return None
    return json.dumps(dict(before), ensure_ascii=False, default=str, sort_keys=True)


def _before_values(text: object) -> dict[str, object] | None:
    if not isinstance(text, str):
        return None
    try:
        values = json.loads(text)
    except ValueError:
        return None  # a damaged entry costs the Before columns of one row, not the workbook
    return values if isinstance(values, dict) else None


def _journal_error(path: Path, exc: sqlite3.Error, doing: str) -> JournalError:
    text = str(exc)
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return JournalError(
            f"The journal {path} is locked by another program.",
            tip="Close any program that has it open (a database browser, another batch-update) "
            "and try again.",
        )
    if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        return JournalError(f"{path} is not a readable batch-update journal ({text}).")
    if "full" in lowered:
        return JournalError(
            f"Cannot {doing} the journal {path}: the disk is full.",
            tip="Free some space; a resumed run continues where this one stopped.",
        )
    if "closed" in lowered:
        return JournalError(f"The journal {path} is closed.")
    return JournalError(f"Cannot {doing} the journal {path}: {text}.")


def _remove_journal_files(path: Path, *, strict: bool = False) -> None:
    for target in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            target.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            if strict and target == path:
                raise


__all__ = [
    "APPLICATION_ID",
    "DEFAULT_JOURNAL_FOLDER",
    "DEFAULT_KEEP_DAYS",
    "JOURNAL_SUFFIX",
    "SCHEMA_VERSION",
    "Journal",
    "JournalError",
    "JournalRow",
    "Phase",
    "RunEnd",
    "RunLock",
    "RunLocked",
    "RunRecord",
    "RunStart",
    "canonical_settings_json",
    "default_journal_folder",
    "find_run",
    "journal_file_name",
    "journal_paths",
    "latest_unfinished",
    "list_runs",
    "new_run_id",
    "prune",
    "read_run",
    "safe_stem",
    "settings_digest",
]


# -- carrying a run forward (resume, retry-failed) -----------------------------------------------


@dataclass
class Continuation:
    """What a run that continues an earlier one does with each valid row of the input.

    send: rows to send again; read_back: those of them whose earlier request may have been
    applied without its answer reaching us (caught in flight, or timed out), to be read back
    before any re-send; carried: rows the earlier run already updated, Skipped with the evidence.
    """

    send: list[PlannedRow] = field(default_factory=list)
    read_back: set[int] = field(default_factory=set)
    carried: dict[int, RowResult] = field(default_factory=dict)
    # Before values the earlier run captured for rows it was sending when it died: if the
    # read-back finds the update applied, they are still the ticket's values before it.
    known_before: dict[int, dict[str, object]] = field(default_factory=dict)
    # Rows the earlier run saw refused with HTTP 403 (the account may not change that ticket).
    known_forbidden: set[int] = field(default_factory=set)
    # Carried rows to read back without sending (the continuing run verifies; they were not).
    verify_carried: dict[int, RowResult] = field(default_factory=dict)
    resumed_from: str | None = None  # the run id this run resumes ...
    retry_of: str | None = None  # ... or whose failed rows it retries


def continue_run(previous: Journal, planned: Iterable[PlannedRow]) -> Continuation:
    """Decide, row by row, what a resume or a retry of `previous` sends again.

    Rows the earlier run updated (or carried from a run before it) are not sent again; rows that
    failed, were not sent, or were never reached are; a row whose outcome is unknown is read
    back first. Row numbers are the link, so the input must be the same file (same SHA-256).
    """
    earlier = {row.row_number: row for row in previous.rows()}
    run_id = previous.run_id
    plan = Continuation()
    for row in planned:
        before = earlier.get(row.row_number)
        if before is not None and _already_applied(before):
            plan.carried[row.row_number] = _carried(before, run_id, row)
            continue
        plan.send.append(row)
        if before is not None and before.outcome is Outcome.FAILED and before.status == 403:
            plan.known_forbidden.add(row.row_number)
        if before is not None and (
            before.phase is Phase.SENDING
            or before.outcome is Outcome.UNKNOWN
            or (before.outcome is Outcome.FAILED and before.status is None and before.sent_at)
        ):
            plan.read_back.add(row.row_number)
            if before.before is not None:
                plan.known_before[row.row_number] = before.before
    return plan


def _already_applied(row: JournalRow) -> bool:
    # Updated, or carried forward from an earlier run of the chain with its 2xx evidence.
    return row.phase is Phase.DONE and update_applied(row.outcome, row.status)


def _carried(before: JournalRow, run_id: str, row: PlannedRow) -> RowResult:
    if before.outcome is Outcome.SKIPPED:
        message = before.message  # already names the run that updated it
    else:
        when = (
            before.sent_at.strftime("%Y-%m-%d %H:%M:%S UTC")
            if before.sent_at
            else "an earlier time"
        )
        message = f"updated in run {run_id} at {when}; not sent again"
    return RowResult(
        row_number=row.row_number,
        outcome=Outcome.SKIPPED,
        ticket_number=row.ticket_number,
        status=before.status,
        message=message,
        attempts=0,
        sent_at=before.sent_at,
        duration_ms=None,
        request_json=before.request_json,
        before=before.before,  # the evidence travels with the row: Before values ...
        verification=before.verified or "",  # ... and how the update was verified
    )
