"""Secrets never leave memory: not on the terminal, in the log, the workbook, the CSV or the journal.

One full live run of the installed command, as verbose as it gets (--verbose --log-file --csv),
against an in-process simulator whose account has a password full of characters that need
encoding (\\ in the user name; + / = ! and é in the password), with a service restart in the
middle so that the access token is refused and renewed. Then every byte the run printed or wrote
is searched for the password in each form it may take on the way (as typed, Base64, URL-encoded
both ways) and for every access and refresh token the simulator issued: zero hits.

The simulator keeps no public list of the tokens it issued; its token book is wrapped here to
record them (reading simulator internals in a test is accepted practice in this project).
"""

from __future__ import annotations

import base64
import threading
import zipfile
from pathlib import Path
from urllib.parse import quote_plus

import pytest
from helpers import (
    TIMEOUT,
    live_env,
    patched,
    read_results,
    results_files,
    run_command,
    ticket_rows,
    wait_until,
    write_sheet,
)

from batch_updater.ccs import CcsClient
from batch_updater.cli import ExitStatus
from batch_updater.errors import AuthError
from batch_updater.settings import Secret, load_settings
from batch_updater.sim import SimUser
from batch_updater.tickets import TicketUpdate

USER = "corp\\ccsadmin"
# + / = and non-ASCII letters, chosen so that its Base64 form has + / = too: every encoding on
# the way (Base64, then URL-encoding of the form body) changes it.
PASSWORD = "P+ss/w=rd!éßß€"


def password_forms(password: str) -> dict[str, str]:
    """Every form the password takes between the prompt and the wire."""
    encoded = base64.b64encode(password.encode("utf-8")).decode("ascii")
    return {
        "as typed": password,
        "Base64": encoded,
        "URL-encoded": quote_plus(password),
        "URL-encoded, lower-case hex": _lower_hex(quote_plus(password)),
        "Base64, URL-encoded": quote_plus(encoded),
        "Base64, URL-encoded, lower-case hex": _lower_hex(quote_plus(encoded)),
    }


def _lower_hex(text: str) -> str:
    return "".join(
        part if i == 0 else part[:2].lower() + part[2:] for i, part in enumerate(text.split("%"))
    )


class IssuedTokens:
    """Records every access and refresh token the simulator's token book hands out."""

    def __init__(self, sim) -> None:
        self.tokens: list[str] = []
        self._lock = threading.Lock()
        book = sim._tokens
        original = book._issue

        def issue(*args, **kwargs):
            grant = original(*args, **kwargs)
            with self._lock:
                self.tokens += [grant.access_token, grant.refresh_token]
            return grant

        book._issue = issue

    def all(self) -> list[str]:
        with self._lock:
            return list(self.tokens)


def everything_written(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` as bytes; a workbook (zip) as each of its members, unpacked."""
    found: dict[str, bytes] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        name = str(path.relative_to(folder))
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                for member in archive.namelist():
                    found[f"{name}!{member}"] = archive.read(member)
        found[name] = data
    return found


def hits(secret: str, places: dict[str, bytes]) -> list[str]:
    """The places that hold `secret`, as UTF-8 or as UTF-16 (SQLite and Windows can use both)."""
    needles = {secret.encode("utf-8"), secret.encode("utf-16-le")}
    return [name for name, data in places.items() if any(n in data for n in needles)]


@pytest.fixture
def sim(make_simulator):
    return make_simulator(users=[SimUser(USER, PASSWORD, remediation_admin=True)])


def test_a_full_verbose_run_writes_no_secret_anywhere(
    tmp_path: Path, sim, state_folder: Path
) -> None:
    issued = IssuedTokens(sim)
    rows = ticket_rows(30) + [
        ["INCA0099999", 2, "High", "", "no such ticket: a 404 with the server's message"],
        ["INCA0000031", "not a state", "High", "", ""],
    ]
    write_sheet(tmp_path / "tickets.xlsx", rows)

    def restart_after_some_patches() -> None:
        wait_until(lambda: len(patched(sim)) >= 8)
        sim.restart()  # every access token stops working: a 401, then a new token

    restarter = threading.Thread(target=restart_after_some_patches, daemon=True)
    restarter.start()
    done = run_command(
        [
            "tickets.xlsx",
            "--url",
            sim.url,
            "--user",
            USER,
            "--yes",
            "--rate",
            "50",
            "--verbose",
            "--log-file",
            "run.log",
            "--csv",
        ],
        tmp_path,
        env=live_env(tmp_path / "home", password=PASSWORD),
    )
    restarter.join(TIMEOUT)

    assert done.returncode == ExitStatus.ROWS_FAILED, done.stderr
    # The run did what it must for the search to mean something: a 401 mid-run, a renewal,
    # a log, a workbook, a CSV and a journal.
    assert [r.status for r in sim.requests if r.status == 401], "the restart caused a 401"
    tokens = issued.all()
    assert len(tokens) >= 4, "a first pair and a renewed pair"
    (workbook,) = results_files(tmp_path)
    outcomes = [r["Outcome"] for r in read_results(workbook)]
    assert outcomes.count("Updated") == 30 and "Failed" in outcomes and "Invalid" in outcomes
    places = everything_written(tmp_path)
    places.update(
        {f"state/{name}": data for name, data in everything_written(state_folder).items()}
    )
    places["stdout"] = done.stdout.encode("utf-8")
    places["stderr"] = done.stderr.encode("utf-8")
    assert "run.log" in places and places["run.log"].count(b" -> ") >= 31
    assert workbook.with_suffix(".csv").name in places
    assert any(name.startswith("state/journals/") for name in places), sorted(places)
    assert workbook.with_suffix(".journal.sqlite").name in places  # the copy beside the workbook

    # The search finds what is there: a ticket number is in every kind of place searched.
    found = hits("INCA0000017", places)
    assert "stderr" in found and "run.log" in found
    assert any(name.endswith(".xlsx!xl/worksheets/sheet1.xml") for name in found), found
    assert any(name.endswith(".csv") for name in found), found
    assert any(name.startswith("state/journals/") for name in found), found

    for form, secret in password_forms(PASSWORD).items():
        assert hits(secret, places) == [], f"the password ({form})"
    for number, token in enumerate(tokens):
        assert hits(token, places) == [], f"token {number}"


def test_repr_str_and_errors_hold_no_secret(sim) -> None:
    issued = IssuedTokens(sim)
    secret = Secret(PASSWORD)
    settings = load_settings(
        env={"CCS_PASSWORD": PASSWORD, "CCS_URL": sim.url, "CCS_USERNAME": USER}, cwd=Path.cwd()
    )
    client = CcsClient(sim.url, USER, settings.password, timeout=(5.0, 10.0))
    client.login()
    assert client.update(TicketUpdate("INCA0000001", priority="Low")).status == 204
    sim.restart()
    assert client.update(TicketUpdate("INCA0000002", priority="Low")).status == 204

    texts = {
        "repr(Secret)": repr(secret),
        "str(Secret)": str(secret),
        "format(Secret)": f"{secret}",
        "repr(Settings)": repr(settings),
        "str(Settings)": str(settings),
        "Settings.describe()": repr(settings.describe()),
        "repr(CcsClient)": repr(client),
        "str(CcsClient)": str(client),
        "vars(CcsClient) keys": repr(sorted(vars(client))),
    }
    wrong = CcsClient(sim.url, USER, Secret(PASSWORD + "x"), timeout=(5.0, 10.0))
    with pytest.raises(AuthError) as refused:
        wrong.login()
    texts["AuthError (password refused)"] = f"{refused.value} {refused.value.tip}"
    texts["repr(AuthError)"] = repr(refused.value)
    # Tokens that die before they can be used: renewed and re-sent, then a failure to retry.
    sim.configure(access_token_lifetime=0.01, latency_ms=60)
    sim.restart()
    died = client.update(TicketUpdate("INCA0000003", priority="Low"))
    texts["Reply (tokens that ran out)"] = repr(died)
    client.close()

    tokens = issued.all()
    assert len(tokens) >= 4
    secrets_ = {**password_forms(PASSWORD + "x"), **password_forms(PASSWORD)}
    for where, text in texts.items():
        for form, value in secrets_.items():
            assert value not in text, f"{where} shows the password ({form})"
        for token in tokens:
            assert token not in text, f"{where} shows a token"
    assert settings.password == secret and settings.password.reveal() == PASSWORD


def test_the_password_forms_are_all_different() -> None:
    forms = password_forms(PASSWORD)
    assert forms["Base64"] == "UCtzcy93PXJkIcOpw5/Dn+KCrA=="
    assert forms["Base64, URL-encoded"] == "UCtzcy93PXJkIcOpw5%2FDn%2BKCrA%3D%3D"
    assert len(set(forms.values())) == len(forms)
