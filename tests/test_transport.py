"""Transport security from the command line: verified TLS, a CA bundle, --insecure, plain http."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from helpers import (
    live_args,
    live_env,
    read_summary,
    results_files,
    run_command,
    ticket_rows,
    write_sheet,
)

from batch_updater.cli import ExitStatus


@pytest.fixture
def tls_simulator(make_simulator, tmp_path: Path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = (
        tmp_path / "server.pem",
        tmp_path / "server.key",
        tmp_path / "corp-ca.pem",
    )
    cert.cert_chain_pems[0].write_to_path(cert_file)
    for blob in cert.cert_chain_pems[1:]:
        blob.write_to_path(cert_file, append=True)
    cert.private_key_pem.write_to_path(key_file)
    ca.cert_pem.write_to_path(ca_file)
    return make_simulator(certfile=str(cert_file), keyfile=str(key_file)), ca_file


def test_an_untrusted_certificate_stops_before_any_ticket(tmp_path: Path, tls_simulator) -> None:
    sim, _ = tls_simulator
    write_sheet(tmp_path / "tickets.xlsx", ticket_rows(3))
    done = run_command(
        ["tickets.xlsx", *live_args(sim, "--rate", "100")],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )
    assert done.returncode == ExitStatus.STOPPED
    assert f"Error: Could not verify the TLS certificate of 127.0.0.1:{sim.port}" in done.stderr
    assert (
        "Tip: If the server uses an internal certificate authority, give its certificate with --ca-bundle PATH"
        in done.stderr
    )
    assert not [r for r in sim.requests if r.endpoint == "tickets"]
    assert results_files(tmp_path) == []  # nothing was sent: no workbook


def test_a_ca_bundle_makes_it_trusted(tmp_path: Path, tls_simulator) -> None:
    sim, ca_file = tls_simulator
    write_sheet(tmp_path / "tickets.xlsx", ticket_rows(3))
    done = run_command(
        ["tickets.xlsx", *live_args(sim, "--rate", "100", "--ca-bundle", str(ca_file))],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )
    assert done.returncode == ExitStatus.OK, done.stderr
    assert "WARNING" not in done.stderr


def test_insecure_works_warns_and_is_recorded(tmp_path: Path, tls_simulator) -> None:
    sim, _ = tls_simulator
    write_sheet(tmp_path / "tickets.xlsx", ticket_rows(3))
    done = run_command(
        ["tickets.xlsx", *live_args(sim, "--rate", "100", "--insecure")],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )
    assert done.returncode == ExitStatus.OK, done.stderr
    assert f"WARNING: --insecure: the TLS certificate of {sim.url} is NOT verified" in done.stderr
    assert "Unverified HTTPS request" not in done.stderr
    summary = read_summary(results_files(tmp_path)[0])
    assert (
        "TLS certificate verification was turned OFF for this run (--insecure)." in summary.values()
    )


def test_plain_http_to_another_machine_is_refused_before_anything(tmp_path: Path) -> None:
    write_sheet(tmp_path / "tickets.xlsx", ticket_rows(2))
    done = run_command(
        [
            "tickets.xlsx",
            "--url",
            "http://ccs01.corp.example:12431",
            "--user",
            "corp\\svc",
            "--yes",
        ],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )
    assert done.returncode == ExitStatus.USAGE
    assert done.stderr.splitlines()[-2:] == [
        "Error: http://ccs01.corp.example:12431 is plain http: the password and the tickets would cross the network unencrypted.",
        "Tip: Use https://ccs01.corp.example:12431, or add --allow-http if this really is what you want.",
    ]
    assert results_files(tmp_path) == []


def test_https_to_a_plain_http_server_says_so(tmp_path: Path, simulator) -> None:
    url = simulator.url.replace("http://", "https://")
    write_sheet(tmp_path / "tickets.xlsx", ticket_rows(2))
    done = run_command(
        ["tickets.xlsx", "--url", url, "--user", "corp\\ccsadmin", "--yes"],
        tmp_path,
        env=live_env(tmp_path / "home"),
    )
    assert done.returncode == ExitStatus.STOPPED, done.stderr
    lines = done.stderr.splitlines()
    assert f"Error: {url} did not answer with TLS: is it http://, or the wrong port?" in lines
    assert "Traceback" not in done.stderr and "WRONG_VERSION" not in done.stderr
    assert results_files(tmp_path) == []  # nothing was sent
