"""The per-user folders (config; state: journals and run locks) and the rule for network locations."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path, PurePath, PureWindowsPath

import platformdirs

from .model import APP_NAME


def user_config_path() -> Path:
    """Where the per-user config file is looked for, e.g. ~/.config/batch-update/config.yaml."""
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "config.yaml"


def user_state_folder() -> Path:
    """The per-user state folder on local disk, where journals and run locks live by default.

    Windows: %LOCALAPPDATA%\\batch-update (never the roaming profile, which may sit on a share);
    Linux: ~/.local/state/batch-update ($XDG_STATE_HOME); macOS: ~/Library/Application
    Support/batch-update. The environment variable BATCH_UPDATE_STATE_DIR overrides it (tests, or
    a machine whose profile folder is itself redirected to a share).
    """
    override = os.environ.get(STATE_DIR_VARIABLE, "").strip()
    if override:
        return Path(override).expanduser().absolute()
    return Path(platformdirs.user_state_dir(APP_NAME, appauthor=False, roaming=False))


STATE_DIR_VARIABLE = "BATCH_UPDATE_STATE_DIR"


# GetDriveTypeW's answer for a mapped network drive.
DRIVE_REMOTE = 4


def windows_drive_type(root: str) -> int:
    """GetDriveTypeW of a drive root such as "Z:\\" (Windows only; 0, unknown, elsewhere)."""
    if os.name != "nt":
        return 0
    import ctypes  # stdlib; windll exists on Windows only

    return int(ctypes.windll.kernel32.GetDriveTypeW(root))  # type: ignore[attr-defined]


def network_location(
    path: str | PurePath, drive_type: Callable[[str], int] = windows_drive_type
) -> str | None:
    """Why a folder is on a network file system ("a UNC path", "mapped network drive Z:"), or None.

    A pure function of the path's text read the Windows way, so that it is tested anywhere:
    `\\\\server\\share\\...` (or `//server/share/...`) is a network share; a drive letter is one
    when drive_type (GetDriveTypeW on Windows) says DRIVE_REMOTE.
    """
    text = os.fspath(path)
    for prefix in ("\\\\?\\UNC\\", "//?/UNC/"):
        if text[: len(prefix)].upper() == prefix.upper():
            return f"a network share (\\\\{text[len(prefix) :]})"
    if text.startswith(("\\\\?\\", "\\\\.\\", "//?/", "//./")):
        text = text[4:]  # \\?\C:\... is a long local path
    windows = PureWindowsPath(text)
    drive = windows.drive
    if drive.startswith(("\\\\", "//")) or text.startswith(("\\\\", "//")):
        return f"a network share ({drive or text})"
    if len(drive) == 2 and drive[1] == ":":
        try:
            kind = drive_type(drive + "\\")
        except OSError:
            return None
        if kind == DRIVE_REMOTE:
            return f"the mapped network drive {drive.upper()}"
    return None
