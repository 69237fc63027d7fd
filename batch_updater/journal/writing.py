"""A new journal written in one transaction: the schema, every row, the input sheet, the run."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import socket
import sqlite3
from collections.abc import Iterable

from ..tickets import Outcome, PlannedRow, RowResult, RunInfo, Sheet, TicketUpdate
from .files import _ROW_COLUMNS, _SCHEMA, _before_text
from .records import (
    _WRITE_BATCH,
    APPLICATION_ID,
    SCHEMA_VERSION,
    RunEnd,
    _cells_json,
    _text_time,
    _utc,
    canonical_settings_json,
)


def _initialise(
    connection: sqlite3.Connection,
    run: RunInfo,
    run_id: str,
    rows: Iterable[PlannedRow | RowResult],
    sheet: Sheet | None,
    *,
    resumed_from: str | None,
    retry_of: str | None,
) -> None:
    """The schema, every row, the input sheet and the run record, in one transaction."""
    created = _text_time(_utc(run.started))
    connection.execute("BEGIN IMMEDIATE")
    try:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                connection.execute(statement)
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        count = _write_rows(connection, rows, created)
        if sheet is not None:
            connection.executemany(
                "INSERT INTO journal_cells (row_number, cells_json) VALUES (?, ?)",
                ((row.row_number, _cells_json(tuple(row.values))) for row in sheet.rows),
            )
        _insert_run(
            connection,
            run,
            run_id,
            count,
            _sheet_json(sheet),
            resumed_from=resumed_from,
            retry_of=retry_of,
        )
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _write_rows(
    connection: sqlite3.Connection, rows: Iterable[PlannedRow | RowResult], created: str
) -> int:
    """Every row of the run, in batches: planned (to send) or decided (with its outcome)."""
    seen: set[int] = set()
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

    for item in rows:
        number = item.row_number
        if number in seen:
            raise ValueError(f"row {number} is given twice; each row is journalled once")
        seen.add(number)
        if isinstance(item, PlannedRow):
            planned.append(_planned_values(item))
        elif isinstance(item, RowResult):
            decided.append(_decided_values(item, created))
        else:
            raise TypeError(
                f"cannot journal a {type(item).__name__}; give a PlannedRow or a RowResult"
            )
        if len(planned) + len(decided) >= _WRITE_BATCH:
            flush()
    flush()
    return len(seen)


def _planned_values(item: PlannedRow) -> tuple[object, ...]:
    update = item.update
    if update is None or item.problems or item.blank:
        raise ValueError(
            f"row {item.row_number} is not valid; journal it as a RowResult with its outcome"
        )
    return (item.row_number, update.ticket_number, TicketUpdate.to_json_text(update))


def _decided_values(item: RowResult, created: str) -> tuple[object, ...]:
    return (
        item.row_number,
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


def _sheet_json(sheet: Sheet | None) -> str | None:
    """What the journal keeps of the input sheet besides its cells."""
    if sheet is None:
        return None
    return json.dumps(
        {
            "path": sheet.path,
            "sheet_name": sheet.sheet_name,
            "header_row": sheet.header_row,
            "headers": list(sheet.headers),
            "notices": list(sheet.notices),
        },
        ensure_ascii=False,
    )


def _insert_run(
    connection: sqlite3.Connection,
    run: RunInfo,
    run_id: str,
    row_count: int,
    sheet_json: str | None,
    *,
    resumed_from: str | None,
    retry_of: str | None,
) -> None:
    """The run record: the run's facts, the run it continues, and this process."""
    input_path = str(run.input_path)
    settings_json = canonical_settings_json(run.settings)
    created = _text_time(_utc(run.started))
    connection.execute(
        "INSERT INTO journal_run (id, run_id, input_path, input_name, input_sha256, "
        "sheet_name, settings_digest, settings_json, server_url, ccs_user, operator, "
        "tool_version, host, pid, dry_run, simulated, resumed_from, retry_of, notes_json, "
        "started, finished, ended, exit_code, results_path, stopped_reason, row_count, "
        "sheet_json, python_version, plan_json) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "?, ?, ?, ?, ?, ?, ?, NULL, ?, NULL, NULL, '', ?, ?, ?, ?)",
        (
            run_id,
            input_path,
            re.split(r"[\\/]", input_path)[-1],
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
            resumed_from,
            retry_of,
            json.dumps(list(run.notes), ensure_ascii=False),
            created,
            RunEnd.RUNNING.value,
            row_count,
            sheet_json,
            # The interpreter the run ran under: the journal is written by the run's own process.
            run.python_version or platform.python_version(),
            json.dumps(dict(run.plan), ensure_ascii=False) if run.plan is not None else None,
        ),
    )
