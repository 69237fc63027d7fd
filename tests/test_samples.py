"""The samples: every row of samples/tickets.xlsx and .csv ends the way make_samples.py intends.

`batch-update samples/tickets.xlsx --simulate` is the first command a new user runs; each sample
row is there to show one outcome, so each is checked here, through the installed command.
"""

from __future__ import annotations

import filecmp
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import python_calamine
from helpers import (
    FAST_RETRIES_YAML,
    SAMPLES,
    all_text,
    by_row,
    copy_sample,
    formula_cells,
    live_args,
    live_env,
    outcome_counts,
    pick,
    read_results,
    read_summary,
    results_files,
    run_command,
)

from batch_updater.cli import SIMULATED_SERVER
from batch_updater.tickets import TicketState

MSG_NOT_FOUND = "Ticket not found. Provide valid ticket number."
MSG_FORBIDDEN = "You are not authorized to perform this task. Access is denied."
MSG_SERVER_ERROR = (
    "Server encountered an error while serving request. "
    "Please contact administrator if problem persists."
)
OUTCOME_ORDER = (
    "Updated",
    "Unchanged",
    "Conflict",
    "Failed",
    "Unknown",
    "Invalid",
    "Skipped",
    "Not sent",
    "Valid (dry run)",
)
# The tool reads each ticket before changing it: a ticket the read refuses is never sent.
READ_FIRST = " (found when the ticket was read before sending; nothing was sent)"


def load_make_samples() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKE_SAMPLES = load_make_samples()
INTENDED: dict[int, str] = MAKE_SAMPLES.intended_outcomes()
EQUALS_ROW = next(
    row for row, (_, cells) in zip(INTENDED, MAKE_SAMPLES.ROWS) if str(cells[6]).startswith("=")
)


def duplicate_partner(row: int) -> int:
    """The other row of a duplicated ticket in the sample."""
    (partner,) = [
        other
        for other, intended in INTENDED.items()
        if intended == "Invalid duplicate" and other != row
    ]
    return partner


def check_intended(result: dict[str, Any], intended: str) -> None:
    """One Results row against the outcome make_samples.py intends for it."""
    row = result["Row"]
    where = f"row {row} ({intended})"
    if intended == "Updated":
        assert pick(result, "Outcome", "HTTP Status", "Attempts") == ("Updated", 204, 1), where
        assert result["Message"] is None, where
        assert json.loads(result["Request"])["TicketNumber"] == result["Ticket Number"], where
    elif intended == "Failed 404":
        # The ticket is not among the account's tickets read in pages: the GET right before its
        # PATCH answers 404, and the PATCH is not sent (the one attempt is the GET).
        assert (result["Outcome"], result["HTTP Status"], result["Message"]) == (
            "Failed",
            404,
            MSG_NOT_FOUND + READ_FIRST,
        ), where
        assert (result["Attempts"], result["Request"]) == (1, None), where
    elif intended == "Failed 403":
        # Likewise a ticket of a standard the account may not touch: its GET answers 403.
        assert (result["Outcome"], result["HTTP Status"], result["Message"]) == (
            "Failed",
            403,
            MSG_FORBIDDEN + READ_FIRST,
        ), where
        assert (result["Attempts"], result["Request"]) == (1, None), where
    elif intended == "Failed 500":
        assert pick(result, "Outcome", "HTTP Status", "Attempts") == ("Failed", 500, 4), where
        assert result["Message"] == (
            f"{MSG_SERVER_ERROR} (gave up after 4 attempts: HTTP 500, HTTP 500, HTTP 500, HTTP 500)"
        ), where
    elif intended == "Invalid":
        assert pick(result, "Outcome", "HTTP Status", "Attempts") == ("Invalid", None, 0), where
        assert result["Message"].startswith('column "'), where
        assert result["Request"] is None, where
    elif intended == "Invalid duplicate":
        assert pick(result, "Outcome", "HTTP Status", "Attempts") == ("Invalid", None, 0), where
        assert result["Message"] == (
            f"ticket {result['Ticket Number']} also appears in row {duplicate_partner(row)}; "
            "keep one row per ticket."
        ), where
    elif intended == "Skipped":
        assert pick(result, "Outcome", "Message", "Attempts") == ("Skipped", "blank row", 0), where
    else:  # pragma: no cover - a new kind of sample row needs a rule here
        raise AssertionError(f"no check for the intended outcome {intended!r}")


def check_sample_workbook(path: Path) -> list[dict[str, Any]]:
    """What every run of the whole sample must show, whatever the server; returns the rows."""
    results = read_results(path)
    rows = by_row(results)
    assert list(rows) == list(INTENDED), "every sample row, in order, exactly once"
    for row, intended in INTENDED.items():
        check_intended(dict(rows[row]), intended)

    summary = read_summary(path)
    counts = outcome_counts(results)
    assert summary["Rows read"] == len(INTENDED)
    assert {name: summary[name] for name in OUTCOME_ORDER} == {
        name: counts.get(name, 0) for name in OUTCOME_ORDER
    }
    assert sum(summary[name] for name in OUTCOME_ORDER) == summary["Rows read"]
    assert summary["Reconciliation"].startswith(f"balanced: {len(INTENDED)} rows read = ")
    assert summary["Header row"] == 4

    assert formula_cells(path) == []
    equals = rows[EQUALS_ROW]
    assert equals["Description"] == "=Applied the same GPO as EXCH-01"
    assert json.loads(equals["Request"])["TicketDescription"] == "=Applied the same GPO as EXCH-01"
    # A reader that evaluates nothing (calamine, like Excel's cached values) sees the same text.
    assert "=Applied the same GPO as EXCH-01" in all_text(path)
    # The backslash of a DOMAIN\user survives into the JSON. A PATCH holds only the fields that
    # differ from the ticket's, so rows whose ticket is already assigned there do not send it.
    assigned = [
        json.loads(result["Request"])["AssignedTo"]
        for result in results
        if result["Assigned To"] == "corp\\jsmith"
        and result["Request"]
        and "AssignedTo" in json.loads(result["Request"])
    ]
    assert assigned and set(assigned) == {"corp\\jsmith"}
    return results


def asked_of(result: dict[str, Any]) -> dict[str, object]:
    """The API values a sample row asks for (its non-empty cells), as CCS holds them."""
    asked: dict[str, object] = {"Priority": str(result["Priority"]).title()}
    state = result["State"]
    if state not in (None, ""):
        text = str(state).strip()
        labels = {s.label.casefold(): int(s) for s in TicketState}
        asked["TicketState"] = labels.get(text.casefold()) or int(float(text))
    if result["Assigned To"] not in (None, ""):
        asked["AssignedTo"] = result["Assigned To"]
    if result["Description"] not in (None, ""):
        asked["TicketDescription"] = result["Description"]
    return asked


@pytest.fixture
def fast_retries(tmp_path: Path) -> Path:
    config = tmp_path / "fast.yaml"
    config.write_text(FAST_RETRIES_YAML, encoding="utf-8")
    return config


def test_the_samples_are_what_make_samples_writes(tmp_path: Path) -> None:
    MAKE_SAMPLES.write_csv(tmp_path / "tickets.csv")
    MAKE_SAMPLES.write_xlsx(tmp_path / "tickets.xlsx")
    assert filecmp.cmp(tmp_path / "tickets.csv", SAMPLES / "tickets.csv", shallow=False)
    fresh = python_calamine.CalamineWorkbook.from_path(str(tmp_path / "tickets.xlsx"))
    kept = python_calamine.CalamineWorkbook.from_path(str(SAMPLES / "tickets.xlsx"))
    assert fresh.sheet_names == kept.sheet_names
    for name in kept.sheet_names:
        assert fresh.get_sheet_by_name(name).to_python() == kept.get_sheet_by_name(name).to_python()


def test_every_outcome_is_shown_by_the_samples() -> None:
    assert set(INTENDED.values()) == {
        "Updated",
        "Failed 404",
        "Failed 403",
        "Failed 500",
        "Invalid",
        "Invalid duplicate",
        "Skipped",
    }


@pytest.mark.parametrize("name", ["tickets.xlsx", "tickets.csv"])
def test_simulated_run_of_the_sample_ends_as_intended(
    tmp_path: Path, fast_retries: Path, name: str
) -> None:
    sample = copy_sample(name, tmp_path)
    before = sample.read_bytes()

    done = run_command(
        [name, "--simulate", "--rate", "100", "--config", str(fast_retries)], tmp_path
    )

    assert done.returncode == 1, done.stderr
    (workbook,) = results_files(tmp_path)
    results = check_sample_workbook(workbook)
    summary = read_summary(workbook)
    assert summary["Mode"] == "Simulated server"
    assert summary["CCS user"] == "corp\\ccsadmin"
    assert sample.read_bytes() == before
    counts = outcome_counts(results)
    failed = {"HTTP 403": 2, "HTTP 404": 2, "HTTP 500": 1}
    assert counts == {"Updated": 25, "Failed": 5, "Invalid": 5, "Skipped": 2}
    sheet = ' (sheet "Tickets")' if name.endswith(".xlsx") else ""
    assert done.stdout.splitlines() == [
        f"37 rows in {name}{sheet}:",
        "  Updated              25",
        "  Failed                5   (" + ", ".join(f"{k}: {v}" for k, v in failed.items()) + ")",
        "  Invalid               5",
        "  Skipped               2",
        f"Results workbook: {workbook.name}",
        f"Manifest:         {workbook.with_suffix('.manifest.json').name}",
    ]
    location = f'{name}, sheet "Tickets"' if name.endswith(".xlsx") else name
    problems = [line for line in done.stderr.splitlines() if line.startswith(location)]
    assert problems == [
        f'{location}, row 32, column "State": "Done" is not a ticket state; use 1-5 or a name: '
        "1 Open, 2 Remediation Performed, 3 Verified, 4 Failed, 5 Not Applicable.",
        f'{location}, row 33, column "Priority": Priority is required by CCS; use one of Low, '
        "Medium, High.",
        f'{location}, row 34, column "State": "7" is not a ticket state; use 1-5 or a name: '
        "1 Open, 2 Remediation Performed, 3 Verified, 4 Failed, 5 Not Applicable.",
        f'{location}, row 34, column "Priority": "Urgent" is not a priority; use one of Low, '
        "Medium, High.",
        f"{location}, row 35: ticket INCA0000140 also appears in row 37; keep one row per ticket.",
        f"{location}, row 37: ticket INCA0000140 also appears in row 35; keep one row per ticket.",
    ]
    assert "5 rows will not be sent (Invalid)." in done.stderr.splitlines()
    assert "Traceback" not in done.stderr


def test_live_run_of_the_sample_changes_exactly_what_the_sheet_asks(
    tmp_path: Path, make_simulator, fast_retries: Path
) -> None:
    # The same server as --simulate's, but one the test can look into.
    sim = make_simulator(**SIMULATED_SERVER)
    before = {ticket["TicketNumber"]: ticket for ticket in sim.tickets()}
    copy_sample("tickets.xlsx", tmp_path)

    done = run_command(
        ["tickets.xlsx", *live_args(sim, "--rate", "100", "--config", str(fast_retries))],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )

    assert done.returncode == 1, done.stderr
    (workbook,) = results_files(tmp_path)
    results = check_sample_workbook(workbook)
    updated = {
        r["Ticket Number"].upper(): json.loads(r["Request"])
        for r in results
        if r["Outcome"] == "Updated"
    }
    rows_by_ticket = {r["Ticket Number"].upper(): r for r in results if r["Outcome"] == "Updated"}
    # The tool reads the tickets first: every ticket the account sees, in pages of 500 (30 rows
    # to send: a budget of 7 pages; the second page is the last), then a GET right before the
    # PATCH of each ticket the pages did not hold. The 403 and 404 rows stop at their GET.
    refused = {
        r["Ticket Number"].upper()
        for r in results
        if INTENDED[r["Row"]] in ("Failed 403", "Failed 404")
    }
    assert len(refused) == 4
    assert [r.query for r in sim.requests if r.method == "GET" and r.ticket is None] == [
        "Page=0&PageSize=500",
        "Page=1&PageSize=500",
    ]
    assert sorted((r.ticket, r.query) for r in sim.requests if r.method == "GET" and r.ticket) == [
        (number, f"TicketNumber={number}") for number in sorted(refused)
    ]
    sent = {r["Ticket Number"].upper() for r in results if r["Request"]}
    assert sent == set(updated) | {"INCA0000777"}  # the Updated rows and the one that fails 500
    assert set(sim.counts()["patches_by_ticket"]) == sent
    for number, old in before.items():
        now = sim.ticket(number)
        request = updated.get(number.upper())
        if request is None:
            assert {k: now[k] for k in old if k != "VerificationJobs"} == {
                k: old[k] for k in old if k != "VerificationJobs"
            }, number
            continue
        asked = asked_of(rows_by_ticket[number.upper()])
        # The PATCH holds only the fields the ticket did not hold already, and Priority.
        differing = {k: v for k, v in asked.items() if k != "Priority" and old[k] != v}
        assert request == {
            "TicketNumber": rows_by_ticket[number.upper()]["Ticket Number"],
            **differing,
            "Priority": asked["Priority"],
        }, number
        # And the ticket now holds every value its row asks for; the rest as it was.
        expected = {
            k: old[k] for k in ("TicketState", "TicketDescription", "Priority", "AssignedTo")
        }
        expected.update(asked)
        assert {k: now[k] for k in expected} == expected, number
    # The sample's rows are real changes, and some leave out a field the ticket already held.
    assert any(
        len(request) < 1 + len(asked_of(rows_by_ticket[n])) for n, request in updated.items()
    )
    assert sim.ticket("INCA0000101")["AssignedTo"] == "corp\\jsmith"
    assert sim.ticket("INCA0000116")["TicketDescription"] == "=Applied the same GPO as EXCH-01"
    description = {number: sim.ticket(number)["TicketDescription"] for number in before}
    assert description["INCA0000115"] == "- TLS 1.0 disabled\n- TLS 1.1 disabled"
    assert description["INCA0000121"] == "Weak ciphers removed (Zürich datacentre)"
    # Row 15 leaves State and Description empty: the server keeps what it had.
    assert sim.ticket("INCA0000111")["TicketState"] == before["INCA0000111"]["TicketState"]
    assert description["INCA0000111"] == before["INCA0000111"]["TicketDescription"]
    # Invalid rows were never sent, duplicates included.
    assert sim.patch_count("INCA0000140") == 0
    assert sim.patch_count("INCA0000130") == 0
    assert sim.patch_count("INCA0000777") == 4
