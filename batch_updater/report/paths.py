"""Where output goes: default names, free names, the checks before writing, atomic moves into place."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from ..errors import OutputError
from .cells import _as_utc

# --------------------------------------------------------------------------------------------
# Paths


def default_results_path(
    input_path: Path, started: datetime, out_dir: Path | None = None, suffix: str = ".xlsx"
) -> Path:
    """'<input stem>.results-<UTC yyyymmdd-HHMMSS>.xlsx' beside the input, or in out_dir."""
    stamp = _as_utc(started).strftime("%Y%m%d-%H%M%S")
    folder = Path(out_dir) if out_dir is not None else Path(input_path).parent
    return folder / f"{Path(input_path).stem}.results-{stamp}{suffix}"


def free_path(path: Path, companion: Callable[[Path], Path] | None = None) -> Path:
    """path itself if nothing is there, else the first free `<stem>-2<suffix>`, `-3`, ...

    With a companion (the manifest beside a workbook, say), that file must be free too.
    """
    candidate, number = path, 1
    while candidate.exists() or (companion is not None and companion(candidate).exists()):
        number += 1
        candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
    return candidate


def check_output_path(path: Path, *, input_path: Path | None = None, option: str = "--out") -> None:
    """Raise OutputError unless path is a new file in a writable folder and not the input."""
    _check_target(Path(path), [Path(input_path)] if input_path is not None else [], option)


def _check_target(path: Path, inputs: Sequence[Path], option: str) -> None:
    for input_path in inputs:
        if _same_file(path, input_path):
            raise OutputError(
                f"{path} is the input file; batch-update never writes to its input.",
                tip=f"Choose another name for the results with {option}.",
            )
    if os.path.lexists(path):
        what = "is a folder" if path.is_dir() else "exists already"
        raise OutputError(
            f"{path} {what}; batch-update will not overwrite it.",
            tip=f"Move it away, or choose another name with {option}.",
        )
    folder = path.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise OutputError(
            f"Cannot write {path}: the folder {folder} {what}.",
            tip=f"Create the folder, or choose another place with {option}.",
        )
    # os.access does not see Windows ACLs or read-only mounts; creating a file does.
    try:
        probe = _create_temp_beside(path)
    except OSError as exc:
        raise OutputError(
            f"Cannot write {path}: cannot create files in {folder} ({exc.strerror or exc}).",
            tip=f"Choose a folder you can write to with {option}.",
        ) from exc
    _remove_quietly(probe)


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def _create_temp_beside(target: Path) -> Path:
    """Create an empty temporary file in target's folder (honouring the umask, unlike mkstemp)."""
    for _ in range(100):
        # Shortened so that a long but legal target name still leaves room for the temp name.
        candidate = target.with_name(f".{target.name[:100]}.{secrets.token_hex(4)}.tmp")
        try:
            with open(candidate, "xb"):
                pass
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free temporary name beside {target}")


def _remove_quietly(path: Path | None) -> None:
    if path is None:
        return
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:
        pass  # best effort: the original error matters more than a leftover temp file


def _move_into_place(temp: Path, target: Path, option: str) -> None:
    """Give temp the name target, failing (never overwriting) if target exists meanwhile."""
    exists_error = _appeared_error(target, option)
    if os.path.lexists(target):
        raise exists_error
    # A hard link is created only if the name is free, atomically: no window in which a file
    # that appears at the last moment could be overwritten.
    try:
        os.link(temp, target)
    except FileExistsError:
        raise exists_error from None
    except OSError:
        # File systems without hard links (FAT, some network shares): check, then replace.
        if os.path.lexists(target):
            raise exists_error from None
        os.replace(temp, target)
        return
    _remove_quietly(temp)


def _appeared_error(target: Path, option: str) -> OutputError:
    return OutputError(
        f"{target} appeared while the results were being written; batch-update will not "
        f"overwrite it.",
        tip=f"Move it away, or choose another name with {option}, and write the results again.",
    )


def write_atomically(
    path: Path,
    save: Callable[[Path], None],
    what: str,
    *,
    inputs: Sequence[Path] = (),
    option: str = "--out",
) -> Path:
    """Write a file through `save(temporary path)`, then move it into place: never over an
    existing file or an input, never a half-written file at `path`. `what`: "the plan workbook"."""
    _check_target(path, inputs, option)
    temp: Path | None = None
    try:
        temp = _create_temp_beside(path)
        save(temp)
        if os.path.lexists(path):
            raise _appeared_error(path, option)
        _move_into_place(temp, path, option)
    except OSError as exc:
        raise OutputError(
            f"Could not write {what} {path}: {exc.strerror or exc}.",
            tip=f"Check the free space and the permissions of {path.parent}, or choose another "
            f"place with {option}.",
        ) from exc
    finally:
        _remove_quietly(temp)
    return path
