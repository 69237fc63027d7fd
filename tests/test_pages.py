"""Reading tickets in pages against the simulator over loopback: every answer shape the contract
says a server may give, the paging rules, a refused page size, retries and permissions."""

from __future__ import annotations

import threading

import pytest
from helpers import ADMIN, ADMIN_PASSWORD

from batch_updater.ccs import AnswerShapeError, CcsClient, tickets_in
from batch_updater.exported import ExportedTicket
from batch_updater.pacing import RateLimiter
from batch_updater.runner import RetryPolicy
from batch_updater.runner.pages import MIN_PAGE_SIZE, PageReader
from batch_updater.settings import Secret
from batch_updater.sim.store import RESTRICTED_STANDARD

FAST_RETRY = RetryPolicy(max_attempts=5, backoff_base=0.01, backoff_cap=0.05, max_throttled=50)


def reader(sim, page_size: int = 100, **options) -> PageReader:
    """A reader of pages one after the other (ahead=1), so that requests can be counted
    exactly; the pages read ahead on a slow server have a test of their own."""
    client = CcsClient(sim.url, ADMIN, Secret(ADMIN_PASSWORD))
    options.setdefault("ahead", 1)
    return PageReader(client, RateLimiter(1000), FAST_RETRY, page_size=page_size, **options)


def searches(sim) -> list[str]:
    return [r.query for r in sim.requests if r.method == "GET" and "TicketNumber=" not in r.query]


def visible_numbers(sim, state: int | None = None) -> list[str]:
    """The tickets the admin may see (not the restricted ones), in the store's order."""
    return [
        t["TicketNumber"]
        for t in sim.tickets()
        if t["Standard"] != RESTRICTED_STANDARD and (state is None or t["TicketState"] == state)
    ]


@pytest.mark.parametrize("key_case", ["pascal", "camel"])
@pytest.mark.parametrize("shape", ["list", "wrapped"])
def test_every_ticket_is_read_once_in_either_key_case_and_either_shape(
    make_simulator, key_case: str, shape: str
) -> None:
    sim = make_simulator(tickets=250, key_case=key_case, search_shape=shape)
    assert len(visible_numbers(sim)) == 250
    read = reader(sim, page_size=100).read()
    assert read.complete, read.failure
    numbers = [ExportedTicket.from_answer(t).number for t in read.tickets]  # type: ignore[union-attr]
    assert numbers == visible_numbers(sim)
    assert read.pages == 3 and read.requests == 3  # 100 + 100 + the short last page
    assert read.notes == ()
    if shape == "wrapped":
        assert read.total == len(numbers)


def test_a_page_of_exactly_the_page_size_is_followed_by_an_empty_one(make_simulator) -> None:
    sim = make_simulator(tickets=200)  # none of them restricted: 200 visible
    assert len(visible_numbers(sim)) == 200
    read = reader(sim, page_size=100).read()
    assert len(read.tickets) == 200
    assert (read.pages, read.requests) == (3, 3)  # the third, empty page ends the reading


def test_a_refused_page_size_is_halved_until_one_is_accepted(make_simulator) -> None:
    sim = make_simulator(tickets=300, max_page_size=120)
    read = reader(sim, page_size=500).read()
    assert read.complete
    assert len(read.tickets) == len(visible_numbers(sim))
    sizes = searches(sim)
    assert "PageSize=500" in sizes[0] and "PageSize=250" in sizes[1] and "PageSize=125" in sizes[2]
    assert read.page_size == 62
    assert read.notes[0].startswith("the server refused a page size of 500 (HTTP 400)")
    assert read.notes[-1] == "pages of 62 tickets were read"


def test_a_query_refused_at_every_page_size_fails_with_the_servers_answer(simulator) -> None:
    read = reader(simulator, page_size=40).read([("NoSuchField", "1")])
    assert not read.complete
    assert "400" in read.failure
    assert read.page_size == MIN_PAGE_SIZE
    assert read.requests == 3  # 40, 20, 10


def test_a_server_counting_pages_from_1_is_read_to_the_end(make_simulator) -> None:
    sim = make_simulator(tickets=250, first_page=1)
    read = reader(sim, page_size=100).read()
    assert [t["TicketNumber"] for t in read.tickets] == visible_numbers(sim)
    assert "the server counts pages from 1" in read.notes
    assert read.duplicates == 100  # page 1 repeated page 0


def test_a_filter_reads_only_the_matching_tickets(simulator) -> None:
    # Move a few tickets on so that the filter has something to tell apart.
    client = CcsClient(simulator.url, ADMIN, Secret(ADMIN_PASSWORD))
    from batch_updater.tickets import TicketState, TicketUpdate

    for number in ("INCA0000003", "INCA0000010", "INCA0000011"):
        assert (
            client.update(TicketUpdate(number, state=TicketState.VERIFIED, priority="High")).status
            == 204
        )
    read = reader(simulator).read([("TicketState", "3")])
    assert sorted(t["TicketNumber"] for t in read.tickets) == [
        "INCA0000003",
        "INCA0000010",
        "INCA0000011",
    ]
    assert "Fields=%28TicketState%3D3%29" in searches(simulator)[-1]


def test_search_leaves_out_the_tickets_the_account_may_not_touch(simulator) -> None:
    read = reader(simulator, page_size=1000).read()
    standards = {t["Standard"] for t in read.tickets}
    assert RESTRICTED_STANDARD not in standards
    assert len(read.tickets) == len(visible_numbers(simulator)) < len(simulator.tickets())


def test_server_errors_and_throttling_on_a_page_are_retried_through_the_limiter(
    make_simulator,
) -> None:
    sim = make_simulator(tickets=300, error_rate=0.3, seed=5)
    retries: list[str] = []
    read = reader(sim, page_size=50, tell=lambda reason, delay: retries.append(reason)).read()
    assert read.complete, read.failure
    assert len(read.tickets) == len(visible_numbers(sim))
    assert retries and all(reason.startswith("page ") for reason in retries)
    assert read.requests == len(searches(sim))


def test_on_a_slow_server_pages_are_read_ahead_and_each_ticket_once(make_simulator) -> None:
    sim = make_simulator(tickets=1000, latency_ms=150)
    client = CcsClient(sim.url, ADMIN, Secret(ADMIN_PASSWORD))
    # 20 requests a second, 150 ms an answer: three pages in flight keep the pace.
    read = PageReader(client, RateLimiter(20), FAST_RETRY, page_size=50).read()
    numbers = [t["TicketNumber"] for t in read.tickets]
    assert numbers == visible_numbers(sim) and len(set(numbers)) == len(numbers)
    assert read.pages == 20  # 990 tickets: 19 full pages and a short one
    # Pages asked for past the last one cost a request each: never more than the window.
    assert read.requests == len(searches(sim))
    assert 20 <= read.requests <= 20 + 3
    assert read.notes == ()


def test_a_stopped_reading_says_so_and_sends_nothing_more(simulator) -> None:
    halt = threading.Event()
    halt.set()
    read = reader(simulator, halt=halt).read()
    assert read.stopped and not read.complete
    assert searches(simulator) == []


class PagedClient:
    """A server of `pages` (lists of tickets) in the page size asked for, pages counted from 0;
    `total`, when given, is the count it says beside them; `ignore_page` answers page 0 always."""

    def __init__(
        self, tickets: list[dict[str, object]], *, total: int | None = None, ignore_page=False
    ) -> None:
        self.tickets = tickets
        self.total = total
        self.ignore_page = ignore_page
        self.asked: list[int] = []

    def search(self, fields, page, page_size, pace=None):
        from batch_updater.ccs import Reply

        pace and pace()
        self.asked.append(page)
        first = 0 if self.ignore_page else page * page_size
        items = self.tickets[first : first + page_size]
        return Reply(
            200, body=items if self.total is None else {"Total": self.total, "Items": items}
        )

    def get_ticket(self, ticket_number, pace=None):
        raise AssertionError("not read one by one here")


def page_reader(client, page_size: int = 10) -> PageReader:
    return PageReader(client, RateLimiter(1000), FAST_RETRY, page_size=page_size)  # type: ignore[arg-type]


def test_a_total_that_disagrees_with_what_was_read_is_noted() -> None:
    client = PagedClient([{"ticketNumber": f"T{n}"} for n in range(12)], total=5)
    read = page_reader(client).read()
    assert read.complete and len(read.tickets) == 12
    assert client.asked == [0, 1]
    assert "the server said 5 tickets match; 12 tickets were read" in read.notes


def test_a_server_that_ignores_the_page_number_fails_the_reading_and_never_truncates() -> None:
    # Page 1 repeating page 0 may be a server counting from 1; page 2 repeating it too is not.
    client = PagedClient([{"ticketNumber": f"T{n}"} for n in range(25)], ignore_page=True)
    read = page_reader(client).read()
    assert not read.complete
    assert read.failure == (
        "the server answered pages 0, 1 and 2 with the same tickets: it seems to ignore the "
        "Page parameter; 10 tickets were read, more may match"
    )
    assert client.asked == [0, 1, 2] and read.requests == 3
    assert "the server counts pages from 1" not in read.notes


def test_tickets_without_a_ticket_number_fail_the_reading_naming_the_keys_seen() -> None:
    client = PagedClient([{"Number": f"T{n}", "TicketState": 1} for n in range(5)])
    read = page_reader(client).read()
    assert not read.complete and read.tickets == ()
    assert read.failure.startswith(
        "the tickets of the Search answer (page 0) have no ticket number (the first one's keys: "
        '"Number", "TicketState")'
    )
    assert "batch-update show TICKET" in read.failure


def test_tickets_without_a_number_among_numbered_ones_are_left_out_and_counted() -> None:
    tickets: list[dict[str, object]] = [{"TicketNumber": f"T{n}"} for n in range(12)]
    tickets[3] = {"Number": "T3"}
    tickets[11] = {"TicketNumber": ""}
    read = page_reader(PagedClient(tickets)).read()
    assert read.complete, read.failure
    assert len(read.tickets) == 10
    assert "2 tickets without a ticket number were left out" in read.notes


class OneClient:
    """A server whose read of one ticket answers with `body`."""

    def __init__(self, body: object) -> None:
        self.body = body

    def get_ticket(self, ticket_number, pace=None):
        from batch_updater.ccs import Reply

        pace and pace()
        return Reply(200, body=self.body)


def test_reading_one_ticket_takes_the_one_asked_for_never_another() -> None:
    from batch_updater.ccs import Reply

    other, wanted = {"TicketNumber": "INCA0000019"}, {"ticketNumber": "inca0000001", "x": 1}
    # A server matching the number as a prefix: a list of others, or others and this one.
    refused = page_reader(OneClient([other])).read_one("INCA0000001")
    assert isinstance(refused, Reply) and refused.status == 200
    assert refused.message == "the answer held no ticket INCA0000001"
    assert page_reader(OneClient([other, wanted])).read_one("INCA0000001") == wanted
    assert page_reader(OneClient(other)).read_one("INCA0000001") == Reply(
        200, "the answer held no ticket INCA0000001"
    )
    assert page_reader(OneClient(wanted)).read_one("INCA0000001") == wanted


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([{"TicketNumber": "A"}], 1),
        ({"Tickets": [{"TicketNumber": "A"}], "TotalCount": 7}, 1),
        ({"value": []}, 0),
        ({"data": [{"a": 1}, {"b": 2}], "count": 2}, 2),
    ],
)
def test_the_tickets_of_an_answer_are_found_in_each_shape(body, expected: int) -> None:
    assert len(tickets_in(body).tickets) == expected


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"Tickets": [], "Items": []}, '2 lists in it (its keys: "Tickets", "Items")'),
        ({"Message": "ok"}, 'no list of tickets in it (its keys: "Message")'),
        (None, "empty"),
        ("tickets", "a JSON str"),
        ([1, 2], "2 entries that are not tickets"),
    ],
)
def test_an_answer_in_no_known_shape_is_refused_with_what_it_holds(body, words: str) -> None:
    with pytest.raises(AnswerShapeError, match=None) as refused:
        tickets_in(body)
    assert words in str(refused.value)
