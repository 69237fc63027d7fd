"""What a run is asked to do (`RunRequest`) and what it returns (`RunOutcome`, its exit status)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING

from ..tickets import Outcome, RowResult, Sheet

if TYPE_CHECKING:
    from ..errors import BatchUpdateError
    from ..rollback import RollbackRow


class ExitStatus(IntEnum):
    """The exit codes, as documented in --help and the README."""

    OK = 0
    ROWS_FAILED = 1
    USAGE = 2
    STOPPED = 3
    INTERNAL_ERROR = 4  # a bug in batch-update, not a problem with the input or the server
    INTERRUPTED = 130


class NothingToSend(Exception):
    """The command has nothing to do (e.g. a retry of a run with nothing to retry): said
    plainly, exit 0, nothing sent and no workbook written."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Transport:
    """The transport choices only the command line can make, never a config file."""

    insecure: bool = False
    allow_http: bool = False


@dataclass(frozen=True)
class RunRequest:
    """One run of a sheet, as the user asked for it (the settings come separately).

    exact: a rollback's rows by row number of FILE (its rollback workbook, the readable record):
    what is sent is their captured values, not the cells as the reader cleans them up.
    rolls_back: the run id a rollback undoes.
    plan: the plan an apply sends (checked by `sweep.applying` before the run starts).
    """

    file: Path
    dry_run: bool = False
    simulate: bool = False
    yes: bool = False  # confirmed in advance
    resume: bool = False
    retry_of: str | None = None
    again: bool = False
    # Send a row whose ticket changed in CCS since the export anyway (its Message says so).
    overwrite_conflicts: bool = False
    out: Path | None = None
    transport: Transport = Transport()
    exact: Mapping[int, RollbackRow] | None = None
    rolls_back: str | None = None
    # The plan this run applies (`batch-update apply`), as the run records it
    # (plans.plan_record): its rows decide what is sent.
    plan: Mapping[str, object] | None = None


@dataclass(frozen=True)
class RunOutcome:
    """How a run went: everything the command line prints, and the exit status.

    error: why the run stopped before anything was sent (the login failed), or why its
    workbook could not be written; warnings: what the user must read after the summary.
    """

    status: ExitStatus
    sheet: Sheet | None = None  # None when the run ended before its summary could be told
    results: Sequence[RowResult] = ()
    dry_run: bool = False
    workbook: Path | None = None
    csv: Path | None = None
    rollback: Path | None = None
    manifest: Path | None = None
    error: BatchUpdateError | None = None
    warnings: Sequence[str] = ()
    workers: int = 0  # how many requests were in flight at most (the sender's workers)
    timings: Mapping[str, float] = field(default_factory=dict)  # seconds of each step


def exit_status(results: Sequence[RowResult], stopped: bool, interrupted: bool) -> ExitStatus:
    if interrupted:
        return ExitStatus.INTERRUPTED
    if stopped:
        return ExitStatus.STOPPED
    needs_attention = (Outcome.FAILED, Outcome.UNKNOWN, Outcome.INVALID, Outcome.CONFLICT)
    if any(r.outcome in needs_attention for r in results):
        return ExitStatus.ROWS_FAILED
    if any(r.verification.startswith("Mismatch") for r in results):
        return ExitStatus.ROWS_FAILED  # the server does not hold what it accepted
    return ExitStatus.OK
