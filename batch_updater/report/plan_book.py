"""The plan workbook for the approver: every row's verdict, its changes and the PATCH body it would
send, written from the plan document itself, so that the workbook and the plan file cannot disagree.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import PatternFill
from openpyxl.utils import get_column_letter

from ..tickets import Outcome
from .cells import _styled, safe_text
from .layout import _BOLD, _FILLS, _TOP, _column_widths
from .paths import write_atomically
from .results import _abandon

PLAN_SHEET = "Plan"
PLAN_HEADERS = ("Row", "Ticket Number", "Plan", "Changes (current -> new)", "Why", "PATCH body")

# Each verdict, how the workbook shows it, the outcome whose colour it takes, and what it means.
VERDICTS: tuple[tuple[str, str, Outcome, str], ...] = (
    (
        "Change",
        "Will change",
        Outcome.UPDATED,
        "one PATCH with exactly this body will be sent by `apply`, if the ticket still holds "
        "the current values shown",
    ),
    (
        "Unchanged",
        "Unchanged",
        Outcome.UNCHANGED,
        "the ticket already holds the row's values; nothing will be sent",
    ),
    (
        "Conflict",
        "Conflict",
        Outcome.CONFLICT,
        "the ticket changed in CCS since the export the sheet was made from, in a field the row "
        "would change; nothing will be sent (plan --overwrite-conflicts sends it anyway)",
    ),
    (
        "Failed",
        "Failed",
        Outcome.FAILED,
        "the ticket could not be read (404: it does not exist; 403: the account may not see it); "
        "nothing will be sent",
    ),
    (
        "Invalid",
        "Invalid",
        Outcome.INVALID,
        "the row did not pass validation; nothing will be sent",
    ),
    ("Skipped", "Skipped", Outcome.SKIPPED, "a blank row"),
)
_SHOWN = {verdict: shown for verdict, shown, _, _ in VERDICTS}
_FILL_OF = {verdict: _FILLS[outcome] for verdict, _, outcome, _ in VERDICTS}

_OPTION = "--out"
_Items = list[tuple[str, object]]


def write_plan_book(
    path: Path, plan: Mapping[str, object], plan_sha256: str, *, plan_file_name: str = ""
) -> Path:
    """The plan workbook for the approver, written from the plan document (atomically: a temporary
    file beside it, moved into place). Returns the path written."""
    path = Path(path)
    rows = _rows(plan)
    _check_counts(plan, rows)
    input_path = str(_mapping(plan.get("input")).get("path") or "")

    def save(temp: Path) -> None:
        workbook = Workbook(write_only=True)
        workbook.properties.creator = f"batch-update {_text(plan.get('tool_version'))}"
        workbook.properties.title = "batch-update plan"
        try:
            _write_plan_sheet(workbook, rows)
            items = _summary_items(plan, rows, plan_sha256, plan_file_name)
            _write_pairs(workbook, "Summary", items, widths=(28, 90))
            legend: _Items = [(shown, meaning) for _, shown, _, meaning in VERDICTS]
            fills = {shown: _FILL_OF[verdict] for verdict, shown, _, _ in VERDICTS}
            _write_pairs(
                workbook, "Legend", [("Plan", "Meaning"), *legend], widths=(18, 100), fills=fills
            )
            workbook.save(str(temp))
        except BaseException:
            _abandon(workbook)
            raise

    return write_atomically(
        path,
        save,
        "the plan workbook",
        inputs=[Path(input_path)] if input_path else [],
        option=_OPTION,
    )


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _rows(plan: Mapping[str, object]) -> list[Mapping[str, object]]:
    rows = plan.get("rows")
    if not isinstance(rows, Sequence) or isinstance(rows, (str, bytes)):
        raise ValueError("internal error: the plan has no list of rows; no workbook was written")
    for position, row in enumerate(rows, start=1):
        if not isinstance(row, Mapping) or str(row.get("verdict")) not in _SHOWN:
            raise ValueError(
                f"internal error: plan row {position} has no known verdict; no workbook was written"
            )
    return list(rows)


def _check_counts(plan: Mapping[str, object], rows: Sequence[Mapping[str, object]]) -> None:
    """Refuse to write a workbook whose counts are not those of its rows (a bug, not input)."""
    counted = Counter(str(row["verdict"]) for row in rows)
    counts = _mapping(plan.get("counts"))
    for verdict in _SHOWN:
        if counts.get(verdict, 0) != counted[verdict]:
            raise ValueError(
                f"internal error: the plan counts {counts.get(verdict, 0)} {verdict} but has "
                f"{counted[verdict]} such rows; no workbook was written"
            )


def _plan_values(row: Mapping[str, object]) -> list[object]:
    """A plan row's cells, in the order of PLAN_HEADERS."""
    verdict = str(row["verdict"])
    shown = _SHOWN[verdict]
    if verdict == "Failed" and row.get("status") is not None:
        shown = f"Failed (HTTP {row['status']})"
    changes = row.get("changes")
    lines = [
        f"{_text(c.get('field'))}: {_text(c.get('current'))} -> {_text(c.get('new'))}"
        for c in (changes if isinstance(changes, Sequence) else ())
        if isinstance(c, Mapping)
    ]
    body = row.get("body")
    body_text = "" if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return [
        row.get("row"),
        _text(row.get("ticket")),
        shown,
        "\n".join(lines),
        _text(row.get("message")),
        body_text,
    ]


def _write_plan_sheet(workbook: Workbook, rows: Sequence[Mapping[str, object]]) -> None:
    ws = workbook.create_sheet(PLAN_SHEET)
    table = [[safe_text(value) for value in _plan_values(row)] for row in rows]
    # Write-only sheets stream rows, so widths, panes and the filter are fixed up front.
    for index, width in enumerate(_column_widths(list(PLAN_HEADERS), table[:500]), start=1):
        ws.column_dimensions[get_column_letter(index)].width = width
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(PLAN_HEADERS))}{len(rows) + 1}"
    ws.append([_styled(ws, header, font=_BOLD) for header in PLAN_HEADERS])
    for row, values in zip(rows, table):
        fill = _FILL_OF[str(row["verdict"])]
        cells = [_styled(ws, value, alignment=_TOP) for value in values]
        cells[2].fill = fill
        ws.append(cells)


def _yes_no(value: object) -> str:
    return "Yes" if value else "No"


def _summary_items(
    plan: Mapping[str, object],
    rows: Sequence[Mapping[str, object]],
    plan_sha256: str,
    plan_file_name: str,
) -> _Items:
    """The Summary sheet's (label, value) rows, in the order they are shown."""
    planner = _mapping(plan.get("planner"))
    who = " on ".join(t for t in (_text(planner.get("os_user")), _text(planner.get("host"))) if t)
    source = _mapping(plan.get("input"))
    server = _text(plan.get("server")) + (" (simulated)" if plan.get("simulated") else "")
    counts = _mapping(plan.get("counts"))
    settings = _mapping(plan.get("settings"))
    items: _Items = [
        ("Plan SHA-256", plan_sha256),
        ("Made at (UTC)", _text(plan.get("made_at"))),
        ("Expires at (UTC)", _text(plan.get("expires_at"))),
        ("Server", server),
        ("CCS account (planner)", _text(plan.get("ccs_account"))),
        ("Planner (OS user on host)", who),
        ("Input file", _text(source.get("path"))),
        ("Input SHA-256", _text(source.get("sha256"))),
        ("Normalised rows SHA-256", _text(source.get("rows_sha256"))),
        ("Sheet", _text(source.get("sheet"))),
        *((shown, counts.get(verdict, 0)) for verdict, shown, _, _ in VERDICTS),
        ("Rows", len(rows)),
        ("Rate (requests/s)", settings.get("rate", "")),
        ("Concurrency", settings.get("concurrency", "")),
        ("Capture before values", _yes_no(settings.get("capture_before"))),
        ("Verify by read-back", _yes_no(settings.get("verify"))),
    ]
    if "overwrite_conflicts" in settings:
        items.append(("Overwrite conflicts", _yes_no(settings["overwrite_conflicts"])))
    items += [
        ("How the state was read", _text(plan.get("how_read"))),
        ("Tool version", _text(plan.get("tool_version"))),
        ("Next step", f"batch-update approve {plan_file_name or 'PLAN'}"),
    ]
    return items


def _write_pairs(
    workbook: Workbook,
    title: str,
    items: _Items,
    *,
    widths: tuple[int, int],
    fills: Mapping[str, PatternFill] | None = None,
) -> None:
    """A sheet of (label, value) lines, the labels bold (and coloured, for the verdicts)."""
    ws = workbook.create_sheet(title)
    ws.column_dimensions["A"].width, ws.column_dimensions["B"].width = widths
    for label, value in items:
        fill = fills.get(label) if fills else None
        ws.append(
            [
                _styled(ws, label, font=_BOLD, fill=fill, alignment=_TOP),
                _styled(ws, value, alignment=_TOP),
            ]
        )


def plan_sha256_in(workbook: Path) -> str | None:
    """The plan SHA-256 a plan workbook's Summary shows (None: not a plan workbook)."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(workbook, read_only=True)
    except Exception:  # not a workbook openpyxl can read: not the plan's
        return None
    try:
        if "Summary" not in book.sheetnames:
            return None
        for row in book["Summary"].iter_rows(max_row=5, values_only=True):
            if row and row[0] == "Plan SHA-256" and len(row) > 1:
                return str(row[1])
        return None
    finally:
        book.close()
