"""The journal file: schema, connection, format check, reading rows, errors, removal.

Its creation (the schema, every row and the run record written at once) is in `writing`.

sqlite3 is used in this package only; every sqlite3 error becomes a JournalError naming the file.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path, PurePath

from ..tickets import (
    Outcome,
)
from .records import (
    APPLICATION_ID,
    BUSY_TIMEOUT_SECONDS,
    SCHEMA_VERSION,
    JournalError,
    JournalRow,
    Phase,
    RunEnd,
    RunRecord,
    _parse_time,
    journal_file_name,
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
    python_version TEXT,
    plan_json TEXT
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
    workers = _optional(connection, "workers")
    python_version = _optional(connection, "python_version")
    plan_json = _optional(connection, "plan_json")
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
        workers=workers if isinstance(workers, int) else None,
        python_version=python_version if isinstance(python_version, str) else "",
        plan_json=plan_json if isinstance(plan_json, str) else None,
    )


def _optional(connection: sqlite3.Connection, column: str) -> object:
    """A column of the run record that journals written before it was added lack: None then."""
    if not _has_column(connection, "journal_run", column):
        return None
    return connection.execute(f"SELECT {column} FROM journal_run WHERE id = 1").fetchone()[0]


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
