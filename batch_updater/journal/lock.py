"""One run of a sheet at a time: the per-input OS lock held for the life of a run."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path, PurePath

from .records import JournalError

# -- one run of a sheet at a time ----------------------------------------------------------------

if os.name == "nt":
    import msvcrt
else:
    import fcntl

# Windows locks a byte range, and a locked range cannot be read by others: the lock is taken on
# one byte far past the holder's description, which stays readable.
_LOCK_BYTE = 1 << 30

# The holder writes its description just after it takes the lock (and rewrites it once its run
# has an id): a run refused in that moment waits this long for it, so that its message can
# name the run it is refused for.
DESCRIPTION_WAIT_SECONDS = 1.0


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
            found = _holder_of(handle)
            handle.close()
            raise RunLocked(found) from None
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


def _holder_of(handle: object) -> dict[str, object]:
    """The description the lock's holder wrote, read again for a moment while it is still
    empty or half-written (two runs of one sheet started together); {} if it never comes."""
    deadline = time.monotonic() + DESCRIPTION_WAIT_SECONDS
    while True:
        try:
            handle.seek(0)  # type: ignore[attr-defined]
            text = handle.read(4096)  # type: ignore[attr-defined]
            found = json.loads(text.decode("utf-8")) if text.strip() else None
        except (OSError, ValueError):
            found = None
        if (isinstance(found, dict) and found) or time.monotonic() >= deadline:
            return found if isinstance(found, dict) else {}
        time.sleep(0.02)
