"""plan, approve, apply through the installed command: the README's flow, a second account,
the refusals that send nothing, and a killed apply continued with resume.

The core functions are tested in-process in test_plan.py; here every step is the installed
batch-update run as a subprocess (see helpers.py), against the built-in simulator (--simulate)
or a simulator on loopback (the `simulator` fixture) reached as a live server.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from helpers import (
    ADMIN,
    AUDITOR,
    AUDITOR_PASSWORD,
    POSIX_ONLY,
    copy_sample,
    finish,
    live_args,
    live_env,
    patched,
    read_results,
    read_summary,
    results_files,
    run_command,
    start_command,
    ticket_rows,
    wait_until,
    write_sheet,
)
from test_resume import journal_rows, runs, settle

from batch_updater.journal import Phase

SHEET = "tickets.xlsx"


def no_traceback(*stderrs: str) -> None:
    for err in stderrs:
        assert "Traceback" not in err, err


def printed_path(stdout: str, label: str) -> Path:
    """The path a line `label   PATH` of the command's output names."""
    (line,) = [line for line in stdout.splitlines() if line.startswith(label)]
    return Path(line[len(label) :].strip())


def approval_of(plan: Path) -> Path:
    return plan.with_name(f"{plan.stem}.approval.json")


def server_args(sim: Any, user: str = ADMIN) -> list[str]:
    """live_args() without --yes, for `plan` (which asks nothing, so has no --yes)."""
    return [arg for arg in live_args(sim, user=user) if arg != "--yes"]


def make_plan(folder: Path, sim: Any, *more: str) -> Path:
    """`batch-update plan tickets.xlsx` against `sim` as the admin; the plan file it wrote."""
    done = run_command(
        ["plan", SHEET, *server_args(sim), *more], folder, env=live_env(folder / "home")
    )
    assert done.returncode == 0, done.stderr
    no_traceback(done.stderr)
    plan = printed_path(done.stdout, "Plan file:")
    assert plan.is_file() and plan.parent == folder
    return plan


def approve_as_auditor(folder: Path, sim: Any, plan: Path) -> None:
    done = run_command(
        ["approve", str(plan), *live_args(sim, user=AUDITOR)],
        folder,
        env=live_env(folder / "home", AUDITOR_PASSWORD),
    )
    assert done.returncode == 0, done.stderr
    assert approval_of(plan).is_file()


def planned_bodies(plan: Path) -> dict[str, dict[str, object]]:
    """The PATCH body of every planned change, by ticket number."""
    document = json.loads(plan.read_text(encoding="utf-8"))
    return {row["ticket"]: row["body"] for row in document["rows"] if row.get("body")}


def patch_bodies(sim: Any) -> list[dict[str, Any] | None]:
    return [record.body for record in sim.requests if record.method == "PATCH"]


# --- 1. the README's flow, with the built-in simulator ----------------------------------------


def test_the_readme_flow_plan_approve_apply_check_with_simulate(tmp_path: Path) -> None:
    copy_sample(SHEET, tmp_path)

    planned = run_command(["plan", SHEET, "--simulate"], tmp_path)
    assert planned.returncode == 0, planned.stderr
    plan = printed_path(planned.stdout, "Plan file:")
    workbook = printed_path(planned.stdout, "Plan workbook:")
    assert plan.is_file() and workbook.is_file()
    assert plan.parent == workbook.parent == tmp_path
    assert plan.name.startswith("tickets.plan-") and plan.suffix == ".json"
    assert workbook == plan.with_suffix(".xlsx")
    assert "nothing was sent" in planned.stdout
    assert results_files(tmp_path) == []
    document = json.loads(plan.read_text(encoding="utf-8"))
    assert document["ccs_account"] == ADMIN and document["simulated"] is True
    assert f"Plan SHA-256:     {document['plan_sha256']}" in planned.stdout.splitlines()

    approved = run_command(["approve", str(plan), "--simulate", "--yes"], tmp_path)
    assert approved.returncode == 0, approved.stderr
    approval = json.loads(approval_of(plan).read_text(encoding="utf-8"))
    assert (approval["decision"], approval["ccs_account"]) == ("approved", AUDITOR)
    assert approval["plan_sha256"] == document["plan_sha256"]
    assert "Logged in to" in approved.stderr and f"as {AUDITOR}." in approved.stderr

    applied = run_command(["apply", str(plan), "--simulate", "--yes"], tmp_path)
    assert applied.returncode == 1, applied.stderr  # the sample has Failed and Invalid rows
    assert f"{plan.name} was approved by {AUDITOR}" in applied.stderr
    (results,) = results_files(tmp_path)
    assert printed_path(applied.stdout, "Results workbook:") == results
    summary = read_summary(results)
    assert summary["Plan"] == f"{plan.name} (SHA-256 {document['plan_sha256']})"
    assert str(summary["Approved by"]).startswith(AUDITOR)
    outcomes = Counter(row["Outcome"] for row in read_results(results))
    assert outcomes["Updated"] == 25 and outcomes["Invalid"] == 5, outcomes

    checked = run_command(["check", results.name], tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    for role, path in (("plan", plan), ("approval", approval_of(plan))):
        assert f"  ok       {role}: {path} is unchanged" in "\n".join(lines), checked.stdout

    again = run_command(["apply", str(plan), "--simulate", "--yes"], tmp_path)
    assert again.returncode == 2, again.stderr
    assert "already applied" in again.stderr and "Nothing was sent." in again.stderr
    assert results_files(tmp_path) == [results]
    no_traceback(planned.stderr, approved.stderr, applied.stderr, checked.stderr, again.stderr)


# --- 2. a second account, on a live server --------------------------------------------------------


def test_the_planner_cannot_approve_and_a_second_account_can(tmp_path: Path, simulator) -> None:
    write_sheet(tmp_path / SHEET, ticket_rows(5))
    plan = make_plan(tmp_path, simulator)

    # The planner's account, however it is spelt.
    for user in (ADMIN, "CORP\\CcsAdmin", "ccsadmin@corp"):
        refused = run_command(
            ["approve", str(plan), *live_args(simulator, user=user)],
            tmp_path,
            env=live_env(tmp_path / "home"),
        )
        assert refused.returncode == 2, (user, refused.stderr)
        assert "a plan is approved by a second CCS account" in refused.stderr, refused.stderr
        assert "Nothing was approved." in refused.stderr
        no_traceback(refused.stderr)
        assert not approval_of(plan).exists()

    simulator.clear_requests()
    done = run_command(
        ["approve", str(plan), *live_args(simulator, user=AUDITOR)],
        tmp_path,
        env=live_env(tmp_path / "home", AUDITOR_PASSWORD),
    )
    assert done.returncode == 0, done.stderr
    no_traceback(done.stderr)
    record = json.loads(approval_of(plan).read_text(encoding="utf-8"))
    assert (record["decision"], record["ccs_account"]) == ("approved", AUDITOR)
    assert record["plan_sha256"] == json.loads(plan.read_text(encoding="utf-8"))["plan_sha256"]
    assert record["simulated"] is False and record["server"].rstrip("/") == simulator.url
    # The approver's identity is a token CCS granted that account; nothing is changed.
    assert any(r.endpoint == "tokens" and r.user == AUDITOR for r in simulator.requests)
    assert patched(simulator) == []
    # A plan is decided once.
    twice = run_command(
        ["approve", str(plan), *live_args(simulator, user=AUDITOR)],
        tmp_path,
        env=live_env(tmp_path / "home", AUDITOR_PASSWORD),
    )
    assert twice.returncode == 2 and "already approved" in twice.stderr, twice.stderr


# --- 3. refusals: exit 2, the problem named, nothing sent ---------------------------------------

STRICT_YAML = "plan:\n  require_approval: true\n"


def test_refusals_name_the_problem_and_send_nothing(tmp_path: Path, simulator) -> None:
    rows = ticket_rows(6)
    write_sheet(tmp_path / SHEET, rows)
    original_sheet = (tmp_path / SHEET).read_bytes()
    plan = make_plan(tmp_path, simulator)
    original_plan = plan.read_text(encoding="utf-8")
    strict = tmp_path / "strict.yaml"
    strict.write_text(STRICT_YAML, encoding="utf-8")
    env = live_env(tmp_path / "home")

    def refused(args: list[str], expected: str) -> None:
        simulator.clear_requests()
        done = run_command(args, tmp_path, env=env)
        assert done.returncode == 2, done.stderr
        assert expected in done.stderr, done.stderr
        assert "nothing was sent" in done.stderr.lower()
        no_traceback(done.stderr)
        assert [r for r in simulator.requests if r.method == "PATCH"] == []
        assert simulator.requests == [], "refused before anything is sent, even a token request"
        assert results_files(tmp_path) == []

    apply_args = ["apply", str(plan), *live_args(simulator)]

    # A body value edited in the plan file, after it was made.
    document = json.loads(original_plan)
    body = next(row["body"] for row in document["rows"] if row.get("body"))
    body["AssignedTo"] = "corp\\mallory"
    plan.write_text(json.dumps(document, indent=2), encoding="utf-8")
    refused(apply_args, "has been changed since it was made")
    plan.write_text(original_plan, encoding="utf-8")

    # plan.require_approval, and the plan not approved.
    refused(
        [*apply_args, "--config", str(strict)],
        f"{plan.name} has not been approved, and plan.require_approval is on",
    )
    # ... and a plain live run of the sheet with that config.
    refused(
        [SHEET, *live_args(simulator), "--config", str(strict)],
        "plan.require_approval is on: a live run must go through plan and approve",
    )

    # The input re-saved with one cell changed.
    rows[2][4] = "A description typed in after the plan"
    write_sheet(tmp_path / SHEET, rows)
    assert (tmp_path / SHEET).read_bytes() != original_sheet
    refused(apply_args, f"{SHEET} has changed since {plan.name} was made")

    # The control: the same plan, its input restored and approved, is applied under the config.
    (tmp_path / SHEET).write_bytes(original_sheet)
    approve_as_auditor(tmp_path, simulator, plan)
    simulator.clear_requests()
    done = run_command([*apply_args, "--config", str(strict)], tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert sorted(patch_bodies(simulator), key=str) == sorted(
        planned_bodies(plan).values(), key=str
    )
    assert len(planned_bodies(plan)) == len(rows)


# --- 4. a killed apply, continued with resume -----------------------------------------------------

ROWS = 300


@POSIX_ONLY
def test_a_killed_apply_is_resumed_with_the_same_plan(tmp_path: Path, simulator) -> None:
    write_sheet(tmp_path / SHEET, ticket_rows(ROWS, state="Remediation Performed"))
    plan = make_plan(tmp_path, simulator, "--rate", "50")
    approve_as_auditor(tmp_path, simulator, plan)
    bodies = planned_bodies(plan)
    assert len(bodies) == ROWS
    sha = json.loads(plan.read_text(encoding="utf-8"))["plan_sha256"]
    env = live_env(tmp_path / "home")
    simulator.clear_requests()

    process = start_command(
        ["apply", str(plan), *live_args(simulator, "--rate", "20")], tmp_path, env=env
    )
    try:
        wait_until(lambda: len(patched(simulator)) >= 10 or process.poll() is not None, timeout=40)
    finally:
        process.send_signal(signal.SIGKILL)
    code, _, err = finish(process)
    assert code == -signal.SIGKILL, f"the apply ended on its own before the kill ({code}):\n{err}"
    settle(simulator)
    (killed,) = runs(tmp_path)
    in_flight = {
        row.ticket_number for row in journal_rows(killed).values() if row.phase is Phase.SENDING
    }
    sent_before = len(patched(simulator))
    assert 10 <= sent_before < ROWS
    assert results_files(tmp_path) == []

    # The plan is being applied: a second apply is refused, and points at resume.
    logged = len(simulator.requests)
    again = run_command(["apply", str(plan), *live_args(simulator)], tmp_path, env=env)
    assert again.returncode == 2, again.stderr
    assert f"is being applied by run {killed.run_id}" in again.stderr, again.stderr
    assert "did not finish" in again.stderr and "batch-update resume" in again.stderr
    assert simulator.requests[logged:] == []

    resumed = run_command(
        ["resume", SHEET, *live_args(simulator, "--rate", "100")], tmp_path, env=env
    )
    assert resumed.returncode in (0, 1), resumed.stderr
    no_traceback(resumed.stderr)
    assert f"Continuing run {killed.run_id}" in resumed.stderr, resumed.stderr
    # The row in flight at the kill is read back first: not counted as a Conflict beforehand.
    assert "(Conflict)" not in resumed.stderr, resumed.stderr

    # Every planned ticket holds what the plan said, sent exactly as planned.
    for number, body in bodies.items():
        held = simulator.ticket(number)
        assert all(held[name] == value for name, value in body.items()), (number, held)
    sent = patch_bodies(simulator)
    assert all(body is not None and bodies[str(body["TicketNumber"])] == body for body in sent)
    per_ticket = Counter(patched(simulator))
    assert set(per_ticket) == set(bodies)
    twice = {number for number, count in per_ticket.items() if count > 1}
    assert twice <= in_flight, f"sent twice though not in flight at the kill: {twice - in_flight}"
    assert max(per_ticket.values()) <= 2
    assert len(sent) <= ROWS + 8

    (results,) = results_files(tmp_path)
    outcomes = Counter(row["Outcome"] for row in read_results(results))
    assert set(outcomes) <= {"Updated", "Skipped"} and sum(outcomes.values()) == ROWS, outcomes
    summary = read_summary(results)
    assert summary["Plan"] == f"{plan.name} (SHA-256 {sha})"
    assert str(summary["Approved by"]).startswith(AUDITOR)
    assert str(summary["Planned by"]).startswith(ADMIN)

    checked = run_command(["check", results.name], tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"plan: {plan} is unchanged" in checked.stdout, checked.stdout

    simulator.clear_requests()
    again = run_command(["apply", str(plan), *live_args(simulator)], tmp_path, env=env)
    assert again.returncode == 2, again.stderr
    assert "already applied" in again.stderr, again.stderr
    assert simulator.requests == []
