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

sqlite3 is imported in this package and nowhere else; every sqlite3 error is turned into a
JournalError that names the file.

Modules: `records` (the run and row records, names, settings, times), `files` (the SQLite file:
schema, format check, reading, errors), `writing` (a new journal in one transaction), `store` (the `Journal`), `runs` (finding and
pruning runs), `lock` (`RunLock`, one run of a sheet at a time). What a resume or a retry
does with an earlier run's rows is the run's policy: `sweep.continuation`.
"""

from .files import _connect as _connect
from .lock import RunLock, RunLocked
from .records import (
    APPLICATION_ID,
    BUSY_TIMEOUT_SECONDS,
    DEFAULT_JOURNAL_FOLDER,
    DEFAULT_KEEP_DAYS,
    JOURNAL_SUFFIX,
    SCHEMA_VERSION,
    JournalError,
    JournalRow,
    Phase,
    RunEnd,
    RunRecord,
    canonical_settings_json,
    journal_file_name,
    new_run_id,
    safe_stem,
    settings_digest,
)
from .runs import (
    default_journal_folder,
    find_run,
    finished_run_with_input,
    journal_paths,
    latest_unfinished,
    list_runs,
    prune,
    read_run,
    runs_of_plan,
)
from .store import Journal

__all__ = [
    "APPLICATION_ID",
    "BUSY_TIMEOUT_SECONDS",
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
    "canonical_settings_json",
    "default_journal_folder",
    "find_run",
    "finished_run_with_input",
    "journal_file_name",
    "journal_paths",
    "latest_unfinished",
    "list_runs",
    "new_run_id",
    "prune",
    "read_run",
    "runs_of_plan",
    "safe_stem",
    "settings_digest",
]
