"""What the steps of a run share: the log, who runs it, and how names and times are written."""

from __future__ import annotations

import getpass
import logging
import os
import socket
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger("batch_updater")

# Without a handler, logging's last resort would print "internal error" and its traceback on
# stderr, which is for --debug only.
log.addHandler(logging.NullHandler())


MAX_PROBLEMS_SHOWN = 20


def _os_user() -> str:
    """The OS user running the command, with its Windows domain when there is one."""
    try:
        user = getpass.getuser()
    except Exception:  # getuser raises different things on different platforms
        user = "unknown"
    domain = os.environ.get("USERDOMAIN")
    if domain and "\\" not in user:
        user = f"{domain}\\{user}"
    return user


def _who_here() -> dict[str, str]:
    """The OS user and host of this command, as a plan or an approval records them."""
    return {"os_user": _os_user(), "host": socket.gethostname()}


def _operator() -> str:
    return f"{_os_user()} on {socket.gethostname()}"


def _quoted(path: Path) -> str:
    """A path as it can be typed back on a command line (double quotes work in every shell)."""
    text = str(path)
    return f'"{text}"' if any(c.isspace() or c in "&()'^;|<>$`" for c in text) else text


def _here_if_possible(folder: Path) -> Path:
    """A folder relative to the current one when it is inside it (names stay short on screen)."""
    try:
        return folder.relative_to(Path.cwd())
    except ValueError:
        return folder


def _when(moment: datetime | None) -> str:
    return (
        moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        if moment
        else "an unknown time"
    )


def _concurrency_text(concurrency: int | str) -> str:
    """ "4 at a time", or what automatic concurrency means, for the start-of-run line."""
    from ..runner import AUTO_MAX_WORKERS, AUTO_START_WORKERS

    if isinstance(concurrency, int):
        return f"{concurrency} at a time"
    return f"{AUTO_START_WORKERS} to {AUTO_MAX_WORKERS} at a time, as the response time needs"


def write_document_file(
    target: Path, document: Mapping[str, object], own_key: str, what: str
) -> str:
    """Write a plan or an approval with its own SHA-256 (atomically, never over a file); the
    SHA-256. `what`: "the plan file"."""
    from ..plans import document_text
    from ..report import write_atomically

    text, sha = document_text(document, own_key)

    def save(temp: Path) -> None:
        with open(temp, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)

    write_atomically(target, save, what)
    return sha
