"""The Summary, Run and Legend sheets: who ran what, the counts reconciled, the columns explained."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference

from ..tickets import RunInfo, Sheet
from .cells import _as_utc, _concurrency_text, _duration_text, _iso_utc, _styled, safe_text
from .layout import (
    _BOLD,
    _FILLS,
    _TITLE_FONT,
    _TOP,
    COLUMN_MEANINGS,
    LEGEND_SHEET,
    OUTCOME_MEANINGS,
    OUTCOME_ORDER,
    RUN_SHEET,
    SAFETY_NOTE,
    SUMMARY_SHEET,
    TITLE,
    _Layout,
    _Tally,
)

# Rows of the Summary sheet: (label, value), in the order they are shown.
_Items = list[tuple[str, object]]


def _summary_items(
    sheet: Sheet, run: RunInfo, layout: _Layout, tally: _Tally
) -> list[tuple[str, object]]:
    """The Summary sheet's (label, value) rows, in the order they are shown."""
    return [
        *_input_items(sheet, run),
        *_count_items(sheet, tally),
        *_check_items(run, tally),
        *_run_items(run, tally),
        *_notice_items(sheet, run, layout),
    ]


def _input_items(sheet: Sheet, run: RunInfo) -> _Items:
    """Which run this was, and the input it read."""
    items: _Items = []
    if run.run_id:
        items.append(("Run ID", run.run_id))
    if run.follows:
        items.append(("Follows", run.follows))
    items += _plan_items(run)
    items += [
        ("Input file", Path(run.input_path).name if run.input_path else sheet.file_name),
        ("Input path", run.input_path or sheet.path),
        ("Input SHA-256", run.input_sha256),
        ("Sheet", run.sheet_name or sheet.sheet_name),
        ("Header row", sheet.header_row),
        ("Rows read", len(sheet.rows)),
    ]
    return items


def _plan_items(run: RunInfo) -> _Items:
    """The plan a run applied (`batch-update apply`): which, who planned it, who approved it."""
    plan = run.plan
    if not plan:
        return []
    return [
        ("Plan", f"{plan.get('file', '')} (SHA-256 {plan.get('sha256', '')})"),
        ("Planned by", str(plan.get("planned_by", ""))),
        ("Approved by", str(plan.get("approved_by", ""))),
    ]


def _count_items(sheet: Sheet, tally: _Tally) -> _Items:
    """The rows by outcome, reconciled with the rows read, then the answers by HTTP status."""
    items: _Items = [(outcome.value, tally.outcomes[outcome]) for outcome in OUTCOME_ORDER]
    counted = sum(tally.outcomes[outcome] for outcome in OUTCOME_ORDER)
    balanced = counted == len(sheet.rows) == tally.rows
    terms = " + ".join(f"{tally.outcomes[o]} {o.value}" for o in OUTCOME_ORDER)
    items.append(
        (
            "Reconciliation",
            f"{'balanced' if balanced else 'NOT balanced'}: {len(sheet.rows)} rows read "
            f"{'=' if balanced else '≠'} {terms} (= {counted}, counted from the Results sheet)",
        )
    )
    for status in sorted(tally.statuses, key=lambda code: (len(str(code)), str(code))):
        items.append((f"HTTP {status}", tally.statuses[status]))
    items.append(("No response", tally.no_response))
    items.append(("No request sent", tally.no_request))
    return items


def _check_items(run: RunInfo, tally: _Tally) -> _Items:
    """Whether before values were captured and updated tickets read back, and what that found."""
    before = (
        "captured: each ticket's values as read just before its update (in pages, or with a "
        "GET); see the Before columns"
        if run.capture_before
        else "not captured (run with --capture-before to record them)"
    )
    if run.verify:
        checks = tally.verifications
        verification = (
            f"on: each updated ticket was read back; {checks['Verified']} Verified, "
            f"{checks['Mismatch']} Mismatch, {checks['Not checked']} Not checked"
        )
    else:
        verification = "off (run with --verify to read every updated ticket back)"
    return [("Before values", before), ("Read-back verification", verification)]


def _run_items(run: RunInfo, tally: _Tally) -> _Items:
    """Where, by whom, when and how the run went, and how its text cells were kept."""
    if run.dry_run:
        mode = "Dry run, no network"
    elif run.simulated:
        mode = "Simulated server"
    else:
        mode = "Live run"
    duration = ""
    if run.finished is not None:
        duration = _duration_text(_as_utc(run.finished) - _as_utc(run.started))
    return [
        ("Server URL", run.server_url),
        ("CCS user", run.ccs_user),
        ("Operator", run.operator),
        ("Started (UTC)", _iso_utc(run.started, milliseconds=False)),
        ("Finished (UTC)", _iso_utc(run.finished, milliseconds=False) or "not recorded"),
        ("Duration", duration or "not recorded"),
        ("Rate (requests/s)", run.rate if run.rate is not None else ""),
        ("Concurrency", _concurrency_text(run)),
        ("Mode", mode),
        ("Stopped early", run.stopped_reason or "No"),
        ("Tool version", run.tool_version),
        ("Run journal", run.journal_path or ("none (dry run)" if run.dry_run else "none")),
        ("Text cells kept as text (quote prefix)", tally.text_protected),
        ("Text cells not kept exactly", tally.text_not_exact),
        ("About safe text", SAFETY_NOTE),
    ]


def _notice_items(sheet: Sheet, run: RunInfo, layout: _Layout) -> _Items:
    """The result columns renamed to make way for the input's, the input's notices, the notes."""
    items: _Items = []
    if layout.renamed:
        renames = "; ".join(f'"{ours}" is named "{used}"' for ours, used in layout.renamed)
        items.append(
            (
                "Columns renamed",
                f"The input has columns with the names of result columns; the input's columns "
                f"are kept as they are, and of the result columns {renames}.",
            )
        )
    for number, notice in enumerate(sheet.notices, start=1):
        items.append((f"Input notice {number}", notice))
    for number, note in enumerate(run.notes, start=1):
        items.append((f"Note {number}", note))
    return items


def _write_summary_sheet(
    workbook: Workbook, sheet: Sheet, run: RunInfo, layout: _Layout, tally: _Tally
) -> None:
    ws = workbook.create_sheet(SUMMARY_SHEET)
    ws.column_dimensions["A"].width = 24
    ws.column_dimensions["B"].width = 90
    ws.append([_styled(ws, TITLE, font=_TITLE_FONT)])
    where: dict[str, int] = {}
    for number, (key, value) in enumerate(_summary_items(sheet, run, layout, tally), start=2):
        where[key] = number
        cell = _styled(ws, value, alignment=_TOP) if isinstance(value, str) else safe_text(value)
        ws.append([_styled(ws, key, font=_BOLD, alignment=_TOP), cell])
    _add_charts(ws, where)


def _add_charts(ws: Any, where: dict[str, int]) -> None:
    """Bar charts of the outcomes and the HTTP statuses, beside the figures they are drawn from.

    They use openpyxl's own charts, which refer to the Summary's cells: what the chart shows is
    what the table says.
    """
    first, last = where[OUTCOME_ORDER[0].value], where[OUTCOME_ORDER[-1].value]
    outcomes = BarChart()
    outcomes.type = "bar"
    outcomes.title = "Rows by outcome"
    outcomes.legend = None
    outcomes.add_data(Reference(ws, min_col=2, min_row=first, max_row=last))
    outcomes.set_categories(Reference(ws, min_col=1, min_row=first, max_row=last))
    outcomes.height, outcomes.width = 7.5, 14
    ws.add_chart(outcomes, "D2")
    status_rows = [number for key, number in where.items() if key.startswith("HTTP ")]
    if status_rows:
        statuses = BarChart()
        statuses.type = "bar"
        statuses.title = "Answers by HTTP status"
        statuses.legend = None
        top, bottom = min(status_rows), max(status_rows)
        statuses.add_data(Reference(ws, min_col=2, min_row=top, max_row=bottom))
        statuses.set_categories(Reference(ws, min_col=1, min_row=top, max_row=bottom))
        statuses.height, statuses.width = 7.5, 14
        ws.add_chart(statuses, "D18")


def _write_run_sheet(workbook: Workbook, run: RunInfo) -> None:
    """The run's identity and every setting it used (never a secret), as in the manifest."""
    ws = workbook.create_sheet(RUN_SHEET)
    ws.column_dimensions["A"].width = 28
    ws.column_dimensions["B"].width = 80
    ws.append([_styled(ws, "Run", font=_TITLE_FONT)])
    facts: list[tuple[str, object]] = [
        ("Run ID", run.run_id or "none (no journal)"),
        ("Follows", run.follows or "none"),
        ("Tool version", run.tool_version),
        ("Python version", run.python_version),
        ("Operator", run.operator),
        ("CCS user", run.ccs_user),
        ("Server URL", run.server_url),
        ("Started (UTC)", _iso_utc(run.started, milliseconds=False)),
        ("Finished (UTC)", _iso_utc(run.finished, milliseconds=False) or "not recorded"),
        ("Input SHA-256", run.input_sha256),
        ("Run journal", run.journal_path or "none"),
        *_plan_items(run),
    ]
    for key in sorted(run.settings):
        facts.append((f"Setting: {key}", _setting_text(key, run.settings[key])))
    for key, value in facts:
        ws.append(
            [
                _styled(ws, key, font=_BOLD),
                safe_text(value) if not isinstance(value, str) else _styled(ws, value),
            ]
        )


def _setting_text(key: str, value: object) -> object:
    """A setting as the Run sheet shows it: never an empty cell, never a secret."""
    if key == "password":
        # The settings hold only a mask, or nothing when the password is asked for later.
        return (
            "given in the settings (CCS_PASSWORD); never recorded"
            if value
            else "not in the settings (from the keyring or a prompt, if one was needed); never recorded"
        )
    if value is None:
        return "(not set)"
    if isinstance(value, (int, float, str)):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _write_legend_sheet(workbook: Workbook, layout: _Layout) -> None:
    ws = workbook.create_sheet(LEGEND_SHEET)
    ws.column_dimensions["A"].width = 24
    ws.column_dimensions["B"].width = 100
    ws.append([_styled(ws, "Column", font=_BOLD), _styled(ws, "Meaning", font=_BOLD)])
    ws.append(["(the input's columns)", "Every column of the input, in its order, as read."])
    for name, used in zip(layout.usual, layout.ours):
        ws.append([_styled(ws, used), _styled(ws, COLUMN_MEANINGS[name], alignment=_TOP)])
    ws.append([])
    ws.append([_styled(ws, "Outcome", font=_BOLD), _styled(ws, "Meaning", font=_BOLD)])
    for outcome in OUTCOME_ORDER:
        ws.append(
            [
                _styled(ws, outcome.value, fill=_FILLS[outcome]),
                _styled(ws, OUTCOME_MEANINGS[outcome], alignment=_TOP),
            ]
        )
    ws.append([])
    ws.append([_styled(ws, "Safe text", font=_BOLD), _styled(ws, SAFETY_NOTE, alignment=_TOP)])
