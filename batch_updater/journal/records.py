"""The journal's records and plain helpers: run and row records, names, settings, times."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from enum import Enum
from pathlib import Path, PurePath

from ..errors import BatchUpdateError
from ..tickets import (
    Outcome,
    RowResult,
    RunInfo,
    TextEnum,
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
    "unknown; a resume (batch-update resume) reads the ticket back before deciding"
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
class RunRecord:
    """The run as the journal holds it: the facts it was created with (a RunInfo, see
    Journal.create), what the journal adds (id, host, pid, format) and how the run ended."""

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
    # The plan the run applies (`batch-update apply`), as JSON (RunInfo.plan); None otherwise.
    plan_json: str | None = None

    @property
    def plan(self) -> dict[str, object] | None:
        if not self.plan_json:
            return None
        try:
            plan = json.loads(self.plan_json)
        except ValueError:
            return {"unreadable": True}
        return plan if isinstance(plan, dict) else {"unreadable": True}

    @property
    def plan_sha256(self) -> str:
        plan = self.plan
        return str(plan.get("sha256") or "") if plan else ""

    @property
    def is_finished(self) -> bool:
        """True when the run ended normally (every row has its outcome)."""
        return self.ended is RunEnd.FINISHED

    @property
    def settings(self) -> dict[str, object]:
        """The settings dict the run was started with."""
        return json.loads(self.settings_json)

    def to_run_info(self) -> RunInfo:
        """The run's facts as it recorded them, for the Summary sheet (the one place that maps
        the stored run to a RunInfo). follows is left "": it needs the journal of that run."""
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
            notes=tuple(self.notes),
            verify=settings.get("verify") is True and not self.dry_run,
            capture_before=settings.get("capture_before") is True and not self.dry_run,
            workers=self.workers,
            settings=settings,
            python_version=self.python_version,
            run_id=self.run_id,
            journal_path=str(self.path.resolve()),
            plan=self.plan,
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
        if not isinstance(value, (list, tuple)) or len(value) != 3:
            raise ValueError(f"a timedelta cell holds {value!r}, not [days, seconds, microseconds]")
        days, seconds, micros = value
        return timedelta(days=int(days), seconds=int(seconds), microseconds=int(micros))
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
