"""Benchmarks of knowing the ticket before changing it (issue 13): the export, the cost of the
evidence when the state is read in pages, and the re-run of an applied sheet.

    python benchmarks/knowing.py            # about 2 minutes on 2 cores
    python benchmarks/knowing.py --quick    # smaller sizes, for trying it out

The simulator runs in a process of its own (as in benchmarks/run.py), the client in this one,
through the same core functions the commands call (sweep.export, sweep.run), with nothing
patched. Figures are printed as a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from run import PASSWORD, USER, Bench, SimProcess, _bench_console, machine

FULL = {"export_tickets": 10_000, "sheet_tickets": 2_000, "edited": 200}
QUICK = {"export_tickets": 2_000, "sheet_tickets": 500, "edited": 50}
RATE = 20.0
LATENCY_MS = 100
# The simulator's tickets INCA0000990..999 are hidden from the demo account: ask for that many
# more, so that the account sees exactly the number wanted.
HIDDEN = 10


def settings(url: str, **more: object) -> Any:
    from batch_updater.settings import load_settings

    given = {"url": url, "username": USER, "rate": RATE, **more}
    return load_settings(cli=given, env={"CCS_PASSWORD": PASSWORD}, config_path=None)


def console() -> Any:
    return _bench_console()(quiet=True)


def export_to(url: str, out: Path, query: tuple[tuple[str, str], ...] = ()) -> tuple[Any, float]:
    from batch_updater.sweep import ExportRequest, export

    started = time.perf_counter()
    outcome = export(ExportRequest(out=out, query=query), settings(url), console())
    return outcome, time.perf_counter() - started


def run_sheet(url: str, path: Path, **request: Any) -> tuple[Any, float]:
    from batch_updater.sweep import RunRequest, run

    evidence = request.pop("evidence", False)
    more = {"capture_before": True, "verify": True} if evidence else {}
    started = time.perf_counter()
    outcome = run(RunRequest(path, yes=True, **request), settings(url, **more), console())
    return outcome, time.perf_counter() - started


def plain_write_seconds(rows: list[list[object]], path: Path) -> float:
    """openpyxl's write-only mode writing the same cells, nothing else: the writer's floor."""
    from openpyxl import Workbook

    started = time.perf_counter()
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Tickets")
    for row in rows:
        sheet.append(row)
    book.save(path)
    return time.perf_counter() - started


def bench_export(bench: Bench, tickets: int, latency_ms: int) -> dict[str, Any]:
    """An export of every ticket: its wall time against pages / rate, and the workbook's write
    against openpyxl write-only alone."""
    import openpyxl

    with SimProcess(bench, tickets=tickets + HIDDEN, latency_ms=latency_ms) as sim:
        out = bench.output("export.xlsx")
        outcome, seconds = export_to(sim.url, out)
        pages = outcome.pages
    book = openpyxl.load_workbook(out, read_only=True)
    rows = [list(row) for row in book["Tickets"].iter_rows(values_only=True)]
    book.close()
    floor = plain_write_seconds(rows, bench.output("plain.xlsx"))
    # The writer alone, on the same tickets (the export's own timing includes the network).
    from batch_updater.exported import ExportedTicket, context_keys
    from batch_updater.report import write_export
    from batch_updater.sweep.export import context_headers

    headers = rows[0]
    ticket_rows = [dict(zip(headers, row)) for row in rows[1:]]
    again = [
        ExportedTicket(
            str(r["Ticket Number"]),
            str(r["State"]),
            str(r["Priority"]),
            str(r["Assigned To"] or ""),
            str(r["Description"] or ""),
            (
                ("Standard", r["Standard"]),
                ("Asset", r["Asset"]),
                ("LastModified", r["Last Modified"]),
            ),
        )
        for r in ticket_rows
    ]
    started = time.perf_counter()
    write_export(
        bench.output("again.xlsx"),
        again,
        outcome.identity,
        context_headers=context_headers(context_keys(again)),
        priorities=("Low", "Medium", "High"),
    )
    writer = time.perf_counter() - started
    return {
        "tickets": outcome.identity.count,
        "latency_ms": latency_ms,
        "pages": pages,
        "requests": outcome.identity.requests,
        "seconds": seconds,
        "read": outcome.timings["read"],
        "write": outcome.timings["write"],
        "ideal": pages / RATE,
        "writer": writer,
        "plain_writer": floor,
    }


def edited_export(bench: Bench, url: str, edited: int) -> tuple[Path, list[tuple[str, str]]]:
    """The export of every ticket, with `edited` rows set to Remediation Performed."""
    import openpyxl

    out = bench.output("sheet.xlsx")
    export_to(url, out)
    book = openpyxl.load_workbook(out)
    sheet = book["Tickets"]
    headers = [cell.value for cell in sheet[1]]
    changed = []
    for row in sheet.iter_rows(min_row=2):
        if len(changed) >= edited:
            break
        if row[headers.index("State")].value == "Open":
            row[headers.index("State")].value = "Remediation Performed"
            changed.append((str(row[0].value), str(row[headers.index("Priority")].value)))
    book.save(out)
    return out, changed


def hand_made(bench: Bench, rows: list[tuple[str, str]]) -> Path:
    """The same changes as a hand-made sheet: only the rows that change (with the priority the
    validation asks for), no evidence."""
    from openpyxl import Workbook

    out = bench.output("plain.xlsx")
    book = Workbook()
    sheet = book.active
    sheet.append(["Ticket Number", "State", "Priority"])
    for number, priority in rows:
        sheet.append([number, "Remediation Performed", priority])
    book.save(out)
    return out


def bench_evidence(bench: Bench, tickets: int, edited: int) -> dict[str, Any]:
    """The exported sheet with `edited` changes and --capture-before --verify, against the plain
    sweep of the same changes; then the applied sheet run again."""
    with SimProcess(bench, tickets=tickets + HIDDEN, latency_ms=LATENCY_MS) as sim:
        sheet, changed = edited_export(bench, sim.url, edited)
        plain_sheet = hand_made(bench, changed)
    with SimProcess(bench, tickets=tickets + HIDDEN, latency_ms=LATENCY_MS) as sim:
        plain, plain_seconds = run_sheet(sim.url, plain_sheet)
        plain_requests = len(sim.requests())
    with SimProcess(bench, tickets=tickets + HIDDEN, latency_ms=LATENCY_MS) as sim:
        rich, rich_seconds = run_sheet(sim.url, sheet, evidence=True)
        rich_requests = len(sim.requests())
        before = len(sim.requests())
        rerun, rerun_seconds = run_sheet(sim.url, sheet, again=True)
        after = sim.requests()[before:]
    counts = {}
    for result in rich.results:
        counts[result.outcome.value] = counts.get(result.outcome.value, 0) + 1
    return {
        "tickets": tickets,
        "edited": edited,
        "plain_seconds": plain_seconds,
        "plain_requests": plain_requests,
        "plain_status": int(plain.status),
        "rich_seconds": rich_seconds,
        "rich_requests": rich_requests,
        "rich_outcomes": counts,
        "rich_verified": sum(1 for r in rich.results if r.verification == "Verified"),
        "rerun_seconds": rerun_seconds,
        "rerun_patches": sum(1 for r in after if r["method"] == "PATCH"),
        "rerun_requests": len(after),
        "rerun_outcomes": sorted({r.outcome.value for r in rerun.results}),
    }


def table(export: list[dict[str, Any]], evidence: dict[str, Any]) -> str:
    lines = [
        "| measure | figure | target |",
        "| --- | --- | --- |",
    ]
    for e in export:
        ratio = e["read"] / e["ideal"]
        lines.append(
            f"| export of {e['tickets']:,} tickets, {e['latency_ms']} ms answers, {RATE:g} req/s: "
            f"the reading | {e['read']:.2f} s for {e['pages']} pages ({e['requests']} Search "
            f"requests); {ratio:.2f}x pages/rate ({e['ideal']:.2f} s); the whole export "
            f"{e['seconds']:.2f} s (login, reading, workbook {e['write']:.2f} s) | within 1.2x |"
        )
    e = export[0]
    lines.append(
        f"| export workbook of {e['tickets']:,} tickets written | {e['writer']:.2f} s; "
        f"{e['writer'] / e['plain_writer']:.2f}x openpyxl write-only alone "
        f"({e['plain_writer']:.2f} s) | within 1.3x |"
    )
    v = evidence
    lines.append(
        f"| {v['edited']} changes in an exported sheet of {v['tickets']:,}, "
        f"--capture-before --verify, against the plain sweep of the same {v['edited']} rows "
        f"({LATENCY_MS} ms answers, {RATE:g} req/s) | {v['rich_seconds']:.1f} s "
        f"({v['rich_requests']} requests) against {v['plain_seconds']:.1f} s "
        f"({v['plain_requests']} requests): {v['rich_seconds'] / v['plain_seconds']:.2f}x; "
        f"{v['rich_verified']} Verified | at most 1.15x (per-row reads: about 2.9x) |"
    )
    lines.append(
        f"| the applied sheet of {v['tickets']:,} run again (--again) | "
        f"{v['rerun_patches']} PATCHes, {v['rerun_requests']} requests, "
        f"{v['rerun_seconds']:.1f} s; outcomes {', '.join(v['rerun_outcomes'])} | 0 PATCHes |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    temp = Path(tempfile.mkdtemp(prefix="batch-update-knowing-"))
    bench = Bench(temp, None)
    started = time.perf_counter()
    try:
        export = [
            bench_export(bench, cfg["export_tickets"], 0),
            bench_export(bench, cfg["export_tickets"], LATENCY_MS),
        ]
        evidence = bench_evidence(bench, cfg["sheet_tickets"], cfg["edited"])
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    m = machine()
    print(
        f"## Knowing the ticket before changing it ({'quick' if args.quick else 'full'}), {m['date']}"
    )
    print()
    print(f"Machine: {m['cores']} cores, {m['memory']} memory, Python {m['python']}, {m['os']}.")
    print(
        f"Command: python benchmarks/knowing.py{' --quick' if args.quick else ''}; "
        f"took {time.perf_counter() - started:.0f} s."
    )
    print()
    print(table(export, evidence))
    return 0


if __name__ == "__main__":
    sys.exit(main())
