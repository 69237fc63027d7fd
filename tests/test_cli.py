"""The command line in-process (click's CliRunner): exit codes, --help, and every usage error.

What needs a real process (signals, a terminal, the installed entry point) is in test_e2e.py.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import (
    ADMIN,
    ADMIN_PASSWORD,
    live_args,
    patched,
    read_results,
    results_files,
    ticket_rows,
    write_sheet,
)

import batch_updater
from batch_updater.cli import ExitStatus, command
from batch_updater.cli import common as cli_common
from batch_updater.cli import running as cli_running

PROBLEM_FREE = "tickets.xlsx"


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path as the current folder, with no CCS_* variable and no user config file."""
    for name in list(os.environ):
        if name.upper().startswith("CCS_"):
            monkeypatch.delenv(name)
    for name in ("HOME", "USERPROFILE", "XDG_CONFIG_HOME", "APPDATA", "LOCALAPPDATA"):
        monkeypatch.setenv(name, str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    write_sheet(tmp_path / PROBLEM_FREE, ticket_rows(3))
    return tmp_path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(command, list(args), prog_name="batch-update")


def error_lines(result: Result) -> list[str]:
    assert "Traceback" not in result.output
    return result.stderr.splitlines()


# --- the exit codes -------------------------------------------------------------------------------


def test_exit_codes_are_the_documented_ones() -> None:
    assert {status.name: int(status) for status in ExitStatus} == {
        "OK": 0,
        "ROWS_FAILED": 1,
        "USAGE": 2,
        "STOPPED": 3,
        "INTERNAL_ERROR": 4,
        "INTERRUPTED": 130,
    }


# --- --help ---------------------------------------------------------------------------------------


def exit_codes_of(text: str) -> list[str]:
    exit_codes = text.split("\n  Exit codes:\n", 1)[1].splitlines()
    return [line.split()[0] for line in exit_codes if line.startswith("    ")]


def test_help_lists_every_command_and_every_exit_code() -> None:
    result = invoke("--help")

    assert result.exit_code == 0
    text = result.stdout
    assert text.startswith(
        "Usage: batch-update FILE [OPTIONS]       (the same as: batch-update run FILE [OPTIONS])\n"
        "       batch-update COMMAND [ARGS]...\n"
    )
    listed = text.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split()[0] for line in listed] == list(command.commands)
    assert list(command.commands) == [
        "run",
        "export",
        "plan",
        "approve",
        "apply",
        "resume",
        "retry",
        "rollback",
        "report",
        "runs",
        "check",
        "compare",
        "show",
    ]
    assert [code for code in exit_codes_of(text) if code.isdigit()] == [
        str(int(s)) for s in ExitStatus
    ]
    for status, words in (
        (ExitStatus.OK, "every row Updated"),
        (ExitStatus.ROWS_FAILED, "some rows Failed, Unknown, Invalid or Conflict"),
        (ExitStatus.USAGE, "usage, config or input-file error"),
        (ExitStatus.STOPPED, "the run stopped early"),
        (ExitStatus.INTERRUPTED, "interrupted by Ctrl-C"),
    ):
        assert f"    {int(status):<5}{words}" in text


@pytest.mark.parametrize("name", ["run", "resume", "retry", "rollback", "report", "runs", "check"])
def test_each_command_lists_its_own_options_and_no_other(name: str) -> None:
    result = invoke(name, "--help")

    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith(f"Usage: batch-update {name} [OPTIONS]")
    # An option line: two spaces, the option's names (and metavar), two spaces, its help.
    option_lines = [
        line.strip().split("  ")[0]
        for line in text.split("\nOptions:\n", 1)[1].splitlines()
        if line.startswith("  -")
    ]
    listed = {name for line in option_lines for name in re.findall(r"-{1,2}[a-z][a-z-]*", line)}
    own = {
        opt
        for param in command.commands[name].params
        if not getattr(param, "hidden", False) and param.param_type_name == "option"
        for opt in [*param.opts, *param.secondary_opts]
    }
    assert listed == own | {"-h", "--help"}
    # Every command lists --debug: it is what a bug report asks for.
    assert "--debug" in own
    # Only the commands that send have the server's options; only run has --dry-run.
    assert ("--url" in own) == (name in ("run", "resume", "retry", "rollback"))
    assert ("--dry-run" in own) == (name == "run")
    assert ("\n  Exit codes:\n" in text) == (name in ("run", "check"))
    if name == "run":
        assert [c for c in exit_codes_of(text) if c.isdigit()] == [str(int(s)) for s in ExitStatus]
    if name in ("resume", "retry", "rollback"):
        assert text.rstrip().endswith("Exit codes: those of run (batch-update run --help).")


def test_a_file_is_run_by_the_default_command_or_by_run(here: Path) -> None:
    plain = invoke(PROBLEM_FREE, "--dry-run")
    named = invoke("run", PROBLEM_FREE, "--dry-run")
    # Options may come first too, as they could before there were commands.
    first = invoke("--dry-run", PROBLEM_FREE)

    for result in (plain, named, first):
        assert result.exit_code == ExitStatus.OK, result.output
        assert "Dry run: 3 of 3 rows would be sent; nothing was sent." in result.stderr
    assert len(results_files(here)) == 3
    # A name that is a command's is a file after `run`: here the reader, not `report`, answers.
    (here / "report").write_bytes((here / PROBLEM_FREE).read_bytes())
    result = invoke("run", "report", "--dry-run")
    assert result.exit_code == ExitStatus.USAGE
    assert result.stderr.startswith("Error: report: unsupported file type (none);")


def test_a_command_without_its_argument_names_it() -> None:
    for args, missing in (
        (["run"], "Missing argument 'FILE': the spreadsheet of ticket changes."),
        (["resume"], "Missing argument 'FILE'."),
        (["retry", "tickets.xlsx"], "Missing argument 'RUN'."),
        (["report"], "Missing argument 'RUN'."),
        (["check"], "Missing argument 'RESULTS'."),
    ):
        result = invoke(*args)
        assert result.exit_code == ExitStatus.USAGE, args
        assert result.stderr.splitlines()[-1] == f"Error: {missing}", args


@pytest.mark.parametrize(
    ("args", "typed"),
    [
        (["tickets.xlsx", "--resume", "--rate", "2"], "resume tickets.xlsx"),
        (
            ["tickets.xlsx", "--retry-failed", "20261201-101500-1a2b"],
            "retry tickets.xlsx 20261201-101500-1a2b",
        ),
        (["--retry-failed", "R1"], "retry FILE R1"),
        (["--report-only", "R1", "--out", "a.xlsx"], "report R1"),
        (["--runs"], "runs"),
        (["--runs", "tickets.xlsx"], "runs tickets.xlsx"),
        (["--sheet", "S", "t.xlsx", "--retry-failed=R1"], "retry t.xlsx R1"),
        (["run", "t.xlsx", "--rollback", "R1"], "rollback R1"),
        (["--check-manifest", "a.xlsx"], "check a.xlsx"),
        (["--rollback", "R1", "tickets.xlsx"], "rollback R1"),
        (["tickets.xlsx", "--dry-run", "--resume"], "resume tickets.xlsx"),
    ],
)
def test_an_option_that_became_a_command_says_which_command(args: list[str], typed: str) -> None:
    result = invoke(*args)

    assert result.exit_code == ExitStatus.USAGE
    option = next(
        a.split("=")[0]
        for a in args
        if a.split("=")[0]
        in (
            "--resume",
            "--retry-failed",
            "--report-only",
            "--runs",
            "--check-manifest",
            "--rollback",
        )
    )
    assert result.stderr.splitlines()[-1] == (
        f"Error: {option} is a command of its own now: batch-update {typed} (its options: "
        f"batch-update {typed.split()[0]} --help)."
    )
    # Not one of the commands' options any more: --help does not offer it.
    assert option not in invoke("run", "--help").stdout


def test_an_option_of_another_command_is_refused_by_name(here: Path) -> None:
    result = invoke("runs", "--dry-run")
    assert result.exit_code == ExitStatus.USAGE
    last = result.stderr.splitlines()[-1]
    assert last.startswith("Error: No such option") and "--dry-run" in last
    assert results_files(here) == []


def test_version() -> None:
    result = invoke("--version")
    assert (result.exit_code, result.stdout) == (
        0,
        f"batch-update, version {batch_updater.__version__}\n",
    )


# --- usage, config and input errors: exit 2, one message naming the culprit -----------------------


def test_a_missing_input_file(here: Path) -> None:
    result = invoke("missing.xlsx", "--dry-run")

    assert result.exit_code == ExitStatus.USAGE
    assert error_lines(result) == [
        f"Error: missing.xlsx: file not found ({here / 'missing.xlsx'})."
    ]
    assert results_files(here) == []


def test_a_sheet_without_a_ticket_number_column_lists_the_headers_found(here: Path) -> None:
    (here / "export.csv").write_text("Ref,Asset,Status\nA-1,WEB-01,done\n", encoding="utf-8")

    result = invoke("export.csv", "--dry-run")

    assert result.exit_code == ExitStatus.USAGE
    assert error_lines(result) == [
        "Error: export.csv: no ticket-number column in the first 20 rows. The first non-empty row "
        '(row 1) has: "Ref", "Asset", "Status".',
        'Tip: name the column "Ticket Number", or map your header in the config '
        '(columns: {"Your header": TicketNumber}).',
    ]
    assert results_files(here) == []


def test_a_sheet_name_that_is_not_there(here: Path) -> None:
    result = invoke(PROBLEM_FREE, "--dry-run", "--sheet", "Tickts")

    assert result.exit_code == ExitStatus.USAGE
    assert error_lines(result) == [
        'Error: tickets.xlsx: no sheet named "Tickts"; the workbook has 1 sheet: Tickets.',
        'Tip: did you mean "Tickets"?',
    ]


def test_an_unknown_config_key_gets_a_did_you_mean(here: Path) -> None:
    (here / "batch-update.yaml").write_text("pacing:\n  rat: 5\n", encoding="utf-8")

    result = invoke(PROBLEM_FREE, "--dry-run")  # ./batch-update.yaml is read by default

    assert result.exit_code == ExitStatus.USAGE
    assert error_lines(result) == [
        'Error: batch-update.yaml: unknown key "pacing.rat"; did you mean "pacing.rate"?',
        'Tip: The keys under "pacing" are rate, concurrency.',
    ]


def test_a_password_in_the_config_file_is_refused_and_not_repeated(here: Path) -> None:
    (here / "settings.yaml").write_text("auth:\n  password: Hunter2-secret\n", encoding="utf-8")

    result = invoke(PROBLEM_FREE, "--dry-run", "--config", "settings.yaml")

    assert result.exit_code == ExitStatus.USAGE
    assert error_lines(result) == [
        'Error: settings.yaml: a password does not belong in a config file (key "auth.password"). '
        "Set the CCS_PASSWORD environment variable, or leave it unset to be asked at the prompt."
    ]
    assert "Hunter2-secret" not in result.output


def test_a_config_file_that_does_not_exist(here: Path) -> None:
    result = invoke(PROBLEM_FREE, "--dry-run", "--config", "nope.yaml")

    assert result.exit_code == ExitStatus.USAGE
    assert error_lines(result) == [
        f'Error: config file "{here / "nope.yaml"}" does not exist.',
        "Tip: config.example.yaml, beside the README, shows every key.",
    ]


def test_a_rate_out_of_range_names_the_option(here: Path) -> None:
    result = invoke(PROBLEM_FREE, "--dry-run", "--rate", "0")

    assert result.exit_code == ExitStatus.USAGE
    assert error_lines(result) == [
        "Error: command line option --rate: 0.0 is out of range; use a number of requests per "
        "second above 0 and at most 1000, e.g. 5."
    ]


def test_an_existing_out_file_is_not_overwritten(here: Path) -> None:
    (here / "done.xlsx").write_bytes(b"keep me")

    result = invoke(PROBLEM_FREE, "--dry-run", "--out", "done.xlsx")

    assert result.exit_code == ExitStatus.USAGE
    assert error_lines(result) == [
        "Error: done.xlsx exists already; batch-update will not overwrite it.",
        "Tip: Move it away, or choose another name with --out.",
    ]
    assert (here / "done.xlsx").read_bytes() == b"keep me"


def test_out_may_not_be_the_input(here: Path) -> None:
    before = (here / PROBLEM_FREE).read_bytes()

    result = invoke(PROBLEM_FREE, "--dry-run", "--out", PROBLEM_FREE)

    assert result.exit_code == ExitStatus.USAGE
    assert error_lines(result) == [
        "Error: tickets.xlsx is the input file; batch-update never writes to its input.",
        "Tip: Choose another name for the results with --out.",
    ]
    assert (here / PROBLEM_FREE).read_bytes() == before


def test_a_live_run_needs_a_server(here: Path) -> None:
    result = invoke(PROBLEM_FREE)

    assert result.exit_code == ExitStatus.USAGE
    assert error_lines(result) == [
        "Error: No CCS server given.",
        "Tip: Pass --url https://ccs01.corp.local:12431, set CCS_URL, or set server.url in "
        "batch-update.yaml. To try the tool first, add --simulate.",
    ]
    assert results_files(here) == []


def test_a_live_run_needs_a_user_name_without_a_terminal(here: Path) -> None:
    result = invoke(PROBLEM_FREE, "--url", "http://127.0.0.1:1", "--yes")

    assert result.exit_code == ExitStatus.USAGE
    assert error_lines(result) == [
        "Error: No CCS user name given.",
        "Tip: Pass --user 'corp\\svc-ccs', set CCS_USERNAME, or set auth.username in the config.",
    ]


def test_a_live_run_needs_a_password_without_a_terminal(here: Path) -> None:
    result = invoke(PROBLEM_FREE, "--url", "http://127.0.0.1:1", "--user", ADMIN, "--yes")

    assert result.exit_code == ExitStatus.USAGE
    assert error_lines(result) == [
        "Error: No password for corp\\ccsadmin.",
        "Tip: Set the CCS_PASSWORD environment variable (it is never read from the config file "
        "or the command line), or run in a terminal to be asked.",
    ]


def test_a_log_file_in_a_missing_folder_is_a_usage_error(here: Path) -> None:
    result = invoke(PROBLEM_FREE, "--dry-run", "--log-file", "logs/run.log")

    assert result.exit_code == ExitStatus.USAGE
    assert error_lines(result) == [
        f"Error: Cannot write the log file {here / 'logs' / 'run.log'}: No such file or directory.",
        "Tip: Choose a file in a folder you can write to with --log-file.",
    ]


def test_the_log_file_may_not_be_the_input(here: Path, simulator, monkeypatch) -> None:
    monkeypatch.setenv("CCS_PASSWORD", ADMIN_PASSWORD)
    before = (here / PROBLEM_FREE).read_bytes()

    result = invoke(PROBLEM_FREE, "--log-file", PROBLEM_FREE, *live_args(simulator))

    assert result.exit_code == ExitStatus.USAGE
    assert error_lines(result) == [
        f"Error: {here / PROBLEM_FREE} is the input file; batch-update never writes to its input.",
        "Tip: Choose another name for the log with --log-file.",
    ]
    assert (here / PROBLEM_FREE).read_bytes() == before
    assert simulator.requests == []


def test_a_bug_is_reported_plainly_without_a_traceback(here: Path, monkeypatch) -> None:
    def broken(*args: object, **kwargs: object) -> ExitStatus:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli_running, "run_sheet", broken)

    result = invoke(PROBLEM_FREE, "--dry-run")

    assert result.exit_code == ExitStatus.INTERNAL_ERROR == 4
    assert result.stderr.splitlines() == [
        "Internal error: RuntimeError: boom",
        "This is a bug in batch-update. Run again with --debug to see the traceback, and report "
        "it with the command you ran.",
    ]
    assert isinstance(invoke(PROBLEM_FREE, "--dry-run", "--debug").exception, RuntimeError)


# --- the environment, and runs in one process -----------------------------------------------------


def test_server_user_and_password_from_the_environment(here: Path, simulator, monkeypatch) -> None:
    monkeypatch.setenv("CCS_URL", simulator.url)
    monkeypatch.setenv("CCS_USERNAME", ADMIN)
    monkeypatch.setenv("CCS_PASSWORD", ADMIN_PASSWORD)
    monkeypatch.setenv("CCS_RATE", "100")

    result = invoke(PROBLEM_FREE, "--yes")

    assert result.exit_code == ExitStatus.OK, result.output
    assert sorted(patched(simulator, 204)) == ["INCA0000001", "INCA0000002", "INCA0000003"]
    assert re.search(
        re.escape(
            f"Sending 3 updates to {simulator.url} as corp\\ccsadmin at 100 requests/s (4 to 32 at a time, as the response time needs); run "
        )
        + r"\d{8}-\d{6}-[0-9a-f]{4}\.$",
        result.stderr,
        flags=re.M,
    )
    assert ADMIN_PASSWORD not in result.output


def test_each_run_logs_to_its_own_log_file_and_releases_it(
    here: Path, simulator, monkeypatch
) -> None:
    monkeypatch.setenv("CCS_PASSWORD", ADMIN_PASSWORD)
    write_sheet(here / "second.xlsx", ticket_rows(2, first=50))

    live = live_args(simulator, "--rate", "100")
    first = invoke(PROBLEM_FREE, "--verbose", "--log-file", "first.log", *live)
    second = invoke("second.xlsx", "--log-file", "second.log", *live)

    assert (first.exit_code, second.exit_code) == (ExitStatus.OK, ExitStatus.OK)
    first_log = (here / "first.log").read_text(encoding="utf-8")
    second_log = (here / "second.log").read_text(encoding="utf-8")
    assert sorted(line.split(" INFO ")[1].split(" -> ")[0] for line in first_log.splitlines()) == [
        "row 2 INCA0000001",
        "row 3 INCA0000002",
        "row 4 INCA0000003",
    ]
    assert sorted(line.split(" INFO ")[1].split(" -> ")[0] for line in second_log.splitlines()) == [
        "row 2 INCA0000050",
        "row 3 INCA0000051",
    ]
    assert "INCA0000050" not in first.stderr + second.stderr  # the first run's --verbose is over
    handlers = logging.getLogger("batch_updater").handlers
    assert [h for h in handlers if h.get_name() == cli_common.RUN_LOG_HANDLER] == []


def test_simulate_runs_against_the_built_in_server(here: Path) -> None:
    result = invoke(PROBLEM_FREE, "--simulate", "--rate", "100", "--quiet")

    assert result.exit_code == ExitStatus.OK, result.output
    (workbook,) = results_files(here)
    assert [r["Outcome"] for r in read_results(workbook)] == ["Updated"] * 3
    assert result.stdout.splitlines() == [
        '3 rows in tickets.xlsx (sheet "Tickets"):',
        "  Updated               3",
        "  Failed                0",
        "  Invalid               0",
        f"Results workbook: {workbook.name}",
        f"Manifest:         {workbook.with_suffix('.manifest.json').name}",
    ]
    assert result.stderr == ""


def test_one_row_is_one_row_not_one_rows(here: Path) -> None:
    write_sheet(here / "one.xlsx", ticket_rows(1))

    dry = invoke("one.xlsx", "--dry-run")
    live = invoke("one.xlsx", "--simulate", "--rate", "100", "--quiet")

    assert "Dry run: 1 of 1 row would be sent; nothing was sent." in dry.stderr
    assert '1 row in one.xlsx (sheet "Tickets"):' in live.stdout.splitlines()
    assert "1 rows" not in dry.output + live.output


def test_the_config_file_in_use_is_named(here: Path) -> None:
    (here / "batch-update.yaml").write_text("pacing:\n  rate: 50\n", encoding="utf-8")
    named = here / "other.yaml"
    named.write_text("pacing:\n  rate: 40\n", encoding="utf-8")

    found = invoke(PROBLEM_FREE, "--dry-run")
    given = invoke(PROBLEM_FREE, "--dry-run", "--config", str(named))
    quiet = invoke(PROBLEM_FREE, "--dry-run", "--quiet")

    assert f"Using config file {here / 'batch-update.yaml'}" in found.stderr.splitlines()
    assert f"Using config file {named}" in given.stderr.splitlines()
    assert "Using config file" not in quiet.output


class FakeKeyring:
    """Stands in for the optional keyring package: a dict of (service, name) -> password."""

    def __init__(self, entries: dict[tuple[str, str], str]) -> None:
        self.entries = entries
        self.asked: list[tuple[str, str]] = []

    def get_password(self, service: str, name: str) -> str | None:
        self.asked.append((service, name))
        return self.entries.get((service, name))


def test_the_password_can_come_from_the_system_keyring(here: Path, simulator, monkeypatch) -> None:
    import sys

    fake = FakeKeyring({("batch-update", f"corp\\ccsadmin@{simulator.url}"): ADMIN_PASSWORD})
    monkeypatch.setitem(sys.modules, "keyring", fake)
    result = invoke(
        PROBLEM_FREE, "--url", simulator.url, "--user", "corp\\ccsadmin", "--yes", "--rate", "100"
    )
    assert result.exit_code == ExitStatus.OK, result.output
    assert fake.asked == [("batch-update", f"corp\\ccsadmin@{simulator.url}")]
    assert ADMIN_PASSWORD not in result.output


def test_the_environment_wins_over_the_keyring(here: Path, simulator, monkeypatch) -> None:
    import sys

    fake = FakeKeyring({})
    monkeypatch.setitem(sys.modules, "keyring", fake)
    monkeypatch.setenv("CCS_PASSWORD", ADMIN_PASSWORD)
    result = invoke(
        PROBLEM_FREE, "--url", simulator.url, "--user", "corp\\ccsadmin", "--yes", "--rate", "100"
    )
    assert result.exit_code == ExitStatus.OK, result.output
    assert fake.asked == []


def test_a_mistyped_command_is_named_not_taken_for_a_file(here: Path) -> None:
    result = invoke("reprot", "20261201-101500-1a2b")

    assert result.exit_code == ExitStatus.USAGE
    assert result.stderr.splitlines()[-1] == (
        "Error: No such command 'reprot'. Did you mean 'report'? (A file of that name is run "
        "with: batch-update run reprot)"
    )
    # A name with an extension is a file, whatever it looks like.
    assert "file not found" in invoke("reprot.xlsx", "--dry-run").stderr


def test_a_mistyped_option_is_not_offered_an_option_that_became_a_command() -> None:
    result = invoke("tickets.xlsx", "--retry")

    assert result.exit_code == ExitStatus.USAGE
    last = result.stderr.splitlines()[-1]
    assert last.startswith("Error: No such option") and "--retry-failed" not in last
