"""Helpers for the tests of the command: run the installed batch-update, build sheets, read results.

The end-to-end tests run the installed command as a subprocess, the way an administrator or a
scheduler does: a scrubbed environment (no CCS_* variable and no user config file from the
machine running the tests), the current folder a fresh tmp_path, no terminal on stdin, and a
timeout on every call.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import openpyxl
import pytest
import python_calamine

from batch_updater.settings import Secret, load_settings
from batch_updater.tickets import RowResult

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"

ADMIN = "corp\\ccsadmin"
ADMIN_PASSWORD = "Demo-Passw0rd!"
AUDITOR = "corp\\auditor"
AUDITOR_PASSWORD = "Audit-Passw0rd!"

# For the tests that send POSIX signals (SIGINT, SIGTERM, SIGHUP, SIGKILL) or use a pseudo-terminal.
POSIX_ONLY = pytest.mark.skipif(
    sys.platform == "win32", reason="POSIX signals and pseudo-terminals; Windows has neither"
)

# Long enough for a loaded 2-core machine; a hung command still fails the test, not the suite.
TIMEOUT = 60.0

RESULT_COLUMNS = (
    "Row",
    "Outcome",
    "HTTP Status",
    "Message",
    "Attempts",
    "Sent At",
    "Duration ms",
    "Request",
)
HEADERS = ["Ticket Number", "State", "Priority", "Assigned To", "Description"]

# Retries that take tenths of a second instead of seconds, for runs that meet 5xx on purpose.
FAST_RETRIES_YAML = """\
retries:
  backoff_base: 0.05
  backoff_cap: 0.1
"""


def command_path() -> str:
    """The installed batch-update next to this interpreter (the venv's), else the one on PATH."""
    name = "batch-update.exe" if sys.platform == "win32" else "batch-update"
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which("batch-update")
    if found is None:
        raise RuntimeError("batch-update is not installed: run pip install -e . first")
    return found


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """A copy of the environment without CCS_* variables, with home and config folders in `home`."""
    env = {key: value for key, value in os.environ.items() if not key.upper().startswith("CCS_")}
    home.mkdir(parents=True, exist_ok=True)
    for name in ("HOME", "USERPROFILE", "XDG_CONFIG_HOME", "APPDATA", "LOCALAPPDATA"):
        env[name] = str(home)
    # Messages and the CSV are compared as UTF-8 text, whatever the machine's locale.
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONUTF8"] = "1"
    env.pop("COLUMNS", None)
    env.update(extra)
    return env


def run_command(
    args: Sequence[str],
    cwd: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run batch-update to the end, stdin not a terminal; stdout and stderr captured as text."""
    return subprocess.run(
        [command_path(), *args],
        cwd=cwd,
        env=dict(env) if env is not None else clean_env(cwd / "home"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )


def start_command(
    args: Sequence[str], cwd: Path, *, env: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start batch-update in the background (for signals); read it with finish()."""
    return subprocess.Popen(
        [command_path(), *args],
        cwd=cwd,
        env=dict(env) if env is not None else clean_env(cwd / "home"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )


def double_ctrl_c(process: subprocess.Popen[str], simulator: Any) -> tuple[int, str, str]:
    """Ctrl-C twice while requests are in flight; what finish() returns.

    Once two PATCHes are answered, every answer takes 3 s, so the next requests stay in flight:
    the first SIGINT stops sending, the second stops waiting for them.
    """
    import signal  # POSIX signals: only the tests that send them call this

    try:
        wait_until(lambda: len(patched(simulator)) >= 2)
        simulator.configure(latency_ms=3000)
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        time.sleep(0.3)
    finally:
        process.send_signal(signal.SIGINT)
    return finish(process)


def signal_after_patches(
    process: subprocess.Popen[str], simulator: Any, count: int, signum: int
) -> tuple[int, str, str]:
    """Send `signum` once the simulator has seen `count` PATCHes (or the command ended); finish()."""
    try:
        wait_until(lambda: len(patched(simulator)) >= count or process.poll() is not None)
    finally:
        process.send_signal(signum)
    return finish(process)


def finish(process: subprocess.Popen[str], timeout: float = TIMEOUT) -> tuple[int, str, str]:
    """Wait for a started command: (exit code, stdout, stderr); killed if it overruns."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"batch-update did not finish in {timeout:g} s:\n{err}") from None
    return process.returncode, out, err


def live_args(sim: Any, *more: str, user: str = ADMIN) -> list[str]:
    """The options of a live run against `sim` (the password goes in CCS_PASSWORD, never here)."""
    return ["--url", sim.url, "--user", user, "--yes", *more]


def live_env(home: Path, password: str = ADMIN_PASSWORD, **extra: str) -> dict[str, str]:
    """clean_env() with the password in CCS_PASSWORD."""
    return clean_env(home, CCS_PASSWORD=password, **extra)


def wait_until(condition: Callable[[], bool], timeout: float = 20.0, step: float = 0.02) -> None:
    """Poll `condition` until it holds; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout:g} s")
        time.sleep(step)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def base64_of(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def copy_sample(name: str, folder: Path) -> Path:
    """A copy of samples/<name> in `folder`, so that the results land there."""
    target = folder / name
    shutil.copyfile(SAMPLES / name, target)
    return target


# --- building input sheets ---------------------------------------------------------------------


def write_sheet(
    path: Path,
    rows: Iterable[Sequence[object]],
    *,
    headers: Sequence[str] = HEADERS,
    lead_rows: Sequence[Sequence[object]] = (),
) -> Path:
    """An .xlsx with `lead_rows` (title lines; [] for an empty row), the header, then `rows`.

    A row given as [] stays empty. Strings are stored as text, even those starting with "=".
    """
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Tickets"
    for line in [*lead_rows, headers, *rows]:
        if line:
            sheet.append([None if value == "" else value for value in line])
        else:
            sheet.append([None])
    for row in sheet.iter_rows():
        for cell in row:
            if isinstance(cell.value, str):
                cell.data_type = "s"
    book.save(path)
    return path


def ticket_rows(
    count: int, first: int = 1, *, state: object = 2, priority: object = "High"
) -> list[list[object]]:
    """`count` valid rows for the tickets INCA<first>..., every one a change the simulator takes."""
    return [
        [f"INCA{n:07d}", state, priority, f"corp\\user{n}", f"Patched ticket {n}"]
        for n in range(first, first + count)
    ]


# --- reading the results -----------------------------------------------------------------------


def results_files(folder: Path) -> list[Path]:
    """The results workbooks in `folder`."""
    return sorted(folder.glob("*.results-*.xlsx"))


def read_results(path: Path) -> list[dict[str, Any]]:
    """The Results sheet as one dict per row, keyed by header (read with openpyxl)."""
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        rows = list(book["Results"].iter_rows(values_only=True))
    finally:
        book.close()
    headers = list(rows[0])
    # A read-only sheet leaves out the empty cells at the end of a row.
    return [dict(zip(headers, [*row, *[None] * (len(headers) - len(row))])) for row in rows[1:]]


def by_row(results: Sequence[Mapping[str, Any]]) -> dict[int, Mapping[str, Any]]:
    """Results keyed by their Row number, asserting that every row appears exactly once."""
    numbers = [result["Row"] for result in results]
    assert len(numbers) == len(set(numbers)), f"a row appears twice: {numbers}"
    return {result["Row"]: result for result in results}


def read_summary(path: Path) -> dict[str, Any]:
    """The Summary sheet's label -> value pairs."""
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        rows = list(book["Summary"].iter_rows(values_only=True))
    finally:
        book.close()
    return {row[0]: row[1] if len(row) > 1 else None for row in rows if row and row[0]}


def formula_cells(path: Path) -> list[str]:
    """Every cell, on every sheet, that openpyxl reads as a formula, or whose text Excel would
    evaluate when the cell is edited (text starting with = + - @ without the quote prefix)."""
    book = openpyxl.load_workbook(path)
    try:
        return [
            f"{sheet.title}!{cell.coordinate}"
            for sheet in book.worksheets
            for row in sheet.iter_rows()
            for cell in row
            if cell.data_type == "f"
            or (isinstance(cell.value, str) and cell.value[:1] in "=+-@" and not cell.quotePrefix)
        ]
    finally:
        book.close()


def all_text(path: Path) -> str:
    """Every cell of every sheet as calamine reads it, one line per row (for 'never appears')."""
    book = python_calamine.CalamineWorkbook.from_path(str(path))
    lines = []
    for name in book.sheet_names:
        for row in book.get_sheet_by_name(name).to_python():
            lines.append("\t".join(str(value) for value in row))
    return "\n".join(lines)


def outcome_counts(results: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        counts[result["Outcome"]] = counts.get(result["Outcome"], 0) + 1
    return counts


def patched(sim: Any, status: int | None = None) -> list[str]:
    """The ticket numbers of the PATCHes the simulator logged (answered `status`, if given)."""
    return [
        record.ticket
        for record in sim.requests
        if record.method == "PATCH" and (status is None or record.status == status)
    ]


def answers_for(sim: Any, ticket: str) -> list[int | None]:
    """The statuses the simulator gave the PATCHes of one ticket, in order of arrival."""
    return [r.status for r in sim.requests if r.method == "PATCH" and r.ticket == ticket]


def pick(result: Mapping[str, Any], *columns: str) -> tuple[Any, ...]:
    """Some cells of a Results row, as a tuple to compare in one assertion."""
    return tuple(result[column] for column in columns)


def make_sender(client: Any, limiter: Any, **options: Any) -> Any:
    """A Sender from the options by name (concurrency=, retry=, verify=, on_result=, cancel=,
    read_back_first= ...), each put in the group it belongs to: policies, hooks, earlier rows."""
    import dataclasses

    from batch_updater.runner import EarlierRows, Sender, SenderHooks, SendPolicies

    rng = options.pop("rng", None)
    if "stop_policy" in options:
        options["stop"] = options.pop("stop_policy")
    groups = {}
    for cls in (SendPolicies, SenderHooks, EarlierRows):
        names = {f.name for f in dataclasses.fields(cls)}
        given = {name: options.pop(name) for name in list(options) if name in names}
        for name in ("read_back_first", "known_forbidden"):
            if name in given:
                given[name] = frozenset(given[name])
        groups[cls] = cls(**given)
    assert not options, f"not an option of the sender: {sorted(options)}"
    return Sender(
        client,
        limiter,
        groups[SendPolicies],
        groups[SenderHooks],
        groups[EarlierRows],
        rng=rng,
    )


# --- the run as a function, in-process: a console that records what it was told ---------


class FakeProgress:
    def __init__(self, console: FakeConsole, total: int) -> None:
        self.console = console
        self.done = 0

    def row_done(self, result: RowResult) -> None:
        self.done += 1
        if self.console.stop_after is not None and self.done >= self.console.stop_after:
            self.console.stops.cancel.set()  # as a Ctrl-C would

    def retrying(self, *args: object) -> None:
        self.console.said.append(("retrying", str(args)))

    def close(self) -> None:
        self.console.said.append(("progress closed", ""))


class FakeConsole:
    """A console that records what the run said and asked; answers as it is told."""

    def __init__(
        self,
        *,
        can_ask: bool = False,
        username: str = ADMIN,
        password: str | None = ADMIN_PASSWORD,
        confirm: bool = True,
        stop_after: int | None = None,
    ) -> None:
        self.said: list[tuple[str, str]] = []
        self.asked: list[str] = []
        self._can_ask = can_ask
        self.username = username
        self.password = password
        self.answer = confirm
        self.stop_after = stop_after
        self.stops = SimpleNamespace(cancel=threading.Event(), abandon=threading.Event())

    def note(self, text: str) -> None:
        self.said.append(("note", text))

    def warn(self, text: str) -> None:
        self.said.append(("warn", text))

    def can_ask(self) -> bool:
        return self._can_ask

    def ask_username(self) -> str:
        self.asked.append("user name")
        return self.username

    def ask_password(self, username: str, url: str) -> Secret | None:
        self.asked.append(f"password of {username}")
        return Secret(self.password) if self.password and self._can_ask else None

    def confirm(self, question: str) -> bool:
        self.asked.append(question)
        return self.answer

    def progress(self, total: int) -> FakeProgress:
        self.said.append(("progress", str(total)))
        return FakeProgress(self, total)

    def sending(self) -> Any:
        return nullcontext(self.stops)

    def writing(self) -> Any:
        return nullcontext(None)

    def texts(self, kind: str) -> list[str]:
        return [text for said, text in self.said if said == kind]


def settings_for(sim: Any, **cli: object):
    """Settings as the command line would give them: the server, the rate, no config file."""
    given = {"url": sim.url if sim else None, "username": ADMIN, "rate": 200.0, **cli}
    env = {"CCS_PASSWORD": ADMIN_PASSWORD} if given.get("username") else {}
    return load_settings(cli=given, env=env, config_path=None)
