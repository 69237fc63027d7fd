"""Benchmarks of plan, approve and apply (issue 14): what a plan costs, and an apply against the
plain run of the same sheet.

    python benchmarks/planning.py            # about a minute on 2 cores
    python benchmarks/planning.py --quick    # smaller sizes, for trying it out

The simulator runs in a process of its own (as in benchmarks/run.py), the client in this one,
through the core functions the commands call (sweep.make_plan, sweep.approve, sweep.apply_plan,
sweep.run), with nothing patched. Figures are printed as a Markdown table for RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from knowing import HIDDEN, LATENCY_MS, RATE, console, edited_export, run_sheet, settings
from run import Bench, SimProcess, machine

FULL = {"tickets": 2_000, "edited": 200}
QUICK = {"tickets": 500, "edited": 50}
AUDITOR, AUDITOR_PASSWORD = "corp\\auditor", "Audit-Passw0rd!"


def bench_plan(bench: Bench, tickets: int, edited: int) -> dict[str, Any]:
    """An exported sheet with `edited` changes: planned, approved, applied; and the same sheet
    run plainly on a fresh server, for the apply's cost against a run."""
    from batch_updater.settings import load_settings
    from batch_updater.sweep import (
        ApplyRequest,
        ApproveRequest,
        PlanRequest,
        apply_plan,
        approve,
        make_plan,
    )

    with SimProcess(bench, tickets=tickets + HIDDEN, latency_ms=LATENCY_MS) as sim:
        sheet, _ = edited_export(bench, sim.url, edited)
    with SimProcess(bench, tickets=tickets + HIDDEN, latency_ms=LATENCY_MS) as sim:
        plain, plain_seconds = run_sheet(sim.url, sheet)
        plain_requests = len(sim.requests())
    with SimProcess(bench, tickets=tickets + HIDDEN, latency_ms=LATENCY_MS) as sim:
        started = time.perf_counter()
        planned = make_plan(PlanRequest(sheet), settings(sim.url), console())
        plan_seconds = time.perf_counter() - started
        plan_requests = len(sim.requests())
        approver = load_settings(
            cli={"url": sim.url, "username": AUDITOR, "rate": RATE},
            env={"CCS_PASSWORD": AUDITOR_PASSWORD},
            config_path=None,
        )
        started = time.perf_counter()
        approve(ApproveRequest(planned.plan_path, yes=True), approver, console())
        approve_seconds = time.perf_counter() - started
        approve_requests = len(sim.requests()) - plan_requests
        started = time.perf_counter()
        applied = apply_plan(
            ApplyRequest(planned.plan_path, yes=True), settings(sim.url), console()
        )
        apply_seconds = time.perf_counter() - started
        after = sim.requests()[plan_requests + approve_requests :]
    assert planned.plan_path is not None and planned.workbook is not None
    return {
        "tickets": tickets,
        "edited": edited,
        "changes": planned.counts.get("Change", 0),
        "plan_seconds": plan_seconds,
        "plan_requests": plan_requests,
        "plan_kib": planned.plan_path.stat().st_size / 1024,
        "workbook_kib": planned.workbook.stat().st_size / 1024,
        "approve_seconds": approve_seconds,
        "approve_requests": approve_requests,
        "apply_seconds": apply_seconds,
        "apply_requests": len(after),
        "apply_patches": sum(1 for r in after if r["method"] == "PATCH"),
        "apply_updated": sum(1 for r in applied.results if r.outcome.value == "Updated"),
        "plain_seconds": plain_seconds,
        "plain_requests": plain_requests,
        "plain_updated": sum(1 for r in plain.results if r.outcome.value == "Updated"),
    }


def table(p: dict[str, Any]) -> str:
    setting = f"{LATENCY_MS} ms answers, {RATE:g} req/s"
    return "\n".join(
        [
            "| measure | figure | target |",
            "| --- | --- | --- |",
            f"| plan of an exported sheet of {p['tickets']:,} with {p['edited']} changes "
            f"({setting}) | {p['plan_seconds']:.1f} s, {p['plan_requests']} requests (token and "
            f"pages), {p['changes']} changes planned; plan file {p['plan_kib']:.0f} KiB, "
            f"workbook {p['workbook_kib']:.0f} KiB | no PATCH; a few requests, not one a row |",
            f"| approve | {p['approve_seconds']:.2f} s, {p['approve_requests']} request (the "
            "approver's token) | one token request |",
            f"| apply of that plan against the plain run of the same sheet | "
            f"{p['apply_seconds']:.1f} s ({p['apply_requests']} requests, {p['apply_patches']} "
            f"PATCH, {p['apply_updated']} Updated) against {p['plain_seconds']:.1f} s "
            f"({p['plain_requests']} requests, {p['plain_updated']} Updated): "
            f"{p['apply_seconds'] / p['plain_seconds']:.2f}x | about 1.0x: the same reads and "
            "PATCHes |",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    temp = Path(tempfile.mkdtemp(prefix="batch-update-planning-"))
    bench = Bench(temp, None)
    started = time.perf_counter()
    try:
        figures = bench_plan(bench, cfg["tickets"], cfg["edited"])
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    m = machine()
    print(f"## Plan, approve, apply ({'quick' if args.quick else 'full'}), {m['date']}")
    print()
    print(f"Machine: {m['cores']} cores, {m['memory']} memory, Python {m['python']}, {m['os']}.")
    print()
    print(table(figures))
    print()
    print(f"(measured in {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
