"""Evidence for auditors, end to end: before values, read-back, rollback, reconciliation, manifest."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
from helpers import (
    FAST_RETRIES_YAML,
    copy_sample,
    formula_cells,
    live_args,
    live_env,
    outcome_counts,
    read_results,
    read_summary,
    results_files,
    run_command,
    ticket_rows,
    write_sheet,
)

from batch_updater.cli import ExitStatus

FIELDS = ("TicketState", "Priority", "AssignedTo", "TicketDescription")


def workbook_in(folder: Path) -> Path:
    (workbook,) = results_files(folder)
    return workbook


def test_before_values_read_back_and_a_planted_mismatch(tmp_path: Path, make_simulator) -> None:
    sim = make_simulator()
    originals = {f"INCA{n:07d}": sim.ticket(f"INCA{n:07d}") for n in range(1, 5)}
    sticky = next(n for n, t in originals.items() if t["Priority"] != "High" and n != "INCA0000001")
    sim.configure(sticky_fields={sticky: {"Priority"}})
    write_sheet(tmp_path / "tickets.xlsx", ticket_rows(4, priority="High"))
    done = run_command(
        ["tickets.xlsx", *live_args(sim, "--rate", "100", "--capture-before", "--verify")],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )
    assert done.returncode == ExitStatus.ROWS_FAILED, done.stderr  # the mismatch makes it 1
    results = {r["Ticket Number"]: r for r in read_results(workbook_in(tmp_path))}
    for number, original in originals.items():
        row = results[number]
        assert row["Outcome"] == "Updated"
        assert (row["Before: State"], row["Before: Priority"], row["Before: Assigned To"]) == (
            original["TicketState"],
            original["Priority"],
            original["AssignedTo"],
        )
    assert results["INCA0000001"]["Verification"] == "Verified"
    held = originals[sticky]["Priority"]
    assert results[sticky]["Verification"] == f'Mismatch: Priority is "{held}", expected "High"'
    assert "  Read back: 3 Verified, 1 Mismatch" in done.stdout
    summary = read_summary(workbook_in(tmp_path))
    assert summary["Read-back verification"].endswith("3 Verified, 1 Mismatch, 0 Not checked")
    assert summary["Before values"].startswith("captured")
    # The tool now reads the tickets first, in pages: the before values come from that one
    # Search (no GET before each PATCH), and --verify reads the tickets back in pages once every
    # row is sent (no GET after each PATCH). Each row costs its PATCH alone.
    assert [results[number]["Attempts"] for number in originals] == [1, 1, 1, 1]
    assert [r.method for r in sim.requests if r.ticket == "INCA0000004"] == ["PATCH"]
    log = [(r.method, r.endpoint, r.query, r.ticket) for r in sim.requests]
    search = ("GET", "tickets", "Page=0&PageSize=500", None)
    assert log[:2] == [("POST", "tokens", "", None), search]  # the look: 4 rows, 1 page at most
    assert sorted(log[2:-1]) == [("PATCH", "tickets", "", number) for number in sorted(originals)]
    assert log[-1] == search  # the read-back, once every row is sent
    notes = [str(v) for k, v in summary.items() if str(k).startswith("Note")]
    assert notes[0] == (
        "Current state: read in pages of 500 (every ticket the account sees): 1 Search request, "
        "4 rows found."
    )
    assert notes[1].startswith("Read-back: 4 updated tickets read back in pages (1 request")
    # Each PATCH holds only the fields the ticket did not hold already, and Priority.
    for number, original in originals.items():
        n = int(number[4:])
        asked = {
            "TicketState": 2,
            "TicketDescription": f"Patched ticket {n}",
            "AssignedTo": f"corp\\user{n}",
        }
        expected = {k: v for k, v in asked.items() if original[k] != v}
        (body,) = [r.body for r in sim.requests if r.method == "PATCH" and r.ticket == number]
        assert body == {"TicketNumber": number, **expected, "Priority": "High"}, number
        assert json.loads(results[number]["Request"]) == body, number


def test_a_sweep_then_its_rollback_restores_the_tickets(tmp_path: Path, simulator) -> None:
    numbers = [f"INCA{n:07d}" for n in range(30, 36)]
    originals = {n: {f: simulator.ticket(n)[f] for f in FIELDS} for n in numbers}
    write_sheet(tmp_path / "tickets.xlsx", ticket_rows(6, first=30, state=3, priority="Low"))
    env = live_env(tmp_path / "home")
    done = run_command(
        ["tickets.xlsx", *live_args(simulator, "--rate", "100", "--capture-before")],
        tmp_path,
        env=env,
    )
    assert done.returncode == ExitStatus.OK, done.stderr
    (rollback,) = tmp_path.glob("tickets.rollback-*.xlsx")
    assert f"Rollback workbook: {rollback.name}" in done.stdout
    assert formula_cells(rollback) == []
    assert simulator.ticket(numbers[0])["TicketState"] == 3

    undone = run_command([rollback.name, *live_args(simulator, "--rate", "100")], tmp_path, env=env)
    assert undone.returncode == ExitStatus.OK, undone.stderr
    for number in numbers:
        assert {f: simulator.ticket(number)[f] for f in FIELDS} == originals[number]


def test_every_sample_run_reconciles_and_its_manifest_checks(tmp_path: Path) -> None:
    (tmp_path / "batch-update.yaml").write_text(
        "pacing:\n  rate: 200\n" + FAST_RETRIES_YAML, encoding="utf-8"
    )
    for name in ("tickets.xlsx", "tickets.csv"):
        copy_sample(name, tmp_path)
        done = run_command([name, "--simulate"], tmp_path)
        assert done.returncode == ExitStatus.ROWS_FAILED, done.stderr
        assert "INTERNAL ERROR" not in done.stderr
    for workbook in results_files(tmp_path):
        summary = read_summary(workbook)
        assert summary["Reconciliation"].startswith("balanced: 37 rows read")
        counts = outcome_counts(read_results(workbook))
        assert counts == {"Updated": 25, "Failed": 5, "Invalid": 5, "Skipped": 2}
        checked = run_command(["check", workbook.name], tmp_path)
        assert checked.returncode == ExitStatus.OK, checked.stdout + checked.stderr
        assert checked.stdout.splitlines()[-1] == (
            f"{workbook.name}: the workbook, the input and the journal are the ones the run produced."
        )


def test_the_manifest_check_names_each_changed_file(tmp_path: Path) -> None:
    (tmp_path / "batch-update.yaml").write_text(
        "pacing:\n  rate: 200\n" + FAST_RETRIES_YAML, encoding="utf-8"
    )
    copy_sample("tickets.xlsx", tmp_path)
    assert (
        run_command(["tickets.xlsx", "--simulate"], tmp_path).returncode == ExitStatus.ROWS_FAILED
    )
    workbook = workbook_in(tmp_path)
    # The manifest names the copy of the finished journal kept beside the workbook.
    (journal,) = tmp_path.glob("*.journal.sqlite")
    assert journal.name == workbook.with_suffix(".journal.sqlite").name
    for role, path in (
        ("results", workbook),
        ("input", tmp_path / "tickets.xlsx"),
        ("journal", journal),
    ):
        original = path.read_bytes()
        changed = bytearray(original)
        changed[len(changed) // 2] ^= 1
        path.write_bytes(bytes(changed))
        checked = run_command(["check", workbook.name], tmp_path)
        assert checked.returncode == ExitStatus.ROWS_FAILED
        assert (
            checked.stdout.splitlines()[-1]
            == f"{workbook.name}: {role} differs from what the run produced."
        )
        path.write_bytes(original)
    assert run_command(["check", workbook.name], tmp_path).returncode == ExitStatus.OK


def test_a_workbook_that_cannot_be_written_after_sending_loses_nothing(
    tmp_path: Path, simulator
) -> None:
    import shutil

    from helpers import finish, patched, start_command, wait_until

    write_sheet(tmp_path / "tickets.xlsx", ticket_rows(6))
    (tmp_path / "reports").mkdir()
    process = start_command(
        ["tickets.xlsx", "--out", "reports/results.xlsx", *live_args(simulator, "--rate", "6")],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )
    wait_until(lambda: len(patched(simulator)) >= 1)
    shutil.rmtree(tmp_path / "reports")  # the share went away while the run was sending
    code, _out, err = finish(process)
    assert code == ExitStatus.ROWS_FAILED  # never 2: tickets were updated
    assert (
        "The results workbook could not be written, but every outcome is in the run journal" in err
    )
    run_id = err.split("batch-update report ")[1].split()[0]
    rebuilt = run_command(["report", run_id, "--out", "rebuilt.xlsx", "tickets.xlsx"], tmp_path)
    assert rebuilt.returncode == ExitStatus.OK, rebuilt.stderr
    assert outcome_counts(read_results(tmp_path / "rebuilt.xlsx")) == {"Updated": 6}


def test_a_stale_manifest_never_blocks_or_is_overwritten(tmp_path: Path) -> None:
    (tmp_path / "batch-update.yaml").write_text(
        "pacing:\n  rate: 200\n" + FAST_RETRIES_YAML, encoding="utf-8"
    )
    copy_sample("tickets.xlsx", tmp_path)
    (tmp_path / "mine.manifest.json").write_text("{}", encoding="utf-8")
    refused = run_command(["tickets.xlsx", "--dry-run", "--out", "mine.xlsx"], tmp_path)
    assert refused.returncode == ExitStatus.USAGE  # found before anything happens
    assert "mine.manifest.json" in refused.stderr and "will not overwrite" in refused.stderr
    assert (tmp_path / "mine.manifest.json").read_text(encoding="utf-8") == "{}"


def test_report_only_keeps_the_verification_column(tmp_path: Path, state_folder: Path) -> None:
    (tmp_path / "batch-update.yaml").write_text(
        "pacing:\n  rate: 200\n" + FAST_RETRIES_YAML, encoding="utf-8"
    )
    copy_sample("tickets.xlsx", tmp_path)
    assert (
        run_command(["tickets.xlsx", "--simulate", "--verify"], tmp_path).returncode
        == ExitStatus.ROWS_FAILED
    )
    original = read_results(workbook_in(tmp_path))
    (journal,) = (state_folder / "journals").glob("*.journal.sqlite")
    rebuilt = run_command(
        ["report", journal.name, "--out", "rebuilt.xlsx", "tickets.xlsx"], tmp_path
    )
    assert rebuilt.returncode == ExitStatus.OK, rebuilt.stderr
    again = read_results(tmp_path / "rebuilt.xlsx")
    assert [r["Verification"] for r in again] == [r["Verification"] for r in original]
    assert sum(1 for r in again if r["Verification"] == "Verified") == 25


def sheet_values(path: Path, name: str) -> list[tuple[object, ...]]:
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        return list(book[name].iter_rows(values_only=True))
    finally:
        book.close()


def test_report_only_of_a_capture_before_run_rebuilds_the_before_columns_and_the_rollback(
    tmp_path: Path, simulator, state_folder: Path
) -> None:
    write_sheet(tmp_path / "tickets.xlsx", ticket_rows(5, first=40, state=3, priority="Low"))
    env = live_env(tmp_path / "home")
    done = run_command(
        ["tickets.xlsx", *live_args(simulator, "--rate", "100", "--capture-before")],
        tmp_path,
        env=env,
    )
    assert done.returncode == ExitStatus.OK, done.stderr
    original = read_results(workbook_in(tmp_path))
    (rollback,) = tmp_path.glob("tickets.rollback-*.xlsx")
    undo = sheet_values(rollback, "Tickets")
    assert len(undo) == 1 + 5
    workbook_in(tmp_path).unlink()
    rollback.unlink()

    (journal,) = (state_folder / "journals").glob("*.journal.sqlite")
    rebuilt = run_command(["report", journal.name, "tickets.xlsx"], tmp_path, env=env)
    assert rebuilt.returncode == ExitStatus.OK, rebuilt.stderr
    again = read_results(workbook_in(tmp_path))
    before_columns = [h for h in original[0] if str(h).startswith("Before: ")]
    assert len(before_columns) == 4
    assert [[r[h] for h in before_columns] for r in again] == [
        [r[h] for h in before_columns] for r in original
    ]
    (rebuilt_rollback,) = tmp_path.glob("tickets.rollback-*.xlsx")
    assert f"Rollback workbook: {rebuilt_rollback.name}" in rebuilt.stdout
    assert sheet_values(rebuilt_rollback, "Tickets") == undo


def test_an_input_rewritten_during_the_run_is_never_passed_as_the_one_read(
    tmp_path: Path, simulator
) -> None:
    from helpers import finish, patched, start_command, wait_until

    write_sheet(tmp_path / "tickets.xlsx", ticket_rows(6))
    as_read = (tmp_path / "tickets.xlsx").read_bytes()
    process = start_command(
        ["tickets.xlsx", *live_args(simulator, "--rate", "8")],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )
    wait_until(lambda: len(patched(simulator)) >= 1)
    write_sheet(tmp_path / "tickets.xlsx", ticket_rows(6, priority="Low"))  # saved again in Excel
    code, _out, err = finish(process)

    assert code == ExitStatus.OK, err
    assert "Note: The input file tickets.xlsx was changed during the run (SHA-256 when read " in err
    workbook = workbook_in(tmp_path)
    notes = [str(v) for k, v in read_summary(workbook).items() if str(k).startswith("Note")]
    assert any("was changed during the run" in note for note in notes), notes
    manifest = json.loads(workbook.with_suffix(".manifest.json").read_text(encoding="utf-8"))
    entry = manifest["files"]["input"]
    assert entry["changed_during_run"] is True
    assert entry["sha256"] == manifest["input_sha256_when_read"] != entry["sha256_at_end"]

    check = run_command(["check", workbook.name], tmp_path)
    assert check.returncode == ExitStatus.ROWS_FAILED
    assert "has CHANGED: it was rewritten during the run" in check.stdout
    # The file as it was read passes; the manifest itself can be named too.
    (tmp_path / "tickets.xlsx").write_bytes(as_read)
    by_manifest = run_command(["check", workbook.with_suffix(".manifest.json").name], tmp_path)
    assert by_manifest.returncode == ExitStatus.OK, by_manifest.stdout
    assert by_manifest.stdout.splitlines()[-1] == (
        f"{workbook.name}: the workbook, the input and the journal are the ones the run produced."
    )


def test_report_only_completes_a_run_that_died_before_its_rollback_and_manifest(
    tmp_path: Path, simulator, state_folder: Path
) -> None:
    # What a kill -9 while the rollback workbook is written leaves: a finished journal, the
    # results workbook, and neither the rollback workbook nor the manifest.
    write_sheet(tmp_path / "tickets.xlsx", ticket_rows(4, first=60, state=3, priority="Low"))
    env = live_env(tmp_path / "home")
    done = run_command(
        ["tickets.xlsx", *live_args(simulator, "--rate", "100", "--capture-before")],
        tmp_path,
        env=env,
    )
    assert done.returncode == ExitStatus.OK, done.stderr
    original = workbook_in(tmp_path)
    (rollback,) = tmp_path.glob("tickets.rollback-*.xlsx")
    undo = sheet_values(rollback, "Tickets")
    rollback.unlink()
    original.with_suffix(".manifest.json").unlink()
    (journal,) = (state_folder / "journals").glob("*.journal.sqlite")

    rebuilt = run_command(["report", journal.name, "tickets.xlsx"], tmp_path, env=env)

    assert rebuilt.returncode == ExitStatus.OK, rebuilt.stderr
    lines = rebuilt.stdout.splitlines()
    (again,) = tmp_path.glob("tickets.rollback-*.xlsx")
    assert sheet_values(again, "Tickets") == undo
    assert lines[1] == f"Rollback workbook: {again.name}"
    manifest = tmp_path / lines[2].split(": ", 1)[1]
    assert manifest.is_file()
    check = run_command(["check", str(manifest)], tmp_path, env=env)
    assert check.returncode == ExitStatus.OK, check.stdout
