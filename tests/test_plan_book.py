"""The plan workbook: every verdict with its changes and body, the Summary, the Legend, safe text."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from batch_updater.errors import OutputError
from batch_updater.report import OUTCOME_COLOURS, write_plan_book
from batch_updater.tickets import Outcome

PLAN_SHA = "5e" * 32
HEADERS = ["Row", "Ticket Number", "Plan", "Changes (current -> new)", "Why", "PATCH body"]


def make_plan() -> dict[str, Any]:
    return {
        "format": "batch-update plan",
        "format_version": 1,
        "tool_version": "0.9.0",
        "made_at": "2026-12-03T20:40:00Z",
        "expires_at": "2026-12-10T20:40:00Z",
        "server": "https://ccs01.corp.local:12431",
        "simulated": False,
        "ccs_account": "corp\\ccsadmin",
        "planner": {"os_user": "ops", "host": "ops-laptop"},
        "input": {
            "path": "/home/ops/tickets.xlsx",
            "name": "tickets.xlsx",
            "sheet": "Tickets",
            "sha256": "ab" * 32,
            "rows_sha256": "cd" * 32,
        },
        "settings": {
            "rate": 5.0,
            "concurrency": "auto",
            "capture_before": False,
            "verify": True,
            "overwrite_conflicts": False,
            "timeout": 30,
        },
        "how_read": "Current state: read in pages of 500 (every ticket the account sees): "
        "2 Search requests, 12 rows found",
        "counts": {
            "Change": 1,
            "Unchanged": 1,
            "Conflict": 1,
            "Failed": 2,
            "Invalid": 1,
            "Skipped": 1,
        },
        "rows": [
            {
                "row": 2,
                "ticket": "INC0001001",
                "verdict": "Change",
                "status": None,
                "changes": [
                    {"field": "State", "current": "Open", "new": "Remediation Performed"},
                    {
                        "field": "Assigned To",
                        "current": '"corp\\\\jdoe"',
                        "new": '"corp\\\\asmith"',
                    },
                ],
                "body": {
                    "TicketNumber": "INC0001001",
                    "TicketState": 2,
                    "Priority": "Élevée",
                    "AssignedTo": "corp\\asmith",
                },
                "current": {"TicketState": 1, "Priority": "High", "AssignedTo": "corp\\jdoe"},
                "fingerprint": "9f" * 32,
                "message": "",
            },
            {
                "row": 3,
                "ticket": "INC0001002",
                "verdict": "Unchanged",
                "status": None,
                "changes": [],
                "body": None,
                "current": {"TicketState": 2},
                "fingerprint": "aa" * 32,
                "message": "the ticket already holds these values; nothing will be sent",
            },
            {
                "row": 4,
                "ticket": "INC0001003",
                "verdict": "Conflict",
                "status": None,
                "changes": [],
                "body": None,
                "current": {"TicketState": 3},
                "fingerprint": "bb" * 32,
                "message": 'State changed in CCS: exported "Open", now "Closed"',
            },
            {
                "row": 5,
                "ticket": "INC0009999",
                "verdict": "Failed",
                "status": 404,
                "changes": [],
                "body": None,
                "current": None,
                "fingerprint": None,
                "message": "HTTP 404: Ticket not found (found when the ticket was read; "
                "nothing will be sent)",
            },
            {
                "row": 6,
                "ticket": "INC0009998",
                "verdict": "Failed",
                "status": None,
                "changes": [],
                "body": None,
                "current": None,
                "fingerprint": None,
                "message": "the server could not be reached",
            },
            {
                "row": 7,
                "ticket": "",
                "verdict": "Invalid",
                "status": None,
                "changes": [],
                "body": None,
                "current": None,
                "fingerprint": None,
                "message": "Ticket Number: empty",
            },
            {
                "row": 9,
                "ticket": "",
                "verdict": "Skipped",
                "status": None,
                "changes": [],
                "body": None,
                "current": None,
                "fingerprint": None,
                "message": "blank row",
            },
        ],
    }


def sheet_rows(path: Path, name: str) -> list[tuple[Any, ...]]:
    workbook = load_workbook(path)
    try:
        return [tuple(row) for row in workbook[name].iter_rows(values_only=True)]
    finally:
        workbook.close()


def summary(path: Path) -> dict[str, Any]:
    return {label: value for label, value in sheet_rows(path, "Summary")}


def test_every_verdict_is_shown_with_its_row_ticket_changes_why_and_body(tmp_path: Path) -> None:
    path = tmp_path / "tickets.plan.xlsx"
    assert write_plan_book(path, make_plan(), PLAN_SHA) == path

    workbook = load_workbook(path)
    assert workbook.sheetnames == ["Plan", "Summary", "Legend"]
    assert workbook.active is not None and workbook.active.title == "Plan"
    ws = workbook["Plan"]
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == "A1:F8"
    assert ws["D2"].alignment.wrap_text
    assert ws["C2"].fill.fgColor.rgb.endswith(OUTCOME_COLOURS[Outcome.UPDATED])
    assert ws["C5"].fill.fgColor.rgb.endswith(OUTCOME_COLOURS[Outcome.FAILED])
    assert ws["C8"].fill.fgColor.rgb.endswith(OUTCOME_COLOURS[Outcome.SKIPPED])
    assert all((ws.column_dimensions[c].width or 0) >= 8 for c in "ABCDEF")
    workbook.close()

    rows = sheet_rows(path, "Plan")
    assert list(rows[0]) == HEADERS
    body = json.dumps(make_plan()["rows"][0]["body"], ensure_ascii=False, separators=(",", ":"))
    assert rows[1] == (
        2,
        "INC0001001",
        "Will change",
        'State: Open -> Remediation Performed\nAssigned To: "corp\\\\jdoe" -> "corp\\\\asmith"',
        None,
        body,
    )
    assert "Élevée" in body
    assert rows[2] == (
        3,
        "INC0001002",
        "Unchanged",
        None,
        "the ticket already holds these values; nothing will be sent",
        None,
    )
    assert rows[3][:3] == (4, "INC0001003", "Conflict")
    assert rows[3][4] == 'State changed in CCS: exported "Open", now "Closed"'
    assert rows[4] == (
        5,
        "INC0009999",
        "Failed (HTTP 404)",
        None,
        "HTTP 404: Ticket not found (found when the ticket was read; nothing will be sent)",
        None,
    )
    assert rows[5][:3] == (6, "INC0009998", "Failed")
    assert rows[6] == (7, None, "Invalid", None, "Ticket Number: empty", None)
    assert rows[7] == (9, None, "Skipped", None, "blank row", None)
    assert len(rows) == 8


def test_the_summary_says_what_was_planned_and_the_counts_add_up(tmp_path: Path) -> None:
    path = write_plan_book(
        tmp_path / "plan.xlsx", make_plan(), PLAN_SHA, plan_file_name="tickets.plan.json"
    )
    lines = sheet_rows(path, "Summary")
    labels = [label for label, _ in lines]
    assert labels == [
        "Plan SHA-256",
        "Made at (UTC)",
        "Expires at (UTC)",
        "Server",
        "CCS account (planner)",
        "Planner (OS user on host)",
        "Input file",
        "Input SHA-256",
        "Normalised rows SHA-256",
        "Sheet",
        "Will change",
        "Unchanged",
        "Conflict",
        "Failed",
        "Invalid",
        "Skipped",
        "Rows",
        "Rate (requests/s)",
        "Concurrency",
        "Capture before values",
        "Verify by read-back",
        "Overwrite conflicts",
        "How the state was read",
        "Tool version",
        "Next step",
    ]
    values = dict(lines)
    assert values["Plan SHA-256"] == PLAN_SHA
    assert values["Made at (UTC)"] == "2026-12-03T20:40:00Z"
    assert values["Expires at (UTC)"] == "2026-12-10T20:40:00Z"
    assert values["Server"] == "https://ccs01.corp.local:12431"
    assert values["CCS account (planner)"] == "corp\\ccsadmin"
    assert values["Planner (OS user on host)"] == "ops on ops-laptop"
    assert values["Input file"] == "/home/ops/tickets.xlsx"
    assert values["Input SHA-256"] == "ab" * 32
    assert values["Normalised rows SHA-256"] == "cd" * 32
    assert values["Sheet"] == "Tickets"
    counts = [values[k] for k in labels[10:16]]
    assert counts == [1, 1, 1, 2, 1, 1]
    assert sum(counts) == values["Rows"] == 7
    assert values["Rate (requests/s)"] == 5.0
    assert values["Concurrency"] == "auto"
    assert values["Capture before values"] == "No"
    assert values["Verify by read-back"] == "Yes"
    assert values["Overwrite conflicts"] == "No"
    assert values["How the state was read"].startswith("Current state: read in pages of 500")
    assert values["Tool version"] == "0.9.0"
    assert values["Next step"] == "batch-update approve tickets.plan.json"


def test_a_simulated_server_and_no_plan_file_name_are_said_so(tmp_path: Path) -> None:
    plan = make_plan()
    plan["simulated"] = True
    del plan["settings"]["overwrite_conflicts"]
    values = summary(write_plan_book(tmp_path / "plan.xlsx", plan, PLAN_SHA))
    assert values["Server"] == "https://ccs01.corp.local:12431 (simulated)"
    assert values["Next step"] == "batch-update approve PLAN"
    assert "Overwrite conflicts" not in values


def test_the_legend_explains_every_verdict(tmp_path: Path) -> None:
    path = write_plan_book(tmp_path / "plan.xlsx", make_plan(), PLAN_SHA)
    legend = dict(sheet_rows(path, "Legend"))
    assert list(legend) == [
        "Plan",
        "Will change",
        "Unchanged",
        "Conflict",
        "Failed",
        "Invalid",
        "Skipped",
    ]
    assert legend["Will change"].startswith("one PATCH with exactly this body")
    assert legend["Skipped"] == "a blank row"
    assert "404: it does not exist" in legend["Failed"]


@pytest.mark.parametrize("text", ["=cmd|' /C calc'!A0", "+1+1", "@SUM(A1)", "-2+3", "=1+1"])
def test_formula_like_text_is_written_as_text_unchanged(tmp_path: Path, text: str) -> None:
    plan = make_plan()
    plan["rows"][0]["changes"] = [{"field": "Description", "current": "old", "new": text}]
    plan["rows"][0]["changes"].insert(0, {"field": text, "current": text, "new": "x"})
    plan["rows"][1]["message"] = text
    plan["rows"][1]["ticket"] = text
    plan["how_read"] = text
    path = write_plan_book(tmp_path / "plan.xlsx", plan, PLAN_SHA, plan_file_name=text)

    workbook = load_workbook(path)
    ws = workbook["Plan"]
    assert ws["D2"].value == f"{text}: {text} -> x\nDescription: old -> {text}"
    for cell in (ws["D2"], ws["B3"], ws["E3"]):
        assert cell.data_type == "s"
    for ref in ("B3", "E3"):
        assert ws[ref].value == text
        assert ws[ref].quotePrefix
    values = {row[0].value: row[1] for row in workbook["Summary"].iter_rows()}
    assert values["How the state was read"].value == text
    assert values["How the state was read"].data_type == "s"
    assert values["Next step"].value == f"batch-update approve {text}"
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            assert all(cell.data_type != "f" for cell in row)
    workbook.close()


def test_the_file_is_written_atomically_and_never_over_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "out" / "tickets.plan.xlsx"
    path.parent.mkdir()
    assert write_plan_book(path, make_plan(), PLAN_SHA) == path
    assert sorted(p.name for p in path.parent.iterdir()) == ["tickets.plan.xlsx"]

    before = path.read_bytes()
    with pytest.raises(OutputError):
        write_plan_book(path, make_plan(), PLAN_SHA)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["tickets.plan.xlsx"]


def test_counts_that_do_not_match_the_rows_write_nothing(tmp_path: Path) -> None:
    plan = copy.deepcopy(make_plan())
    plan["counts"]["Change"] = 2
    path = tmp_path / "plan.xlsx"
    with pytest.raises(ValueError, match="internal error"):
        write_plan_book(path, plan, PLAN_SHA)
    assert list(tmp_path.iterdir()) == []
