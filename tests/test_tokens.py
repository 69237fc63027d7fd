"""Tokens that run out: renewed before expiry, and never taken for refused credentials.

A 401 on a token that simply ran out (while the request waited for its answer, or for its turn)
is not a refusal of the credentials: the token is renewed and the request re-sent. The run stops
for credentials only when the token endpoint refuses them, or a brand-new token is refused at
once (tests/test_bad_answers.py holds those cases against a server that refuses every token).
"""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import pytest
from helpers import (
    ADMIN,
    ADMIN_PASSWORD,
    by_row,
    live_args,
    live_env,
    read_results,
    results_files,
    run_command,
    ticket_rows,
    write_sheet,
)

from batch_updater.ccs import CcsClient, _seconds
from batch_updater.cli import ExitStatus
from batch_updater.settings import Secret
from batch_updater.tickets import TicketUpdate


def client_for(sim, **kwargs) -> CcsClient:
    kwargs.setdefault("timeout", (5.0, 10.0))
    return CcsClient(sim.url, ADMIN, Secret(ADMIN_PASSWORD), **kwargs)


def keep_updating(client: CcsClient, seconds: float) -> None:
    """Update one ticket after another for `seconds`, each accepted (204); then close."""
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        assert client.update(TicketUpdate(f"INCA{n:07d}", priority="Low")).status == 204
    client.close()


def statuses(sim, method: str = "PATCH") -> list[int | None]:
    return [r.status for r in sim.requests if r.method == method]


def test_short_lived_tokens_and_slow_answers_end_every_row_with_its_true_outcome(
    tmp_path: Path, make_simulator
) -> None:
    # Tokens live 0.8 s, every answer (token answers too) takes 300 ms: before the fix the run
    # stopped with "refused twice in a row with HTTP 401, even with a new token" (exit 3).
    sim = make_simulator(access_token_lifetime=0.8, latency_ms=300, denied_tickets={"INCA0000007"})
    rows = [*ticket_rows(24), ["INCA0099999", 2, "High", "", "No such ticket"]]
    write_sheet(tmp_path / "tickets.xlsx", rows)

    done = run_command(
        ["tickets.xlsx", *live_args(sim, "--rate", "20")], tmp_path, env=live_env(tmp_path / "home")
    )

    # Exit 1, for the two rows the server refused, and only for them.
    assert done.returncode == ExitStatus.ROWS_FAILED, done.stderr
    assert "twice in a row" not in done.stderr and "Traceback" not in done.stderr
    results = by_row(read_results(results_files(tmp_path)[0]))
    assert {row: r["Outcome"] for row, r in results.items() if r["Outcome"] != "Updated"} == {
        8: "Failed",  # INCA0000007: 403
        26: "Failed",  # INCA0099999: 404
    }
    assert (results[8]["HTTP Status"], results[26]["HTTP Status"]) == (403, 404)
    assert sum(1 for r in results.values() if r["Outcome"] == "Updated") == 23
    # Every update the workbook claims is one the server accepted.
    accepted = {r.ticket for r in sim.requests if r.method == "PATCH" and r.status == 204}
    assert accepted == {r["Ticket Number"] for r in results.values() if r["Outcome"] == "Updated"}


def test_many_workers_share_short_lived_tokens_without_an_auth_error(make_simulator) -> None:
    sim = make_simulator(access_token_lifetime=0.8, latency_ms=300)
    client = client_for(sim)
    client.login()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        replies = list(
            pool.map(
                lambda n: client.update(TicketUpdate(f"INCA{n:07d}", priority="Low")),
                range(1, 41),
            )
        )
    client.close()
    assert [r.status for r in replies] == [204] * 40
    # The run lasted several token lifetimes: tokens were renewed, mostly before they ran out.
    assert client.token_renewals >= 2
    assert statuses(sim).count(401) < client.token_renewals


def test_tokens_are_renewed_before_they_run_out_by_the_answers_expires_in(make_simulator) -> None:
    sim = make_simulator(access_token_lifetime=0.5, latency_ms=20)
    client = client_for(sim)
    keep_updating(client, 2.5)  # five token lifetimes
    # Each token was replaced before it ran out, so no request met a dead one (a loaded machine
    # may delay one request past its token's end: then it is renewed and re-sent).
    assert statuses(sim).count(401) <= 1
    assert client.token_renewals >= 4


def test_without_expires_in_the_lifetime_is_learned_from_a_token_that_stopped_working(
    make_simulator,
) -> None:
    # The token answer has no expires_in and the server's tokens live 0.5 s, not the 3600 s
    # assumed: the first token that served and then got a 401 teaches the client.
    sim = make_simulator(access_token_lifetime=0.5, latency_ms=20, token_expires_in=False)
    client = client_for(sim)
    keep_updating(client, 3.0)
    # One 401 to learn it (one more if a loaded machine delays a request); six without learning.
    assert 1 <= statuses(sim).count(401) <= 2


def test_the_configured_lifetime_is_used_when_the_answer_does_not_say(make_simulator) -> None:
    sim = make_simulator(access_token_lifetime=0.5, latency_ms=20, token_expires_in=False)
    client = client_for(sim, token_lifetime=0.5)
    keep_updating(client, 2.0)
    assert statuses(sim).count(401) <= 1
    assert client.token_renewals >= 3


def test_auth_token_lifetime_reaches_the_client_from_the_config_file(
    tmp_path: Path, make_simulator
) -> None:
    sim = make_simulator(access_token_lifetime=0.6, latency_ms=100, token_expires_in=False)
    (tmp_path / "short.yaml").write_text("auth:\n  token_lifetime: 0.6\n", encoding="utf-8")
    write_sheet(tmp_path / "tickets.xlsx", ticket_rows(20))
    done = run_command(
        [
            "tickets.xlsx",
            "--config",
            "short.yaml",
            *live_args(sim, "--rate", "10", "--concurrency", "2"),
        ],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )
    assert done.returncode == ExitStatus.OK, done.stderr
    grants = [r for r in sim.requests if r.endpoint == "tokens"]
    # About 2 s of run, tokens of 0.6 s: renewed ahead of time, nearly never by a 401.
    assert len(grants) >= 3
    assert statuses(sim).count(401) <= 1


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (3600, 3600.0),
        (0.5, 0.5),
        ("1800", 1800.0),
        (" 60 ", 60.0),
        (None, None),
        ("", None),
        ("soon", None),
        (True, None),
        (0, None),
        (-5, None),
        (float("nan"), None),
        (float("inf"), None),
        ([3600], None),
    ],
)
def test_expires_in_is_read_when_it_is_a_positive_number(value, seconds) -> None:
    assert _seconds(value) == seconds
