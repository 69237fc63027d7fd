"""The CCS client against the simulator over loopback: tokens, updates, reads, and refusals."""

from __future__ import annotations

import socket
import time

import pytest
import trustme

from batch_updater.ccs import MAX_SENDS, CcsClient
from batch_updater.errors import AuthError, ServerUnreachable, TlsError
from batch_updater.settings import Secret
from batch_updater.tickets import TicketState, TicketUpdate

ADMIN, ADMIN_PASSWORD = "corp\\ccsadmin", "Demo-Passw0rd!"
AUDITOR, AUDITOR_PASSWORD = "corp\\auditor", "Audit-Passw0rd!"


def client_for(sim, user: str = ADMIN, password: str = ADMIN_PASSWORD, **kwargs) -> CcsClient:
    kwargs.setdefault("timeout", (5.0, 10.0))
    return CcsClient(sim.url, user, Secret(password), **kwargs)


def patches(sim) -> list:
    return [r for r in sim.requests if r.method == "PATCH"]


def test_update_sends_documented_fields_and_gets_204(simulator) -> None:
    client = client_for(simulator)
    update = TicketUpdate(
        "INCA0000009", TicketState.REMEDIATION_PERFORMED, "Patched", "Medium", "corp\\sysadmin"
    )
    reply = client.update(update)
    assert (reply.status, reply.message, reply.ok) == (204, "", True)
    ticket = simulator.ticket("INCA0000009")
    assert ticket["TicketState"] == 2
    assert ticket["AssignedTo"] == "corp\\sysadmin"
    assert patches(simulator)[-1].body == {
        "TicketNumber": "INCA0000009",
        "TicketState": 2,
        "TicketDescription": "Patched",
        "Priority": "Medium",
        "AssignedTo": "corp\\sysadmin",
    }


def test_unchanged_fields_are_left_out_of_the_request(simulator) -> None:
    before = simulator.ticket("INCA0000010")
    client_for(simulator).update(TicketUpdate("INCA0000010", priority="High"))
    after = simulator.ticket("INCA0000010")
    assert patches(simulator)[-1].body == {"TicketNumber": "INCA0000010", "Priority": "High"}
    assert after["TicketDescription"] == before["TicketDescription"]
    assert after["AssignedTo"] == before["AssignedTo"]


@pytest.mark.parametrize(
    ("ticket", "status", "message"),
    [
        ("INCA0099999", 404, "Ticket not found. Provide valid ticket number."),
        ("INCA0000995", 403, "You are not authorized to perform this task. Access is denied."),
    ],
)
def test_refusals_carry_the_servers_message(simulator, ticket, status, message) -> None:
    reply = client_for(simulator).update(TicketUpdate(ticket, priority="Low"))
    assert (reply.status, reply.message) == (status, message)


def test_the_role_less_user_gets_403(simulator) -> None:
    reply = client_for(simulator, AUDITOR, AUDITOR_PASSWORD).update(
        TicketUpdate("INCA0000001", priority="Low")
    )
    assert reply.status == 403


def test_wrong_password_is_an_auth_error_naming_the_user(simulator) -> None:
    client = client_for(simulator, password="wrong")
    with pytest.raises(AuthError) as caught:
        client.login()
    assert str(caught.value).startswith(
        "The CCS server refused the user name or password for corp\\ccsadmin (HTTP 400"
    )
    assert "wrong" not in str(caught.value)


def test_plain_password_encoding_must_match_the_server(make_simulator) -> None:
    sim = make_simulator(password_encoding="plain")
    with pytest.raises(AuthError):
        client_for(sim).login()
    client_for(sim, password_encoding="plain").login()


def test_token_request_is_form_encoded_and_survives_special_characters(make_simulator) -> None:
    from batch_updater.sim import SimUser

    user = SimUser("corp\\o'brien", "p+s/w=rd&x%20 é")
    sim = make_simulator(users=[user])
    client = client_for(sim, user.name, user.password)
    assert client.update(TicketUpdate("INCA0000001", priority="Low")).status == 204


def test_restart_mid_run_renews_the_token_and_resends_once(simulator) -> None:
    client = client_for(simulator)
    assert client.update(TicketUpdate("INCA0000001", priority="Low")).status == 204
    simulator.restart()
    assert client.update(TicketUpdate("INCA0000002", priority="Low")).status == 204
    statuses = [r.status for r in patches(simulator)]
    assert statuses == [204, 401, 204]
    assert client.token_renewals == 1


def test_expired_tokens_fall_back_to_the_password_grant(make_simulator) -> None:
    sim = make_simulator(access_token_lifetime=0.2, refresh_token_lifetime=0.2)
    client = client_for(sim)
    assert client.update(TicketUpdate("INCA0000001", priority="Low")).status == 204
    time.sleep(0.3)
    assert client.update(TicketUpdate("INCA0000002", priority="Low")).status == 204
    grants = [r for r in sim.requests if r.endpoint == "tokens"]
    assert len(grants) == 3  # password, refused refresh, password again


def test_tokens_that_die_on_the_way_are_renewed_not_called_refused_credentials(
    make_simulator,
) -> None:
    sim = make_simulator(access_token_lifetime=0.05)
    client = client_for(sim)
    client.login()
    time.sleep(0.1)
    # Every new token expires before the server reads the request: that is not a refusal of
    # the credentials (the token endpoint keeps issuing tokens), so no AuthError; the request is
    # re-sent with new tokens, then given back as a failure without an answer, to be retried.
    sim.configure(latency_ms=120)
    reply = client.update(TicketUpdate("INCA0000001", priority="Low"))
    assert reply.status is None and reply.sends == MAX_SENDS
    assert reply.message == (
        "HTTP 401 3 times: each new token ran out before the server read the request"
    )
    assert [r.status for r in patches(sim)] == [401] * MAX_SENDS


def test_many_threads_share_one_token_renewal(simulator) -> None:
    import concurrent.futures

    client = client_for(simulator)
    client.login()
    simulator.restart()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        replies = list(
            pool.map(
                lambda n: client.update(TicketUpdate(f"INCA{n:07d}", priority="Low")),
                range(1, 33),
            )
        )
    assert all(r.status == 204 for r in replies)
    assert client.token_renewals == 1
    client.close()


def test_get_ticket_returns_the_stored_values(simulator) -> None:
    reply = client_for(simulator).get_ticket("INCA0000003")
    assert reply.status == 200
    assert reply.body["TicketNumber"] == "INCA0000003"
    assert client_for(simulator).get_ticket("INCA0099999").status == 404


def test_throttling_reports_retry_after(simulator) -> None:
    simulator.configure(rate_limit=1, retry_after=4)
    client = client_for(simulator)
    client.update(TicketUpdate("INCA0000001", priority="Low"))
    reply = client.update(TicketUpdate("INCA0000002", priority="Low"))
    assert reply.status == 429
    assert reply.retry_after == 4.0
    assert reply.message


def test_server_errors_and_drops_are_replies_not_exceptions(simulator) -> None:
    client = client_for(simulator)
    client.login()
    simulator.configure(error_rate=1.0)
    reply = client.update(TicketUpdate("INCA0000001", priority="Low"))
    assert reply.status == 500
    assert reply.message.startswith("Server encountered an error while serving request.")
    simulator.configure(error_rate=0.0, unavailable_rate=1.0)
    assert client.update(TicketUpdate("INCA0000001", priority="Low")).status == 503
    simulator.configure(unavailable_rate=0.0, drop_rate=1.0)
    reply = client.update(TicketUpdate("INCA0000001", priority="Low"))
    assert reply.status is None
    assert reply.message.startswith("connection failed")


def test_timeout_is_a_reply(simulator) -> None:
    client = client_for(simulator, timeout=(2.0, 0.2))
    client.login()
    simulator.configure(latency_ms=600)
    reply = client.update(TicketUpdate("INCA0000001", priority="Low"))
    assert reply.status is None
    assert "timeout" in reply.message


def test_unreachable_server_names_the_url_and_what_to_check() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = CcsClient(f"http://127.0.0.1:{port}", ADMIN, Secret("x"), timeout=(2.0, 2.0))
    with pytest.raises(ServerUnreachable) as caught:
        client.login()
    assert str(caught.value) == f"Could not connect to http://127.0.0.1:{port}: connection refused."
    assert "12431" in caught.value.tip


@pytest.fixture(scope="module")
def tls_material(tmp_path_factory):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file, ca_file = folder / "server.pem", folder / "server.key", folder / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(cert_file)
    for blob in cert.cert_chain_pems[1:]:
        blob.write_to_path(cert_file, append=True)
    cert.private_key_pem.write_to_path(key_file)
    ca.cert_pem.write_to_path(ca_file)
    return cert_file, key_file, ca_file


def test_tls_verified_with_a_ca_bundle(make_simulator, tls_material) -> None:
    cert_file, key_file, ca_file = tls_material
    sim = make_simulator(certfile=str(cert_file), keyfile=str(key_file))
    assert sim.url.startswith("https://")
    client = client_for(sim, verify=str(ca_file))
    assert client.update(TicketUpdate("INCA0000001", priority="Low")).status == 204


def test_untrusted_certificate_stops_before_anything_is_sent(make_simulator, tls_material) -> None:
    cert_file, key_file, _ = tls_material
    sim = make_simulator(certfile=str(cert_file), keyfile=str(key_file))
    with pytest.raises(TlsError) as caught:
        client_for(sim).login()
    assert str(caught.value).startswith(
        f"Could not verify the TLS certificate of 127.0.0.1:{sim.port}"
    )
    assert "--ca-bundle" in caught.value.tip
    assert not [r for r in sim.requests if r.endpoint == "tickets"]


def test_repr_and_errors_never_show_the_password(simulator) -> None:
    client = client_for(simulator, password="S3cret-Value!")
    assert "S3cret" not in repr(client)
    with pytest.raises(AuthError) as caught:
        client.login()
    assert "S3cret" not in str(caught.value) and "S3cret" not in (caught.value.tip or "")


def test_a_netrc_entry_for_the_server_does_not_replace_the_token(
    simulator, tmp_path, monkeypatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password elsewhere\n", encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".netrc").write_text(netrc.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / ".netrc").chmod(0o600)
    reply = client_for(simulator).update(TicketUpdate("INCA0000001", priority="Low"))
    assert reply.status == 204
