"""plan, approve, apply: a change a second account signed off, applied exactly as approved.

Against the simulator over loopback, through the core functions with a fake console (the
installed command end to end is in test_plan_cli.py).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import openpyxl
import pytest
from helpers import (
    ADMIN,
    AUDITOR,
    AUDITOR_PASSWORD,
    FakeConsole,
    settings_for,
)
from test_export import edit, export_in, move, patches, run_sheet_in

from batch_updater.errors import ConfigError, InputError
from batch_updater.journal import read_run, runs_of_plan
from batch_updater.manifest import check_manifest, journal_copy_path
from batch_updater.plans import approval_path, fingerprint, plan_of_record, read_plan
from batch_updater.settings import load_settings
from batch_updater.sim.store import RESTRICTED_STANDARD
from batch_updater.sweep import (
    ApplyRequest,
    ApproveRequest,
    ExitStatus,
    PlanRequest,
    apply_plan,
    approve,
    make_plan,
)
from batch_updater.tickets import Outcome, TicketState


def auditor_settings(sim, **cli: object):
    given = {"url": sim.url, "username": AUDITOR, "rate": 200.0, **cli}
    return load_settings(cli=given, env={"CCS_PASSWORD": AUDITOR_PASSWORD}, config_path=None)


def restricted(sim) -> str:
    return next(t["TicketNumber"] for t in sim.tickets() if t["Standard"] == RESTRICTED_STANDARD)


def every_kind(tmp_path: Path, sim) -> Path:
    """An exported sheet with a row of every kind: a change, an untouched row (Unchanged), a
    ticket moved in CCS after the export (Conflict), a missing ticket (404), a ticket the
    account may not see (403), an invalid row and a blank row."""
    outcome, _ = export_in(tmp_path, sim, query=(("TicketState", "1"),))
    sheet = edit(
        outcome.workbook,
        tmp_path / "sweep.xlsx",
        {
            "INCA0000001": {"State": "Remediation Performed", "Assigned To": "corp\\newowner"},
            "INCA0000003": {"Description": "Closed in CCS meanwhile?"},
        },
    )
    book = openpyxl.load_workbook(sheet)
    tickets = book["Tickets"]
    headers = [cell.value for cell in tickets[1]]
    rows = tickets.max_row
    # Keep rows 2-4 (INCA0000001..3, in the export's order), then add the hand-made kinds.
    tickets.delete_rows(5, rows - 4)
    for values in (
        {"Ticket Number": "INCA9999999", "State": "Open", "Priority": "High"},
        {"Ticket Number": restricted(sim), "State": "Open", "Priority": "High"},
        {"Ticket Number": "INCA0000004", "State": "Done", "Priority": "High"},
        {},
        {"Ticket Number": "INCA0000005", "Description": "+cmd|' /C calc'!A0", "Priority": "Low"},
    ):
        tickets.append([values.get(header) for header in headers])
    book.save(sheet)
    move(sim, ["INCA0000003"], TicketState.NOT_APPLICABLE)  # changed after the export
    return sheet


def plan_in(sheet: Path, sim, **request):
    console = FakeConsole()
    outcome = make_plan(PlanRequest(sheet, **request), settings_for(sim), console)
    return outcome, console


def approve_in(plan: Path, sim, settings=None, **request):
    console = FakeConsole()
    outcome = approve(
        ApproveRequest(plan, yes=True, **request), settings or auditor_settings(sim), console
    )
    return outcome, console


def apply_in(plan: Path, sim, settings=None, **request):
    console = FakeConsole()
    outcome = apply_plan(
        ApplyRequest(plan, yes=True, **request), settings or settings_for(sim), console
    )
    return outcome, console


def summary_of(workbook: Path) -> dict[object, object]:
    sheet = openpyxl.load_workbook(workbook, read_only=True)["Summary"]
    return {row[0]: row[1] for row in sheet.iter_rows(values_only=True) if len(row) > 1}


def eight_days_later(monkeypatch) -> None:
    """The plans' clock a week and a day on: a plan of the default expiry has expired."""
    import batch_updater.plans as plans

    class Later(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return datetime.now(timezone.utc) + timedelta(days=8)

    monkeypatch.setattr(plans, "datetime", Later)


def by_row(outcome) -> dict[int, object]:
    return {result.row_number: result for result in outcome.results}


def plan_rows(workbook: Path) -> dict[int, dict[str, object]]:
    book = openpyxl.load_workbook(workbook, read_only=True)
    rows = list(book["Plan"].iter_rows(values_only=True))
    return {row[0]: dict(zip(rows[0], row)) for row in rows[1:]}


def test_a_plan_reads_every_ticket_sends_nothing_and_records_every_row_kind(
    tmp_path: Path, simulator
) -> None:
    sheet = every_kind(tmp_path, simulator)
    simulator.clear_requests()
    outcome, _ = plan_in(sheet, simulator)

    assert outcome.status is ExitStatus.OK
    assert patches(simulator) == []
    plan = read_plan(outcome.plan_path)
    verdicts = {row.row: (row.verdict.value, row.status) for row in plan.rows.values()}
    assert verdicts == {
        2: ("Change", None),
        3: ("Unchanged", None),
        4: ("Conflict", None),
        5: ("Failed", 404),
        6: ("Failed", 403),
        7: ("Invalid", None),
        8: ("Skipped", None),
        9: ("Change", None),
    }
    change = plan.rows[2]
    assert change.body is not None and json.loads(change.body.to_json_text()) == {
        "TicketNumber": "INCA0000001",
        "TicketState": 2,
        "AssignedTo": "corp\\newowner",
        "Priority": simulator.ticket("INCA0000001")["Priority"],
    }
    assert change.fingerprint == fingerprint(simulator.ticket("INCA0000001"))
    # The row still asks for the exported State, which CCS moved since: a Conflict, not a revert.
    assert 'State was "Open" when exported, is now "Not Applicable"' in plan.rows[4].message
    document = plan.document
    assert document["ccs_account"] == ADMIN
    assert document["input"]["sha256"]  # type: ignore[index]
    assert document["expires_at"] > document["made_at"]  # type: ignore[operator]
    assert document["counts"] == {
        "Change": 2,
        "Unchanged": 1,
        "Conflict": 1,
        "Failed": 2,
        "Invalid": 1,
        "Skipped": 1,
    }

    shown = plan_rows(outcome.workbook)
    assert shown[2]["Plan"] == "Will change"
    assert 'State: "Open" -> "Remediation Performed"' in shown[2]["Changes (current -> new)"]
    assert '-> "corp\\newowner"' in shown[2]["Changes (current -> new)"]
    assert shown[5]["Plan"] == "Failed (HTTP 404)" and "nothing will be sent" in shown[5]["Why"]
    assert shown[6]["Plan"] == "Failed (HTTP 403)"
    assert shown[7]["Plan"] == "Invalid" and "Done" in shown[7]["Why"]
    assert "+cmd|' /C calc'!A0" in shown[9]["PATCH body"]
    summary = summary_of(outcome.workbook)
    assert summary["Plan SHA-256"] == plan.sha256 == outcome.sha256
    assert summary["Will change"] == 2 and summary["Rows"] == 8


def test_an_approval_by_a_second_account_names_the_plan_and_the_approver(
    tmp_path: Path, simulator
) -> None:
    outcome, _ = plan_in(every_kind(tmp_path, simulator), simulator)
    simulator.clear_requests()
    approved, _ = approve_in(outcome.plan_path, simulator)

    assert approved.status is ExitStatus.OK
    record = json.loads(approval_path(outcome.plan_path).read_text(encoding="utf-8"))
    assert record["decision"] == "approved"
    assert record["plan_sha256"] == outcome.sha256
    assert record["ccs_account"] == AUDITOR
    assert record["approver"]["os_user"] and record["approver"]["host"]
    assert record["decided_at"]
    # An approver who can read tickets is enough: the auditor may not change any.
    assert patches(simulator) == []


def test_the_planner_cannot_approve_their_own_plan(tmp_path: Path, simulator) -> None:
    outcome, _ = plan_in(every_kind(tmp_path, simulator), simulator)
    with pytest.raises(InputError, match="a plan is approved by a second CCS account"):
        approve_in(outcome.plan_path, simulator, settings_for(simulator))
    assert not approval_path(outcome.plan_path).exists()


def test_an_approved_plan_sends_exactly_its_bodies_and_names_plan_and_approver(
    tmp_path: Path, simulator
) -> None:
    outcome, _ = plan_in(every_kind(tmp_path, simulator), simulator)
    approve_in(outcome.plan_path, simulator)
    plan = read_plan(outcome.plan_path)
    simulator.clear_requests()
    applied, _ = apply_in(outcome.plan_path, simulator)

    planned = [json.loads(row.body.to_json_text()) for row in plan.rows.values() if row.body]
    assert sorted(patches(simulator), key=str) == sorted(planned, key=str)
    results = by_row(applied)
    assert results[2].outcome is Outcome.UPDATED and results[9].outcome is Outcome.UPDATED
    assert results[3].outcome is Outcome.UNCHANGED
    assert results[4].outcome is Outcome.CONFLICT
    assert (results[5].outcome, results[5].status) == (Outcome.FAILED, 404)
    assert (results[6].outcome, results[6].status) == (Outcome.FAILED, 403)
    assert results[7].outcome is Outcome.INVALID
    assert simulator.ticket("INCA0000005")["TicketDescription"] == "+cmd|' /C calc'!A0"

    summary = summary_of(applied.workbook)
    assert summary["Plan"] == f"{outcome.plan_path.name} (SHA-256 {plan.sha256})"
    assert summary["Planned by"].startswith(ADMIN)
    assert summary["Approved by"].startswith(AUDITOR)
    checks = {check.role: check for check in check_manifest(applied.workbook)}
    assert set(checks) == {"results", "input", "journal", "plan", "approval"}
    assert all(check.ok for check in checks.values())
    manifest = json.loads(applied.manifest.read_text(encoding="utf-8"))
    assert manifest["plan"]["sha256"] == plan.sha256


def test_a_ticket_changed_between_plan_and_apply_ends_conflict_unsent(
    tmp_path: Path, simulator
) -> None:
    outcome, _ = plan_in(every_kind(tmp_path, simulator), simulator)
    approve_in(outcome.plan_path, simulator)
    move(simulator, ["INCA0000001"], TicketState.VERIFIED)  # a colleague, after the plan
    simulator.clear_requests()
    applied, _ = apply_in(outcome.plan_path, simulator)

    results = by_row(applied)
    assert results[2].outcome is Outcome.CONFLICT
    assert "changed in CCS since the plan" in results[2].message
    assert 'State was "Open" when planned, is now "Verified"' in results[2].message
    assert [body["TicketNumber"] for body in patches(simulator)] == ["INCA0000005"]
    assert applied.status is ExitStatus.ROWS_FAILED


def test_a_changed_plan_file_is_refused_and_nothing_is_sent(tmp_path: Path, simulator) -> None:
    outcome, _ = plan_in(every_kind(tmp_path, simulator), simulator)
    text = outcome.plan_path.read_text(encoding="utf-8")
    assert "corp\\\\newowner" in text
    outcome.plan_path.write_text(
        text.replace("corp\\\\newowner", "corp\\\\mallory"), encoding="utf-8"
    )
    simulator.clear_requests()

    with pytest.raises(InputError, match="has been changed since it was made"):
        apply_in(outcome.plan_path, simulator)
    with pytest.raises(InputError, match="has been changed since it was made"):
        approve_in(outcome.plan_path, simulator)
    assert simulator.requests == []


def test_a_changed_approval_is_refused(tmp_path: Path, simulator) -> None:
    outcome, _ = plan_in(every_kind(tmp_path, simulator), simulator)
    approve_in(outcome.plan_path, simulator)
    path = approval_path(outcome.plan_path)
    path.write_text(path.read_text(encoding="utf-8").replace("auditor", "boss"), encoding="utf-8")
    simulator.clear_requests()
    with pytest.raises(InputError, match="it is not the approval that was given"):
        apply_in(outcome.plan_path, simulator)
    assert simulator.requests == []


def test_a_changed_input_is_refused_and_nothing_is_sent(tmp_path: Path, simulator) -> None:
    sheet = every_kind(tmp_path, simulator)
    outcome, _ = plan_in(sheet, simulator)
    edit(sheet, sheet, {"INCA0000002": {"State": "Verified"}})
    simulator.clear_requests()
    with pytest.raises(InputError, match=r"sweep.xlsx has changed since .* was made"):
        apply_in(outcome.plan_path, simulator)
    assert simulator.requests == []


def test_an_expired_plan_is_refused(tmp_path: Path, simulator, monkeypatch) -> None:
    outcome, _ = plan_in(every_kind(tmp_path, simulator), simulator)

    eight_days_later(monkeypatch)
    simulator.clear_requests()
    with pytest.raises(InputError, match="expired at"):
        apply_in(outcome.plan_path, simulator)
    assert simulator.requests == []


def test_a_plan_is_applied_once(tmp_path: Path, simulator) -> None:
    outcome, _ = plan_in(every_kind(tmp_path, simulator), simulator)
    first, _ = apply_in(outcome.plan_path, simulator)
    assert first.workbook is not None
    simulator.clear_requests()
    with pytest.raises(InputError, match=r"already applied by run .*a plan is applied once"):
        apply_in(outcome.plan_path, simulator)
    assert simulator.requests == []


def test_an_unapproved_apply_says_so(tmp_path: Path, simulator) -> None:
    outcome, _ = plan_in(every_kind(tmp_path, simulator), simulator)
    applied, console = apply_in(outcome.plan_path, simulator)
    assert any("has not been approved" in text for kind, text in console.said if kind == "warn")
    summary = summary_of(applied.workbook)
    assert summary["Approved by"].startswith("not approved")


def test_require_approval_refuses_a_plan_without_approval_and_a_plain_run(
    tmp_path: Path, simulator
) -> None:
    sheet = every_kind(tmp_path, simulator)
    outcome, _ = plan_in(sheet, simulator)
    strict = settings_for(simulator, require_approval=True)
    simulator.clear_requests()
    with pytest.raises(ConfigError, match=r"has not been approved, and plan.require_approval"):
        apply_in(outcome.plan_path, simulator, strict)
    with pytest.raises(ConfigError, match=r"plan.require_approval is on: a live run"):
        run_sheet_in(sheet, simulator, cli={"require_approval": True})
    assert patches(simulator) == []

    approve_in(outcome.plan_path, simulator)
    applied, _ = apply_in(outcome.plan_path, simulator, strict)
    assert by_row(applied)[2].outcome is Outcome.UPDATED


def test_a_rejected_plan_is_never_applied(tmp_path: Path, simulator) -> None:
    outcome, _ = plan_in(every_kind(tmp_path, simulator), simulator)
    rejected, _ = approve_in(outcome.plan_path, simulator, reject="INCA0000001 is not ours")
    assert rejected.status is ExitStatus.OK
    simulator.clear_requests()
    with pytest.raises(InputError, match=r"was rejected by .*INCA0000001 is not ours"):
        apply_in(outcome.plan_path, simulator)
    with pytest.raises(InputError, match="already rejected"):
        approve_in(outcome.plan_path, simulator)
    assert patches(simulator) == []


def test_the_plan_travels_in_the_journal_checked_again(tmp_path: Path, simulator) -> None:
    outcome, _ = plan_in(every_kind(tmp_path, simulator), simulator)
    applied, _ = apply_in(outcome.plan_path, simulator)

    record = read_run(journal_copy_path(applied.workbook))
    assert record.plan_sha256 == outcome.sha256
    assert record.plan is not None and record.plan["approved"] is False
    assert plan_of_record(record.plan).sha256 == outcome.sha256
    (found,) = runs_of_plan(Path(record.to_run_info().journal_path).parent, outcome.sha256)
    assert found.run_id == record.run_id


def test_a_retry_of_an_apply_sends_only_the_planned_rows_that_failed(
    tmp_path: Path, simulator
) -> None:
    outcome, _ = plan_in(every_kind(tmp_path, simulator), simulator)
    approve_in(outcome.plan_path, simulator)
    plan = read_plan(outcome.plan_path)
    simulator.configure(fail_tickets={"INCA0000005"})
    applied, _ = apply_in(outcome.plan_path, simulator, settings_for(simulator, max_attempts=1))
    assert by_row(applied)[9].outcome is Outcome.FAILED
    record = read_run(journal_copy_path(applied.workbook))

    simulator.configure(fail_tickets=set())
    simulator.clear_requests()
    console = FakeConsole()
    from batch_updater.sweep import RunRequest, run

    retried = run(
        RunRequest(Path(plan.text("input", "path")), yes=True, retry_of=record.run_id),
        settings_for(simulator, require_approval=True),
        console,
    )
    assert patches(simulator) == [json.loads(plan.rows[9].body.to_json_text())]  # type: ignore[union-attr]
    assert by_row(retried)[9].outcome is Outcome.UPDATED
    summary = summary_of(retried.workbook)
    assert summary["Plan"].startswith(outcome.plan_path.name)
    assert summary["Approved by"].startswith(AUDITOR)


def test_the_rules_of_an_apply_row() -> None:
    from batch_updater.changes import Verdict
    from batch_updater.plans import PlanRow, PlanVerdict, decide_planned, same_account
    from batch_updater.tickets import TicketUpdate

    ticket = {"ticketNumber": "T1", "ticketState": 1, "priority": "Low", "assignedTo": "corp\\a"}
    body = TicketUpdate("T1", state=TicketState.REMEDIATION_PERFORMED, priority="Low")
    planned = PlanRow(
        2,
        "T1",
        PlanVerdict.CHANGE,
        body,
        {"TicketState": 1, "Priority": "Low", "AssignedTo": "corp\\a"},
        fingerprint(ticket),
        "",
    )
    assert decide_planned(planned, ticket).update == body  # any key case, the same fingerprint
    moved = decide_planned(planned, {**ticket, "assignedTo": "corp\\b"})
    assert moved.verdict is Verdict.CONFLICT and moved.update is None
    assert 'Assigned To was "corp\\a" when planned, is now "corp\\b"' in moved.message
    unread = PlanRow(3, "T2", PlanVerdict.FAILED, None, None, None, "HTTP 404", 404)
    assert decide_planned(unread, ticket).verdict is Verdict.CONFLICT
    same = PlanRow(4, "T1", PlanVerdict.UNCHANGED, None, None, fingerprint(ticket), "")
    assert decide_planned(same, ticket).verdict is Verdict.UNCHANGED
    assert same_account("corp\\Auditor", "CORP\\auditor")
    assert same_account("auditor@corp.example", "corp\\auditor")
    assert not same_account("corp\\auditor", "corp\\ccsadmin")


def rehashed(plan_path: Path, edit) -> None:
    """The plan file edited and its own SHA-256 computed again, as someone who can write the
    file could do."""
    from batch_updater.plans import document_text

    document = json.loads(plan_path.read_text(encoding="utf-8"))
    edit(document)
    text, _ = document_text(document, "plan_sha256")
    plan_path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda body: body.update(AssignedTo="corp\\attacker"), "its PATCH sends AssignedTo"),
        (lambda body: body.update(TicketNumber="INCA0000044"), "its PATCH is for INCA0000044"),
    ],
)
def test_a_plan_whose_bodies_are_not_the_sheets_rows_is_refused_even_rehashed(
    tmp_path: Path, simulator, edit, words: str
) -> None:
    outcome, _ = plan_in(every_kind(tmp_path, simulator), simulator)

    def change(document):
        edit(next(row for row in document["rows"] if row["row"] == 2)["body"])

    rehashed(outcome.plan_path, change)  # (approve refuses it: its workbook is not this plan's)
    simulator.clear_requests()
    with pytest.raises(InputError, match=words):
        apply_in(outcome.plan_path, simulator)
    assert patches(simulator) == []


def test_the_approver_is_never_shown_another_plans_workbook(tmp_path: Path, simulator) -> None:
    outcome, _ = plan_in(every_kind(tmp_path, simulator), simulator)
    rehashed(outcome.plan_path, lambda document: document.update(how_read="edited"))
    with pytest.raises(InputError, match="is not the workbook of"):
        approve_in(outcome.plan_path, simulator)
    assert not approval_path(outcome.plan_path).exists()

    outcome.workbook.unlink()  # a missing workbook is written again from the plan
    approved, console = approve_in(outcome.plan_path, simulator)
    assert approved.status is ExitStatus.OK
    assert any("written again from the plan" in text for _, text in console.said)
    assert summary_of(outcome.workbook)["Plan SHA-256"] == read_plan(outcome.plan_path).sha256


def test_a_plan_made_under_require_approval_keeps_it_under_another_config(
    tmp_path: Path, simulator
) -> None:
    sheet = every_kind(tmp_path, simulator)
    console = FakeConsole()
    strict = settings_for(simulator, require_approval=True)
    outcome = make_plan(PlanRequest(sheet), strict, console)
    simulator.clear_requests()
    with pytest.raises(ConfigError, match="as it was when the plan was made"):
        apply_in(outcome.plan_path, simulator)  # the default config: require_approval off
    assert patches(simulator) == []


def test_a_retry_manifest_vouches_for_the_plan_file_as_the_apply_read_it(
    tmp_path: Path, simulator
) -> None:
    outcome, _ = plan_in(every_kind(tmp_path, simulator), simulator)
    simulator.configure(fail_tickets={"INCA0000005"})
    applied, _ = apply_in(outcome.plan_path, simulator, settings_for(simulator, max_attempts=1))
    record = read_run(journal_copy_path(applied.workbook))
    simulator.configure(fail_tickets=set())
    sheet = sheet_of(outcome.plan_path)
    text = outcome.plan_path.read_text(encoding="utf-8")
    assert "corp\\\\newowner" in text
    outcome.plan_path.write_text(text.replace("newowner", "mallory"), encoding="utf-8")

    from batch_updater.sweep import RunRequest, run

    retried = run(
        RunRequest(sheet, yes=True, retry_of=record.run_id),
        settings_for(simulator),
        FakeConsole(),
    )
    checks = {check.role: check for check in check_manifest(retried.workbook)}
    assert not checks["plan"].ok and checks["plan"].found is not None


def sheet_of(plan_path: Path) -> Path:
    return Path(read_plan(plan_path).text("input", "path"))


def test_a_plan_of_a_named_sheet_is_applied_from_that_sheet(tmp_path: Path, simulator) -> None:
    sheet = tmp_path / "two.xlsx"
    book = openpyxl.Workbook()
    book.active.title = "Changes"
    book["Changes"].append(["Ticket Number", "State", "Priority"])
    book["Changes"].append(["INCA0000009", 5, "Low"])
    other = book.create_sheet("Other")
    other.append(["Ticket Number", "State", "Priority"])
    other.append(["INCA0000008", 5, "Low"])
    book.save(sheet)
    console = FakeConsole()
    outcome = make_plan(PlanRequest(sheet), settings_for(simulator, sheet="Other"), console)
    simulator.clear_requests()
    applied, _ = apply_in(outcome.plan_path, simulator)
    assert [body["TicketNumber"] for body in patches(simulator)] == ["INCA0000008"]
    assert applied.status is ExitStatus.OK


def test_a_plan_moved_with_its_input_is_applied_from_where_it_is(tmp_path: Path, simulator) -> None:
    outcome, _ = plan_in(every_kind(tmp_path, simulator), simulator)
    share = tmp_path / "share"
    share.mkdir()
    for path in (outcome.plan_path, outcome.workbook, tmp_path / "sweep.xlsx"):
        (share / path.name).write_bytes(path.read_bytes())
    edit(tmp_path / "sweep.xlsx", tmp_path / "sweep.xlsx", {"INCA0000002": {"State": "Verified"}})
    applied, _ = apply_in(share / outcome.plan_path.name, simulator)
    assert applied.workbook is not None and applied.workbook.parent == share


def test_plan_out_must_be_a_json_file_and_a_rejection_needs_a_reason(
    tmp_path: Path, simulator
) -> None:
    sheet = every_kind(tmp_path, simulator)
    with pytest.raises(ConfigError, match="a plan file is JSON"):
        plan_in(sheet, simulator, out=tmp_path / "myplan.xlsx")
    assert not (tmp_path / "myplan.xlsx").exists()
    outcome, _ = plan_in(sheet, simulator)
    with pytest.raises(ConfigError, match="--reject needs a reason"):
        approve_in(outcome.plan_path, simulator, reject="  ")


def test_a_report_of_an_apply_names_the_plan_and_its_manifest_covers_it(
    tmp_path: Path, simulator
) -> None:
    from batch_updater.sweep.history import rebuild_report

    outcome, _ = plan_in(every_kind(tmp_path, simulator), simulator)
    approve_in(outcome.plan_path, simulator)
    applied, _ = apply_in(outcome.plan_path, simulator)
    run_id = read_run(journal_copy_path(applied.workbook)).run_id

    rebuilt = rebuild_report(run_id, None, tmp_path / "rebuilt.xlsx", None, None)
    assert summary_of(rebuilt.workbook)["Approved by"].startswith(AUDITOR)
    checks = {check.role: check for check in check_manifest(rebuilt.workbook)}
    assert {"plan", "approval"} <= set(checks) and all(c.ok for c in checks.values())


def test_a_retry_of_an_expired_plans_apply_is_refused(tmp_path: Path, simulator, monkeypatch):
    from batch_updater.sweep import RunRequest, run

    outcome, _ = plan_in(every_kind(tmp_path, simulator), simulator)
    applied, _ = apply_in(outcome.plan_path, simulator)
    run_id = read_run(journal_copy_path(applied.workbook)).run_id

    eight_days_later(monkeypatch)
    simulator.clear_requests()
    with pytest.raises(InputError, match=r"expired at .* it cannot be continued"):
        run(
            RunRequest(sheet_of(outcome.plan_path), yes=True, retry_of=run_id),
            settings_for(simulator),
            FakeConsole(),
        )
    assert patches(simulator) == []


def test_a_plan_of_a_sheet_exported_from_another_server_says_so(
    tmp_path: Path, simulator, make_simulator
) -> None:
    exported, _ = export_in(tmp_path, make_simulator(), query=(("TicketState", "1"),))
    _, console = plan_in(exported.workbook, simulator)
    assert any(
        "this sheet was exported from" in text for kind, text in console.said if kind == "warn"
    )
