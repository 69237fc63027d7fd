"""The simulator's read-back shapes: every answer the contract's "Reading tickets" says a client
must survive (key case, wrapped Search, page-size limit, pages from 1, the verification job),
played over loopback HTTP, so that the client's tests can be run against each.

No test sleeps: the verification job's delay is checked with an injected clock.
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any

import pytest
import requests

from batch_updater.sim import Simulator
from batch_updater.sim.__main__ import _settings_from, build_parser
from batch_updater.sim.__main__ import main as ccs_sim_main
from batch_updater.sim.settings import KeyCase, SearchShape, SimSettings, Verification

TOKENS = "/ccs/api/v1/oauth/tokens"
TICKETS = "/ccs/api/v1/RemediationTickets"
ADMIN, ADMIN_PASSWORD = "corp\\ccsadmin", "Demo-Passw0rd!"
BAD_DETAILS = {"Message": "Provide valid ticket details."}
PASCAL_KEYS = [
    "TicketNumber",
    "TicketState",
    "TicketStatus",
    "TicketDescription",
    "Priority",
    "AssignedTo",
    "Standard",
    "Asset",
    "LastModified",
]
CAMEL_KEYS = [
    "ticketNumber",
    "ticketState",
    "ticketStatus",
    "ticketDescription",
    "priority",
    "assignedTo",
    "standard",
    "asset",
    "lastModified",
]
START = 1_750_000_000.0  # 2025-06-15T15:06:40Z


class FakeClock:
    """A clock the test moves on by hand."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- helpers ----------------------------------------------------------------------------------


def get_token(sim: Simulator) -> str:
    password = base64.b64encode(ADMIN_PASSWORD.encode("utf-8")).decode("ascii")
    form = {"grant_type": "password", "username": ADMIN, "password": password}
    response = requests.post(sim.url + TOKENS, data=form, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def set_state(sim: Simulator, token: str, number: str, state: int = 2) -> None:
    body = {"TicketNumber": number, "TicketState": state, "Priority": "Medium"}
    response = requests.patch(sim.url + TICKETS + "/", json=body, headers=auth(token), timeout=10)
    assert response.status_code == 204, response.text


def get(sim: Simulator, token: str, number: str) -> requests.Response:
    return requests.get(
        sim.url + TICKETS, params={"TicketNumber": number}, headers=auth(token), timeout=10
    )


def search(sim: Simulator, token: str, query: str) -> requests.Response:
    return requests.get(f"{sim.url}{TICKETS}?{query}", headers=auth(token), timeout=10)


def numbers(tickets: list[dict[str, Any]], key: str = "TicketNumber") -> list[str]:
    return [ticket[key] for ticket in tickets]


def inca(*indexes: int) -> list[str]:
    return [f"INCA{index:07d}" for index in indexes]


@pytest.fixture
def token(simulator: Simulator) -> str:
    return get_token(simulator)


# -- the default shape ------------------------------------------------------------------------


def test_by_default_keys_are_pascal_case_and_a_search_is_a_bare_list(
    simulator: Simulator, token: str
) -> None:
    assert list(get(simulator, token, "INCA0000001").json()) == PASCAL_KEYS
    answer = search(simulator, token, "Fields=(TicketState=1)&Page=0&PageSize=3").json()
    assert isinstance(answer, list)
    assert numbers(answer) == inca(1, 2, 3)
    assert list(answer[0]) == PASCAL_KEYS


# -- key_case ---------------------------------------------------------------------------------


def test_camel_case_keys_in_get_and_search(simulator: Simulator, token: str) -> None:
    simulator.configure(key_case="camel")

    ticket = get(simulator, token, "INCA0000004").json()
    found = search(simulator, token, "Fields=(TicketState=1)&Page=0&PageSize=2").json()

    assert list(ticket) == CAMEL_KEYS
    assert ticket["ticketNumber"] == "INCA0000004"
    assert ticket["ticketState"] == 1 and ticket["ticketStatus"] == "Open"
    assert ticket["lastModified"] == simulator.ticket("INCA0000004")["LastModified"]
    assert [list(t) for t in found] == [CAMEL_KEYS, CAMEL_KEYS]
    assert numbers(found, "ticketNumber") == inca(1, 2)


def test_patch_field_names_stay_case_insensitive_with_camel_keys(
    simulator: Simulator, token: str
) -> None:
    simulator.configure(key_case="camel")
    body = {"ticketNumber": "INCA0000005", "ticketState": "2", "PRIORITY": "Low"}

    response = requests.patch(
        simulator.url + TICKETS + "/", json=body, headers=auth(token), timeout=10
    )

    assert response.status_code == 204
    assert get(simulator, token, "INCA0000005").json()["ticketState"] == 2


# -- search_shape -----------------------------------------------------------------------------


def test_a_wrapped_search_holds_the_page_and_the_total_of_all_pages(
    simulator: Simulator, token: str
) -> None:
    simulator.configure(search_shape="wrapped")

    answer = search(simulator, token, "Fields=(TicketState=1)&Page=1&PageSize=4").json()

    # 1000 tickets, 10 of them of the standard the administrator may not touch.
    assert answer == {"TotalCount": 990, "Tickets": answer["Tickets"]}
    assert numbers(answer["Tickets"]) == inca(5, 6, 7, 8)
    assert list(answer["Tickets"][0]) == PASCAL_KEYS


def test_a_wrapped_search_with_camel_keys_is_camel_case_throughout(
    simulator: Simulator, token: str
) -> None:
    set_state(simulator, token, "INCA0000003")
    simulator.configure(search_shape="wrapped", key_case="camel")

    answer = search(simulator, token, "Fields=(TicketState=2)").json()

    assert list(answer) == ["totalCount", "tickets"]
    assert answer["totalCount"] == 1
    assert numbers(answer["tickets"], "ticketNumber") == inca(3)


def test_a_wrapped_page_past_the_end_is_empty_but_keeps_the_total(
    simulator: Simulator, token: str
) -> None:
    simulator.configure(search_shape="wrapped")

    answer = search(simulator, token, "Fields=(TicketState=1)&Page=99&PageSize=50").json()

    assert answer == {"TotalCount": 990, "Tickets": []}


# -- max_page_size ----------------------------------------------------------------------------


def test_a_page_size_over_max_page_size_is_refused_and_at_or_below_it_accepted(
    simulator: Simulator, token: str
) -> None:
    simulator.configure(max_page_size=100)

    over = search(simulator, token, "Page=0&PageSize=101")
    at = search(simulator, token, "Page=0&PageSize=100")
    below = search(simulator, token, "Page=0&PageSize=10")

    assert over.status_code == 400 and over.json() == BAD_DETAILS
    assert at.status_code == 200 and len(at.json()) == 100
    assert below.status_code == 200 and len(below.json()) == 10


def test_the_default_max_page_size_is_1000(simulator: Simulator, token: str) -> None:
    assert SimSettings().max_page_size == 1000
    assert search(simulator, token, "PageSize=1000").status_code == 200
    assert search(simulator, token, "PageSize=1001").json() == BAD_DETAILS


def test_without_a_page_size_a_small_limit_is_the_page_size(
    simulator: Simulator, token: str
) -> None:
    simulator.configure(max_page_size=20)

    answer = search(simulator, token, "Fields=(TicketState=1)")

    assert answer.status_code == 200 and len(answer.json()) == 20


# -- first_page -------------------------------------------------------------------------------


def test_counting_from_1_page_0_and_page_1_both_answer_the_first_page(
    simulator: Simulator, token: str
) -> None:
    simulator.configure(first_page=1)

    def page(n: int) -> list[str]:
        return numbers(
            search(simulator, token, f"Fields=(TicketState=1)&Page={n}&PageSize=5").json()
        )

    assert page(0) == inca(1, 2, 3, 4, 5)
    assert page(1) == inca(1, 2, 3, 4, 5)
    assert page(2) == inca(6, 7, 8, 9, 10)
    assert page(3) == inca(11, 12, 13, 14, 15)
    assert numbers(search(simulator, token, "PageSize=5").json()) == inca(1, 2, 3, 4, 5)


def test_counting_from_0_page_1_is_the_second_page(simulator: Simulator, token: str) -> None:
    assert numbers(search(simulator, token, "Page=0&PageSize=5").json()) == inca(1, 2, 3, 4, 5)
    assert numbers(search(simulator, token, "Page=1&PageSize=5").json()) == inca(6, 7, 8, 9, 10)


# -- search parameters, filters and permissions -----------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "Fields=(TicketState=1)&Page=1&PageSize=3",
        "fields=(ticketstate=1)&page=1&pagesize=3",
        "FIELDS=(TICKETSTATE=1)&PAGE=1&PAGESIZE=3",
    ],
)
def test_search_parameter_names_are_matched_in_any_case(
    simulator: Simulator, token: str, query: str
) -> None:
    set_state(simulator, token, "INCA0000002")

    assert numbers(search(simulator, token, query).json()) == inca(5, 6, 7)


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"search_shape": "wrapped"},
        {"search_shape": "wrapped", "key_case": "camel", "first_page": 1, "max_page_size": 500},
    ],
)
def test_every_shape_leaves_out_tickets_the_user_may_not_touch(
    simulator: Simulator, token: str, settings: dict[str, Any]
) -> None:
    simulator.configure(denied_tickets={"INCA0000985"}, **settings)
    found: list[str] = []
    total = None
    first = settings.get("first_page", 0)
    for page in range(first, first + 10):
        answer = search(simulator, token, f"Fields=(TicketState=1)&Page={page}&PageSize=100")
        assert answer.status_code == 200
        data = answer.json()
        if isinstance(data, dict):
            total = data.get("TotalCount", data.get("totalCount"))
            data = data.get("Tickets", data.get("tickets"))
        found += [t.get("TicketNumber", t.get("ticketNumber")) for t in data]

    # 1000 tickets less INCA0000985 (denied) and INCA0000990..999 (restricted standard).
    assert found == inca(*(n for n in range(1, 1001) if n != 985 and not 990 <= n <= 999))
    assert total in (None, 989)


def test_a_filter_narrows_the_total_of_a_wrapped_search(simulator: Simulator, token: str) -> None:
    simulator.configure(search_shape="wrapped")

    answer = search(simulator, token, "Fields=(TicketState=1,Priority=High)&PageSize=2").json()

    # Priorities cycle Low, Medium, High: INCA0000003, 6, ... 987 of the 990 the administrator
    # sees (INCA0000990..999 belong to the restricted standard; INCA0001000 is Low).
    assert answer["TotalCount"] == 329
    assert numbers(answer["Tickets"]) == inca(3, 6)


# -- verification -----------------------------------------------------------------------------


@pytest.mark.parametrize(("verification", "outcome"), [("verified", 3), ("failed", 4)])
def test_the_verification_job_moves_state_2_on_by_the_next_read(
    simulator: Simulator, token: str, verification: str, outcome: int
) -> None:
    simulator.configure(verification=verification)

    set_state(simulator, token, "INCA0000009")

    ticket = get(simulator, token, "INCA0000009").json()
    assert ticket["TicketState"] == outcome
    assert ticket["TicketStatus"] == {3: "Verified", 4: "Failed"}[outcome]
    found = search(simulator, token, f"Fields=(TicketState={outcome})").json()
    assert numbers(found) == ["INCA0000009"]
    assert simulator.ticket("INCA0000009")["VerificationJobs"] == 1


def test_with_verification_off_state_2_stays_2(simulator: Simulator, token: str) -> None:
    assert SimSettings().verification is Verification.OFF

    set_state(simulator, token, "INCA0000009")

    assert get(simulator, token, "INCA0000009").json()["TicketState"] == 2
    assert simulator.store.verification_due("INCA0000009") is None
    assert simulator.ticket("INCA0000009")["VerificationJobs"] == 1


def test_a_delayed_verification_job_moves_the_ticket_only_when_it_is_done(
    make_simulator: Any,
) -> None:
    clock = FakeClock()
    sim = make_simulator(tickets=20, clock=clock, verification="verified", verification_delay=30)
    token = get_token(sim)

    set_state(sim, token, "INCA0000009")

    patched = get(sim, token, "INCA0000009").json()
    assert patched["TicketState"] == 2
    assert patched["LastModified"] == "2025-06-15T15:06:40Z"
    assert sim.store.verification_due("INCA0000009") == (START + 30, 3)
    clock.now = START + 29.9
    assert get(sim, token, "INCA0000009").json()["TicketState"] == 2
    assert sim.ticket("INCA0000009")["TicketState"] == 2

    clock.now = START + 30
    assert sim.ticket("INCA0000009")["TicketState"] == 3
    moved = get(sim, token, "INCA0000009").json()
    assert moved["TicketState"] == 3
    # Stamped when the job finished, like any change.
    assert moved["LastModified"] == "2025-06-15T15:07:10Z"
    assert sim.store.verification_due("INCA0000009") is None


def test_a_delay_of_30_seconds_is_still_pending_on_the_real_clock(
    simulator: Simulator, token: str
) -> None:
    simulator.configure(verification="failed", verification_delay=30)
    before = datetime.now(timezone.utc).timestamp()

    set_state(simulator, token, "INCA0000009")

    assert get(simulator, token, "INCA0000009").json()["TicketState"] == 2
    due = simulator.store.verification_due("INCA0000009")
    assert due is not None
    assert due[1] == 4 and due[0] >= before + 30


def test_a_sticky_ticket_state_is_not_moved_by_the_job(simulator: Simulator, token: str) -> None:
    simulator.configure(verification="verified", sticky_fields={"INCA0000009": ["TicketState"]})

    set_state(simulator, token, "INCA0000009")

    assert get(simulator, token, "INCA0000009").json()["TicketState"] == 1
    assert simulator.store.verification_due("INCA0000009") is None
    assert simulator.ticket("INCA0000009")["VerificationJobs"] == 0


def test_a_ticket_already_at_2_with_a_sticky_state_is_not_moved(
    simulator: Simulator, token: str
) -> None:
    set_state(simulator, token, "INCA0000009")  # no job yet: it stays at 2
    simulator.configure(verification="verified", sticky_fields={"INCA0000009": ["TicketState"]})

    set_state(simulator, token, "INCA0000009")

    assert get(simulator, token, "INCA0000009").json()["TicketState"] == 2
    assert simulator.store.verification_due("INCA0000009") is None


def test_sending_state_2_twice_starts_the_job_twice(make_simulator: Any) -> None:
    clock = FakeClock()
    sim = make_simulator(tickets=20, clock=clock, verification="verified", verification_delay=30)
    token = get_token(sim)

    set_state(sim, token, "INCA0000009")
    clock.now = START + 20
    set_state(sim, token, "INCA0000009")
    clock.now = START + 40

    assert sim.ticket("INCA0000009")["TicketState"] == 2  # the second job restarted the wait
    assert sim.ticket("INCA0000009")["VerificationJobs"] == 2
    clock.now = START + 50
    assert sim.ticket("INCA0000009")["TicketState"] == 3


def test_a_state_set_while_the_job_runs_is_not_overwritten(make_simulator: Any) -> None:
    clock = FakeClock()
    sim = make_simulator(tickets=20, clock=clock, verification="failed", verification_delay=30)
    token = get_token(sim)

    set_state(sim, token, "INCA0000009")
    clock.now = START + 10
    set_state(sim, token, "INCA0000009", 5)
    clock.now = START + 60

    assert sim.ticket("INCA0000009")["TicketState"] == 5
    assert sim.store.verification_due("INCA0000009") is None


def test_snapshot_and_inspection_endpoint_show_the_moved_ticket(
    simulator: Simulator, token: str
) -> None:
    simulator.configure(verification="verified")

    set_state(simulator, token, "INCA0000009")

    assert (
        requests.get(simulator.url + "/_sim/tickets/INCA0000009", timeout=10).json()["TicketState"]
        == 3
    )
    stored = {t["TicketNumber"]: t for t in simulator.tickets()}
    assert stored["INCA0000009"]["TicketState"] == 3


# -- configuration ----------------------------------------------------------------------------


def test_the_reading_settings_can_be_set_over_http(simulator: Simulator, token: str) -> None:
    changes = {
        "key_case": "camel",
        "search_shape": "wrapped",
        "max_page_size": 200,
        "first_page": 1,
        "verification": "failed",
        "verification_delay": 0.5,
    }

    response = requests.post(simulator.url + "/_sim/configure", json=changes, timeout=10)

    assert response.status_code == 200
    assert {name: response.json()[name] for name in changes} == changes
    assert simulator.settings.key_case is KeyCase.CAMEL
    assert simulator.settings.search_shape is SearchShape.WRAPPED
    assert "totalCount" in search(simulator, token, "PageSize=200").json()
    refused = requests.post(simulator.url + "/_sim/configure", json={"first_page": 2}, timeout=10)
    assert refused.status_code == 400
    assert refused.json() == {"Message": "first_page must be 0 or 1, not 2."}


def test_the_reading_settings_can_be_given_to_the_constructor(make_simulator: Any) -> None:
    sim = make_simulator(tickets=5, key_case="camel", search_shape="wrapped", first_page=1)
    token = get_token(sim)

    assert search(sim, token, "Page=0").json()["totalCount"] == 5


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"key_case": "snake"}, "key_case must be one of pascal, camel, not 'snake'."),
        ({"search_shape": "dict"}, "search_shape must be one of list, wrapped, not 'dict'."),
        ({"max_page_size": 0}, "max_page_size must be a whole number >= 1, not 0."),
        ({"max_page_size": 10.5}, "max_page_size must be a whole number >= 1, not 10.5."),
        ({"max_page_size": True}, "max_page_size must be a whole number >= 1, not True."),
        ({"first_page": 2}, "first_page must be 0 or 1, not 2."),
        ({"first_page": 1.0}, "first_page must be 0 or 1, not 1.0."),
        (
            {"verification": "maybe"},
            "verification must be one of off, verified, failed, not 'maybe'.",
        ),
        ({"verification_delay": -1}, "verification_delay must be >= 0, not -1."),
        ({"verification_delay": "soon"}, "verification_delay must be a number, not 'soon'."),
    ],
)
def test_bad_reading_settings_are_refused_with_a_clear_message(
    simulator: Simulator, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as error:
        simulator.configure(**changes)

    assert str(error.value) == message


# -- ccs-sim ----------------------------------------------------------------------------------


def test_ccs_sim_reading_options_default_to_the_simulators_own_shape() -> None:
    settings = SimSettings(**_settings_from(build_parser().parse_args([])))

    assert settings == SimSettings()


def test_ccs_sim_reading_options_parse() -> None:
    args = build_parser().parse_args(
        [
            "--key-case",
            "camel",
            "--search-shape",
            "wrapped",
            "--max-page-size",
            "250",
            "--first-page",
            "1",
            "--verification",
            "failed",
            "--verification-delay",
            "30",
        ]
    )

    settings = SimSettings(**_settings_from(args))

    assert settings.key_case is KeyCase.CAMEL
    assert settings.search_shape is SearchShape.WRAPPED
    assert settings.max_page_size == 250
    assert settings.first_page == 1
    assert settings.verification is Verification.FAILED
    assert settings.verification_delay == 30.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--key-case", "snake"], "argument --key-case: invalid choice: 'snake'"),
        (["--search-shape", "dict"], "argument --search-shape: invalid choice: 'dict'"),
        (["--max-page-size", "0"], "argument --max-page-size: 0 is below 1; use 1 or more"),
        (["--first-page", "2"], "argument --first-page: invalid choice: 2"),
        (["--verification", "maybe"], "argument --verification: invalid choice: 'maybe'"),
        (
            ["--verification-delay", "-1"],
            "argument --verification-delay: -1 is negative; use 0 or more",
        ),
    ],
)
def test_ccs_sim_refuses_bad_reading_options(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        ccs_sim_main(["--port", "0", *argv])

    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
