"""The CCS simulator, tested over loopback HTTP the way the client will meet it.

Every status the contract lists is checked with its exact message, then the quirks (case, loose
types, the vendor's token request), the tokens' life cycle, the faults, the request log, the
inspection endpoints, TLS, concurrency and the `ccs-sim` command.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import trustme

from batch_updater.sim import RequestRecord, SeedFileError, Simulator, SimUser
from batch_updater.sim.__main__ import main as ccs_sim_main
from batch_updater.sim.faults import FaultInjector
from batch_updater.sim.requestlog import RequestLog

TOKENS = "/ccs/api/v1/oauth/tokens"
TICKETS = "/ccs/api/v1/RemediationTickets/"
ADMIN, ADMIN_PASSWORD = "corp\\ccsadmin", "Demo-Passw0rd!"
AUDITOR, AUDITOR_PASSWORD = "corp\\auditor", "Audit-Passw0rd!"

UNAUTHORIZED = {"Message": "Authorization has been denied for this request."}
FORBIDDEN = {"Message": "You are not authorized to perform this task. Access is denied."}
BAD_NUMBER = {"Message": "Ticket number is invalid or empty."}
BAD_STATE = {"Message": "Provide valid ticket state."}
NOTHING_TO_UPDATE = {"Message": "Provide ticket details to update."}
BAD_DETAILS = {"Message": "Provide valid ticket details."}
NOT_FOUND = {"Message": "Ticket not found. Provide valid ticket number."}
SERVER_ERROR = {
    "Message": "Server encountered an error while serving request. "
    "Please contact administrator if problem persists."
}
BAD_CREDENTIALS = {
    "error": "invalid_grant",
    "error_description": "The user name or password is incorrect.",
}


# -- helpers ----------------------------------------------------------------------------------


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def request_token(
    sim: Simulator,
    username: str = ADMIN,
    password: str = ADMIN_PASSWORD,
    *,
    encode: bool = True,
    **kwargs: Any,
) -> requests.Response:
    """The password grant, form-encoded as a correct client sends it."""
    form = {
        "grant_type": "password",
        "username": username,
        "password": b64(password) if encode else password,
    }
    return requests.post(sim.url + TOKENS, data=form, timeout=10, **kwargs)


def get_token(
    sim: Simulator, username: str = ADMIN, password: str = ADMIN_PASSWORD, **kwargs: Any
) -> str:
    response = request_token(sim, username, password, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def patch(
    sim: Simulator,
    token: str,
    body: Any,
    *,
    session: Any = requests,
    path: str = TICKETS,
    **kwargs: Any,
) -> requests.Response:
    """PATCH `body` (a dict/list as JSON, or str/bytes as they are) to the tickets endpoint."""
    if isinstance(body, (str, bytes)):
        kwargs["data"] = body
        kwargs.setdefault("headers", {})["Content-Type"] = "application/json"
    else:
        kwargs["json"] = body
    kwargs.setdefault("headers", {}).update(auth(token))
    return session.patch(sim.url + path, timeout=10, **kwargs)


def get_ticket(
    sim: Simulator, token: str, number: str, key: str = "TicketNumber"
) -> requests.Response:
    return requests.get(
        sim.url + TICKETS.rstrip("/"), params={key: number}, headers=auth(token), timeout=10
    )


def update(number: str = "INCA0000009", **fields: Any) -> dict[str, Any]:
    """A valid update body (Priority included, as the vendor page requires) with `fields` on top."""
    return {"TicketNumber": number, "TicketState": 2, "Priority": "Medium", **fields}


@pytest.fixture
def token(simulator: Simulator) -> str:
    """An administrator's access token for the `simulator` fixture."""
    return get_token(simulator)


# -- tokens -----------------------------------------------------------------------------------


def test_password_grant_returns_an_access_and_a_refresh_token(simulator: Simulator) -> None:
    response = request_token(simulator)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    data = response.json()
    assert data["token_type"] == "bearer"
    assert data["expires_in"] == 3600
    assert len(data["access_token"]) >= 40 and len(data["refresh_token"]) >= 40
    assert data["access_token"] != data["refresh_token"]


def test_user_names_are_compared_case_insensitively(simulator: Simulator) -> None:
    assert request_token(simulator, "CORP\\CcsAdmin").status_code == 200


@pytest.mark.parametrize(
    "form",
    [
        {"grant_type": "password", "username": ADMIN, "password": b64("wrong")},
        {"grant_type": "password", "username": "corp\\nobody", "password": b64(ADMIN_PASSWORD)},
        {"grant_type": "password", "username": ADMIN},
        {"grant_type": "password", "password": b64(ADMIN_PASSWORD)},
        {"grant_type": "password", "username": "", "password": ""},
    ],
    ids=["wrong-password", "unknown-user", "no-password", "no-user", "empty"],
)
def test_bad_credentials_are_invalid_grant(simulator: Simulator, form: dict[str, str]) -> None:
    response = requests.post(simulator.url + TOKENS, data=form, timeout=10)

    assert response.status_code == 400
    assert response.json() == BAD_CREDENTIALS


@pytest.mark.parametrize("grant_type", ["client_credentials", None])
def test_unknown_grant_type_is_unsupported(simulator: Simulator, grant_type: str | None) -> None:
    form = {"username": ADMIN, "password": b64(ADMIN_PASSWORD)}
    if grant_type:
        form["grant_type"] = grant_type

    response = requests.post(simulator.url + TOKENS, data=form, timeout=10)

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_base64_encoding_refuses_a_plain_password(simulator: Simulator) -> None:
    response = request_token(simulator, encode=False)

    assert response.status_code == 400
    assert response.json() == BAD_CREDENTIALS


def test_plain_encoding_takes_the_password_as_typed(simulator: Simulator) -> None:
    simulator.configure(password_encoding="plain")

    assert request_token(simulator, encode=False).status_code == 200
    assert request_token(simulator, encode=True).json() == BAD_CREDENTIALS


def test_the_vendor_samples_form_body_labelled_json_is_accepted(simulator: Simulator) -> None:
    # Built by hand and sent as application/json, exactly as the vendor's sample script does.
    payload = f"grant_type=password&username={ADMIN}&password={b64(ADMIN_PASSWORD)}"

    response = requests.post(
        simulator.url + TOKENS,
        data=payload,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )

    assert response.status_code == 200, response.text


def test_a_json_token_request_is_accepted(simulator: Simulator) -> None:
    form = {"grant_type": "password", "username": ADMIN, "password": b64(ADMIN_PASSWORD)}

    response = requests.post(simulator.url + TOKENS, json=form, timeout=10)

    assert response.status_code == 200


def test_an_expired_access_token_gets_401(simulator: Simulator) -> None:
    simulator.configure(access_token_lifetime=0.3)
    response = request_token(simulator)
    assert response.json()["expires_in"] == 0.3
    token = response.json()["access_token"]
    assert patch(simulator, token, update()).status_code == 204

    time.sleep(0.5)
    response = patch(simulator, token, update())

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED


def test_refresh_grant_gives_a_new_pair_and_uses_up_the_old_refresh_token(
    simulator: Simulator,
) -> None:
    first = request_token(simulator).json()
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}

    second = requests.post(simulator.url + TOKENS, data=form, timeout=10)
    again = requests.post(simulator.url + TOKENS, data=form, timeout=10)

    assert second.status_code == 200
    new = second.json()
    assert new["access_token"] != first["access_token"]
    assert new["refresh_token"] != first["refresh_token"]
    assert patch(simulator, new["access_token"], update()).status_code == 204
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_an_expired_refresh_token_is_refused(simulator: Simulator) -> None:
    simulator.configure(refresh_token_lifetime=0.3)
    refresh = request_token(simulator).json()["refresh_token"]

    time.sleep(0.5)
    response = requests.post(
        simulator.url + TOKENS,
        data={"grant_type": "refresh_token", "refresh_token": refresh},
        timeout=10,
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("how", ["in-process", "endpoint"])
def test_a_restart_invalidates_access_tokens_but_not_refresh_tokens(
    simulator: Simulator, how: str
) -> None:
    tokens = request_token(simulator).json()
    assert patch(simulator, tokens["access_token"], update()).status_code == 204

    if how == "in-process":
        simulator.restart()
    else:
        assert requests.post(simulator.url + "/_sim/restart", timeout=10).status_code == 204

    response = patch(simulator, tokens["access_token"], update())
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    refreshed = requests.post(
        simulator.url + TOKENS,
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        timeout=10,
    )
    assert refreshed.status_code == 200
    assert patch(simulator, refreshed.json()["access_token"], update()).status_code == 204


# -- PATCH: success and the documented refusals -----------------------------------------------


def test_an_update_answers_204_with_no_body_and_changes_the_ticket(
    simulator: Simulator, token: str
) -> None:
    before = simulator.ticket("INCA0000009")
    body = {
        "TicketNumber": "INCA0000009",
        "TicketState": 2,
        "TicketDescription": "Patched",
        "Priority": "High",
        "AssignedTo": "corp\\sysadmin",
    }

    response = patch(simulator, token, body)

    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["Content-Length"] == "0"
    after = simulator.ticket("INCA0000009")
    assert {name: after[name] for name in body} == body
    assert after["Standard"] == before["Standard"] and after["Asset"] == before["Asset"]
    assert after["LastModified"] != before["LastModified"]
    assert after["VerificationJobs"] == 1  # state 2 starts the verification job


def test_fields_left_out_are_left_as_they_are(simulator: Simulator, token: str) -> None:
    before = simulator.ticket("INCA0000010")

    response = patch(simulator, token, {"TicketNumber": "INCA0000010", "Priority": "High"})

    assert response.status_code == 204

    after = simulator.ticket("INCA0000010")
    assert after["Priority"] == "High"
    for name in ("TicketState", "TicketDescription", "AssignedTo"):
        assert after[name] == before[name]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic Y29ycDp4"}],
    ids=["no-header", "unknown-token", "not-bearer"],
)
def test_missing_or_unknown_token_gets_401(simulator: Simulator, headers: dict[str, str]) -> None:
    response = requests.patch(simulator.url + TICKETS, json=update(), headers=headers, timeout=10)

    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_401_comes_before_any_check_of_the_body(simulator: Simulator) -> None:
    response = patch(simulator, "expired", "this is not JSON")

    assert response.status_code == 401


def test_a_user_without_the_role_gets_403_on_everything(simulator: Simulator) -> None:
    token = get_token(simulator, AUDITOR, AUDITOR_PASSWORD)

    assert patch(simulator, token, update()).json() == FORBIDDEN
    assert patch(simulator, token, "not even JSON").status_code == 403
    response = get_ticket(simulator, token, "INCA0000001")
    assert response.status_code == 403
    assert response.json() == FORBIDDEN
    assert simulator.ticket("INCA0000009")["TicketState"] == 1


BAD_BODIES = [
    ("not JSON", "{TicketNumber: INCA0000009", BAD_DETAILS),
    ("array", json.dumps([update()]), BAD_DETAILS),
    ("string", json.dumps("INCA0000009"), BAD_DETAILS),
    ("empty body", "", BAD_DETAILS),
    ("unknown key", update(Comment="x"), BAD_DETAILS),
    ("key twice", {**update(), "ticketstate": 3}, BAD_DETAILS),
    ("no number", {"TicketState": 2, "Priority": "Low"}, BAD_NUMBER),
    ("number not a string", update(TicketNumber=9), BAD_NUMBER),
    ("empty number", update(TicketNumber=""), BAD_NUMBER),
    ("blank number", update(TicketNumber="   "), BAD_NUMBER),
    ("null number", update(TicketNumber=None), BAD_NUMBER),
    ("state 0", update(TicketState=0), BAD_STATE),
    ("state 6", update(TicketState=6), BAD_STATE),
    ("state 2.5", update(TicketState=2.5), BAD_STATE),
    ("state 2.0", update(TicketState=2.0), BAD_STATE),
    ("state x", update(TicketState="x"), BAD_STATE),
    ("state true", update(TicketState=True), BAD_STATE),
    ("state null", update(TicketState=None), BAD_STATE),
    ("state '7'", update(TicketState="7"), BAD_STATE),
    ("only the number", {"TicketNumber": "INCA0000009"}, NOTHING_TO_UPDATE),
    ("no priority", {"TicketNumber": "INCA0000009", "TicketState": 2}, BAD_DETAILS),
    ("priority unknown", update(Priority="Urgent"), BAD_DETAILS),
    ("priority 4", update(Priority=4), BAD_DETAILS),
    ("priority '0'", update(Priority="0"), BAD_DETAILS),
    ("priority true", update(Priority=True), BAD_DETAILS),
    ("priority null", update(Priority=None), BAD_DETAILS),
    ("description a number", update(TicketDescription=5), BAD_DETAILS),
    ("description null", update(TicketDescription=None), BAD_DETAILS),
    ("description too long", update(TicketDescription="x" * 4001), BAD_DETAILS),
    ("assignee a number", update(AssignedTo=7), BAD_DETAILS),
]


@pytest.mark.parametrize(
    ("body", "expected"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
def test_invalid_requests_get_400_with_the_vendors_message(
    simulator: Simulator, token: str, body: Any, expected: dict[str, str]
) -> None:
    response = patch(simulator, token, body)

    assert response.status_code == 400
    assert response.json() == expected
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert simulator.ticket("INCA0000009")["TicketState"] == 1


def test_a_description_of_the_maximum_length_is_accepted(simulator: Simulator, token: str) -> None:
    assert patch(simulator, token, update(TicketDescription="x" * 4000)).status_code == 204


def test_priority_can_be_made_optional(simulator: Simulator, token: str) -> None:
    simulator.configure(require_priority=False)

    response = patch(simulator, token, {"TicketNumber": "INCA0000009", "TicketState": 3})

    assert response.status_code == 204
    assert simulator.ticket("INCA0000009")["TicketState"] == 3


def test_an_unknown_ticket_gets_404(simulator: Simulator, token: str) -> None:
    response = patch(simulator, token, update(TicketNumber="INCA9999999"))

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_a_ticket_number_with_spaces_is_not_trimmed_by_the_server(
    simulator: Simulator, token: str
) -> None:
    assert patch(simulator, token, update(TicketNumber=" INCA0000009")).json() == NOT_FOUND


def test_a_ticket_of_a_restricted_standard_gets_403(simulator: Simulator, token: str) -> None:
    assert simulator.ticket("INCA0000995")["Standard"] == "SOX Finance (restricted)"

    response = patch(simulator, token, update(TicketNumber="INCA0000995"))

    assert response.status_code == 403
    assert response.json() == FORBIDDEN
    assert simulator.ticket("INCA0000995")["TicketState"] == 1
    assert patch(simulator, token, update(TicketNumber="INCA0000989")).status_code == 204
    assert patch(simulator, token, update(TicketNumber="INCA0001000")).status_code == 204


def test_explicitly_denied_tickets_get_403(simulator: Simulator, token: str) -> None:
    simulator.configure(denied_tickets={"inca0000005"})

    assert patch(simulator, token, update(TicketNumber="INCA0000005")).json() == FORBIDDEN
    assert get_ticket(simulator, token, "INCA0000005").status_code == 403
    assert patch(simulator, token, update(TicketNumber="INCA0000006")).status_code == 204


def test_404_comes_before_the_permission_check(simulator: Simulator, token: str) -> None:
    simulator.configure(denied_tickets={"INCA9999999"})

    assert patch(simulator, token, update(TicketNumber="INCA9999999")).status_code == 404


def test_other_methods_and_paths_are_refused(simulator: Simulator, token: str) -> None:
    post = requests.post(simulator.url + TICKETS, json=update(), headers=auth(token), timeout=10)
    unknown = requests.get(simulator.url + "/ccs/api/v1/Nothing", headers=auth(token), timeout=10)

    assert post.status_code == 405
    assert post.headers["Allow"] == "GET, PATCH"
    assert unknown.status_code == 404
    assert "Message" in unknown.json()


# -- PATCH: the quirks the contract lists -------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/ccs/api/v1/RemediationTickets/",
        "/ccs/api/v1/RemediationTickets",
        "/ccs/api/v1/remediationtickets/",
        "/CCS/API/V1/REMEDIATIONTICKETS",
    ],
)
def test_the_path_is_matched_case_insensitively(
    simulator: Simulator, token: str, path: str
) -> None:
    assert patch(simulator, token, update(), path=path).status_code == 204


def test_field_names_and_ticket_numbers_are_matched_case_insensitively(
    simulator: Simulator, token: str
) -> None:
    body = {
        "ticketnumber": "inca0000009",
        "TICKETSTATE": 4,
        "ticketDescription": "Description text",
        "priority": "low",
        "assignedTo": "corp\\sysadmin",
    }

    assert patch(simulator, token, body).status_code == 204

    ticket = simulator.ticket("INCA0000009")
    assert ticket["TicketNumber"] == "INCA0000009"
    assert (ticket["TicketState"], ticket["TicketDescription"]) == (4, "Description text")
    assert (ticket["Priority"], ticket["AssignedTo"]) == ("Low", "corp\\sysadmin")


def test_the_vendor_samples_update_is_accepted(simulator: Simulator, token: str) -> None:
    payload = (
        ' {"TicketNumber":"INCA0000001","ticketDescription":"Description updated",'
        '"Priority":"Low","AssignedTo":"AzadRai", "TicketState":"4"}'
    )

    response = patch(simulator, token, payload, path="/ccs/api/v1/remediationtickets/")

    assert response.status_code == 204

    assert simulator.ticket("INCA0000001")["TicketState"] == 4


@pytest.mark.parametrize(
    ("state", "priority", "stored"),
    [
        ("2", "3", (2, "High")),
        (" 5 ", 1, (5, "Low")),
        (3, "2", (3, "Medium")),
        (1, "HIGH", (1, "High")),
    ],
)
def test_numbers_may_come_as_strings_and_priorities_as_numbers(
    simulator: Simulator, token: str, state: Any, priority: Any, stored: tuple[int, str]
) -> None:
    assert patch(simulator, token, update(TicketState=state, Priority=priority)).status_code == 204

    ticket = simulator.ticket("INCA0000009")
    assert (ticket["TicketState"], ticket["Priority"]) == stored


def test_a_chunked_body_is_read(simulator: Simulator, token: str) -> None:
    chunks = iter([b'{"TicketNumber": "INCA0000009", ', b'"TicketState": 3, "Priority": "Low"}'])

    response = requests.patch(
        simulator.url + TICKETS,
        data=chunks,
        headers={**auth(token), "Content-Type": "application/json"},
        timeout=10,
    )

    assert response.status_code == 204
    assert simulator.ticket("INCA0000009")["TicketState"] == 3


def test_sticky_fields_are_acknowledged_but_not_stored(simulator: Simulator, token: str) -> None:
    before = simulator.ticket("INCA0000009")
    simulator.configure(sticky_fields={"inca0000009": {"ticketdescription"}})

    response = patch(simulator, token, update(TicketDescription="Patched", TicketState=3))

    assert response.status_code == 204
    after = simulator.ticket("INCA0000009")
    assert after["TicketDescription"] == before["TicketDescription"]
    assert after["TicketState"] == 3


# -- GET --------------------------------------------------------------------------------------


def test_get_returns_the_ticket(simulator: Simulator, token: str) -> None:
    patch(simulator, token, update(TicketDescription="Patched"))

    response = get_ticket(simulator, token, "inca0000009", key="ticketnumber")

    assert response.status_code == 200
    data = response.json()
    assert data == {
        "TicketNumber": "INCA0000009",
        "TicketState": 2,
        "TicketStatus": "Remediation Performed",
        "TicketDescription": "Patched",
        "Priority": "Medium",
        "AssignedTo": simulator.ticket("INCA0000009")["AssignedTo"],
        "Standard": simulator.ticket("INCA0000009")["Standard"],
        "Asset": simulator.ticket("INCA0000009")["Asset"],
        "LastModified": data["LastModified"],
    }
    modified = datetime.fromisoformat(data["LastModified"].replace("Z", "+00:00"))
    assert abs(datetime.now(timezone.utc) - modified) < timedelta(minutes=1)


def test_get_refusals(simulator: Simulator, token: str) -> None:
    assert get_ticket(simulator, token, "INCA9999999").json() == NOT_FOUND
    assert get_ticket(simulator, token, "INCA0000990").json() == FORBIDDEN
    assert get_ticket(simulator, token, "").json() == BAD_NUMBER
    assert get_ticket(simulator, "nope", "INCA0000001").json() == UNAUTHORIZED


def test_search_by_state_pages_and_leaves_out_forbidden_tickets(
    make_simulator: Any,
) -> None:
    sim = make_simulator(tickets=1000)
    token = get_token(sim)
    patch(sim, token, update(TicketNumber="INCA0000001"))
    url = sim.url + "/ccs/api/v1/RemediationTickets"

    def search(query: str) -> requests.Response:
        return requests.get(f"{url}?{query}", headers=auth(token), timeout=10)

    first = search("Fields=(TicketState=1,TicketProviderType=2)&Page=0&PageSize=50").json()
    assert [t["TicketNumber"] for t in first] == [f"INCA{n:07d}" for n in range(2, 52)]
    last = search("Fields=(TicketState=1)&Page=19&PageSize=50").json()
    assert "INCA0000990" not in [t["TicketNumber"] for t in last]
    assert len(last) == 999 - 10 - 19 * 50
    assert [t["TicketNumber"] for t in search("Fields=(TicketState=2)").json()] == ["INCA0000001"]
    assert search("Fields=(Colour=red)").json() == BAD_DETAILS


# -- faults -----------------------------------------------------------------------------------


def test_fail_tickets_always_answer_500(simulator: Simulator, token: str) -> None:
    simulator.configure(fail_tickets={"INCA0000007"})

    responses = [patch(simulator, token, update(TicketNumber="inca0000007")) for _ in range(3)]

    assert [r.status_code for r in responses] == [500, 500, 500]
    assert responses[0].json() == SERVER_ERROR
    assert simulator.ticket("INCA0000007")["TicketState"] == 1
    assert patch(simulator, token, update(TicketNumber="INCA0000008")).status_code == 204


def test_injected_500(simulator: Simulator, token: str) -> None:
    simulator.configure(error_rate=1.0)

    response = patch(simulator, token, update())

    assert response.status_code == 500
    assert response.json() == SERVER_ERROR
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert simulator.ticket("INCA0000009")["TicketState"] == 1
    assert simulator.requests[-1].fault == "error"


def test_injected_503_is_plain_text_like_iis(simulator: Simulator, token: str) -> None:
    simulator.configure(unavailable_rate=1.0)

    response = patch(simulator, token, update())

    assert response.status_code == 503
    assert response.text == "Service Unavailable"
    assert response.headers["Content-Type"].startswith("text/plain")


def test_injected_drop_closes_the_connection_without_an_answer(
    simulator: Simulator, token: str
) -> None:
    simulator.configure(drop_rate=1.0)

    with pytest.raises(requests.ConnectionError):
        patch(simulator, token, update())

    record = simulator.requests[-1]
    assert (record.status, record.fault, record.ticket) == (None, "drop", "INCA0000009")
    assert simulator.ticket("INCA0000009")["TicketState"] == 1
    simulator.configure(drop_rate=0.0)
    assert patch(simulator, token, update()).status_code == 204


def test_faults_spare_the_token_endpoint_unless_asked(simulator: Simulator) -> None:
    simulator.configure(error_rate=1.0)
    assert request_token(simulator).status_code == 200

    simulator.configure(token_faults=True)
    assert request_token(simulator).status_code == 500


def test_faults_are_reproducible_with_a_seed(make_simulator: Any) -> None:
    def statuses(sim: Simulator) -> list[int]:
        token = get_token(sim)
        with requests.Session() as session:
            return [patch(sim, token, update(), session=session).status_code for _ in range(20)]

    first = statuses(make_simulator(seed=7, error_rate=0.5))
    second = statuses(make_simulator(seed=7, error_rate=0.5))

    assert first == second
    assert set(first) == {204, 500}


def test_rate_limit_answers_429_with_retry_after_in_seconds(
    simulator: Simulator, token: str
) -> None:
    simulator.configure(rate_limit=3, retry_after=2)

    with requests.Session() as session:
        statuses = [patch(simulator, token, update(), session=session) for _ in range(6)]

    assert [r.status_code for r in statuses[:3]] == [204, 204, 204]
    throttled = [r for r in statuses if r.status_code == 429]
    assert throttled
    assert throttled[0].headers["Retry-After"] == "2"
    assert "message" in throttled[0].json()
    assert simulator.max_requests_in_window(1.0, "PATCH", statuses={204}) <= 3
    assert simulator.max_requests_in_window(1.0, "PATCH") == 6


def test_a_throttled_request_does_not_use_up_the_window(simulator: Simulator, token: str) -> None:
    simulator.configure(rate_limit=2)
    with requests.Session() as session:
        first = [patch(simulator, token, update(), session=session).status_code for _ in range(5)]
        time.sleep(1.05)
        later = [patch(simulator, token, update(), session=session).status_code for _ in range(2)]

    assert first[:2] == [204, 204] and 429 in first
    assert later == [204, 204]


def test_rate_limit_with_retry_after_as_an_http_date(simulator: Simulator, token: str) -> None:
    simulator.configure(rate_limit=1, retry_after=5, retry_after_format="http-date")

    with requests.Session() as session:
        responses = [patch(simulator, token, update(), session=session) for _ in range(3)]

    throttled = [r for r in responses if r.status_code == 429]
    assert throttled
    when = parsedate_to_datetime(throttled[0].headers["Retry-After"])
    assert when.tzinfo is not None
    now = datetime.now(timezone.utc)
    assert now <= when + timedelta(seconds=2) and when <= now + timedelta(seconds=8)


def test_the_token_endpoint_is_not_rate_limited(simulator: Simulator) -> None:
    simulator.configure(rate_limit=1)

    assert [request_token(simulator).status_code for _ in range(3)] == [200, 200, 200]


def test_latency_is_added_to_every_api_answer(simulator: Simulator, token: str) -> None:
    simulator.configure(latency_ms=150)

    started = time.monotonic()
    response = patch(simulator, token, update())
    took = time.monotonic() - started

    assert response.status_code == 204
    assert took >= 0.14
    assert simulator.requests[-1].elapsed >= 0.14


def test_jitter_adds_a_random_delay(simulator: Simulator, token: str) -> None:
    simulator.configure(jitter_ms=100)

    with requests.Session() as session:
        for _ in range(10):
            patch(simulator, token, update(), session=session)

    elapsed = [record.elapsed for record in simulator.requests if record.method == "PATCH"]
    # Uniform 0-100 ms: a mean of 50 ms; below 10 ms would need ten very small draws.
    assert sum(elapsed) / len(elapsed) > 0.010


def test_close_does_not_wait_for_latency_or_idle_connections(make_simulator: Any) -> None:
    sim = make_simulator()
    token = get_token(sim)
    sim.configure(latency_ms=30_000)
    session = requests.Session()
    errors: list[BaseException] = []

    def slow_patch() -> None:
        try:
            patch(sim, token, update(), session=session)
        except requests.RequestException as exc:
            errors.append(exc)

    thread = threading.Thread(target=slow_patch)
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    sim.close()
    thread.join(10)

    assert time.monotonic() - started < 5
    assert not thread.is_alive()
    session.close()


# -- settings ---------------------------------------------------------------------------------


def test_configure_rejects_unknown_settings_with_a_suggestion(simulator: Simulator) -> None:
    with pytest.raises(TypeError, match="Did you mean 'error_rate'"):
        simulator.configure(eror_rate=0.5)
    with pytest.raises(ValueError, match="error_rate must be >= 0 and <= 1"):
        simulator.configure(error_rate=1.5)
    with pytest.raises(ValueError, match="password_encoding must be one of base64, plain"):
        simulator.configure(password_encoding="rot13")
    with pytest.raises(ValueError, match="'Colour' is not a field"):
        simulator.configure(sticky_fields={"INCA0000001": ["Colour"]})


def test_constructor_rejects_unknown_settings() -> None:
    with pytest.raises(TypeError, match="Did you mean 'latency_ms'"):
        Simulator(port=0, latency=5)


# -- tickets ----------------------------------------------------------------------------------


def test_generated_tickets_are_deterministic(make_simulator: Any) -> None:
    first, second = make_simulator(tickets=12, seed=1), make_simulator(tickets=12, seed=2)

    assert first.tickets() == second.tickets()
    assert len(first.tickets()) == 12
    ticket = first.ticket("INCA0000012")
    assert ticket["TicketState"] == 1
    assert ticket["Priority"] == "High"
    assert re.fullmatch(r"corp\\[a-z]+", ticket["AssignedTo"])
    assert ticket["Standard"] and ticket["Asset"] in ticket["TicketDescription"]
    assert [t["Priority"] for t in first.tickets()[:4]] == ["Low", "Medium", "High", "Low"]
    with pytest.raises(KeyError):
        first.ticket("INCA0000013")


def test_tickets_from_a_yaml_seed_file(make_simulator: Any, tmp_path: Path) -> None:
    seed = tmp_path / "tickets.yaml"
    seed.write_text(
        "- TicketNumber: INC-42\n"
        "  TicketState: 3\n"
        "  TicketDescription: Disable SMBv1\n"
        "  Priority: 1\n"
        "  AssignedTo: corp\\jdoe\n"
        "  Standard: CIS\n"
        "  Asset: WINSRV-0042\n"
        "- ticketnumber: INC-43\n",
        encoding="utf-8",
    )
    sim = make_simulator(seed_file=seed)
    token = get_token(sim)

    data = get_ticket(sim, token, "inc-42").json()

    assert data["TicketState"] == 3 and data["TicketStatus"] == "Verified"
    assert (data["TicketDescription"], data["Priority"]) == ("Disable SMBv1", "Low")
    assert data["AssignedTo"] == "corp\\jdoe"
    assert (data["Standard"], data["Asset"]) == ("CIS", "WINSRV-0042")
    assert sim.ticket("INC-43")["TicketState"] == 1
    assert len(sim.tickets()) == 2


def test_tickets_from_a_csv_seed_file(make_simulator: Any, tmp_path: Path) -> None:
    seed = tmp_path / "tickets.csv"
    seed.write_text(
        "TicketNumber,TicketState,TicketDescription,Priority,AssignedTo,Standard,Asset\n"
        'INCA0000100,2,"Patched, rebooted",high,corp\\jdoe,SOX Finance (restricted),LEDGER\n'
        "INCA0000101,,,,,,\n",
        encoding="utf-8-sig",
    )
    sim = make_simulator(seed_file=seed)
    token = get_token(sim)

    assert sim.ticket("INCA0000100")["TicketDescription"] == "Patched, rebooted"
    assert sim.ticket("INCA0000100")["Priority"] == "High"
    assert get_ticket(sim, token, "INCA0000100").json() == FORBIDDEN  # restricted standard
    assert patch(sim, token, update(TicketNumber="INCA0000101")).status_code == 204


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("TicketNumber,Colour\nX1,red\n", "tickets.csv, entry 1: unknown field 'Colour'"),
        ("TicketNumber,TicketState\nX1,9\n", "entry 1: TicketState '9' is not a ticket state"),
        ("TicketNumber,Priority\nX1,Urgent\n", "entry 1: Priority 'Urgent' is not a priority"),
        ("TicketNumber\nX1\nx1\n", "tickets.csv, entry 2: ticket x1 appears twice"),
        ("TicketNumber,TicketState\n,1\n", "tickets.csv, entry 1: TicketNumber is missing"),
    ],
)
def test_a_bad_seed_file_says_where(tmp_path: Path, text: str, message: str) -> None:
    seed = tmp_path / "tickets.csv"
    seed.write_text(text, encoding="utf-8")

    with pytest.raises(SeedFileError, match=re.escape(message)):
        Simulator(port=0, seed_file=seed)


# -- the request log and the inspection endpoints -----------------------------------------------


def test_the_request_log_records_each_request(simulator: Simulator, token: str) -> None:
    simulator.clear_requests()
    patch(simulator, token, update(TicketNumber="inca0000009", TicketDescription="A"))
    patch(simulator, token, update(TicketNumber="INCA9999999"))
    get_ticket(simulator, token, "INCA0000009")

    records = simulator.requests

    assert [(r.method, r.status) for r in records] == [("PATCH", 204), ("PATCH", 404), ("GET", 200)]
    first = records[0]
    assert (first.ticket, first.user, first.endpoint) == ("inca0000009", ADMIN, "tickets")
    assert first.body == update(TicketNumber="inca0000009", TicketDescription="A")
    assert first.path == TICKETS and first.fault is None
    assert records[2].ticket == "INCA0000009" and records[2].body is None
    assert records[0].t <= records[1].t <= records[2].t
    assert abs(first.wall - time.time()) < 60
    assert simulator.patch_count("INCA0000009") == 1
    assert simulator.patch_count("INCA9999999", status=404) == 1
    assert simulator.max_requests_in_window(seconds=60) == 3
    assert simulator.max_requests_in_window(seconds=60, method="PATCH") == 2
    with pytest.raises(AttributeError):
        first.status = 500  # type: ignore[misc]


def test_token_requests_are_logged_without_the_password(simulator: Simulator) -> None:
    request_token(simulator)

    record = simulator.requests[-1]

    assert (record.endpoint, record.user, record.status) == ("tokens", ADMIN, 200)
    assert record.body is None
    assert simulator.max_requests_in_window() == 0
    assert simulator.max_requests_in_window(include_tokens=True) == 1


def test_the_busiest_window_is_half_open() -> None:
    log = RequestLog()
    for t in (0.0, 0.5, 1.0, 1.5, 1.6):
        log.append(RequestRecord(t, t, "PATCH", TICKETS, "", "tickets", "X", ADMIN, 204))

    assert log.max_in_window(1.0) == 3  # [1.0, 2.0): 1.0, 1.5, 1.6; [0.5, 1.5) has only two
    assert log.max_in_window(0.5) == 2  # [1.5, 2.0): 1.5, 1.6; [1.0, 1.5) has only 1.0
    assert log.max_in_window(10.0, "GET") == 0


def test_the_rate_limit_never_passes_more_than_the_limit_in_any_window() -> None:
    faults = FaultInjector(seed=1)
    arrivals = [0.0, 0.1, 0.2, 0.99, 1.0, 1.05, 1.1, 2.5]

    refused = [faults.throttled(t, 2) for t in arrivals]

    # 0.2 and 0.99 find [0.0, 0.1] in the window; 1.0 finds only 0.1; 1.05 finds 0.1 and 1.0;
    # 1.1 finds 1.0 again (0.1 has left), then 2.5 finds an empty window.
    assert refused == [False, False, True, True, False, True, False, False]


def test_a_user_can_be_denied_an_asset(make_simulator: Any) -> None:
    user = SimUser("corp\\ops", "Ops-Passw0rd!", denied_assets=frozenset({"RHEL-0001"}))
    sim = make_simulator(users=[user], tickets=5)
    token = get_token(sim, "corp\\ops", "Ops-Passw0rd!")

    assert patch(sim, token, update(TicketNumber="INCA0000001")).json() == FORBIDDEN
    assert patch(sim, token, update(TicketNumber="INCA0000002")).status_code == 204
    assert request_token(sim).json() == BAD_CREDENTIALS  # only the given users exist


def test_inspection_endpoints(simulator: Simulator, token: str) -> None:
    patch(simulator, token, update())
    patch(simulator, token, update(TicketNumber="INCA0000995"))
    base = simulator.url + "/_sim"

    ticket = requests.get(base + "/tickets/INCA0000009", timeout=10)
    missing = requests.get(base + "/tickets/INCA9999999", timeout=10)
    counts = requests.get(base + "/counts", timeout=10).json()
    log = requests.get(base + "/requests", timeout=10).json()

    assert ticket.status_code == 200 and ticket.json()["TicketState"] == 2
    assert ticket.json()["VerificationJobs"] == 1
    assert missing.status_code == 404
    assert counts["by_status"] == {"200": 1, "204": 1, "403": 1}
    assert counts["patches_by_ticket"] == {"INCA0000009": 1, "INCA0000995": 1}
    assert counts["by_method"] == {"POST": 1, "PATCH": 2}
    assert [entry["status"] for entry in log] == [200, 204, 403]
    assert log[1]["body"] == update() and log[1]["user"] == ADMIN
    assert len(requests.get(base + "/tickets", timeout=10).json()) == 1000


def test_settings_can_be_changed_over_http(simulator: Simulator, token: str) -> None:
    base = simulator.url + "/_sim"

    changed = requests.post(base + "/configure", json={"fail_tickets": ["INCA0000003"]}, timeout=10)
    refused = requests.post(base + "/configure", json={"drop_rat": 1}, timeout=10)

    assert changed.status_code == 200 and changed.json()["fail_tickets"] == ["INCA0000003"]
    assert patch(simulator, token, update(TicketNumber="INCA0000003")).status_code == 500
    assert refused.status_code == 400 and "Did you mean 'drop_rate'" in refused.json()["Message"]
    assert requests.get(base + "/settings", timeout=10).json()["fail_tickets"] == ["INCA0000003"]


# -- TLS --------------------------------------------------------------------------------------


def test_tls_with_a_certificate_from_a_private_ca(make_simulator: Any, tmp_path: Path) -> None:
    ca = trustme.CA()
    certfile, ca_bundle = tmp_path / "server.pem", tmp_path / "ca.pem"
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(certfile)
    ca.cert_pem.write_to_path(ca_bundle)
    sim = make_simulator(certfile=certfile)

    assert sim.url.startswith("https://127.0.0.1:")
    token = get_token(sim, verify=str(ca_bundle))
    response = patch(sim, token, update(), verify=str(ca_bundle))
    assert response.status_code == 204
    with pytest.raises(requests.exceptions.SSLError):
        request_token(sim)  # the system's CAs do not know this one


# -- concurrency ------------------------------------------------------------------------------


def test_concurrent_updates_are_neither_lost_nor_torn(simulator: Simulator, token: str) -> None:
    shared, writers, passes = "INCA0000100", 16, 25
    written: dict[str, list[dict[str, Any]]] = {shared: []}
    lock = threading.Lock()
    failures: list[str] = []
    barrier = threading.Barrier(writers)

    def body(number: str, writer: int, n: int) -> dict[str, Any]:
        return {
            "TicketNumber": number,
            "TicketState": 1 + (writer + n) % 5,
            "TicketDescription": f"writer {writer:02d} pass {n:02d}. " * 40,
            "Priority": ("Low", "Medium", "High")[(writer + n) % 3],
            "AssignedTo": f"corp\\writer{writer:02d}",
        }

    def write(writer: int) -> None:
        own = f"INCA{200 + writer:07d}"
        with requests.Session() as session:
            barrier.wait()
            for n in range(passes):
                for number in (shared, own):
                    sent = body(number, writer, n)
                    response = patch(simulator, token, sent, session=session)
                    if response.status_code != 204:
                        failures.append(f"{number}: {response.status_code}")
                    with lock:
                        written.setdefault(number, []).append(sent)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert not failures
    fields = ("TicketNumber", "TicketState", "TicketDescription", "Priority", "AssignedTo")

    def stored(number: str) -> dict[str, Any]:
        ticket = simulator.ticket(number)
        return {name: ticket[name] for name in fields}

    assert stored(shared) in written[shared]  # one whole body, not a mix of two
    assert simulator.patch_count(shared) == writers * passes
    state_2 = sum(1 for sent in written[shared] if sent["TicketState"] == 2)
    assert simulator.ticket(shared)["VerificationJobs"] == state_2
    for writer in range(writers):
        own = f"INCA{200 + writer:07d}"
        assert stored(own) == written[own][-1]  # each writer's last update won
        assert simulator.patch_count(own) == passes


# -- the ccs-sim command ----------------------------------------------------------------------


def _ccs_sim_command() -> list[str]:
    script = Path(sys.executable).with_name("ccs-sim.exe" if os.name == "nt" else "ccs-sim")
    return [str(script)] if script.exists() else [sys.executable, "-m", "batch_updater.sim"]


def test_ccs_sim_prints_its_url_and_answers() -> None:
    process = subprocess.Popen(
        [*_ccs_sim_command(), "--port", "0", "--tickets", "20", "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+)", first_line)
        assert match, first_line
        url = match.group(1)
        banner: list[str] = []
        for line in iter(process.stdout.readline, ""):  # up to its last line, or end of output
            banner.append(line)
            if line.startswith("Press Ctrl-C") or len(banner) > 20:
                break
        assert any("Answers: keys TicketNumber...; Search a bare list" in line for line in banner)
        assert any("corp\\ccsadmin" in line and "Demo-Passw0rd!" in line for line in banner)
        assert any(f"export CCS_URL={url}" in line for line in banner)

        form = {"grant_type": "password", "username": ADMIN, "password": b64(ADMIN_PASSWORD)}
        token = requests.post(url + TOKENS, data=form, timeout=10).json()["access_token"]
        response = requests.patch(
            url + TICKETS, json=update(TicketNumber="INCA0000020"), headers=auth(token), timeout=10
        )
        assert response.status_code == 204
        stored = requests.get(url + "/_sim/tickets/INCA0000020", timeout=10).json()
        assert stored["TicketState"] == 2
        assert "PATCH" in process.stdout.readline() + process.stdout.readline()
    finally:
        process.terminate()
        out, err = process.communicate(timeout=10)
    if os.name != "nt":  # Windows has no SIGTERM to catch: terminate() kills outright
        assert process.returncode == 0, err
        assert "ccs-sim: stopped." in out
        assert "Traceback" not in err


def test_ccs_sim_says_why_it_cannot_start(
    simulator: Simulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert ccs_sim_main(["--port", str(simulator.port), "--quiet"]) == 2
    assert f"cannot listen on 127.0.0.1:{simulator.port}" in capsys.readouterr().err

    with pytest.raises(SystemExit) as exit_info:
        ccs_sim_main(["--port", "0", "--error-rate", "2"])
    assert exit_info.value.code == 2
    assert "argument --error-rate: 2 is not a probability; use 0 to 1" in capsys.readouterr().err

    assert ccs_sim_main(["--port", "0", "--seed-file", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv: no such file." in capsys.readouterr().err
