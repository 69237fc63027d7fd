"""Secrets a server repeats in its answers never reach the terminal or any file the tool writes."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from helpers import (
    ADMIN_PASSWORD,
    all_text,
    base64_of,
    by_row,
    live_args,
    live_env,
    read_results,
    results_files,
    run_command,
    ticket_rows,
    write_sheet,
)

from batch_updater.cli import ExitStatus
from batch_updater.redact import REDACTED, Redactor

PASSWORD = 'P+ss/w=rd! "x" <&>'


def lower_escapes(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


@pytest.mark.parametrize(
    "form",
    [
        PASSWORD,
        base64_of(PASSWORD),
        quote_plus(PASSWORD),
        quote(PASSWORD, safe=""),
        lower_escapes(quote_plus(PASSWORD)),
        quote_plus(base64_of(PASSWORD)),
        lower_escapes(quote(base64_of(PASSWORD), safe="")),
    ],
)
def test_every_form_of_the_password_is_removed(form: str) -> None:
    assert Redactor(PASSWORD).redact(f"gateway said: {form} (end)") == (
        f"gateway said: {REDACTED} (end)"
    )


def test_json_and_html_escaped_passwords_are_removed() -> None:
    redactor = Redactor(PASSWORD)
    for form in ('P+ss/w=rd! \\"x\\" <&>', "P+ss/w=rd! &quot;x&quot; &lt;&amp;&gt;"):
        assert redactor.redact(f"echo {form} done") == f"echo {REDACTED} done"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Authorization: Bearer eyJhbGciOi.J9x-_y~z+/==; next",
            f"Authorization: Bearer {REDACTED}; next",
        ),
        (
            "grant_type=password&username=corp%5Cadm&password=c2VjcmV0&x=1",
            f"grant_type=password&username=corp%5Cadm&password={REDACTED}&x=1",
        ),
        (
            '{"access_token": "abc", "refresh_token":"def"}',
            f'{{"access_token": "{REDACTED}", "refresh_token":"{REDACTED}"}}',
        ),
        ('{\\"password\\":\\"abc\\"}', f'{{\\"password\\":\\"{REDACTED}\\"}}'),
    ],
)
def test_secret_fields_are_removed_whatever_their_value(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Ticket INCA0000001 was not found.",
        "Invalid password: the password is wrong",
        "Authorization has been denied for this request.",
        "The token has expired",
        "",
    ],
)
def test_messages_without_secrets_are_left_as_they_are(text: str) -> None:
    assert Redactor(ADMIN_PASSWORD, "a-token-value").redact(text) == text


def test_tokens_added_later_are_removed_too() -> None:
    redactor = Redactor()
    redactor.add("tok-1234567890")
    assert redactor.redact("x tok-1234567890 y") == f"x {REDACTED} y"
    assert "tok-" not in repr(redactor)


# -- end to end: a server that repeats every request it refuses -------------------------------------


def secret_forms(secrets: list[str]) -> list[str]:
    forms = []
    for secret in secrets:
        for value in (secret, base64_of(secret)):
            forms += [value, quote_plus(value), quote(value, safe="")]
    return sorted(set(forms))


def leaks(folder: Path, forms: list[str]) -> list[str]:
    """'file: form' for every form of a secret found in any file under `folder`."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix == ".xlsx" and zipfile.is_zipfile(path):
            text = all_text(path)
        else:
            text = path.read_bytes().decode("utf-8", "replace")
        found += [f"{path.name}: {form}" for form in forms if form in text]
    return found


def test_a_server_that_repeats_the_request_leaks_no_secret_anywhere(
    tmp_path: Path, make_simulator, state_folder: Path
) -> None:
    sim = make_simulator(
        echo_requests=True,
        fail_tickets=["INCA0000002"],
        denied_tickets=["INCA0000003"],
    )
    write_sheet(tmp_path / "tickets.xlsx", ticket_rows(5))
    done = run_command(
        [
            "tickets.xlsx",
            *live_args(sim, "--capture-before", "--verify", "--csv", "--log-file", "run.log"),
        ],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )
    assert done.returncode == ExitStatus.ROWS_FAILED, done.stderr

    # The server did repeat the token in its answers, and the tool kept the rest of the message.
    (workbook,) = results_files(tmp_path)
    results = by_row(read_results(workbook))
    assert f"Authorization: Bearer {REDACTED}" in results[3]["Message"]
    assert f"Authorization: Bearer {REDACTED}" in results[4]["Message"]

    forms = secret_forms([ADMIN_PASSWORD, *sim.issued_tokens()])
    assert [f for f in forms if f in done.stdout + done.stderr] == []
    assert leaks(tmp_path, forms) == []
    assert leaks(state_folder, forms) == []


def test_a_refused_login_repeated_by_the_server_does_not_show_the_password(
    tmp_path: Path, make_simulator
) -> None:
    sim = make_simulator(echo_requests=True)
    wrong = "Wr0ng+Pass/word="
    write_sheet(tmp_path / "tickets.xlsx", ticket_rows(2))
    done = run_command(
        ["tickets.xlsx", *live_args(sim)], tmp_path, env=live_env(tmp_path / "home", password=wrong)
    )
    assert done.returncode == ExitStatus.STOPPED, done.stderr
    assert "refused the user name or password" in done.stderr
    assert f"password={REDACTED}" in done.stderr  # the echo came, without its value
    assert [f for f in secret_forms([wrong]) if f in done.stdout + done.stderr] == []
