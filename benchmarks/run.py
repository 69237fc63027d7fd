"""Benchmarks of batch-update: offline cost, pace fidelity, latency hiding, client overhead and
simulator capacity, measured side by side with their floors and baselines (issue 7).

    python benchmarks/run.py            # everything, about 3-4 minutes on 2 cores
    python benchmarks/run.py --quick    # smaller sizes, about a minute, for trying it out

Options: --only offline,pace,latency,overhead,capacity   --json FILE (raw figures)
--profile DIR (cProfile each measured section into DIR; timings are then not comparable)
--latency-concurrency N (default: the tool's default concurrency)   --keep (keep the temp folder)

Every measured stage runs in a fresh Python process (this file, called with --stage), so that
timings and peak memory of one stage never mix with another's. The simulator always runs in a
process of its own (python -m batch_updater.sim), so the client's CPU is the client's alone.
Generated sheets and results go to a temporary folder, never into the repository. Only the
project's own dependencies and the standard library are used.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
RESULT_MARKER = "BENCH-RESULT "

USER = "corp\\ccsadmin"
PASSWORD = "Demo-Passw0rd!"
TOKEN_PATH = "/ccs/api/v1/oauth/tokens"
TICKETS_PATH = "/ccs/api/v1/RemediationTickets/"
# The simulator's tickets INCA0000990..999 belong to a standard the demo account may not touch
# (403); the benchmarks want every request to be a plain 204, so they skip those numbers.
RESTRICTED = range(990, 1000)

HEADERS = [
    "Ticket Number",
    "Asset",
    "Standard",
    "State",
    "Priority",
    "Assigned To",
    "Description",
    "Notes",
]
STANDARDS = [
    "CIS Windows Server 2022",
    "CIS SQL Server 2019",
    "DISA STIG AD",
    "PCI DSS 4.0",
    "CIS RHEL 9",
    "NIST 800-53 AC-17",
    "ISO 27001 A.8",
]
ASSIGNEES = [
    "corp\\jsmith",
    "corp\\akhan",
    "corp\\mgarcia",
    "corp\\tnguyen",
    "a.khan@corp.example",
    "",
]
FINDINGS = [
    "Patched KB5034441 and rebooted",
    "SMBv1 disabled",
    "Verified by rescan",
    "auditd rules deployed",
    "MFA enforced for all VPN users",
    "Weak ciphers removed (Zürich)",
    "Session timeout set to 15 minutes",
    "Control not applicable: server decommissioned",
]
STATES = [2, "Remediation Performed", 3, "Verified", 5, "2", 2.0, "Not Applicable"]
PRIORITIES = ["High", "Medium", "Low", "high"]

FULL = {
    "offline_sizes": [10_000, 100_000],
    "offline_repeats": 2,
    "pace_rows": 2_000,
    "pace_rate": 50.0,
    "pace_latency_ms": 20,
    "latency_rows": 1_000,
    "latency_rate": 20.0,
    "latency_latency_ms": 200,
    # beside 3: a slower server (500 ms), where 4 workers cannot keep 20/s (at most 8/s)
    "slow_rows": 200,
    "slow_latency_ms": 500,
    "overhead_rows": 5_000,
    "overhead_rate": 100_000.0,
    "overhead_concurrency": 8,
    "overhead_repeats": 2,
    "capacity_seconds": 5.0,
    "capacity_clients": 8,
}
QUICK = {
    **FULL,
    "offline_sizes": [2_000, 10_000],
    "offline_repeats": 1,
    "pace_rows": 500,
    "latency_rows": 200,
    "slow_rows": 60,
    "overhead_rows": 1_000,
    "overhead_repeats": 1,
    "capacity_seconds": 2.0,
}

# Targets of issue 7.
FLOOR_RATIO_TARGET = 1.3
PEAK_MB_TARGET = 400
PACE_RANGE = (0.97, 1.00)
LATENCY_TARGET = 1.05
CPU_MS_TARGET = 1.0


# =============================================================================================
# Measuring helpers (used by the stage processes)


def peak_rss_kib() -> tuple[int | None, str]:
    """This process's peak resident set size in KiB, and where the figure comes from.

    On Linux the process's own high-water mark (VmHWM) is used: ru_maxrss of a child started by
    subprocess also counts its parent's RSS at the moment of the fork/exec (Linux carries the
    old memory's high-water mark across exec), so a big parent would inflate every child's
    figure. The parent here stays small, and ru_maxrss is reported beside it as a cross-check.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]), "VmHWM"
    except OSError:
        pass
    maxrss = ru_maxrss_kib()
    if maxrss is not None:
        return maxrss, "ru_maxrss"
    return _windows_peak_kib(), "PeakWorkingSetSize"


def ru_maxrss_kib() -> int | None:
    try:
        import resource
    except ImportError:
        return None
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value // 1024 if sys.platform == "darwin" else value  # macOS reports bytes


def _windows_peak_kib() -> int | None:
    try:
        import ctypes
        from ctypes import wintypes

        class Counters(ctypes.Structure):
            _fields_ = [("cb", wintypes.DWORD), ("PageFaultCount", wintypes.DWORD)] + [
                (name, ctypes.c_size_t)
                for name in (
                    "PeakWorkingSetSize",
                    "WorkingSetSize",
                    "QuotaPeakPagedPoolUsage",
                    "QuotaPagedPoolUsage",
                    "QuotaPeakNonPagedPoolUsage",
                    "QuotaNonPagedPoolUsage",
                    "PagefileUsage",
                    "PeakPagefileUsage",
                )
            ]

        counters = Counters()
        counters.cb = ctypes.sizeof(Counters)
        process = ctypes.windll.kernel32.GetCurrentProcess()  # type: ignore[attr-defined]
        if not ctypes.windll.psapi.GetProcessMemoryInfo(  # type: ignore[attr-defined]
            process, ctypes.byref(counters), counters.cb
        ):
            return None
        return int(counters.PeakWorkingSetSize // 1024)
    except Exception:  # no psapi, not Windows: no figure rather than a crash
        return None


def memory_now() -> dict[str, Any]:
    peak, source = peak_rss_kib()
    return {"peak_kib": peak, "peak_source": source, "ru_maxrss_kib": ru_maxrss_kib()}


class Profiled:
    """Run a section under cProfile when a path is given; otherwise do nothing.

    Threads started inside the section get a profiler of their own (cProfile sees only the
    thread that enabled it), and all of them are merged into the one stats file. The clock is
    each thread's own CPU time, so that a thread blocked on a socket or a lock does not show up
    as busy: the profile says where the CPU goes, which is what the targets are about.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.profiles: list[Any] = []

    def __enter__(self) -> Profiled:
        if self.path:
            import cProfile

            def start_in_thread(frame: object, event: str, arg: object) -> None:
                profile = cProfile.Profile(time.thread_time)
                self.profiles.append(profile)
                profile.enable()  # replaces this hook for the rest of the thread

            threading.setprofile(start_in_thread)
            profile = cProfile.Profile(time.thread_time)
            self.profiles.append(profile)
            profile.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.profiles:
            import pstats

            threading.setprofile(None)  # type: ignore[arg-type]
            self.profiles[0].disable()
            stats = pstats.Stats(self.profiles[0])
            for profile in self.profiles[1:]:
                stats.add(profile)
            stats.dump_stats(self.path)


def other_process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) used so far by another process; None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks
    except (OSError, ValueError, IndexError, AttributeError):
        return None


# =============================================================================================
# Data


def sheet_rows(count: int, *, seed: int = 7, invalid_every: int = 0) -> list[list[object]]:
    """Rows of an edited CCS export: mixed cell types, like a sheet people typed into.

    Ticket numbers are unique and skip the simulator's restricted tickets; with invalid_every,
    every n-th row has a state the tool refuses ("Done"), so the Invalid path is exercised too.
    """
    rng = random.Random(seed)
    rows: list[list[object]] = []
    index = 0
    while len(rows) < count:
        index += 1
        if index in RESTRICTED:
            continue
        n = len(rows)
        standard = STANDARDS[index % len(STANDARDS)]
        asset = f"{standard.split()[0].upper()}-{index % 997:04d}"
        finding = FINDINGS[rng.randrange(len(FINDINGS))]
        description = f"{finding} on {asset}"
        if n % 200 == 17:
            description = "- " + description  # starts with a dash: made safe on the way out
        state: object = STATES[rng.randrange(len(STATES))]
        if invalid_every and n % invalid_every == invalid_every - 1:
            state = "Done"
        rows.append(
            [
                f"INCA{index:07d}",
                asset,
                standard,
                state,
                PRIORITIES[rng.randrange(len(PRIORITIES))],
                ASSIGNEES[rng.randrange(len(ASSIGNEES))],
                description,
                "checked by J. Smith" if n % 50 == 0 else "",
            ]
        )
    return rows


def write_xlsx(path: Path, rows: list[list[object]]) -> None:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Tickets")
    sheet.append(HEADERS)
    for row in rows:
        sheet.append([None if cell == "" else cell for cell in row])
    book.save(str(path))


# =============================================================================================
# Stages: each runs in a fresh process and returns a dict of figures


def stage_generate(p: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    write_xlsx(Path(p["path"]), sheet_rows(p["rows"], invalid_every=100))
    return {"seconds": time.perf_counter() - started, "bytes": os.path.getsize(p["path"])}


def _rules():
    from batch_updater.settings import Settings
    from batch_updater.validate import rules_from_settings

    return rules_from_settings(Settings())


def stage_read(p: dict[str, Any]) -> dict[str, Any]:
    import pickle

    from batch_updater.sheet import read_sheet

    rules = _rules()
    before = memory_now()
    with Profiled(p.get("profile")):
        started = time.perf_counter()
        sheet = read_sheet(Path(p["path"]), is_header_row=rules.is_header_row)
        seconds = time.perf_counter() - started
    after = memory_now()
    with open(p["pickle"], "wb") as out:
        pickle.dump(sheet, out, protocol=pickle.HIGHEST_PROTOCOL)
    return {"seconds": seconds, "rows": len(sheet.rows), "before": before, "memory": after}


def stage_validate(p: dict[str, Any]) -> dict[str, Any]:
    import pickle

    from batch_updater.sweep import planned_results
    from batch_updater.validate import plan_rows

    rules = _rules()
    with open(p["sheet"], "rb") as stream:
        sheet = pickle.load(stream)
    before = memory_now()
    with Profiled(p.get("profile")):
        started = time.perf_counter()
        # What sweep.run does for a dry run between reading and writing: the plan, then the
        # verdict of every row.
        plan = plan_rows(sheet, rules)
        decided = {r.row_number: r for r in planned_results(plan.rows, True)}
        results = [decided[row.row_number] for row in plan.rows]
        seconds = time.perf_counter() - started
    after = memory_now()
    with open(p["pickle"], "wb") as out:
        pickle.dump(results, out, protocol=pickle.HIGHEST_PROTOCOL)
    counts = Counter(r.outcome.value for r in results)
    return {"seconds": seconds, "outcomes": dict(counts), "before": before, "memory": after}


def _run_info(sheet_path: str, sheet: Any):
    from batch_updater import __version__
    from batch_updater.tickets import RunInfo

    now = datetime.now(timezone.utc)
    return RunInfo(
        input_path=str(Path(sheet_path).resolve()),
        input_sha256="0" * 64,
        sheet_name=sheet.sheet_name,
        tool_version=__version__,
        operator="benchmark",
        started=now,
        finished=now,
        rate=5.0,
        concurrency=4,
        dry_run=True,
    )


def stage_write(p: dict[str, Any]) -> dict[str, Any]:
    import pickle

    from batch_updater.report import write_results

    with open(p["sheet"], "rb") as stream:
        sheet = pickle.load(stream)
    with open(p["results"], "rb") as stream:
        results = pickle.load(stream)
    info = _run_info(p["path"], sheet)
    before = memory_now()
    with Profiled(p.get("profile")):
        started = time.perf_counter()
        write_results(Path(p["out"]), sheet, results, info)
        seconds = time.perf_counter() - started
    after = memory_now()
    return {
        "seconds": seconds,
        "bytes": os.path.getsize(p["out"]),
        "before": before,
        "memory": after,
    }


def stage_floor_read(p: dict[str, Any]) -> dict[str, Any]:
    from python_calamine import CalamineWorkbook

    before = memory_now()
    started = time.perf_counter()
    grid = CalamineWorkbook.from_path(p["path"]).get_sheet_by_index(0).to_python()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": len(grid), "before": before, "memory": memory_now()}


def stage_floor_write(p: dict[str, Any]) -> dict[str, Any]:
    """openpyxl write-only alone, writing the same Results table (input columns + outcomes)."""
    import pickle

    from openpyxl import Workbook

    from batch_updater.report import RESULT_COLUMNS

    with open(p["sheet"], "rb") as stream:
        sheet = pickle.load(stream)
    with open(p["results"], "rb") as stream:
        results = pickle.load(stream)
    table = [list(sheet.headers) + list(RESULT_COLUMNS)]
    for row, r in zip(sheet.rows, results):
        table.append(
            list(row.values)
            + [
                r.row_number,
                r.outcome.value,
                r.status,
                r.message or None,
                r.attempts,
                None,
                r.duration_ms,
                r.request_json,
            ]
        )
    del sheet, results
    before = memory_now()
    started = time.perf_counter()
    book = Workbook(write_only=True)
    ws = book.create_sheet("Results")
    for values in table:
        ws.append(values)
    book.save(p["out"])
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "bytes": os.path.getsize(p["out"]),
        "before": before,
        "memory": memory_now(),
    }


def _bench_console():
    """The run's console in a benchmark: the terminal's (progress lines every tenth, as in a
    scheduled run; no questions), timing the sending phase from the first request to the last
    answer in wall and CPU seconds."""
    from batch_updater.cli import TerminalConsole

    class BenchConsole(TerminalConsole):
        wall = cpu = 0.0

        def can_ask(self) -> bool:
            return False

        def progress(self, total: int) -> Any:
            inner = super().progress(total)
            console = self
            began, cpu = time.perf_counter(), time.process_time()

            class Timed:
                row_done = inner.row_done
                retrying = inner.retrying

                def close(self) -> None:
                    inner.close()
                    if not console.wall:
                        console.wall = time.perf_counter() - began
                        console.cpu = time.process_time() - cpu

            return Timed()

    return BenchConsole


def stage_dryrun(p: dict[str, Any]) -> dict[str, Any]:
    """The real dry run, sweep.run() with dry_run, its steps timed by the run itself."""
    from batch_updater.settings import load_settings
    from batch_updater.sweep import RunRequest, run

    settings = load_settings(cli={}, env={}, config_path=None)
    console = _bench_console()(quiet=True)
    before = memory_now()
    with Profiled(p.get("profile")):
        started = time.perf_counter()
        outcome = run(
            RunRequest(Path(p["path"]), dry_run=True, out=Path(p["out"])), settings, console
        )
        seconds = time.perf_counter() - started
    # read: the input's SHA-256 (twice) and read_sheet; validate: plan_rows, every row's
    # verdict and the output checks; write: the workbook and the manifest.
    split = {step: outcome.timings[step] for step in ("read", "validate", "write")}
    split["other"] = seconds - sum(split.values())
    return {
        "seconds": seconds,
        "split": split,
        "status": int(outcome.status),
        "before": before,
        "memory": memory_now(),
    }


def _network_rows(count: int):
    """Valid planned rows, made by the tool's own validation from an in-memory sheet."""
    from batch_updater.settings import Settings
    from batch_updater.tickets import Sheet, SheetRow
    from batch_updater.validate import plan_rows, rules_from_settings

    cells = sheet_rows(count)
    sheet = Sheet(
        path="benchmark.xlsx",
        sheet_name="Tickets",
        header_row=1,
        headers=list(HEADERS),
        rows=[
            SheetRow(
                n + 2, tuple(None if c == "" else int(c) if type(c) is float else c for c in row)
            )
            for n, row in enumerate(cells)
        ],
    )
    plan = plan_rows(sheet, rules_from_settings(Settings()))
    return plan.valid_rows


def stage_send(p: dict[str, Any]) -> dict[str, Any]:
    """A live run of the tool against the simulator: sweep.run(), as `batch-update run` calls
    it (the sheet read, the journal written per row, the workbook and manifest). Wall and CPU
    are those of the sending phase, from the first request to the last answer."""
    import csv

    from batch_updater.settings import STATE_DIR_VARIABLE, load_settings
    from batch_updater.sweep import RunRequest, run
    from batch_updater.tickets import Outcome

    folder = Path(tempfile.mkdtemp(prefix="bench-send-"))
    os.environ[STATE_DIR_VARIABLE] = str(folder / "state")  # journals and locks of this stage only
    sheet = folder / "tickets.csv"
    with sheet.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(HEADERS)
        writer.writerows(
            ["" if c is None else int(c) if type(c) is float else c for c in row]
            for row in sheet_rows(p["rows"])
        )
    concurrency = p.get("concurrency") or "auto"
    settings = load_settings(
        cli={"url": p["url"], "username": USER, "concurrency": str(concurrency)},
        env={"CCS_PASSWORD": PASSWORD},
        config_path=None,
    )
    # The overhead stage measures the client unthrottled, beyond the 1000/s a user may set.
    settings = dataclasses.replace(settings, rate=float(p["rate"]))
    console = _bench_console()(quiet=False)
    sim_cpu_before = other_process_cpu(p["sim_pid"]) if p.get("sim_pid") else None
    with Profiled(p.get("profile")):
        outcome = run(RunRequest(sheet, yes=True, again=True), settings, console)
    sim_cpu_after = other_process_cpu(p["sim_pid"]) if p.get("sim_pid") else None
    results = [r for r in outcome.results if r.outcome is not Outcome.SKIPPED]
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "rows": len(results),
        "concurrency": concurrency,
        "workers": outcome.workers,
        "rate": p["rate"],
        "wall": console.wall,
        "cpu": console.cpu,
        "sim_cpu": None
        if sim_cpu_before is None or sim_cpu_after is None
        else sim_cpu_after - sim_cpu_before,
        "outcomes": dict(Counter(r.outcome.value for r in results)),
        "statuses": dict(Counter(str(r.status) for r in results)),
        "attempts": sum(r.attempts for r in results),
        "stopped": next((w for w in outcome.warnings if "stopped early" in w), ""),
    }


def stage_vendor(p: dict[str, Any]) -> dict[str, Any]:
    """A client written like the vendor's sample script: one new connection per request."""
    import base64

    import requests

    rows = _network_rows(p["rows"])
    bodies = [row.update.to_json() for row in rows]
    url = p["url"]
    token = requests.post(
        url + TOKEN_PATH,
        data={
            "grant_type": "password",
            "username": USER,
            "password": base64.b64encode(PASSWORD.encode()).decode(),
        },
    ).json()["access_token"]
    statuses: Counter[int] = Counter()
    sim_cpu_before = other_process_cpu(p["sim_pid"]) if p.get("sim_pid") else None
    cpu = time.process_time()
    started = time.perf_counter()
    for body in bodies:
        response = requests.request(
            "PATCH",
            url + TICKETS_PATH,
            headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"},
            data=json.dumps(body),
        )
        statuses[response.status_code] += 1
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    sim_cpu_after = other_process_cpu(p["sim_pid"]) if p.get("sim_pid") else None
    return {
        "rows": len(bodies),
        "wall": wall,
        "cpu": cpu,
        "statuses": dict(statuses),
        "sim_cpu": None
        if sim_cpu_before is None or sim_cpu_after is None
        else sim_cpu_after - sim_cpu_before,
    }


def stage_sessions(p: dict[str, Any]) -> dict[str, Any]:
    """requests alone, as the tool uses it: a Session per thread, N threads, no package code."""
    import base64

    import requests

    bodies = [row.update.to_json_text().encode() for row in _network_rows(p["rows"])]
    url = p["url"]
    token = requests.post(
        url + TOKEN_PATH,
        data={
            "grant_type": "password",
            "username": USER,
            "password": base64.b64encode(PASSWORD.encode()).decode(),
        },
    ).json()["access_token"]
    headers = {
        "Authorization": "Bearer " + token,
        "Accept": "application/json",
        "Content-Type": "application/json; charset=utf-8",
    }
    todo = iter(bodies)
    lock = threading.Lock()
    statuses: Counter[int] = Counter()

    def work() -> None:
        session = requests.Session()
        while True:
            with lock:
                body = next(todo, None)
            if body is None:
                break
            response = session.request(
                "PATCH",
                url + TICKETS_PATH,
                data=body,
                headers=headers,
                timeout=(10.0, 60.0),
                allow_redirects=False,
            )
            _ = response.content  # read the body, as the tool does
            with lock:
                statuses[response.status_code] += 1
        session.close()

    threads = [threading.Thread(target=work) for _ in range(p["concurrency"])]
    cpu = time.process_time()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    return {
        "rows": len(bodies),
        "wall": wall,
        "cpu": cpu,
        "statuses": {str(k): v for k, v in statuses.items()},
        "concurrency": p["concurrency"],
    }


def stage_capacity(p: dict[str, Any]) -> dict[str, Any]:
    """PATCH/s the simulator answers to N keep-alive http.client connections in threads."""
    import base64
    import http.client
    from urllib.parse import urlencode, urlsplit

    target = urlsplit(p["url"])
    host, port = target.hostname, target.port
    conn = http.client.HTTPConnection(host, port, timeout=30)
    form = urlencode(
        {
            "grant_type": "password",
            "username": USER,
            "password": base64.b64encode(PASSWORD.encode()).decode(),
        }
    )
    conn.request("POST", TOKEN_PATH, form, {"Content-Type": "application/x-www-form-urlencoded"})
    token = json.loads(conn.getresponse().read())["access_token"]
    conn.close()
    headers = {
        "Authorization": "Bearer " + token,
        "Content-Type": "application/json; charset=utf-8",
    }
    bodies = [json.dumps(row.update.to_json()).encode() for row in _network_rows(2_000)]
    clients = p["clients"]
    seconds = p["seconds"]
    counts = [0] * clients
    statuses: list[Counter[int]] = [Counter() for _ in range(clients)]
    go = threading.Barrier(clients + 1)
    stop = threading.Event()

    def client(number: int) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=30)
        connection.connect()
        go.wait()
        i = number
        while not stop.is_set():
            connection.request("PATCH", TICKETS_PATH, bodies[i % len(bodies)], headers)
            response = connection.getresponse()
            response.read()
            statuses[number][response.status] += 1
            counts[number] += 1
            i += clients
        connection.close()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    sim_cpu_before = other_process_cpu(p["sim_pid"]) if p.get("sim_pid") else None
    go.wait()
    started = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    sim_cpu_after = other_process_cpu(p["sim_pid"]) if p.get("sim_pid") else None
    total = sum(counts)
    all_statuses: Counter[int] = Counter()
    for c in statuses:
        all_statuses.update(c)
    return {
        "requests": total,
        "wall": wall,
        "per_second": total / wall,
        "clients": clients,
        "statuses": {str(k): v for k, v in all_statuses.items()},
        "sim_cpu": None
        if sim_cpu_before is None or sim_cpu_after is None
        else sim_cpu_after - sim_cpu_before,
    }


STAGES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "generate": stage_generate,
    "read": stage_read,
    "validate": stage_validate,
    "write": stage_write,
    "floor_read": stage_floor_read,
    "floor_write": stage_floor_write,
    "dryrun": stage_dryrun,
    "send": stage_send,
    "vendor": stage_vendor,
    "sessions": stage_sessions,
    "capacity": stage_capacity,
}


def run_stage_here(name: str, params_json: str) -> int:
    figures = STAGES[name](json.loads(params_json))
    sys.stdout.flush()
    print(RESULT_MARKER + json.dumps(figures), flush=True)
    return 0


# =============================================================================================
# The orchestrating process: stays small (it imports nothing of the package's heavy parts)


class Bench:
    def __init__(self, temp: Path, profile_dir: Path | None) -> None:
        self.temp = temp
        self.profile_dir = profile_dir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CCS_")}
        # No config file of this machine or user may change the settings under measurement:
        # the dry run reads an empty one (CCS_CONFIG), on every platform.
        empty = temp / "config" / "empty.yaml"
        empty.parent.mkdir(exist_ok=True)
        empty.write_text("{}\n", encoding="utf-8")
        self.env["CCS_CONFIG"] = str(empty)
        self.env["XDG_CONFIG_HOME"] = str(temp / "config")
        self.env["PYTHONDONTWRITEBYTECODE"] = "1"

    def output(self, name: str) -> Path:
        """A path in a folder of its own: whatever the tool writes beside it goes there too."""
        self._outputs = getattr(self, "_outputs", 0) + 1
        folder = self.temp / f"out-{self._outputs}"
        folder.mkdir()
        return folder / name

    @staticmethod
    def discard(path: Path) -> None:
        shutil.rmtree(path.parent, ignore_errors=True)

    def stage(self, name: str, timeout: float = 600, **params: Any) -> dict[str, Any]:
        if self.profile_dir is not None and "profile" not in params:
            params["profile"] = str(self.profile_dir / f"{name}-{params.get('label', '')}.prof")
        params.pop("label", None)
        done = subprocess.run(
            [sys.executable, str(HERE), "--stage", name, json.dumps(params)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.temp,
            env=self.env,
        )
        for line in reversed(done.stdout.splitlines()):
            if line.startswith(RESULT_MARKER):
                return json.loads(line[len(RESULT_MARKER) :])
        raise RuntimeError(
            f"stage {name} failed (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )


class SimProcess:
    """ccs-sim in its own process: python -m batch_updater.sim --port 0 --quiet ..."""

    def __init__(self, bench: Bench, *, tickets: int, latency_ms: float = 0, seed: int = 1) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "batch_updater.sim",
                "--port",
                "0",
                "--quiet",
                "--tickets",
                str(tickets),
                "--seed",
                str(seed),
                "--latency-ms",
                str(latency_ms),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=bench.temp,
            env=bench.env,
        )
        self.url = ""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if "listening on" in line:
                self.url = line.split("listening on", 1)[1].strip()
                break
        if not self.url:
            raise RuntimeError("ccs-sim did not start: " + (self.proc.stdout.read() or ""))
        # Keep reading its output so that a full pipe can never stall it.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def requests(self) -> list[dict[str, Any]]:
        from urllib.request import urlopen

        with urlopen(self.url + "/_sim/requests", timeout=60) as answer:
            return json.loads(answer.read())

    def close(self) -> None:
        if self.proc.poll() is None:
            if os.name == "posix":
                self.proc.send_signal(signal.SIGTERM)
            else:
                self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def patch_arrivals(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Rate and busiest second of the PATCHes as the simulator saw them arrive."""
    from batch_updater.sim.requestlog import RequestLog, RequestRecord

    log = RequestLog()
    for record in records:
        log.append(RequestRecord(**record))
    times = sorted(r["t"] for r in records if r["method"] == "PATCH")
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return {
        "patches": len(times),
        "span": span,
        "rate": (len(times) - 1) / span if span > 0 else None,
        # The simulator's own measure (Simulator.max_requests_in_window), over its own log.
        "max_in_1s": log.max_in_window(1.0, "PATCH"),
        "statuses": dict(Counter(str(r["status"]) for r in records if r["method"] == "PATCH")),
    }


# -- the five benchmarks ------------------------------------------------------------------------


def bench_offline(
    bench: Bench, sizes: list[int], repeats: int, say: Callable[[str], None]
) -> list[dict[str, Any]]:
    out = []
    for size in sizes:
        tag = f"{size // 1000}k"
        path = bench.temp / f"tickets-{tag}.xlsx"
        say(f"offline {size:,} rows: generating the sheet ...")
        generated = bench.stage("generate", path=str(path), rows=size, profile=None)
        pickled_sheet = str(bench.temp / f"sheet-{tag}.pickle")
        pickled_results = str(bench.temp / f"results-{tag}.pickle")
        say(f"offline {size:,} rows: read, validate and write, each alone ...")
        read = bench.stage("read", path=str(path), pickle=pickled_sheet, label=tag)
        validate = bench.stage("validate", sheet=pickled_sheet, pickle=pickled_results, label=tag)
        target = bench.output(f"stage-write-{tag}.xlsx")
        write = bench.stage(
            "write",
            path=str(path),
            sheet=pickled_sheet,
            results=pickled_results,
            out=str(target),
            label=tag,
        )
        bench.discard(target)
        # The comparison that the target is about: the whole dry run against the floors,
        # interleaved and repeated, the fastest of each kept (the least disturbed by others).
        runs: dict[str, list[dict[str, Any]]] = {"floor_read": [], "floor_write": [], "dryrun": []}
        for attempt in range(repeats):
            say(
                f"offline {size:,} rows: floor read, whole dry run, floor write "
                f"({attempt + 1} of {repeats}) ..."
            )
            runs["floor_read"].append(bench.stage("floor_read", path=str(path), profile=None))
            target = bench.output(f"tickets-{tag}.results.xlsx")
            runs["dryrun"].append(
                bench.stage("dryrun", path=str(path), out=str(target), label=f"{tag}-{attempt + 1}")
            )
            bench.discard(target)
            target = bench.output(f"floor-write-{tag}.xlsx")
            runs["floor_write"].append(
                bench.stage(
                    "floor_write",
                    sheet=pickled_sheet,
                    results=pickled_results,
                    out=str(target),
                    profile=None,
                )
            )
            bench.discard(target)
        best = {name: min(found, key=lambda run: run["seconds"]) for name, found in runs.items()}
        floor_read, floor_write, dryrun = best["floor_read"], best["floor_write"], best["dryrun"]
        out.append(
            {
                "rows": size,
                "file_bytes": generated["bytes"],
                "generate_s": generated["seconds"],
                "floor_read": floor_read,
                "read": read,
                "validate": validate,
                "write": write,
                "floor_write": floor_write,
                "dryrun": dryrun,
                "repeats": repeats,
                "all_seconds": {
                    name: [run["seconds"] for run in found] for name, found in runs.items()
                },
            }
        )
    return out


def bench_pace(bench: Bench, cfg: dict[str, Any], say: Callable[[str], None]) -> dict[str, Any]:
    rows, rate = cfg["pace_rows"], cfg["pace_rate"]
    say(
        f"pace fidelity: {rows:,} rows at {rate:g}/s, latency {cfg['pace_latency_ms']} ms "
        f"(~{rows / rate:.0f} s) ..."
    )
    with SimProcess(bench, tickets=rows + 100, latency_ms=cfg["pace_latency_ms"]) as sim:
        client = bench.stage(
            "send", url=sim.url, sim_pid=sim.pid, rows=rows, rate=rate, label="pace"
        )
        arrivals = patch_arrivals(sim.requests())
    return {
        "client": client,
        "server": arrivals,
        "rate": rate,
        "latency_ms": cfg["pace_latency_ms"],
    }


def bench_latency(
    bench: Bench, cfg: dict[str, Any], concurrency: str | None, say: Callable[[str], None]
) -> dict[str, Any]:
    figures = _latency_run(
        bench,
        cfg["latency_rows"],
        cfg["latency_rate"],
        cfg["latency_latency_ms"],
        concurrency,
        "latency",
        say,
    )
    # Beside it, a slower server: the default (automatic) concurrency against a fixed 4.
    figures["slow"] = [
        _latency_run(
            bench,
            cfg["slow_rows"],
            cfg["latency_rate"],
            cfg["slow_latency_ms"],
            fixed,
            f"slow-{fixed or 'default'}",
            say,
        )
        for fixed in (None, "4")
    ]
    return figures


def _latency_run(
    bench: Bench,
    rows: int,
    rate: float,
    latency_ms: int,
    concurrency: str | None,
    label: str,
    say: Callable[[str], None],
) -> dict[str, Any]:
    say(
        f"latency hiding: {rows:,} rows at {rate:g}/s, latency {latency_ms} ms, concurrency "
        f"{concurrency or 'default'} (~{rows / rate:.0f} s) ..."
    )
    with SimProcess(bench, tickets=rows + 100, latency_ms=latency_ms) as sim:
        client = bench.stage(
            "send",
            url=sim.url,
            sim_pid=sim.pid,
            rows=rows,
            rate=rate,
            concurrency=concurrency,
            label=label,
        )
        arrivals = patch_arrivals(sim.requests())
    return {
        "client": client,
        "server": arrivals,
        "rate": rate,
        "latency_ms": latency_ms,
        "ratio": client["wall"] / (rows / rate),
    }


def _concurrency(client: dict[str, Any]) -> str:
    """ "concurrency 8", or "concurrency auto (6 workers)"."""
    if client["concurrency"] == "auto":
        return f"concurrency auto ({client['workers']} workers)"
    return f"concurrency {client['concurrency']}"


def bench_overhead(bench: Bench, cfg: dict[str, Any], say: Callable[[str], None]) -> dict[str, Any]:
    rows = cfg["overhead_rows"]
    repeats = cfg["overhead_repeats"]
    runs: dict[str, list[dict[str, Any]]] = {"client": [], "vendor": [], "sessions": []}
    for attempt in range(repeats):
        say(
            f"client overhead: {rows:,} rows, no limit, no latency, concurrency "
            f"{cfg['overhead_concurrency']}; the vendor-style baseline; requests alone "
            f"({attempt + 1} of {repeats}) ..."
        )
        # A fresh simulator for each, so that one run's connections and log cannot slow the next.
        with SimProcess(bench, tickets=rows + 100) as sim:
            runs["client"].append(
                bench.stage(
                    "send",
                    url=sim.url,
                    sim_pid=sim.pid,
                    rows=rows,
                    rate=cfg["overhead_rate"],
                    concurrency=cfg["overhead_concurrency"],
                    label=f"overhead-{attempt + 1}",
                )
            )
        with SimProcess(bench, tickets=rows + 100) as sim:
            runs["vendor"].append(
                bench.stage("vendor", url=sim.url, sim_pid=sim.pid, rows=rows, profile=None)
            )
        with SimProcess(bench, tickets=rows + 100) as sim:
            runs["sessions"].append(
                bench.stage(
                    "sessions",
                    url=sim.url,
                    rows=rows,
                    concurrency=cfg["overhead_concurrency"],
                    profile=None,
                )
            )
    # CPU time is inflated by whatever else runs on the machine (shared caches, the sibling
    # hyper-thread): the least disturbed run is the one with the least CPU per row.
    best = {name: min(found, key=lambda run: run["cpu"]) for name, found in runs.items()}
    best["all_cpu_ms_per_row"] = {
        name: [round(run["cpu"] * 1000 / run["rows"], 3) for run in found]
        for name, found in runs.items()
    }
    best["repeats"] = repeats
    return best


def bench_capacity(bench: Bench, cfg: dict[str, Any], say: Callable[[str], None]) -> dict[str, Any]:
    say(
        f"simulator capacity: {cfg['capacity_clients']} keep-alive clients for "
        f"{cfg['capacity_seconds']:g} s ..."
    )
    with SimProcess(bench, tickets=2_100) as sim:
        return bench.stage(
            "capacity",
            url=sim.url,
            sim_pid=sim.pid,
            clients=cfg["capacity_clients"],
            seconds=cfg["capacity_seconds"],
            profile=None,
        )


# -- the report ---------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "os": platform.platform(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            total = int(meminfo.readline().split()[1])
        info["memory"] = f"{total / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        info["memory"] = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


def _mb(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.0f}"


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def table(figures: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    for size in figures.get("offline", []):
        rows = size["rows"]
        fr, fw = size["floor_read"], size["floor_write"]
        r, v, w, d = size["read"], size["validate"], size["write"], size["dryrun"]
        floor = fr["seconds"] + fw["seconds"]
        split = d["split"]
        add(
            f"### 1. Offline cost: dry run of {rows:,} rows ({size['file_bytes'] / 1e6:.1f} MB .xlsx)"
        )
        add("")
        add(
            "| stage | dry run s | stage alone s | peak RSS MB (stage alone, its inputs included) | floor | floor s | floor peak MB | ratio to floor |"
        )
        add("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
        add(
            f"| read: `read_sheet` | {split['read']:.2f} | {r['seconds']:.2f} | {_mb(r['memory']['peak_kib'])} | "
            f"calamine `to_python()` | {fr['seconds']:.2f} | {_mb(fr['memory']['peak_kib'])} | {split['read'] / fr['seconds']:.2f} |"
        )
        add(
            f"| validate: `plan_rows` + every row's verdict + the output checks | {split['validate']:.2f} | "
            f"{v['seconds']:.2f} | {_mb(v['memory']['peak_kib'])} | (nothing) | | | |"
        )
        add(
            f"| write: `write_results` | {split['write']:.2f} | {w['seconds']:.2f} | {_mb(w['memory']['peak_kib'])} | "
            f"openpyxl write-only | {fw['seconds']:.2f} | {_mb(fw['memory']['peak_kib'])} | {split['write'] / fw['seconds']:.2f} |"
        )
        add(
            f"| **whole dry run**, `sweep.run(dry_run)` | **{d['seconds']:.2f}** | "
            f"{r['seconds'] + v['seconds'] + w['seconds']:.2f} | **{_mb(d['memory']['peak_kib'])}** | read + write floors | "
            f"{floor:.2f} | | **{d['seconds'] / floor:.2f}** |"
        )
        add("")
        if rows >= 100_000:
            ratio = d["seconds"] / floor
            peak = d["memory"]["peak_kib"]
            ok_peak = peak is not None and peak / 1024 < PEAK_MB_TARGET
            add(
                f"Targets for {rows:,} rows: within {FLOOR_RATIO_TARGET}x the floor: "
                f"**{_verdict(ratio <= FLOOR_RATIO_TARGET)}** ({ratio:.2f}x); peak under {PEAK_MB_TARGET} MB: "
                f"**{_verdict(ok_peak)}** ({_mb(peak)} MB)."
            )
            add("")
    add("### 2-5. Sending (client in its own process, ccs-sim in another)")
    add("")
    add("| benchmark | set-up | figures | target | verdict |")
    add("| --- | --- | --- | --- | --- |")
    pace = figures.get("pace")
    if pace:
        server, client = pace["server"], pace["client"]
        fidelity = (server["rate"] or 0) / pace["rate"]
        ok = PACE_RANGE[0] <= fidelity <= PACE_RANGE[1] and server["max_in_1s"] <= pace["rate"]
        add(
            f"| 2. pace fidelity | {client['rows']:,} rows at {pace['rate']:g}/s, latency {pace['latency_ms']} ms, "
            f"{_concurrency(client)} | achieved {server['rate']:.2f}/s = **{fidelity:.3f}** of the rate; "
            f"busiest 1-s window **{server['max_in_1s']}** PATCHes; {server['patches']:,} PATCHes, statuses {server['statuses']} | "
            f"{PACE_RANGE[0]}-{PACE_RANGE[1]}, no window > {pace['rate']:g} | {_verdict(ok)} |"
        )
    lat = figures.get("latency")
    if lat:
        client = lat["client"]
        ok = lat["ratio"] <= LATENCY_TARGET
        ideal = client["rows"] / lat["rate"]
        add(
            f"| 3. latency hiding | {client['rows']:,} rows at {lat['rate']:g}/s, latency {lat['latency_ms']} ms, "
            f"{_concurrency(client)} | {client['wall']:.1f} s / {ideal:.0f} s = **{lat['ratio']:.3f}**; "
            f"server saw {lat['server']['rate']:.2f}/s | <= {LATENCY_TARGET} | {_verdict(ok)} |"
        )
        for slow in lat.get("slow", []):
            client = slow["client"]
            ideal = client["rows"] / slow["rate"]
            add(
                f"| 3. beside it: a slower server | {client['rows']:,} rows at {slow['rate']:g}/s, latency "
                f"{slow['latency_ms']} ms, {_concurrency(client)} | {client['wall']:.1f} s / {ideal:.0f} s = "
                f"**{slow['ratio']:.3f}**; server saw {slow['server']['rate']:.2f}/s | | |"
            )
    over = figures.get("overhead")
    if over:
        c, b = over["client"], over["vendor"]
        ms = c["cpu"] * 1000 / c["rows"]
        ok = ms < CPU_MS_TARGET
        sim_c = (
            ""
            if c.get("sim_cpu") is None
            else f"; simulator {c['sim_cpu'] * 1000 / c['rows']:.2f} ms CPU/request"
        )
        sim_b = (
            ""
            if b.get("sim_cpu") is None
            else f"; simulator {b['sim_cpu'] * 1000 / b['rows']:.2f} ms CPU/request"
        )
        spread = ""
        if over.get("repeats", 1) > 1:
            spread = f" (least of {over['repeats']} runs: {', '.join(f'{x:.2f}' for x in over['all_cpu_ms_per_row']['client'])})"
        add(
            f"| 4. client overhead | {c['rows']:,} rows, no limit, no latency, concurrency {c['concurrency']} | "
            f"**{c['rows'] / c['wall']:.0f} rows/s, {ms:.2f} ms CPU/row**{spread}{sim_c}; outcomes {c['outcomes']} | "
            f"< {CPU_MS_TARGET} ms CPU/row | {_verdict(ok)} |"
        )
        add(
            f"| 4. baseline: vendor-style | {b['rows']:,} rows, new `requests.request` per ticket, sequential | "
            f"{b['rows'] / b['wall']:.0f} rows/s, {b['cpu'] * 1000 / b['rows']:.2f} ms CPU/row{sim_b}; statuses {b['statuses']} | | |"
        )
        f = over.get("sessions")
        if f:
            add(
                f"| 4. reference: requests alone | {f['rows']:,} rows, a `requests.Session` per thread, {f['concurrency']} threads, "
                f"no package code | {f['rows'] / f['wall']:.0f} rows/s, {f['cpu'] * 1000 / f['rows']:.2f} ms CPU/row; "
                f"statuses {f['statuses']} | | |"
            )
    cap = figures.get("capacity")
    if cap:
        sim = (
            ""
            if cap.get("sim_cpu") is None
            else f"; simulator used {cap['sim_cpu'] / cap['wall']:.2f} cores"
        )
        demands = [0.0]
        if pace:
            demands.append(pace["rate"])
        if lat:
            demands.append(lat["rate"])
        if over:
            demands.append(over["client"]["rows"] / over["client"]["wall"])
        needed = max(demands)
        add(
            f"| 5. simulator capacity | {cap['clients']} keep-alive `http.client` connections, {cap['wall']:.1f} s | "
            f"**{cap['per_second']:.0f} PATCH/s**{sim}; statuses {cap['statuses']} | well above 2-4's {needed:.0f}/s | "
            f"{_verdict(cap['per_second'] > 1.5 * needed)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, about a minute")
    parser.add_argument(
        "--only",
        default="offline,pace,latency,overhead,capacity",
        help="comma-separated subset of: offline, pace, latency, overhead, capacity",
    )
    parser.add_argument("--json", type=Path, help="also write the raw figures to this file")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="cProfile each measured section into DIR (timings then not comparable)",
    )
    parser.add_argument(
        "--latency-concurrency",
        metavar="N|auto",
        help="concurrency for the latency-hiding run (default: the tool's default, auto)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        metavar="N",
        help="runs of the whole dry run and of the floors, fastest kept "
        "(default: 2, or 1 with --quick)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--stage", nargs=2, metavar=("NAME", "PARAMS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        return run_stage_here(*args.stage)

    cfg = dict(QUICK if args.quick else FULL)
    if args.repeats:
        cfg["offline_repeats"] = max(1, args.repeats)
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = wanted - {"offline", "pace", "latency", "overhead", "capacity"}
    if unknown:
        parser.error(f"--only: unknown benchmark(s) {', '.join(sorted(unknown))}")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        args.profile = args.profile.resolve()

    def say(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    temp = Path(tempfile.mkdtemp(prefix="batch-update-bench-"))
    bench = Bench(temp, args.profile)
    figures: dict[str, Any] = {"machine": machine(), "mode": "quick" if args.quick else "full"}
    loads = [load_average()]
    started = time.perf_counter()
    try:
        if "offline" in wanted:
            figures["offline"] = bench_offline(
                bench, cfg["offline_sizes"], cfg["offline_repeats"], say
            )
            loads.append(load_average())
        if "pace" in wanted:
            figures["pace"] = bench_pace(bench, cfg, say)
            loads.append(load_average())
        if "latency" in wanted:
            figures["latency"] = bench_latency(bench, cfg, args.latency_concurrency, say)
            loads.append(load_average())
        if "overhead" in wanted:
            figures["overhead"] = bench_overhead(bench, cfg, say)
            loads.append(load_average())
        if "capacity" in wanted:
            figures["capacity"] = bench_capacity(bench, cfg, say)
            loads.append(load_average())
    finally:
        if args.keep:
            say(f"kept {temp}")
        else:
            shutil.rmtree(temp, ignore_errors=True)
    figures["load_averages"] = loads
    figures["seconds"] = time.perf_counter() - started
    m = figures["machine"]
    print(f"## batch-update benchmarks ({figures['mode']}), {m['date']}")
    print()
    print(
        f"Machine: {m['cores']} cores ({m.get('cpu', 'cpu unknown')}), {m['memory']} memory, "
        f"Python {m['python']}, {m['os']}."
    )
    print(f"Load average (1/5/15 min) before and after each benchmark: {' | '.join(loads)}.")
    print(
        f"Command: python benchmarks/run.py{' --quick' if args.quick else ''}"
        f"{'' if wanted == {'offline', 'pace', 'latency', 'overhead', 'capacity'} else ' --only ' + args.only}; "
        f"took {figures['seconds']:.0f} s."
    )
    if args.profile:
        print("(Profiled run: timings include cProfile's overhead and are not comparable.)")
    print()
    print(table(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
