"""Rollback: a sweep applied with before values captured, then its rollback, leaves the tickets as they were."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from helpers import make_sender

from batch_updater.ccs import CcsClient
from batch_updater.pacing import RateLimiter
from batch_updater.report import (
    ROLLBACK_HEADERS,
    default_rollback_path,
    rollback_rows,
    write_rollback,
)
from batch_updater.settings import Secret
from batch_updater.sheet import read_sheet
from batch_updater.tickets import Outcome, PlannedRow, RowResult, RunInfo, TicketState, TicketUpdate
from batch_updater.validate import DEFAULT_RULES, plan

FIELDS = ("TicketState", "Priority", "AssignedTo", "TicketDescription")


def send(sim, rows: list[PlannedRow], **options) -> dict[int, RowResult]:
    client = CcsClient(sim.url, "corp\\ccsadmin", Secret("Demo-Passw0rd!"))
    client.login()
    return make_sender(client, RateLimiter(200), **options).run(rows).results


def test_a_sweep_and_its_rollback_leave_the_tickets_as_they_were(simulator, tmp_path: Path) -> None:
    numbers = [f"INCA{n:07d}" for n in range(20, 26)]
    originals = {n: {f: simulator.ticket(n)[f] for f in FIELDS} for n in numbers}
    sweep = [
        PlannedRow(
            2,
            update=TicketUpdate(
                numbers[0], TicketState.VERIFIED, "Verified by rescan", "High", "corp\\akhan"
            ),
        ),
        PlannedRow(3, update=TicketUpdate(numbers[1], priority="High")),
        PlannedRow(
            4, update=TicketUpdate(numbers[2], TicketState.REMEDIATION_PERFORMED, priority="Low")
        ),
        PlannedRow(
            5, update=TicketUpdate(numbers[3], assigned_to="a.khan@corp.example", priority="Medium")
        ),
        PlannedRow(
            6,
            update=TicketUpdate(
                numbers[4], description="=SUM(A1) looks like a formula", priority="Low"
            ),
        ),
        PlannedRow(
            7, update=TicketUpdate("INCA0099999", priority="Low")
        ),  # 404: nothing to roll back
    ]
    results = send(simulator, sweep, capture_before=True)
    assert [results[r.row_number].outcome for r in sweep] == [Outcome.UPDATED] * 5 + [
        Outcome.FAILED
    ]
    assert simulator.ticket(numbers[0])["TicketState"] == 3

    run = RunInfo(
        str(tmp_path / "tickets.xlsx"),
        "ab" * 32,
        "Tickets",
        "0.1.0",
        "me",
        datetime(2026, 11, 30, tzinfo=timezone.utc),
    )
    path = default_rollback_path(tmp_path / "tickets.xlsx", run.started)
    assert path.name == "tickets.rollback-20261130-000000.xlsx"
    assert write_rollback(path, [results[r.row_number] for r in sweep], run) == 5

    rollback_sheet = read_sheet(path, is_header_row=DEFAULT_RULES.is_header_row)
    assert rollback_sheet.headers == list(ROLLBACK_HEADERS)
    rollback_plan = plan(rollback_sheet, DEFAULT_RULES)
    assert all(row.is_valid for row in rollback_plan.rows), [
        row.problems for row in rollback_plan.rows
    ]
    # only the fields each row changed are restored (and Priority, which CCS requires)
    assert rollback_plan.rows[1].update == TicketUpdate(
        numbers[1], priority=originals[numbers[1]]["Priority"]
    )

    undone = send(simulator, rollback_plan.rows)
    assert all(r.outcome is Outcome.UPDATED for r in undone.values())
    for number in numbers:
        assert {f: simulator.ticket(number)[f] for f in FIELDS} == originals[number]


def test_rows_without_before_values_or_not_updated_have_no_rollback() -> None:
    update = TicketUpdate("INCA0000001", description="x", priority="Low")
    results = [
        RowResult(2, Outcome.UPDATED, "INCA0000001", 204, request_json=update.to_json_text()),
        RowResult(
            3,
            Outcome.FAILED,
            "INCA0000002",
            404,
            request_json=update.to_json_text(),
            before={"Priority": "Low"},
        ),
        RowResult(
            4,
            Outcome.UPDATED,
            "INCA0000003",
            204,
            request_json=update.to_json_text(),
            before={"Priority": "High", "TicketDescription": ""},
        ),
    ]
    assert rollback_rows(results) == [
        [
            "INCA0000003",
            None,
            "High",
            None,
            None,
            4,
            "Description was empty before; an empty cell cannot restore that, so clear it in CCS by hand if needed",
        ],
    ]


def test_rows_a_resume_carried_from_the_run_that_updated_them_are_undone_too() -> None:
    update = TicketUpdate("INCA0000001", description="new", priority="Low")
    before = {"Priority": "High", "TicketDescription": "old"}
    results = [
        # updated by the interrupted run, carried by the resume with that run's 204
        RowResult(
            2,
            Outcome.SKIPPED,
            "INCA0000001",
            204,
            "updated in run R at ...; not sent again",
            request_json=update.to_json_text(),
            before=before,
        ),
        # a blank row, and a row carried without its status: nothing to undo
        RowResult(3, Outcome.SKIPPED, message="blank row", before=before),
        RowResult(
            4,
            Outcome.SKIPPED,
            "INCA0000004",
            None,
            request_json=update.to_json_text(),
            before=before,
        ),
    ]
    assert rollback_rows(results) == [["INCA0000001", None, "High", None, "old", 2, None]]


# --- end to end: the rollback of a run puts back exactly what was there ---------------------------

EXACT_ORIGINALS = {
    "INCA0000031": {"TicketDescription": "-starts with a dash", "AssignedTo": "-ops team"},
    "INCA0000032": {
        "TicketDescription": "=SUM(A1:A2) looks like a formula",
        "AssignedTo": "@oncall",
    },
    "INCA0000033": {"TicketDescription": "+1 555 0100", "AssignedTo": "corp\\jsmith"},
    "INCA0000034": {"TicketDescription": "@mention the owner", "AssignedTo": "=x"},
    "INCA0000035": {"TicketDescription": "  spaces around  ", "AssignedTo": " corp\\akhan "},
    "INCA0000036": {
        "TicketDescription": "bell\x07, tab\tand\nnewline",
        "AssignedTo": "a.khan@corp.example",
    },
}


def _run_id(stderr: str) -> str:
    import re

    match = re.search(r"; run (\S+)\.$", stderr, flags=re.M)
    assert match, stderr
    return match.group(1)


def test_the_rollback_of_a_run_restores_every_value_exactly(tmp_path: Path, simulator) -> None:
    from helpers import live_args, live_env, read_results, results_files, run_command, write_sheet

    client = CcsClient(simulator.url, "corp\\ccsadmin", Secret("Demo-Passw0rd!"))
    client.login()
    for number, fields in EXACT_ORIGINALS.items():  # what a console user typed, byte for byte
        assert (
            client.update(
                TicketUpdate(
                    number,
                    description=fields["TicketDescription"],
                    priority="Medium",
                    assigned_to=fields["AssignedTo"],
                )
            ).status
            == 204
        )
    originals = {n: {f: simulator.ticket(n)[f] for f in FIELDS} for n in EXACT_ORIGINALS}
    assert all(
        originals[n]["TicketDescription"] == f["TicketDescription"]
        for n, f in EXACT_ORIGINALS.items()
    )

    rows = [
        [number, 2, "High", "corp\\sweeper", f"=swept {i}"]
        for i, number in enumerate(EXACT_ORIGINALS)
    ]
    write_sheet(tmp_path / "tickets.xlsx", rows)
    env = live_env(tmp_path / "home")
    sweep = run_command(
        ["tickets.xlsx", *live_args(simulator, "--rate", "100", "--capture-before")],
        tmp_path,
        env=env,
    )
    assert sweep.returncode == 0, sweep.stderr
    assert simulator.ticket("INCA0000031")["TicketDescription"] == "=swept 0"
    run_id = _run_id(sweep.stderr)

    undo = run_command(
        ["rollback", run_id, "tickets.xlsx", *live_args(simulator, "--rate", "100")],
        tmp_path,
        env=env,
    )

    assert undo.returncode == 0, undo.stderr
    assert (
        f"Rolling back run {run_id}: 6 tickets, to the values its journal captured" in undo.stderr
    )
    for number in EXACT_ORIGINALS:
        assert {f: simulator.ticket(number)[f] for f in FIELDS} == originals[number], number
    bodies = [r.body for r in simulator.requests if r.method == "PATCH"][-6:]
    for body in bodies:  # exactly the captured text went out: no apostrophe, nothing trimmed
        assert body["TicketDescription"] == originals[body["TicketNumber"]]["TicketDescription"]
        assert body["AssignedTo"] == originals[body["TicketNumber"]]["AssignedTo"]
    (results,) = [p for p in results_files(tmp_path) if p.name.startswith("tickets.rollback-")]
    read = read_results(results)
    assert [r["Outcome"] for r in read] == ["Updated"] * 6
    assert [r["Verification"] for r in read] == ["Verified"] * 6
    # The readable record (the rollback run's input and results) holds the same exact text,
    # as the project's reader (and Excel, which decodes _xHHHH_ escapes) reads it.
    record = read_sheet(results, "Results", is_header_row=DEFAULT_RULES.is_header_row)
    column = record.headers.index("Description")
    assert {row.values[0]: row.values[column] for row in record.rows} == {
        n: originals[n]["TicketDescription"] for n in EXACT_ORIGINALS
    }

    # Rolled back once: the same rollback again is the duplicate guard's business.
    again = run_command(
        ["rollback", run_id, "tickets.xlsx", *live_args(simulator, "--rate", "100")],
        tmp_path,
        env=env,
    )
    assert again.returncode == 2, again.stderr
    assert "already" in again.stderr


def test_a_run_without_before_values_cannot_be_rolled_back(tmp_path: Path, simulator) -> None:
    from helpers import live_args, live_env, run_command, ticket_rows, write_sheet

    write_sheet(tmp_path / "tickets.xlsx", ticket_rows(2, first=40))
    env = live_env(tmp_path / "home")
    done = run_command(["tickets.xlsx", *live_args(simulator, "--rate", "100")], tmp_path, env=env)
    run_id = _run_id(done.stderr)
    refused = run_command(
        ["rollback", run_id, "tickets.xlsx", *live_args(simulator)], tmp_path, env=env
    )
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"Error: Run {run_id} was made without --capture-before, so its journal holds no "
        "values to put back.",
        "Tip: Only a run made with --capture-before can be rolled back.",
    ]
