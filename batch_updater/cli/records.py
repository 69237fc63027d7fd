"""The commands over recorded runs, as the terminal shows them: the list of runs, the manifest
check, the report rebuilt from a journal, the rollback of a run. The work is in `sweep.history`
and `manifest`; this module prints what they return."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..tickets import count_text
from .common import ExitStatus, _echo, _when


def list_recent_runs(
    file: Path | None, *, config_path: Path | None = None, limit: int = 20
) -> ExitStatus:
    """Print the recent runs in the journal folder, newest first, with how each ended."""
    from ..sweep.earlier import _how_it_ended
    from ..sweep.history import recent_runs

    listing = recent_runs(file, config_path, _echo)
    runs = listing.runs
    if not runs:
        click.echo(f"No runs recorded in {listing.folder}.")
        return ExitStatus.OK
    click.echo(f"Runs in {listing.folder} (newest first):")
    click.echo(
        f"  {'run':<22} {'started (UTC)':<17} {'ended':<23} {'rows':>6}  {'input':<24} results"
    )
    for record in runs[:limit]:
        mode = " (dry run)" if record.dry_run else " (simulated)" if record.simulated else ""
        results = Path(record.results_path).name if record.results_path else "-"
        click.echo(
            f"  {record.run_id:<22} {_when(record.started)[:16]:<17} {_how_it_ended(record) + mode:<23} "
            f"{record.row_count:>6,}  {record.input_name:<24} {results}"
        )
    if len(runs) > limit:
        click.echo(f"  ... and {len(runs) - limit} older runs.")
    return ExitStatus.OK


def check_manifest_files(results: Path) -> ExitStatus:
    """Recompute the hashes in a results workbook's manifest; exit 0 if all match, else 1."""
    from ..manifest import check_manifest

    checks = check_manifest(results)
    workbook = next(check for check in checks if check.role in ("results", "export"))
    results = Path(workbook.path)
    maker = "the export" if workbook.role == "export" else "the run"
    for check in checks:
        click.echo(
            ("  ok       " if check.ok else "  CHANGED  " if check.found else "  MISSING  ")
            + check.describe()
        )
    if all(check.ok for check in checks):
        said = (
            "the workbook is the one the export wrote"
            if workbook.role == "export"
            else "the workbook, the input and the journal are the ones the run produced"
            + (
                ", and the plan and its approval the ones it applied"
                if {"plan", "approval"} <= {check.role for check in checks}
                else ", and the plan the one it applied"
                if "plan" in {check.role for check in checks}
                else ""
            )
        )
        click.echo(f"{results.name}: {said}.")
        return ExitStatus.OK
    bad = [check.role for check in checks if not check.ok]
    click.echo(
        f"{results.name}: {', '.join(bad)} {'differs' if len(bad) == 1 else 'differ'} from what "
        f"{maker} produced."
    )
    return ExitStatus.ROWS_FAILED


def report_from_journal(
    run_ref: str, file: Path | None, *, out: Path | None, config_path: Path | None, quiet: bool
) -> ExitStatus:
    """Write the results workbook of a run from its journal alone (nothing is sent)."""
    from ..sweep.history import rebuild_report

    rebuilt = rebuild_report(run_ref, file, out, config_path, None if quiet else _echo)
    click.echo(f"Results workbook of run {rebuilt.run_id}: {rebuilt.workbook}")
    if rebuilt.rollback is not None:
        click.echo(f"Rollback workbook: {rebuilt.rollback}")
    click.echo(f"Manifest: {rebuilt.manifest}")
    return ExitStatus.OK


def rollback_from_journal(run_ref: str, options: dict[str, Any]) -> ExitStatus:
    """Apply the rollback of a run: its tickets' captured before values, sent exactly."""
    from ..sweep.history import prepare_rollback
    from .running import run_sheet

    file = options.pop("file", None)
    rollback = prepare_rollback(
        run_ref,
        file,
        options.get("config_path"),
        bool(options.get("again")),
        None if options.get("quiet") else _echo,
    )
    if rollback.workbook is None:
        click.echo(
            f"Run {rollback.run_id} updated no ticket whose values it had read first: nothing to roll back."
        )
        return ExitStatus.OK
    _echo(
        f"Rolling back run {rollback.run_id}: {count_text(len(rollback.rows), 'ticket')}, to the "
        f"values its journal captured before the update (written to {rollback.workbook})."
    )
    options["capture_before"] = options.get("capture_before") or True  # undoable in turn
    options["verify"] = options.get("verify") or True  # shows each ticket holds them again
    options["again"] = True  # the guard for this rollback is the one above
    return run_sheet(rollback.workbook, options, exact=rollback.rows, rolls_back=rollback.run_id)


def compare_two_runs(runs: tuple[str, ...], options: dict[str, Any]) -> ExitStatus:
    """Compare two runs as the command's options say; print the table; the exit status."""
    from ..sweep import CompareRequest, compare_runs
    from .exporting import _transport
    from .running import command_settings, on_terminal, print_safely

    given, console, verbose, config_path = on_terminal(options)
    request = CompareRequest(
        run_b=runs[-1],
        run_a=runs[0] if len(runs) == 2 else None,
        offline=bool(given.pop("offline", False)),
        out=given.pop("out", None),
        transport=_transport(given),
    )
    settings = command_settings(given, config_path, verbose, None, console)
    outcome = compare_runs(request, settings, console)
    print_safely(lambda: _tell_comparison(outcome))
    return outcome.status


def _tell_comparison(outcome: Any) -> None:
    from ..comparison import Category

    a, b = outcome.a.record, outcome.b.record
    click.echo(f"Run A: {a.run_id} ({_when(a.started)[:16]}, {a.input_name}), {outcome.a.checked}")
    click.echo(f"Run B: {b.run_id} ({_when(b.started)[:16]}, {b.input_name}), {outcome.b.checked}")
    click.echo(f"Baseline: {outcome.baseline}.")
    counts = outcome.comparison.counts()
    for category in Category:
        detail = ""
        items = outcome.comparison.of(category)
        if category is Category.FAILED_AGAIN and items:
            longest = max(item.in_a_row for item in items)
            detail = f"   (up to {longest} runs in a row)"
        if category is Category.CHANGED_IN_CCS and outcome.current.startswith("not read"):
            detail = "   (not read)" if "offline" not in outcome.current else "   (--offline)"
        click.echo(f"  {category.value:<18}{counts[category]:>7,}{detail}")
    if outcome.comparison.not_keyed:
        click.echo(f"  {count_text(outcome.comparison.not_keyed, 'row')} without a ticket number")
    click.echo(f"Current values: {outcome.current}.")
    click.echo(f"Comparison workbook: {outcome.workbook}")
