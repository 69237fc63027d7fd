"""`export` and `show`: in-process through sweep.export / sweep.show with a fake console and the
simulator over loopback; the installed command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest
from helpers import (
    ADMIN,
    AUDITOR,
    AUDITOR_PASSWORD,
    POSIX_ONLY,
    FakeConsole,
    clean_env,
    live_args,
    live_env,
    patched,
    read_results,
    results_files,
    run_command,
    settings_for,
    start_command,
)

from batch_updater.errors import ConfigError
from batch_updater.exported import AS_EXPORTED_COLUMNS, EXPORT_SHEET, TICKETS_SHEET
from batch_updater.manifest import check_manifest
from batch_updater.runner.pages import MAX_AHEAD
from batch_updater.settings import load_settings
from batch_updater.sheet import read_sheet
from batch_updater.sim.store import RESTRICTED_STANDARD
from batch_updater.sweep import ExitStatus, ExportRequest, ShowRequest, export, search_query, show
from batch_updater.sweep.export import context_headers
from batch_updater.tickets import TicketState, TicketUpdate


def export_in(folder: Path, sim, **request) -> tuple:
    console = FakeConsole()
    request.setdefault("out", folder / "export.xlsx")
    outcome = export(ExportRequest(**request), settings_for(sim), console)
    return outcome, console


def tickets_sheet(path: Path) -> list[dict[str, object]]:
    book = openpyxl.load_workbook(path, read_only=True)
    rows = list(book[TICKETS_SHEET].iter_rows(values_only=True))
    return [dict(zip(rows[0], row)) for row in rows[1:]]


def identity_items(path: Path) -> dict[str, object]:
    book = openpyxl.load_workbook(path, read_only=True)
    rows = list(book[EXPORT_SHEET].iter_rows(values_only=True))
    return {row[0]: row[1] for row in rows if row and row[0] and len(row) > 1}


def visible(sim, state: int | None = None) -> list[dict[str, object]]:
    return [
        t
        for t in sim.tickets()
        if t["Standard"] != RESTRICTED_STANDARD and (state is None or t["TicketState"] == state)
    ]


def move(sim, numbers: list[str], state: TicketState) -> None:
    from helpers import ADMIN_PASSWORD

    from batch_updater.ccs import CcsClient
    from batch_updater.settings import Secret

    client = CcsClient(sim.url, ADMIN, Secret(ADMIN_PASSWORD))
    for number in numbers:
        assert client.update(TicketUpdate(number, state=state, priority="High")).status == 204


@pytest.mark.parametrize(("key_case", "shape"), [("pascal", "list"), ("camel", "wrapped")])
def test_an_export_holds_every_matching_ticket_with_its_identity_and_manifest(
    tmp_path: Path, make_simulator, key_case: str, shape: str
) -> None:
    sim = make_simulator(tickets=300, key_case=key_case, search_shape=shape)
    move(sim, ["INCA0000004", "INCA0000009"], TicketState.VERIFIED)
    outcome, console = export_in(tmp_path, sim, query=(("TicketState", "1"),), page_size=100)

    assert outcome.status is ExitStatus.OK
    expected = visible(sim, state=1)
    rows = tickets_sheet(outcome.workbook)
    assert [r["Ticket Number"] for r in rows] == [t["TicketNumber"] for t in expected]
    first, ticket = rows[0], expected[0]
    assert first["State"] == "Open" and first["Exported State"] == "Open"
    assert first["Priority"] == ticket["Priority"] == first["Exported Priority"]
    assert first["Assigned To"] == ticket["AssignedTo"] == first["Exported Assigned To"]
    assert first["Description"] == ticket["TicketDescription"]
    assert first["Asset"] == ticket["Asset"] and first["Standard"] == ticket["Standard"]
    assert first["Last Modified"] == ticket["LastModified"]
    # The status name reads like the State field: named so that a sweep never sends it.
    assert first["Ticket Status (exported)"] == "Open"
    items = identity_items(outcome.workbook)
    assert items["Server"] == sim.url and items["CCS account"] == ADMIN
    assert items["Query"] == "TicketState=1" and items["Tickets"] == str(len(expected))
    assert items["SHA-256 of the rows"] == outcome.identity.rows_sha256
    assert items["Search requests"] == str(outcome.identity.requests) == "3"
    assert all(check.ok for check in check_manifest(outcome.workbook))
    manifest = json.loads(outcome.manifest.read_text(encoding="utf-8"))
    assert manifest["kind"] == "export" and manifest["query"] == [["TicketState", "1"]]
    assert console.texts("note")[-1].startswith(f"Reading tickets from {sim.url} as {ADMIN}")


def test_both_key_casings_and_both_shapes_give_the_same_rows(tmp_path: Path, make_simulator):
    books = []
    for number, (key_case, shape) in enumerate([("pascal", "list"), ("camel", "wrapped")]):
        sim = make_simulator(tickets=120, key_case=key_case, search_shape=shape)
        outcome, _ = export_in(tmp_path, sim, out=tmp_path / f"e{number}.xlsx", page_size=50)
        books.append(outcome)
    first, second = (tickets_sheet(outcome.workbook) for outcome in books)
    assert [list(row.values()) for row in first] == [list(row.values()) for row in second]
    assert books[0].identity.rows_sha256 == books[1].identity.rows_sha256


def test_a_refused_page_size_is_halved_and_said(tmp_path: Path, make_simulator) -> None:
    sim = make_simulator(tickets=200, max_page_size=150)
    outcome, _ = export_in(tmp_path, sim, page_size=500)
    assert outcome.status is ExitStatus.OK
    assert outcome.identity.page_size == 125 and outcome.identity.count == 200
    assert outcome.notes[0] == "the server refused a page size of 500 (HTTP 400); trying 250"
    assert identity_items(outcome.workbook)["Page size"] == "125"


def test_a_query_that_matches_nothing_writes_nothing_and_says_so(tmp_path: Path, simulator):
    outcome, _ = export_in(tmp_path, simulator, query=(("TicketState", "5"),))
    assert outcome.status is ExitStatus.OK
    assert outcome.message == "No ticket matched TicketState=5; nothing was written."
    assert outcome.workbook is None and not (tmp_path / "export.xlsx").exists()


def test_an_account_without_the_role_is_told_what_the_server_said(tmp_path: Path, simulator):
    settings = load_settings(
        cli={"url": simulator.url, "username": AUDITOR},
        env={"CCS_PASSWORD": AUDITOR_PASSWORD},
        config_path=None,
    )
    outcome = export(ExportRequest(out=tmp_path / "x.xlsx"), settings, FakeConsole())
    assert outcome.status is ExitStatus.STOPPED
    assert "HTTP 403: You are not authorized to perform this task" in outcome.message
    assert not (tmp_path / "x.xlsx").exists()


def test_refused_credentials_export_nothing(tmp_path: Path, simulator) -> None:
    settings = load_settings(
        cli={"url": simulator.url, "username": ADMIN},
        env={"CCS_PASSWORD": "wrong"},
        config_path=None,
    )
    outcome = export(ExportRequest(out=tmp_path / "x.xlsx"), settings, FakeConsole())
    assert outcome.status is ExitStatus.STOPPED and outcome.error is not None
    assert not (tmp_path / "x.xlsx").exists()


def test_an_exported_sheet_reads_back_as_input_with_every_row_valid(tmp_path: Path, simulator):
    from batch_updater.validate import plan, rules_from_settings

    outcome, _ = export_in(tmp_path, simulator, query=(("TicketState", "1"),))
    rules = rules_from_settings(settings_for(simulator))
    sheet = read_sheet(outcome.workbook, is_header_row=rules.is_header_row)
    checked = plan(sheet, rules)
    assert len(checked.rows) == outcome.identity.count
    assert all(row.update is not None for row in checked.rows)
    exported = {header for _, header in AS_EXPORTED_COLUMNS}
    assert exported <= set(sheet.headers)


@pytest.mark.parametrize(
    ("states", "filters", "query"),
    [
        (["Open"], [], (("TicketState", "1"),)),
        (
            ["remediation performed"],
            ["Assigned To=corp\\jdoe"],
            (("TicketState", "2"), ("AssignedTo", "corp\\jdoe")),
        ),
        (
            [],
            ["Standard=PCI DSS 4.0", "Asset=WEB-0001"],
            (("Standard", "PCI DSS 4.0"), ("Asset", "WEB-0001")),
        ),
        ([], ["State=3"], (("TicketState", "3"),)),
        (["Open"], ["TicketState=1"], (("TicketState", "1"),)),
    ],
)
def test_search_query_from_the_options(states, filters, query) -> None:
    assert search_query(states, filters) == query


@pytest.mark.parametrize(
    ("states", "filters", "words"),
    [
        ([], ["Standard"], "expected Field=value"),
        ([], ["=x"], "expected Field=value"),
        ([], ["Standard=A,B"], "cannot hold a comma or a parenthesis"),
        (["Closed"], [], "'Closed' is not a ticket state"),
        (["Open"], ["State=Verified"], "TicketState is asked for twice (1 and 3)"),
    ],
)
def test_a_bad_query_option_is_refused_naming_it(states, filters, words: str) -> None:
    with pytest.raises(ConfigError) as refused:
        search_query(states, filters)
    assert words in refused.value.message
    assert ("--state" if states and not filters else "--filter") in refused.value.message


def test_context_headers_never_read_like_a_field_to_send() -> None:
    headers = dict(
        context_headers(["TicketStatus", "LastModified", "asset", "Priority_Name", "owner"])
    )
    assert headers == {
        "TicketStatus": "Ticket Status (exported)",
        "LastModified": "Last Modified",
        "asset": "Asset",
        "Priority_Name": "Priority Name (exported)",
        "owner": "Owner (exported)",
    }


def test_show_prints_the_answer_exactly_as_the_server_sent_it(make_simulator) -> None:
    sim = make_simulator(key_case="camel")
    outcome = show(ShowRequest("INCA0000001"), settings_for(sim), FakeConsole())
    assert outcome.status is ExitStatus.OK
    assert json.loads(outcome.text)["ticketNumber"] == "INCA0000001"
    assert outcome.key_spelling == "camelCase"


def test_show_of_a_missing_ticket_says_what_the_server_said(simulator) -> None:
    outcome = show(ShowRequest("INCA9999999"), settings_for(simulator), FakeConsole())
    assert outcome.status is ExitStatus.ROWS_FAILED
    assert outcome.message == "HTTP 404: Ticket not found. Provide valid ticket number."


# --- the installed command -----------------------------------------------------------------


def test_export_then_a_dry_run_through_the_installed_command(tmp_path: Path, simulator) -> None:
    args = ["export", "--url", simulator.url, "--user", ADMIN, "--state", "Open", "--out", "t.xlsx"]
    done = run_command(args, tmp_path, env=live_env(tmp_path / "home"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("Exported 990 tickets in 2 Search requests")
    assert "Export workbook:  t.xlsx" in done.stdout
    assert "then run: batch-update t.xlsx" in done.stderr
    dry = run_command(["t.xlsx", "--dry-run"], tmp_path, env=clean_env(tmp_path / "home"))
    assert dry.returncode == 0, dry.stderr
    assert "Dry run: 990 of 990 rows would be sent" in dry.stderr


def test_export_simulate_and_show_through_the_installed_command(tmp_path: Path) -> None:
    done = run_command(["export", "--simulate", "--filter", "Asset=WINSRV-0004"], tmp_path)
    assert done.returncode == 0, done.stderr
    written = sorted(path.name for path in tmp_path.glob("tickets-export-*"))
    assert len(written) == 2 and written[0].endswith(".manifest.json"), written
    shown = run_command(["show", "INCA0000004", "--simulate"], tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["Asset"] == "WINSRV-0004"
    assert "keys in PascalCase" in shown.stderr
    missing = run_command(["show", "INCA9999999", "--simulate"], tmp_path)
    assert missing.returncode == 1
    assert "INCA9999999: HTTP 404: Ticket not found." in missing.stderr


def test_a_bad_filter_is_a_usage_error_naming_the_option(tmp_path: Path) -> None:
    done = run_command(["export", "--simulate", "--filter", "Standard"], tmp_path)
    assert done.returncode == 2
    assert "Error: --filter 'Standard': expected Field=value" in done.stderr
    assert "Traceback" not in done.stderr


# --- sweeps of an exported sheet: only what changes is sent ------------------------------------


def edit(path: Path, target: Path, changes: dict[str, dict[str, object]]) -> Path:
    """The export with some cells edited, as a person does in Excel (by ticket, by header)."""
    book = openpyxl.load_workbook(path)
    sheet = book[TICKETS_SHEET]
    headers = [cell.value for cell in sheet[1]]
    for row in sheet.iter_rows(min_row=2):
        for header, value in changes.get(str(row[0].value), {}).items():
            row[headers.index(header)].value = value
    book.save(target)
    return target


def newest_results(folder: Path) -> Path:
    """The results workbook written last in `folder`."""
    return max(
        (p for p in results_files(folder) if ".results-" in p.name), key=lambda p: p.stat().st_mtime
    )


def patches(sim) -> list[dict[str, object]]:
    return [r.body for r in sim.requests if r.method == "PATCH"]


def run_sheet_in(path: Path, sim, cli: dict[str, object] | None = None, **request):
    """sweep.run of `path` against `sim`, confirmed; `cli`: settings as options would give them."""
    from batch_updater.sweep import RunRequest, run

    console = FakeConsole()
    outcome = run(RunRequest(path, yes=True, **request), settings_for(sim, **(cli or {})), console)
    return outcome, console


def exported_sheet(tmp_path: Path, sim, edits: dict[str, dict[str, object]]) -> Path:
    outcome, _ = export_in(tmp_path, sim, query=(("TicketState", "1"),))
    return edit(outcome.workbook, tmp_path / "edited.xlsx", edits)


THREE_EDITS = {
    "INCA0000001": {"State": "Remediation Performed"},
    "INCA0000002": {"Assigned To": "corp\\newowner"},
    "INCA0000003": {"Description": "Patched in the November window", "Priority": "High"},
}


def test_an_edited_export_sends_exactly_its_three_changes(tmp_path: Path, simulator) -> None:
    sheet = exported_sheet(tmp_path, simulator, THREE_EDITS)
    simulator.clear_requests()
    outcome, console = run_sheet_in(sheet, simulator)

    assert outcome.status is ExitStatus.OK
    by_ticket = {body["TicketNumber"]: body for body in patches(simulator)}
    priority = {n: simulator.ticket(n)["Priority"] for n in ("INCA0000001", "INCA0000002")}
    assert by_ticket == {
        "INCA0000001": {
            "TicketNumber": "INCA0000001",
            "TicketState": 2,
            "Priority": priority["INCA0000001"],
        },
        "INCA0000002": {
            "TicketNumber": "INCA0000002",
            "Priority": priority["INCA0000002"],
            "AssignedTo": "corp\\newowner",
        },
        "INCA0000003": {
            "TicketNumber": "INCA0000003",
            "TicketDescription": "Patched in the November window",
            "Priority": "High",
        },
    }
    counts = {}
    for result in outcome.results:
        counts[result.outcome.value] = counts.get(result.outcome.value, 0) + 1
    assert counts == {"Updated": 3, "Unchanged": len(outcome.results) - 3}
    # The state was read with the export's query, in pages: no GET per ticket.
    gets = [r for r in simulator.requests if r.method == "GET"]
    assert all("Fields=%28TicketState%3D1%29" in r.query for r in gets), [r.query for r in gets]
    # 990 open tickets in pages of 500 (a page or two more may be asked for ahead, on a slow
    # answer; see runner/pages.py).
    assert "Page=0&" in gets[0].query and "Page=1&" in gets[1].query
    assert 2 <= len(gets) <= 2 + MAX_AHEAD - 1
    assert any(
        text.startswith("Current state: read in pages of 500 (the export's query")
        for text in console.texts("note")
    )


def test_a_rerun_of_an_applied_export_sends_nothing(tmp_path: Path, simulator) -> None:
    sheet = exported_sheet(tmp_path, simulator, THREE_EDITS)
    first, _ = run_sheet_in(sheet, simulator)
    assert first.status is ExitStatus.OK
    simulator.clear_requests()
    again, console = run_sheet_in(sheet, simulator, again=True)
    assert again.status is ExitStatus.OK
    assert patches(simulator) == []
    assert {r.outcome.value for r in again.results} == {"Unchanged"}
    # Ticket 1 has left the export's query (its state is 2 now): it alone is read one by one.
    singles = [
        r.query for r in simulator.requests if r.method == "GET" and "TicketNumber=" in r.query
    ]
    assert singles == ["TicketNumber=INCA0000001"]
    assert any(
        "989 rows found; 1 ticket read one by one (GET), each" in text
        for text in console.texts("note")
    ), console.texts("note")


def test_a_ticket_changed_in_ccs_since_the_export_is_a_conflict_and_not_sent(
    tmp_path: Path, simulator
) -> None:
    sheet = exported_sheet(tmp_path, simulator, THREE_EDITS)
    # Another administrator reassigns ticket 1 in the console after the export.
    from helpers import ADMIN_PASSWORD

    from batch_updater.ccs import CcsClient
    from batch_updater.settings import Secret

    client = CcsClient(simulator.url, ADMIN, Secret(ADMIN_PASSWORD))
    before = simulator.ticket("INCA0000001")
    assert (
        client.update(
            TicketUpdate("INCA0000001", assigned_to="corp\\colleague", priority=before["Priority"])
        ).status
        == 204
    )
    simulator.clear_requests()

    outcome, _ = run_sheet_in(sheet, simulator)

    assert outcome.status is ExitStatus.ROWS_FAILED  # a Conflict needs attention
    conflict = next(r for r in outcome.results if r.ticket_number == "INCA0000001")
    assert conflict.outcome.value == "Conflict" and conflict.request_json is None
    assert conflict.message == (
        f'changed in CCS since the export: Assigned To was "{before["AssignedTo"]}" when '
        'exported, is now "corp\\colleague"; not sent (--overwrite-conflicts sends it anyway)'
    )
    assert [body["TicketNumber"] for body in patches(simulator)].count("INCA0000001") == 0
    assert simulator.ticket("INCA0000001")["AssignedTo"] == "corp\\colleague"
    assert sorted(body["TicketNumber"] for body in patches(simulator)) == [
        "INCA0000002",
        "INCA0000003",
    ]

    simulator.clear_requests()
    forced, _ = run_sheet_in(sheet, simulator, overwrite_conflicts=True, again=True)
    sent = next(r for r in forced.results if r.ticket_number == "INCA0000001")
    assert sent.outcome.value == "Updated"
    assert sent.message.startswith("sent over a change made in CCS since the export")
    assert simulator.ticket("INCA0000001")["AssignedTo"] == before["AssignedTo"]
    assert simulator.ticket("INCA0000001")["TicketState"] == 2


def test_a_hand_made_sheet_whose_rows_already_hold_their_values_sends_nothing(
    tmp_path: Path, simulator
) -> None:
    from helpers import write_sheet

    rows = []
    for number in ("INCA0000010", "INCA0000011", "INCA0000012"):
        ticket = simulator.ticket(number)
        rows.append([number, ticket["TicketState"], ticket["Priority"], ticket["AssignedTo"], None])
    sheet = write_sheet(tmp_path / "tickets.xlsx", rows)
    simulator.clear_requests()
    outcome, console = run_sheet_in(sheet, simulator)
    assert outcome.status is ExitStatus.OK
    assert patches(simulator) == []
    assert [r.outcome.value for r in outcome.results] == ["Unchanged"] * 3
    searches = [r for r in simulator.requests if r.method == "GET"]
    assert len(searches) == 1 and "PageSize=500" in searches[0].query  # one page held all three
    assert any("every ticket the account sees" in text for text in console.texts("note"))


def test_the_verification_job_moving_2_on_to_3_is_not_a_mismatch(tmp_path: Path, make_simulator):
    sim = make_simulator(verification="verified")
    sheet = exported_sheet(tmp_path, sim, {"INCA0000001": {"State": "Remediation Performed"}})
    outcome, _ = run_sheet_in(sheet, sim, cli={"verify": True, "capture_before": True})
    (updated,) = [r for r in outcome.results if r.outcome.value == "Updated"]
    assert updated.verification == (
        "Verified: verified by CCS (its verification job moved the ticket on to 3 Verified)"
    )
    assert sim.ticket("INCA0000001")["TicketState"] == 3
    assert outcome.status is ExitStatus.OK


def test_verify_reads_back_in_pages_where_the_changed_tickets_are_now(tmp_path: Path, simulator):
    sheet = exported_sheet(tmp_path, simulator, THREE_EDITS)
    simulator.clear_requests()
    outcome, _ = run_sheet_in(sheet, simulator, cli={"verify": True, "capture_before": True})
    updated = [r for r in outcome.results if r.outcome.value == "Updated"]
    assert [r.verification for r in updated] == ["Verified"] * 3
    gets = [r.query for r in simulator.requests if r.method == "GET"]
    # Two pages before, then the read-back: the open tickets again, and the state ticket 1 is in now.
    assert not any("TicketNumber=" in query for query in gets), gets
    assert any("Fields=%28TicketState%3D2%29" in query for query in gets)
    assert all(r.before is not None for r in updated)


def test_the_rollback_of_a_change_only_sweep_restores_exactly_the_fields_it_changed(
    tmp_path: Path, simulator
) -> None:
    from batch_updater.rollback import rollback_rows

    sheet = exported_sheet(tmp_path, simulator, THREE_EDITS)
    originals = {n: dict(simulator.ticket(n)) for n in THREE_EDITS}
    outcome, _ = run_sheet_in(sheet, simulator, cli={"capture_before": True})
    assert outcome.rollback is not None
    restoring = {
        row.update.ticket_number: row.update.to_json()
        for row in rollback_rows(outcome.results)
        if row.update
    }
    assert restoring == {
        "INCA0000001": {
            "TicketNumber": "INCA0000001",
            "TicketState": 1,
            "Priority": originals["INCA0000001"]["Priority"],
        },
        "INCA0000002": {
            "TicketNumber": "INCA0000002",
            "Priority": originals["INCA0000002"]["Priority"],
            "AssignedTo": originals["INCA0000002"]["AssignedTo"],
        },
        "INCA0000003": {
            "TicketNumber": "INCA0000003",
            "TicketDescription": originals["INCA0000003"]["TicketDescription"],
            "Priority": originals["INCA0000003"]["Priority"],
        },
    }


@POSIX_ONLY
def test_kill_9_mid_sweep_of_an_export_and_resume_change_each_ticket_once(
    tmp_path: Path, make_simulator
) -> None:
    from test_resume import kill_after, settle

    sim = make_simulator(latency_ms=60, jitter_ms=20)
    env = live_env(tmp_path / "home")
    exported = run_command(
        ["export", "--url", sim.url, "--user", ADMIN, "--state", "Open", "--out", "t.xlsx"],
        tmp_path,
        env=env,
    )
    assert exported.returncode == 0, exported.stderr
    changed = [f"INCA{n:07d}" for n in range(1, 31)]
    edit(
        tmp_path / "t.xlsx",
        tmp_path / "t.xlsx",
        {n: {"State": "Remediation Performed"} for n in changed},
    )
    sim.clear_requests()

    process = start_command(
        ["t.xlsx", *live_args(sim, "--rate", "20", "--capture-before")], tmp_path, env=env
    )
    kill_after(process, sim, patches=8, pause=0.1)
    settle(sim)
    resumed = run_command(["resume", "t.xlsx", *live_args(sim, "--rate", "100")], tmp_path, env=env)

    assert resumed.returncode == 0, resumed.stderr
    sent = patched(sim, 204)
    assert sorted(sent) == changed  # each ticket changed exactly once, across both runs
    assert all(sim.ticket(n)["TicketState"] == 2 for n in changed)
    results = read_results(newest_results(tmp_path))
    outcomes = {}
    for row in results:
        outcomes.setdefault(row["Outcome"], []).append(row["Ticket Number"])
    assert sorted(outcomes.get("Updated", []) + outcomes.get("Skipped", [])) == changed
    assert len(outcomes["Unchanged"]) == len(results) - 30
    assert set(outcomes) <= {"Updated", "Skipped", "Unchanged"}


def test_an_edited_export_run_with_simulate_says_how_many_rows_were_unchanged(
    tmp_path: Path,
) -> None:
    exported = run_command(["export", "--simulate", "--state", "Open", "--out", "t.xlsx"], tmp_path)
    assert exported.returncode == 0, exported.stderr
    edit(tmp_path / "t.xlsx", tmp_path / "t.xlsx", {"INCA0000005": {"State": "Not Applicable"}})

    done = run_command(["t.xlsx", "--simulate"], tmp_path)

    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert "  990/990 done: 1 updated, 989 unchanged, 0 failed" in lines
    assert done.stdout.splitlines()[:4] == [
        '990 rows in t.xlsx (sheet "Tickets"):',
        "  Updated               1",
        "  Unchanged           989",
        "  Failed                0",
    ]


# --- What a row changes: re-remediation, surrounding white space, rows appended by hand -------


def admin_client(sim):
    from helpers import ADMIN_PASSWORD

    from batch_updater.ccs import CcsClient
    from batch_updater.settings import Secret

    return CcsClient(sim.url, ADMIN, Secret(ADMIN_PASSWORD))


def set_in_ccs(sim, number: str, **fields) -> None:
    """A value set in CCS by hand (the console, another tool), exactly as given."""
    priority = sim.ticket(number)["Priority"]
    update = TicketUpdate(number, priority=priority, **fields)
    assert admin_client(sim).update(update).status == 204


def test_a_2_asked_again_of_a_ticket_that_failed_verification_is_sent(
    tmp_path: Path, simulator
) -> None:
    from helpers import write_sheet

    set_in_ccs(simulator, "INCA0000005", state=TicketState.FAILED)
    priority = simulator.ticket("INCA0000005")["Priority"]
    sheet = write_sheet(
        tmp_path / "tickets.xlsx", [["INCA0000005", "Remediation Performed", priority, None, None]]
    )
    simulator.clear_requests()
    outcome, _ = run_sheet_in(sheet, simulator)
    assert outcome.status is ExitStatus.OK
    assert [r.outcome.value for r in outcome.results] == ["Updated"]
    assert patches(simulator) == [
        {"TicketNumber": "INCA0000005", "TicketState": 2, "Priority": priority}
    ]
    assert simulator.ticket("INCA0000005")["TicketState"] == 2


def test_an_exported_2_the_verification_job_moved_on_since_is_a_conflict(
    tmp_path: Path, simulator
) -> None:
    sheet = exported_sheet(tmp_path, simulator, {"INCA0000001": {"State": "Remediation Performed"}})
    set_in_ccs(simulator, "INCA0000001", state=TicketState.VERIFIED)  # since the export
    simulator.clear_requests()
    outcome, _ = run_sheet_in(sheet, simulator)
    conflict = next(r for r in outcome.results if r.ticket_number == "INCA0000001")
    assert conflict.outcome.value == "Conflict"
    assert 'State was "Open" when exported, is now "Verified"' in conflict.message
    assert patches(simulator) == []


def test_an_untouched_exported_row_whose_ticket_holds_surrounding_white_space_is_unchanged(
    tmp_path: Path, simulator
) -> None:
    set_in_ccs(simulator, "INCA0000007", description="  Patched by hand ")
    set_in_ccs(simulator, "INCA0000008", description="Patched by hand\n")
    set_in_ccs(simulator, "INCA0000009", assigned_to=" corp\\someone ")
    sheet = exported_sheet(tmp_path, simulator, {"INCA0000010": {"State": "Not Applicable"}})
    simulator.clear_requests()

    outcome, _ = run_sheet_in(sheet, simulator)

    assert outcome.status is ExitStatus.OK
    assert [body["TicketNumber"] for body in patches(simulator)] == ["INCA0000010"]
    by_ticket = {r.ticket_number: r.outcome.value for r in outcome.results}
    assert [by_ticket[n] for n in ("INCA0000007", "INCA0000008", "INCA0000009")] == [
        "Unchanged"
    ] * 3
    assert simulator.ticket("INCA0000007")["TicketDescription"] == "  Patched by hand "
    assert simulator.ticket("INCA0000008")["TicketDescription"] == "Patched by hand\n"
    assert simulator.ticket("INCA0000009")["AssignedTo"] == " corp\\someone "


def test_surrounding_white_space_trimmed_in_ccs_since_the_export_is_no_conflict(
    tmp_path: Path, simulator
) -> None:
    set_in_ccs(simulator, "INCA0000007", description="  Patched by hand ")
    sheet = exported_sheet(tmp_path, simulator, {"INCA0000007": {"Description": "Patched twice"}})
    set_in_ccs(simulator, "INCA0000007", description="Patched by hand")  # trimmed in CCS since
    simulator.clear_requests()

    outcome, _ = run_sheet_in(sheet, simulator)

    assert outcome.status is ExitStatus.OK
    (sent,) = patches(simulator)
    assert sent["TicketDescription"] == "Patched twice"
    assert simulator.ticket("INCA0000007")["TicketDescription"] == "Patched twice"


def append_rows(path: Path, target: Path, rows: list[list[object]]) -> Path:
    """The export with rows typed below it by hand: their hidden Exported cells stay empty."""
    book = openpyxl.load_workbook(path)
    for row in rows:
        book[TICKETS_SHEET].append(row)
    book.save(target)
    return target


def test_a_row_appended_to_an_exported_sheet_is_decided_like_a_hand_made_row(
    tmp_path: Path, simulator
) -> None:
    # Three tickets not open at the export, so not in it; each is then appended by hand.
    for number in ("INCA0000020", "INCA0000021", "INCA0000022"):
        set_in_ccs(simulator, number, state=TicketState.VERIFIED)
    outcome, _ = export_in(tmp_path, simulator, query=(("TicketState", "1"),))
    set_in_ccs(simulator, "INCA0000021", state=TicketState.OPEN)  # reopened since the export
    priority = {n: simulator.ticket(n)["Priority"] for n in ("INCA0000020", "INCA0000021")}
    sheet = append_rows(
        outcome.workbook,
        tmp_path / "appended.xlsx",
        [
            ["INCA0000020", "Not Applicable", priority["INCA0000020"]],
            ["INCA0000021", "Not Applicable", priority["INCA0000021"]],
            ["INCA0000022", "Verified", simulator.ticket("INCA0000022")["Priority"]],
        ],
    )
    simulator.clear_requests()

    run_outcome, _ = run_sheet_in(sheet, simulator)

    assert run_outcome.status is ExitStatus.OK
    by_ticket = {r.ticket_number: (r.outcome.value, r.message) for r in run_outcome.results}
    assert by_ticket["INCA0000020"] == ("Updated", "")
    assert by_ticket["INCA0000021"] == ("Updated", "")  # no conflict check: nothing exported
    assert by_ticket["INCA0000022"][0] == "Unchanged"
    assert sorted(patches(simulator), key=lambda body: str(body["TicketNumber"])) == [
        {"TicketNumber": n, "TicketState": 5, "Priority": priority[n]}
        for n in ("INCA0000020", "INCA0000021")
    ]


def test_sheet_facts_has_no_exported_values_for_a_row_without_an_exported_state(
    tmp_path: Path, simulator
) -> None:
    from batch_updater.sweep.looking import sheet_facts
    from batch_updater.tickets import Field
    from batch_updater.validate import rules_from_settings

    outcome, _ = export_in(tmp_path, simulator, query=(("TicketState", "1"),))
    book = openpyxl.load_workbook(outcome.workbook)
    tickets = book[TICKETS_SHEET]
    headers = [cell.value for cell in tickets[1]]
    first = tickets[2]
    # The ticket had no description when exported: "" is a real exported value, kept.
    first[headers.index("Exported Description")].value = None
    tickets.append(["INCA0000999", "Open", "High"])
    book.save(tmp_path / "appended.xlsx")

    rules = rules_from_settings(settings_for(simulator))
    sheet = read_sheet(tmp_path / "appended.xlsx", is_header_row=rules.is_header_row)
    facts = sheet_facts(sheet)
    last = sheet.rows[-1].row_number
    assert last not in facts.exported
    assert facts.from_export
    kept = facts.exported[sheet.rows[0].row_number]
    assert kept[Field.TICKET_DESCRIPTION] in (None, "")
    assert kept[Field.TICKET_STATE] == "Open"
    assert len(facts.exported) == len(sheet.rows) - 1


def summary_items(path: Path) -> dict[str, object]:
    """The Summary sheet of a results workbook, its first column to its second."""
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        rows = list(book["Summary"].iter_rows(values_only=True))
    finally:
        book.close()
    return {row[0]: row[1] for row in rows if row and row[0] and len(row) > 1}


def run_with_hook_after_sending(sheet: Path, sim, after_sending, cli: dict[str, object]):
    """sweep.run of `sheet`, `after_sending(console)` called once the last row is sent (as the
    progress closes), just before the read-back starts."""
    from helpers import FakeProgress

    from batch_updater.sweep import RunRequest, run

    class Progress(FakeProgress):
        def close(self) -> None:
            super().close()
            after_sending(self.console)

    class Console(FakeConsole):
        def progress(self, total: int) -> FakeProgress:
            return Progress(self, total)

    console = Console()
    outcome = run(RunRequest(sheet, yes=True), settings_for(sim, **cli), console)
    return outcome, console


def test_a_read_back_refused_by_the_server_keeps_the_run_that_was_sent(
    tmp_path: Path, simulator
) -> None:
    sheet = exported_sheet(tmp_path, simulator, THREE_EDITS)

    def refuse_the_login(console) -> None:
        # The service restarts and the account's password changes: the token is refused.
        simulator.restart()
        with simulator._tokens._lock:
            simulator._tokens._refresh.clear()
        simulator.configure(password_encoding="plain")

    outcome, console = run_with_hook_after_sending(
        sheet, simulator, refuse_the_login, {"verify": True}
    )

    assert outcome.status is ExitStatus.OK  # every row was sent; Not checked is no failure
    assert sorted(body["TicketNumber"] for body in patches(simulator)) == sorted(THREE_EDITS)
    assert not any("Nothing was sent" in warning for warning in outcome.warnings)
    updated = [r for r in outcome.results if r.outcome.value == "Updated"]
    assert len(updated) == 3
    assert all(
        r.verification.startswith(
            "Not checked: the read-back failed: The CCS server refused the user name or password"
        )
        for r in updated
    ), [r.verification for r in updated]
    assert outcome.workbook is not None and outcome.workbook.exists()
    # The journal took each verification: the workbook, written from it, says them.
    verifications = [
        row["Verification"] for row in read_results(outcome.workbook) if row["Outcome"] == "Updated"
    ]
    assert verifications == [r.verification for r in updated]
    notes = [v for v in summary_items(outcome.workbook).values() if isinstance(v, str)]
    assert any(note.startswith("Read-back: not done: The CCS server refused") for note in notes)
    assert any("the read-back failed" in text for text in console.texts("warn"))


def test_a_journal_that_fails_during_the_read_back_is_reported_and_the_workbook_written(
    tmp_path: Path, simulator, monkeypatch
) -> None:
    from batch_updater.journal import store
    from batch_updater.journal.records import JournalError

    sheet = exported_sheet(tmp_path, simulator, THREE_EDITS)

    def fill_the_disk(console) -> None:
        def record(self, result, *, verified=None):
            raise JournalError("Could not write to the journal: database or disk is full.")

        monkeypatch.setattr(store.Journal, "record", record)

    outcome, _ = run_with_hook_after_sending(sheet, simulator, fill_the_disk, {"verify": True})

    assert outcome.status is ExitStatus.OK  # what the rows say: every one sent
    assert [r.outcome.value for r in outcome.results].count("Updated") == 3
    assert outcome.workbook is not None and outcome.workbook.exists()
    # The workbook is the journal's, as after a journal failure during sending; its notes say
    # what the read-back found and why the journal does not hold it.
    notes = [v for v in summary_items(outcome.workbook).values() if isinstance(v, str)]
    assert any(
        note.startswith("Read-back: 3 updated tickets read back in pages")
        and note.endswith(
            "The journal could not record the verifications: Could not write to the journal: "
            "database or disk is full."
        )
        for note in notes
    ), notes
    assert "Warning: Could not write to the journal: database or disk is full." in outcome.warnings
    assert any("Free some space on the journal's disk" in w for w in outcome.warnings)


def test_ctrl_c_during_the_read_back_makes_the_run_interrupted(
    tmp_path: Path, simulator, monkeypatch
) -> None:
    from batch_updater.runner.pages import PageReader

    sheet = exported_sheet(tmp_path, simulator, THREE_EDITS)

    def ctrl_c_after_the_first_query(console) -> None:
        read = PageReader.read

        def then_stop(self, *args, **kwargs):
            done = read(self, *args, **kwargs)
            console.stops.cancel.set()  # as a Ctrl-C would, once the open tickets are read
            return done

        monkeypatch.setattr(PageReader, "read", then_stop)

    outcome, _ = run_with_hook_after_sending(
        sheet, simulator, ctrl_c_after_the_first_query, {"verify": True}
    )

    assert outcome.status is ExitStatus.INTERRUPTED
    verifications = {
        r.ticket_number: r.verification for r in outcome.results if r.outcome.value == "Updated"
    }
    # Tickets 2 and 3 are still open (the first query); ticket 1 moved to state 2 and was not read.
    assert verifications == {
        "INCA0000001": "Not checked: the run stopped before the read-back",
        "INCA0000002": "Verified",
        "INCA0000003": "Verified",
    }
    items = summary_items(outcome.workbook)
    assert items["Stopped early"] == "interrupted (Ctrl-C or a stop signal) during the read-back"
    notes = [v for v in items.values() if isinstance(v, str)]
    assert any(
        note.startswith("Read-back: stopped (Ctrl-C) after 2 of 3 updated tickets read back")
        for note in notes
    ), notes


def test_a_sheet_exported_from_another_server_is_warned_about(tmp_path: Path, make_simulator):
    test_server, production = make_simulator(), make_simulator()
    sheet = exported_sheet(tmp_path, test_server, {"INCA0000001": {"State": "Not Applicable"}})

    _, console = run_sheet_in(sheet, production)

    assert (
        f"Warning: this sheet was exported from {test_server.url}; this run goes to "
        f"{production.url}. Its Exported values are that server's: a ticket that differs here "
        "is reported as a Conflict, and not sent."
    ) in console.texts("warn")
    _, same = run_sheet_in(sheet, test_server, again=True)
    assert not [text for text in same.texts("warn") if "was exported from" in text]


def test_priorities_sent_as_numbers_leave_unedited_rows_unchanged(tmp_path: Path, simulator):
    sheet = exported_sheet(tmp_path, simulator, {"INCA0000002": {"Priority": "High"}})
    simulator.clear_requests()

    outcome, _ = run_sheet_in(sheet, simulator, cli={"priority_format": "integer"})

    assert patches(simulator) == [{"TicketNumber": "INCA0000002", "Priority": 3}]
    counts = {r.outcome.value for r in outcome.results if r.ticket_number != "INCA0000002"}
    assert counts == {"Unchanged"}
    assert simulator.ticket("INCA0000002")["Priority"] == "High"
