"""Tests of batch_updater.settings: precedence, file search, values, and every message's text."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batch_updater import settings as settings_module
from batch_updater.errors import ConfigError
from batch_updater.settings import (
    PasswordEncoding,
    PriorityFormat,
    Secret,
    Settings,
    load_settings,
    normalize_url,
    parse_field_name,
    user_config_path,
)
from batch_updater.settings import files as settings_files
from batch_updater.settings import keys as settings_keys
from batch_updater.tickets import Field

REPO_ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "Sup3r+Secret/Pa55=="


@pytest.fixture(autouse=True)
def user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the per-user config file into tmp, so a developer's own file never leaks in."""
    path = tmp_path / "user-config" / "batch-update" / "config.yaml"
    monkeypatch.setattr(settings_files, "user_config_path", lambda: path)
    return path


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_text(
    cwd: Path, text: str, env: dict[str, str] | None = None, **kwargs: object
) -> Settings:
    write(cwd / "batch-update.yaml", text)
    return load_settings(cwd=cwd, env=env or {}, **kwargs)  # type: ignore[arg-type]


def config_error(cwd: Path, text: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_text(cwd, text, env)
    return caught.value


# --- Secret -----------------------------------------------------------------------------------


def test_secret_is_masked_and_revealed_on_request() -> None:
    secret = Secret(PASSWORD)
    assert repr(secret) == "Secret('********')"
    assert str(secret) == "********"
    assert f"{secret}" == "********"
    assert secret.reveal() == PASSWORD
    assert secret == Secret(PASSWORD)
    assert secret != Secret("other")
    assert secret != PASSWORD
    assert hash(secret) == hash(Secret(PASSWORD))
    assert copy.deepcopy(secret) == secret


def test_secret_refuses_to_be_pickled() -> None:
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(Secret(PASSWORD))


# --- defaults, precedence, sources -----------------------------------------------------------


def test_defaults_without_any_source(cwd: Path) -> None:
    loaded = load_settings(cwd=cwd, env={})
    assert loaded == Settings()
    assert loaded.config_path is None
    assert dict(loaded.sources) == {}
    assert loaded.url is None
    assert loaded.connect_timeout == 10
    assert loaded.read_timeout == 60
    assert loaded.password_encoding is PasswordEncoding.BASE64
    assert loaded.token_lifetime == 3600
    assert loaded.rate == 5.0
    assert loaded.concurrency == "auto"
    assert loaded.max_attempts == 4
    assert loaded.backoff_base == 1.0
    assert loaded.backoff_cap == 30.0
    assert loaded.max_throttled == 20
    assert loaded.stop_forbidden_at_start == 5
    assert loaded.stop_transient_streak == 10
    assert loaded.max_rows == 1_000_000
    assert dict(loaded.column_mapping) == {}
    assert loaded.priorities == ("Low", "Medium", "High")
    assert loaded.priority_format is PriorityFormat.NAME
    assert loaded.description_max_length == 4000
    assert loaded.write_csv is False
    assert loaded.require_approval is False
    assert loaded.plan_expiry_days == 7
    assert loaded.source_of("rate") == "default"


def test_precedence_file_then_environment_then_command_line(cwd: Path) -> None:
    text = "pacing:\n  rate: 2\n  concurrency: 2\nserver:\n  url: file.example\n"
    env = {"CCS_RATE": "3", "CCS_CONCURRENCY": "3"}

    only_file = load_text(cwd, text)
    assert (only_file.rate, only_file.concurrency) == (2.0, 2)
    assert only_file.source_of("rate") == "config file"

    with_env = load_text(cwd, text, env)
    assert (with_env.rate, with_env.concurrency) == (3.0, 3)
    assert with_env.source_of("rate") == "environment CCS_RATE"
    assert with_env.url == "https://file.example:12431"
    assert with_env.source_of("url") == "config file"

    with_cli = load_text(cwd, text, env, cli={"rate": 4, "concurrency": None})
    assert (with_cli.rate, with_cli.concurrency) == (4.0, 3)
    assert with_cli.sources["rate"] == "command line"
    assert with_cli.sources["concurrency"] == "environment CCS_CONCURRENCY"
    assert "max_attempts" not in with_cli.sources


def test_every_environment_variable_is_read(cwd: Path) -> None:
    bundle = write(cwd / "ca.pem", "certificate")
    env = {
        "CCS_URL": "ccs02.corp.example",
        "CCS_USERNAME": "corp\\operator",
        "CCS_PASSWORD": PASSWORD,
        "CCS_PASSWORD_ENCODING": "PLAIN",
        "CCS_CA_BUNDLE": "ca.pem",
        "CCS_RATE": "2.5",
        "CCS_CONCURRENCY": "8",
    }
    loaded = load_settings(cwd=cwd, env=env)
    assert loaded.url == "https://ccs02.corp.example:12431"
    assert loaded.username == "corp\\operator"
    assert loaded.password == Secret(PASSWORD)
    assert loaded.password_encoding is PasswordEncoding.PLAIN
    assert loaded.ca_bundle == bundle
    assert loaded.rate == 2.5
    assert loaded.concurrency == 8
    assert loaded.sources["password"] == "environment CCS_PASSWORD"


def test_empty_environment_variables_count_as_unset(cwd: Path) -> None:
    loaded = load_settings(cwd=cwd, env={"CCS_RATE": "", "CCS_URL": "  ", "CCS_PASSWORD": ""})
    assert loaded == Settings()


def test_command_line_values_of_every_kind(cwd: Path) -> None:
    loaded = load_settings(
        cwd=cwd,
        env={"CCS_PASSWORD": "from-env"},
        cli={
            "password": Secret(PASSWORD),
            "output_dir": Path("out"),
            "log_file": "run.log",
            "write_csv": True,
            "priority_format": PriorityFormat.INTEGER,
            "password_encoding": "plain",
            "priorities": ["P1", "P2"],
            "column_mapping": {"Ticket #": "ticket number"},
            "sheet": "Changes",
        },
    )
    assert loaded.password == Secret(PASSWORD)
    assert loaded.sources["password"] == "prompt"
    assert loaded.output_dir == cwd / "out"
    assert loaded.log_file == cwd / "run.log"
    assert loaded.write_csv is True
    assert loaded.priority_format is PriorityFormat.INTEGER
    assert loaded.password_encoding is PasswordEncoding.PLAIN
    assert loaded.priorities == ("P1", "P2")
    assert dict(loaded.column_mapping) == {"Ticket #": Field.TICKET_NUMBER}
    assert loaded.sheet == "Changes"


def test_an_unknown_command_line_attribute_is_a_programming_error(cwd: Path) -> None:
    with pytest.raises(TypeError, match="'dry_run' is not a settings attribute"):
        load_settings(cwd=cwd, env={}, cli={"dry_run": True})


def test_null_values_in_the_file_mean_default(cwd: Path) -> None:
    loaded = load_text(cwd, "pacing:\n  rate:\nserver:\ninput:\n  sheet: ~\n")
    assert loaded == dataclasses.replace(Settings(), config_path=cwd / "batch-update.yaml")


def test_an_empty_file_gives_the_defaults(cwd: Path) -> None:
    loaded = load_text(cwd, "# nothing yet\n")
    assert loaded.config_path == cwd / "batch-update.yaml"
    assert dataclasses.replace(loaded, config_path=None) == Settings()


# --- which config file ------------------------------------------------------------------------


def test_the_file_in_the_current_folder_comes_before_the_user_file(
    cwd: Path, user_config: Path
) -> None:
    write(user_config, "pacing:\n  rate: 1\n")
    write(cwd / "batch-update.yaml", "pacing:\n  rate: 2\n")
    loaded = load_settings(cwd=cwd, env={})
    assert loaded.rate == 2.0
    assert loaded.config_path == cwd / "batch-update.yaml"


def test_the_user_file_is_used_when_the_current_folder_has_none(
    cwd: Path, user_config: Path
) -> None:
    write(user_config, "pacing:\n  rate: 1\n")
    loaded = load_settings(cwd=cwd, env={})
    assert loaded.rate == 1.0
    assert loaded.config_path == user_config


def test_ccs_config_comes_before_the_files_searched(cwd: Path, tmp_path: Path) -> None:
    write(cwd / "batch-update.yaml", "pacing:\n  rate: 2\n")
    chosen = write(tmp_path / "elsewhere" / "team.yaml", "pacing:\n  rate: 7\n")
    loaded = load_settings(cwd=cwd, env={"CCS_CONFIG": str(chosen)})
    assert loaded.rate == 7.0
    assert loaded.config_path == chosen


def test_config_path_comes_before_ccs_config_and_is_relative_to_cwd(
    cwd: Path, tmp_path: Path
) -> None:
    write(cwd / "mine.yaml", "pacing:\n  rate: 9\n")
    other = write(tmp_path / "team.yaml", "pacing:\n  rate: 7\n")
    loaded = load_settings(cwd=cwd, env={"CCS_CONFIG": str(other)}, config_path=Path("mine.yaml"))
    assert loaded.rate == 9.0
    assert loaded.config_path == cwd / "mine.yaml"


def test_a_missing_config_path_is_an_error(cwd: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(cwd=cwd, env={}, config_path=Path("nope.yaml"))
    assert str(caught.value) == f'config file "{cwd / "nope.yaml"}" does not exist.'
    assert caught.value.tip == "config.example.yaml, beside the README, shows every key."


def test_a_missing_ccs_config_names_the_variable(cwd: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(cwd=cwd, env={"CCS_CONFIG": "gone.yaml"})
    assert str(caught.value) == (
        f'environment variable CCS_CONFIG: config file "{cwd / "gone.yaml"}" does not exist.'
    )


def test_a_config_path_that_is_a_folder_is_an_error(cwd: Path) -> None:
    (cwd / "folder").mkdir()
    with pytest.raises(ConfigError) as caught:
        load_settings(cwd=cwd, env={}, config_path=cwd / "folder")
    assert str(caught.value) == f'config file "{cwd / "folder"}" is a folder, not a file.'


def test_user_config_path_is_in_the_platform_config_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the real function, not the fixture's stand-in
    path = user_config_path()
    assert path.name == "config.yaml"
    assert path.parent.name == "batch-update"


def test_messages_name_a_file_outside_cwd_by_its_full_path(cwd: Path, user_config: Path) -> None:
    write(user_config, "pacing:\n  rte: 1\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(cwd=cwd, env={})
    assert str(caught.value) == (
        f'{user_config}: unknown key "pacing.rte"; did you mean "pacing.rate"?'
    )


# --- the server URL ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ccs01.corp.local", "https://ccs01.corp.local:12431"),
        ("https://host", "https://host:12431"),
        ("https://host/", "https://host:12431"),
        ("https://host:8443", "https://host:8443"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("ccs01.corp.local:443", "https://ccs01.corp.local:443"),
        ("https://host:12431/ccs/api/v1", "https://host:12431"),
        ("https://host:12431/ccs/api/v1/", "https://host:12431"),
        ("HTTPS://CCS01.Corp.Local/CCS/API/V1", "https://ccs01.corp.local:12431"),
        ("https://gateway.example/ccs-prod/ccs/api/v1", "https://gateway.example:12431/ccs-prod"),
        ("  https://host  ", "https://host:12431"),
        ("https://[::1]:8443", "https://[::1]:8443"),
        ("[fe80::1]", "https://[fe80::1]:12431"),
    ],
)
def test_url_normalization(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


ACCEPTED_URL = "the server's address, e.g. https://ccs01.corp.example:12431 or ccs01.corp.example"


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("ftp://host", f'"ftp://host" is not an http or https address; use {ACCEPTED_URL}'),
        (
            "https://host/?x=1",
            f'"https://host/?x=1" has a query or fragment (? or #); use {ACCEPTED_URL}',
        ),
        (
            "https://host#top",
            f'"https://host#top" has a query or fragment (? or #); use {ACCEPTED_URL}',
        ),
        ("https://", f'"https://" has no host name; use {ACCEPTED_URL}'),
        (
            "https://host:99999",
            '"https://host:99999" has an invalid port; use a port from 1 to 65535, e.g. :12431',
        ),
        (
            "https://host:0",
            '"https://host:0" has an invalid port; use a port from 1 to 65535, e.g. :12431',
        ),
        ("ccs 01", f'"ccs 01" contains spaces or control characters; use {ACCEPTED_URL}'),
        (
            "https://host/ccs/api/v1/RemediationTickets",
            '"https://host/ccs/api/v1/RemediationTickets" includes an API path; '
            f"use {ACCEPTED_URL} "
            "(the tool adds /ccs/api/v1/... itself)",
        ),
    ],
)
def test_bad_urls_from_the_file(cwd: Path, given: str, problem: str) -> None:
    error = config_error(cwd, f"server:\n  url: '{given}'\n")
    assert str(error) == f'batch-update.yaml, key "server.url": {problem}.'


def test_a_url_with_credentials_is_refused_without_echoing_them(cwd: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(cwd=cwd, env={"CCS_URL": f"https://svc:{PASSWORD}@ccs01.corp.example"})
    message = str(caught.value)
    assert PASSWORD not in message
    assert message == (
        "environment variable CCS_URL: the server address contains a user name or password; "
        f"use {ACCEPTED_URL}, and give the user name as auth.username and the password in "
        "CCS_PASSWORD."
    )


@given(
    host=st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9-]{0,10}){0,3}", fullmatch=True),
    scheme=st.sampled_from(["", "http://", "https://", "HTTPS://"]),
    port=st.one_of(st.none(), st.integers(1, 65535)),
    suffix=st.sampled_from(["", "/", "/ccs/api/v1", "/ccs/api/v1/", "/prefix"]),
)
def test_normalized_urls_are_stable(host: str, scheme: str, port: int | None, suffix: str) -> None:
    given_url = f"{scheme}{host}{'' if port is None else f':{port}'}{suffix}"
    once = normalize_url(given_url)
    assert normalize_url(once) == once
    assert once.startswith(("https://", "http://"))
    assert not once.endswith("/")
    assert f":{port or 12431}" in once


# --- value messages ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "pacing:\n  rate: 0\n",
            'batch-update.yaml, key "pacing.rate": 0 is out of range; use a number of requests '
            "per second above 0 and at most 1000, e.g. 5.",
        ),
        (
            "pacing:\n  rate: 1001\n",
            'batch-update.yaml, key "pacing.rate": 1001 is out of range; use a number of requests '
            "per second above 0 and at most 1000, e.g. 5.",
        ),
        (
            "pacing:\n  rate: .nan\n",
            'batch-update.yaml, key "pacing.rate": nan is not a number; use a number of requests '
            "per second above 0 and at most 1000, e.g. 5.",
        ),
        (
            "pacing:\n  rate: fast\n",
            'batch-update.yaml, key "pacing.rate": "fast" is not a number; use a number of '
            "requests per second above 0 and at most 1000, e.g. 5.",
        ),
        (
            "pacing:\n  concurrency: 65\n",
            'batch-update.yaml, key "pacing.concurrency": 65 is out of range; use auto or a whole '
            "number from 1 to 64, e.g. 4.",
        ),
        (
            "pacing:\n  concurrency: 2.5\n",
            'batch-update.yaml, key "pacing.concurrency": 2.5 is not a whole number; use auto or a '
            "whole number from 1 to 64, e.g. 4.",
        ),
        (
            "pacing:\n  concurrency: yes\n",
            'batch-update.yaml, key "pacing.concurrency": true is not a whole number; use auto or '
            "a whole number from 1 to 64, e.g. 4.",
        ),
        (
            "server:\n  read_timeout: [1, 2]\n",
            'batch-update.yaml, key "server.read_timeout": a list is not a number; use a number '
            "of seconds above 0 and at most 3600, e.g. 60.",
        ),
        (
            "retries:\n  max_attempts: 21\n",
            'batch-update.yaml, key "retries.max_attempts": 21 is out of range; use a whole number '
            "from 1 to 20 (the first try included), e.g. 4.",
        ),
        (
            "stop:\n  forbidden_at_start: -1\n",
            'batch-update.yaml, key "stop.forbidden_at_start": -1 is out of range; use a whole '
            "number from 0 (never stop) to 10000, e.g. 5.",
        ),
        (
            "auth:\n  token_lifetime: 0\n",
            'batch-update.yaml, key "auth.token_lifetime": 0 is out of range; use a number of '
            "seconds above 0 and at most 86400, e.g. 3600.",
        ),
        (
            "auth:\n  password_encoding: hex\n",
            'batch-update.yaml, key "auth.password_encoding": "hex" is not a password encoding; '
            "use one of base64, plain.",
        ),
        (
            "input:\n  priority_format: number\n",
            'batch-update.yaml, key "input.priority_format": "number" is not a priority format; '
            "use one of name, integer.",
        ),
        (
            "output:\n  write_csv: 'maybe'\n",
            'batch-update.yaml, key "output.write_csv": "maybe" is not true or false; use true '
            "or false.",
        ),
        (
            "plan:\n  require_approval: 'maybe'\n",
            'batch-update.yaml, key "plan.require_approval": "maybe" is not true or false; use '
            "true or false.",
        ),
        (
            "plan:\n  expiry_days: 0\n",
            'batch-update.yaml, key "plan.expiry_days": 0 is out of range; use a whole number of '
            "days from 1 to 365, e.g. 7.",
        ),
        (
            "plan:\n  expiry_days: 366\n",
            'batch-update.yaml, key "plan.expiry_days": 366 is out of range; use a whole number '
            "of days from 1 to 365, e.g. 7.",
        ),
        (
            "plan:\n  expiry_days: 1.5\n",
            'batch-update.yaml, key "plan.expiry_days": 1.5 is not a whole number; use a whole '
            "number of days from 1 to 365, e.g. 7.",
        ),
        (
            "auth:\n  username: 12345\n",
            'batch-update.yaml, key "auth.username": 12345 is not a user name; use a user name '
            "such as 'corp\\svc-ccs' (in single quotes).",
        ),
        (
            "auth:\n  username: ''\n",
            'batch-update.yaml, key "auth.username": the value is empty; use a user name such as '
            "'corp\\svc-ccs' (in single quotes), or leave the key out.",
        ),
        (
            "input:\n  priorities: Low, High\n",
            'batch-update.yaml, key "input.priorities": "Low, High" is not a list; use a list of '
            "priority names, e.g. [Low, Medium, High].",
        ),
        (
            "input:\n  priorities: [Low, low]\n",
            'batch-update.yaml, key "input.priorities": "low" is listed twice; list each priority '
            "once.",
        ),
        (
            "input:\n  priorities: []\n",
            'batch-update.yaml, key "input.priorities": the list is empty; use a list of priority '
            "names, e.g. [Low, Medium, High].",
        ),
        (
            "input:\n  ticket_pattern: '^INCA[0-9'\n",
            'batch-update.yaml, key "input.ticket_pattern": "^INCA[0-9" is not a valid regular '
            "expression (unterminated character set at position 5); use a Python regular "
            "expression, e.g. '^INCA\\d{7}$' (in single quotes).",
        ),
        (
            "columns: [TicketNumber]\n",
            'batch-update.yaml, key "columns": a list is not a mapping; use header text mapped '
            'to a field, e.g. "Ticket #": TicketNumber.',
        ),
        (
            "columns:\n  Ticket: TicketNumber\n  Number: ticket number\n",
            'batch-update.yaml, key "columns": "Ticket" and "Number" both map to TicketNumber; '
            "map one column to each field.",
        ),
        (
            "pacing: 5\n",
            'batch-update.yaml, key "pacing": 5 is not a group of keys; indent its keys below '
            "it: rate, concurrency.",
        ),
    ],
)
def test_bad_values_in_the_file(cwd: Path, text: str, message: str) -> None:
    assert str(config_error(cwd, text)) == message


def test_a_quoted_number_in_the_file_is_refused_with_a_tip(cwd: Path) -> None:
    error = config_error(cwd, 'pacing:\n  rate: "5"\n')
    assert str(error) == (
        'batch-update.yaml, key "pacing.rate": "5" is text (it is in quotes); use a number of '
        "requests per second above 0 and at most 1000, e.g. 5, without quotes."
    )
    assert error.tip == "Write it as rate: 5"


def test_a_column_mapped_to_a_wrong_field_lists_the_valid_ones(cwd: Path) -> None:
    error = config_error(cwd, "columns:\n  Owner: Priorty\n")
    assert str(error) == (
        'batch-update.yaml, key "columns": column "Owner": "Priorty" is not a ticket field; '
        'did you mean "Priority"? use one of TicketNumber, TicketState, TicketDescription, '
        "Priority, AssignedTo, or ignore for a column that is only context."
    )
    assert error.tip == (
        "The names Ticket Number, State, Description, Priority and Assigned To work too."
    )
    error = config_error(cwd, "columns:\n  Owner: Manager\n")
    assert str(error) == (
        'batch-update.yaml, key "columns": column "Owner": "Manager" is not a ticket field; '
        "use one of TicketNumber, TicketState, TicketDescription, Priority, AssignedTo, or "
        "ignore for a column that is only context."
    )


def test_a_column_mapped_to_ignore_is_context_not_a_field(cwd: Path) -> None:
    (cwd / "batch-update.yaml").write_text(
        'columns:\n  "Target Status": State\n  "Status Date": ignore\n  Owner: IGNORE\n',
        encoding="utf-8",
    )
    loaded = load_settings(env={}, cwd=cwd)
    assert dict(loaded.column_mapping) == {"Target Status": Field.TICKET_STATE}
    assert loaded.ignored_columns == ("Status Date", "Owner")
    assert loaded.source_of("ignored_columns") == "config file"
    assert loaded.describe()["ignored_columns"] == ["Status Date", "Owner"]


def test_a_missing_ca_bundle_is_an_error(cwd: Path) -> None:
    error = config_error(cwd, "server:\n  ca_bundle: certs/corp.pem\n")
    assert str(error) == (
        f'batch-update.yaml, key "server.ca_bundle": "{cwd / "certs" / "corp.pem"}" does not '
        "exist; use the path of a PEM file holding your CA's certificate(s)."
    )


def test_paths_in_the_file_are_relative_to_the_file(cwd: Path, tmp_path: Path) -> None:
    team = tmp_path / "team"
    bundle = write(team / "certs" / "corp.pem", "certificate")
    config = write(
        team / "team.yaml",
        "server:\n  ca_bundle: certs/corp.pem\noutput:\n  dir: results\n  log_file: ~/run.log\n",
    )
    loaded = load_settings(cwd=cwd, env={}, config_path=config)
    assert loaded.ca_bundle == bundle
    assert loaded.output_dir == team / "results"
    assert loaded.log_file == Path("~/run.log").expanduser()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"CCS_RATE": "fast"},
            'environment variable CCS_RATE: "fast" is not a number; use a number of requests per '
            "second above 0 and at most 1000, e.g. 5.",
        ),
        (
            {"CCS_RATE": "-1"},
            'environment variable CCS_RATE: "-1" is out of range; use a number of requests per '
            "second above 0 and at most 1000, e.g. 5.",
        ),
        (
            {"CCS_CONCURRENCY": "4.5"},
            'environment variable CCS_CONCURRENCY: "4.5" is not a whole number; use auto or '
            "a whole number from 1 to 64, e.g. 4.",
        ),
        (
            {"CCS_PASSWORD_ENCODING": "rot13"},
            'environment variable CCS_PASSWORD_ENCODING: "rot13" is not a password encoding; use '
            "one of base64, plain.",
        ),
        (
            {"CCS_URL": "ldap://ccs01"},
            f'environment variable CCS_URL: "ldap://ccs01" is not an http or https address; use '
            f"{ACCEPTED_URL}.",
        ),
    ],
)
def test_bad_environment_values_name_the_variable(
    cwd: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(cwd=cwd, env=env)
    assert str(caught.value) == message


def test_a_missing_ca_bundle_from_the_environment_is_relative_to_cwd(cwd: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(cwd=cwd, env={"CCS_CA_BUNDLE": "ca.pem"})
    assert str(caught.value) == (
        f'environment variable CCS_CA_BUNDLE: "{cwd / "ca.pem"}" does not exist; use the path of '
        "a PEM file holding your CA's certificate(s)."
    )


def test_environment_numbers_may_be_written_like_numbers(cwd: Path) -> None:
    loaded = load_settings(cwd=cwd, env={"CCS_RATE": " 7.5 ", "CCS_CONCURRENCY": "8.0"})
    assert (loaded.rate, loaded.concurrency) == (7.5, 8)


@pytest.mark.parametrize(
    ("text", "env", "cli"),
    [
        ("pacing:\n  concurrency: auto\n", {}, {}),
        ("pacing:\n  concurrency: Auto\n", {}, {}),
        ("pacing:\n  concurrency: 3\n", {"CCS_CONCURRENCY": " AUTO "}, {}),
        ("pacing:\n  concurrency: 3\n", {"CCS_CONCURRENCY": "5"}, {"concurrency": "auto"}),
    ],
)
def test_concurrency_may_be_auto_from_every_source(
    cwd: Path, text: str, env: dict[str, str], cli: dict[str, object]
) -> None:
    loaded = load_text(cwd, text, env, cli=cli)
    assert loaded.concurrency == "auto"
    assert loaded.describe()["concurrency"] == "auto"


def test_concurrency_text_that_is_not_auto_is_refused(cwd: Path) -> None:
    error = config_error(cwd, "pacing:\n  concurrency: automatic\n", {"CCS_CONCURRENCY": "many"})
    assert str(error) == "\n".join(
        [
            'batch-update.yaml, key "pacing.concurrency": "automatic" is not a whole number; '
            "use auto or a whole number from 1 to 64, e.g. 4.",
            'environment variable CCS_CONCURRENCY: "many" is not a whole number; use auto or a '
            "whole number from 1 to 64, e.g. 4.",
        ]
    )


def test_bad_command_line_values_name_the_option(cwd: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(cwd=cwd, env={}, cli={"rate": 0})
    assert str(caught.value) == (
        "command line option --rate: 0 is out of range; use a number of requests per second "
        "above 0 and at most 1000, e.g. 5."
    )


def test_the_user_name_option_is_named_as_the_cli_spells_it(cwd: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(cwd=cwd, env={}, cli={"username": " "})
    assert str(caught.value) == (
        "command line option --user: the value is empty; use a user name such as "
        "'corp\\svc-ccs' (in single quotes), or leave the key out."
    )


def test_every_problem_is_reported_at_once(cwd: Path) -> None:
    error = config_error(cwd, "pacing:\n  rte: 5\n  concurrency: 0\n", {"CCS_RATE": "x"})
    assert str(error) == "\n".join(
        [
            'batch-update.yaml: unknown key "pacing.rte"; did you mean "pacing.rate"?',
            'batch-update.yaml, key "pacing.concurrency": 0 is out of range; use auto or a whole '
            "number from 1 to 64, e.g. 4.",
            'environment variable CCS_RATE: "x" is not a number; use a number of requests per '
            "second above 0 and at most 1000, e.g. 5.",
        ]
    )
    assert error.tip == 'The keys under "pacing" are rate, concurrency.'


def test_a_backoff_cap_below_the_base_is_an_error(cwd: Path) -> None:
    error = config_error(cwd, "retries:\n  backoff_base: 10\n  backoff_cap: 5\n")
    assert str(error) == (
        "retries.backoff_cap (5 s, config file) is below retries.backoff_base (10 s, config "
        "file); make the cap at least the base."
    )
    assert error.tip == "Change retries.backoff_cap."


# --- unknown keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message", "tip"),
    [
        (
            "pacing:\n  rte: 5\n",
            'batch-update.yaml: unknown key "pacing.rte"; did you mean "pacing.rate"?',
            'The keys under "pacing" are rate, concurrency.',
        ),
        (
            "rate: 5\n",
            'batch-update.yaml: unknown key "rate"; did you mean "pacing.rate"?',
            "The groups are server, auth, pacing, retries, stop, input, columns, output, evidence, "
            "plan.",
        ),
        (
            "server:\n  rate: 5\n",
            'batch-update.yaml: unknown key "server.rate"; did you mean "pacing.rate"?',
            'The keys under "server" are url, ca_bundle, connect_timeout, read_timeout.',
        ),
        (
            "pacng:\n  rate: 5\n",
            'batch-update.yaml: unknown key "pacng"; did you mean "pacing"?',
            "The groups are server, auth, pacing, retries, stop, input, columns, output, evidence, "
            "plan.",
        ),
        (
            "auth:\n  user: 'corp\\x'\n",
            'batch-update.yaml: unknown key "auth.user"; did you mean "auth.username"?',
            'The keys under "auth" are username, password_encoding, token_lifetime.',
        ),
        (
            "output:\n  output_dir: out\n",
            'batch-update.yaml: unknown key "output.output_dir"; did you mean "output.dir"?',
            'The keys under "output" are dir, write_csv, log_file, journal_dir, journal_keep_days.',
        ),
        (
            "plan:\n  expiry: 7\n",
            'batch-update.yaml: unknown key "plan.expiry"; did you mean "plan.expiry_days"?',
            'The keys under "plan" are require_approval, expiry_days.',
        ),
        (
            "plan:\n  plan_expiry_days: 7\n",
            'batch-update.yaml: unknown key "plan.plan_expiry_days"; did you mean '
            '"plan.expiry_days"?',
            'The keys under "plan" are require_approval, expiry_days.',
        ),
        (
            "require_approval: true\n",
            'batch-update.yaml: unknown key "require_approval"; did you mean '
            '"plan.require_approval"?',
            "The groups are server, auth, pacing, retries, stop, input, columns, output, evidence, "
            "plan.",
        ),
        (
            "plan:\n  zzz: 1\n",
            'batch-update.yaml: unknown key "plan.zzz". The keys under "plan" are '
            "require_approval, expiry_days.",
            None,
        ),
        (
            "stop:\n  zzz: 1\n",
            'batch-update.yaml: unknown key "stop.zzz". The keys under "stop" are '
            "forbidden_at_start, transient_streak.",
            None,
        ),
        (
            "telemetry: true\n",
            'batch-update.yaml: unknown key "telemetry". The groups are server, auth, pacing, '
            "retries, stop, input, columns, output, evidence, plan.",
            None,
        ),
    ],
)
def test_unknown_keys_get_a_did_you_mean(
    cwd: Path, text: str, message: str, tip: str | None
) -> None:
    error = config_error(cwd, text)
    assert str(error) == message
    assert error.tip == tip


# --- secrets in the file ----------------------------------------------------------------------


def test_a_password_in_the_file_is_refused_without_showing_it(cwd: Path) -> None:
    error = config_error(cwd, f"auth:\n  username: svc\n  password: '{PASSWORD}'\n")
    assert PASSWORD not in str(error)
    assert PASSWORD not in (error.tip or "")
    assert str(error) == (
        'batch-update.yaml: a password does not belong in a config file (key "auth.password"). '
        "Set the CCS_PASSWORD environment variable, or leave it unset to be asked at the prompt."
    )


@pytest.mark.parametrize(
    ("text", "key", "kind"),
    [
        ("password: x\n", "password", "a password"),
        ("server:\n  url: h\n  Password: x\n", "server.Password", "a password"),
        ("auth:\n  passwd: x\n", "auth.passwd", "a password"),
        ("auth:\n  ccs-password: x\n", "auth.ccs-password", "a password"),
        ("columns:\n  Password: TicketNumber\n", "columns.Password", "a password"),
    ],
)
def test_password_keys_anywhere_are_refused(cwd: Path, text: str, key: str, kind: str) -> None:
    error = config_error(cwd, text)
    assert str(error) == (
        f'batch-update.yaml: {kind} does not belong in a config file (key "{key}"). '
        "Set the CCS_PASSWORD environment variable, or leave it unset to be asked at the prompt."
    )


@pytest.mark.parametrize(
    ("text", "key", "kind"),
    [
        ("auth:\n  token: abc\n", "auth.token", "a token"),
        ("auth:\n  refresh_token: abc\n", "auth.refresh_token", "a token"),
        ("auth:\n  api_key: abc\n", "auth.api_key", "a secret"),
        ("client_secret: abc\n", "client_secret", "a secret"),
    ],
)
def test_token_keys_are_refused(cwd: Path, text: str, key: str, kind: str) -> None:
    error = config_error(cwd, text)
    assert "abc" not in str(error)
    assert str(error) == (
        f'batch-update.yaml: {kind} does not belong in a config file (key "{key}"). '
        "The tool gets its own tokens from the server with the user name and password; set the "
        "password in the CCS_PASSWORD environment variable, or leave it unset to be asked at the "
        "prompt."
    )


def test_column_headers_that_merely_mention_a_password_are_fine(cwd: Path) -> None:
    loaded = load_text(cwd, "columns:\n  Password Reset Ticket: TicketNumber\n")
    assert dict(loaded.column_mapping) == {"Password Reset Ticket": Field.TICKET_NUMBER}


def test_password_encoding_is_not_mistaken_for_a_password(cwd: Path) -> None:
    assert load_text(cwd, "auth:\n  password_encoding: plain\n").password_encoding is (
        PasswordEncoding.PLAIN
    )


def test_the_password_never_shows_in_repr_str_or_describe(cwd: Path) -> None:
    loaded = load_settings(cwd=cwd, env={"CCS_PASSWORD": PASSWORD, "CCS_USERNAME": "corp\\svc"})
    assert loaded.password is not None and loaded.password.reveal() == PASSWORD
    for text in (repr(loaded), str(loaded), repr(loaded.describe()), str(loaded.sources)):
        assert PASSWORD not in text
    assert "Secret('********')" in repr(loaded)
    assert loaded.describe()["password"] == "********"
    with pytest.raises(TypeError):
        pickle.dumps(loaded)


def test_describe_is_plain_data(cwd: Path) -> None:
    write(cwd / "ca.pem", "certificate")
    loaded = load_text(
        cwd,
        "server:\n  url: ccs01\n  ca_bundle: ca.pem\ncolumns:\n  Status: State\n",
    )
    described = loaded.describe()
    assert described["url"] == "https://ccs01:12431"
    assert described["ca_bundle"] == str(cwd / "ca.pem")
    assert described["column_mapping"] == {"Status": "TicketState"}
    assert described["password_encoding"] == "base64"
    assert described["priorities"] == ["Low", "Medium", "High"]
    assert described["password"] is None
    assert described["config_path"] == str(cwd / "batch-update.yaml")
    assert described["require_approval"] is False
    assert described["plan_expiry_days"] == 7
    assert "sources" not in described
    assert list(described) == [f.name for f in dataclasses.fields(Settings) if f.name != "sources"]


# --- domain\user and backslashes --------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "  username: 'corp\\svc-ccs'",
        "  username: corp\\svc-ccs",
        '  username: "corp\\\\svc-ccs"',
    ],
)
def test_a_domain_user_name_survives_yaml(cwd: Path, line: str) -> None:
    assert load_text(cwd, f"auth:\n{line}\n").username == "corp\\svc-ccs"


def test_a_domain_user_name_survives_the_environment(cwd: Path) -> None:
    assert load_settings(cwd=cwd, env={"CCS_USERNAME": "corp\\svc-ccs"}).username == "corp\\svc-ccs"


def test_a_single_backslash_in_double_quotes_gets_a_tip(cwd: Path) -> None:
    error = config_error(cwd, 'auth:\n  username: "corp\\svc-ccs"\n')
    assert str(error) == (
        "batch-update.yaml, line 2, column 19: not valid YAML: found unknown escape character 's'."
    )
    assert error.tip is not None and "'corp\\svc-ccs'" in error.tip


def test_an_escape_that_became_a_tab_is_caught(cwd: Path) -> None:
    error = config_error(cwd, 'auth:\n  username: "corp\\tadmin"\n')
    assert str(error) == (
        'batch-update.yaml, key "auth.username": "corp\\tadmin" contains a tab, line break or '
        "other control character; use a user name such as 'corp\\svc-ccs' (in single quotes)."
    )
    assert error.tip is not None and "double each backslash" in error.tip


# --- the file itself --------------------------------------------------------------------------


def test_bad_yaml_names_the_line_and_column(cwd: Path) -> None:
    error = config_error(cwd, f"auth:\n  username: svc\n  rate: 5\n    oops: {PASSWORD}\n")
    assert str(error) == (
        "batch-update.yaml, line 4, column 9: not valid YAML: mapping values are not allowed here."
    )
    assert PASSWORD not in str(error)
    assert error.tip == (
        "Check the indentation and that every key ends with a colon; config.example.yaml shows "
        "the layout."
    )


def test_a_tab_in_the_indentation_gets_a_tip(cwd: Path) -> None:
    error = config_error(cwd, "pacing:\n\trate: 5\n")
    assert str(error) == (
        "batch-update.yaml, line 2, column 1: not valid YAML: found character '\\t' that cannot "
        "start any token."
    )
    assert error.tip == "Indent with spaces, not tabs."


def test_a_key_given_twice_is_an_error(cwd: Path) -> None:
    error = config_error(cwd, "pacing:\n  rate: 2\npacing:\n  concurrency: 3\n")
    assert str(error) == (
        'batch-update.yaml, line 3, column 1: not valid YAML: the key "pacing" is given twice; '
        "keep one."
    )


def test_a_file_that_is_not_a_mapping_is_an_error(cwd: Path) -> None:
    error = config_error(cwd, "- server\n- pacing\n")
    assert str(error) == (
        "batch-update.yaml: the file holds a list, not a mapping of settings; use groups such as "
        "server: and pacing: with their keys indented below them."
    )


def test_a_file_that_is_not_utf8_is_an_error(cwd: Path) -> None:
    (cwd / "batch-update.yaml").write_bytes("input:\n  sheet: Änderungen\n".encode("cp1252"))
    with pytest.raises(ConfigError) as caught:
        load_settings(cwd=cwd, env={})
    assert str(caught.value) == "batch-update.yaml: the file is not UTF-8 text."
    assert caught.value.tip == "Save it as UTF-8 in your editor."


def test_a_utf8_file_with_a_bom_is_read(cwd: Path) -> None:
    (cwd / "batch-update.yaml").write_bytes("\ufeffinput:\n  sheet: Änderungen\n".encode("utf-8"))
    assert load_settings(cwd=cwd, env={}).sheet == "Änderungen"


# --- input settings ---------------------------------------------------------------------------


def test_columns_accept_field_names_in_any_spelling(cwd: Path) -> None:
    loaded = load_text(
        cwd,
        "columns:\n"
        '  "Ticket #": Ticket Number\n'
        "  Status: State\n"
        "  Owner: Assigned To\n"
        "  Notes: description\n"
        "  Prio: PRIORITY\n",
    )
    assert dict(loaded.column_mapping) == {
        "Ticket #": Field.TICKET_NUMBER,
        "Status": Field.TICKET_STATE,
        "Owner": Field.ASSIGNED_TO,
        "Notes": Field.TICKET_DESCRIPTION,
        "Prio": Field.PRIORITY,
    }
    assert loaded.source_of("column_mapping") == "config file"
    with pytest.raises(TypeError):
        loaded.column_mapping["x"] = Field.PRIORITY  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("TicketNumber", Field.TICKET_NUMBER),
        ("ticket_number", Field.TICKET_NUMBER),
        ("ticketstate", Field.TICKET_STATE),
        ("Ticket Description", Field.TICKET_DESCRIPTION),
        ("assignedTo", Field.ASSIGNED_TO),
        ("Owner", None),
    ],
)
def test_parse_field_name(name: str, expected: Field | None) -> None:
    assert parse_field_name(name) is expected


def test_input_settings_from_the_file(cwd: Path) -> None:
    loaded = load_text(
        cwd,
        "input:\n"
        "  sheet: 2024\n"
        "  priorities: [P1, P2, 3]\n"
        "  priority_format: Integer\n"
        "  ticket_pattern: '^INCA\\d{7}$'\n"
        "  max_rows: 500\n",
    )
    assert loaded.sheet == "2024"
    assert loaded.priorities == ("P1", "P2", "3")
    assert loaded.priority_format is PriorityFormat.INTEGER
    assert loaded.ticket_pattern == "^INCA\\d{7}$"
    assert loaded.max_rows == 500


def test_plan_settings_from_the_file(cwd: Path) -> None:
    loaded = load_text(cwd, "plan:\n  require_approval: true\n  expiry_days: 30\n")
    assert loaded.require_approval is True
    assert loaded.plan_expiry_days == 30
    assert loaded.source_of("require_approval") == "config file"
    assert loaded.source_of("plan_expiry_days") == "config file"
    described = loaded.describe()
    assert (described["require_approval"], described["plan_expiry_days"]) == (True, 30)
    bounds = load_text(cwd, "plan:\n  require_approval: false\n  expiry_days: 365\n")
    assert (bounds.require_approval, bounds.plan_expiry_days) == (False, 365)
    assert load_text(cwd, "plan:\n  expiry_days: 1\n").plan_expiry_days == 1


def test_settings_are_frozen_and_hashable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().rate = 9  # type: ignore[misc]
    assert hash(Settings(password=Secret("x"))) == hash(Settings(password=Secret("x")))


def test_settings_copy_and_pickle_but_only_without_a_password(cwd: Path) -> None:
    loaded = load_text(cwd, "columns:\n  Status: State\npacing:\n  rate: 2\n")
    assert copy.deepcopy(loaded) == loaded
    assert pickle.loads(pickle.dumps(loaded)) == loaded
    assert dataclasses.asdict(loaded)["column_mapping"] == {"Status": Field.TICKET_STATE}
    with_password = dataclasses.replace(loaded, password=Secret(PASSWORD))
    assert copy.deepcopy(with_password) == with_password
    with pytest.raises(TypeError):
        pickle.dumps(with_password)


def test_settings_built_directly_accept_plain_containers() -> None:
    built = Settings(
        column_mapping={"Ticket #": "TicketNumber"},  # type: ignore[arg-type]
        priorities=["A"],  # type: ignore[arg-type]
        password="pw",  # type: ignore[arg-type]
    )
    assert dict(built.column_mapping) == {"Ticket #": Field.TICKET_NUMBER}
    assert built.priorities == ("A",)
    assert built.password == Secret("pw")


# --- the example config -----------------------------------------------------------------------


def test_the_example_config_loads_and_changes_only_what_it_means_to(cwd: Path) -> None:
    example = REPO_ROOT / "config.example.yaml"
    loaded = load_settings(cwd=cwd, env={}, config_path=example)
    expected = Settings(
        url="https://ccs01.corp.example:12431",
        username="corp\\svc-ccs",
        config_path=example,
        sources=loaded.sources,
    )
    assert loaded == expected
    assert loaded.sources["url"] == "config file"


def test_the_example_config_documents_every_key() -> None:
    text = (REPO_ROOT / "config.example.yaml").read_text(encoding="utf-8")
    for group, keys in settings_keys._GROUPS.items():
        assert f"\n{group}:" in text or f"\n# {group}:" in text, group
        for name in keys:
            assert f"  {name}:" in text or f"# {name}:" in text, f"{group}.{name}"
    for variable in settings_module.ENVIRONMENT_VARIABLES.values():
        assert variable in text, variable
    assert "\\\\" in text  # the double-quote rule for backslashes is explained
