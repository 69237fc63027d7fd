"""Reading tickets in pages (Search), through the same limiter and retry step as every request.

The paging rules are the contract's ("Reading tickets"): pages count from 0; the last page is the
first one with fewer tickets than the page size, or an empty one; a server that counts from 1
answers page 1 with the tickets of page 0, and reading goes on from page 2; any later page that
holds only tickets already seen ends the reading (a server that ignores the page number would
otherwise be read for ever). A page 2 that again holds only tickets already seen is no server
counting from 1 but one that ignores the page number: the reading fails (more may match than
were read), it never ends as if complete. Tickets are de-duplicated by number, the first answer
kept; a ticket without a number is left out (and said), and a page of tickets none of which has
one fails the reading, naming the keys seen. A page size the server refuses (HTTP 400 on the
first page) is halved, down to MIN_PAGE_SIZE, and the size that worked is kept for the rest of
the reading.
"""

from __future__ import annotations

import json
import math
import random
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..ccs import AnswerShapeError, Reply, ticket_in_answer, tickets_in
from ..pacing import RateLimiter
from ..tickets import count_text, ticket_field
from .policy import RetryPolicy, answer_text, retryable
from .row import Tries, wait_to_retry

DEFAULT_PAGE_SIZE = 500
# At most this many pages in flight at once, on a server whose first page took SLOW_ANSWER
# seconds or more (see _Ahead).
MAX_AHEAD = 4
SLOW_ANSWER = 0.1
MIN_PAGE_SIZE = 10
BAD_REQUEST = 400
_SHOWN_KEYS = 12


class SearchClient(Protocol):
    """What page reading needs of a CCS client."""

    def get_ticket(self, ticket_number: str, pace: Callable[[], bool] | None = None) -> Reply: ...

    def search(
        self,
        fields: Sequence[tuple[str, str]],
        page: int,
        page_size: int,
        pace: Callable[[], bool] | None = None,
    ) -> Reply: ...


@dataclass(frozen=True)
class PageRead:
    """What a paged reading found, what it cost, and why it ended early, if it did."""

    tickets: tuple[Mapping[str, object], ...]
    requests: int  # Search requests that went out, retries and refused page sizes included
    pages: int  # pages answered with tickets or as the last one
    page_size: int  # the page size that worked (or the last one tried)
    notes: tuple[str, ...] = ()  # what the reader had to adapt to, for the Summary and the log
    # Set when the reading could not finish: what went wrong, in words (an answer, a shape).
    failure: str = ""
    failed_reply: Reply | None = None
    stopped: bool = False  # the run was stopped (Ctrl-C) before the reading ended
    total: int | None = None  # the total count the server gave beside the tickets, if it did
    duplicates: int = 0  # tickets given more than once, left out
    partial: bool = False  # stopped at the page limit, on purpose: the rest is read otherwise

    @property
    def complete(self) -> bool:
        return not self.failure and not self.stopped


class _Ahead:
    """The pages of a reading, in order, with the next ones asked for before they are needed
    when the server is slow: keeping `rate` requests a second going at a response time of L
    seconds takes rate x L requests in flight (Little's law). The first page is read alone (its
    page size may be refused, and its answer time sets how many go ahead); a page read ahead
    past the last one costs a request, so no more go ahead than the answer time needs."""

    def __init__(
        self, reader: PageReader, fields: Sequence[tuple[str, str]], reading: _Reading
    ) -> None:
        self.reader = reader
        self.fields = fields
        self.reading = reading
        self.window = 1
        self.enough = threading.Event()  # the reading is over: pages not yet sent are not sent
        self._pool: ThreadPoolExecutor | None = None
        self._futures: dict[int, Future[tuple[Reply, int]]] = {}

    def pace_to(self, first: Reply) -> None:
        """How many pages go ahead, from the first page's answer time."""
        seconds = first.elapsed_ms / 1000
        needed = seconds * self.reader.limiter.current_rate
        # Only for a server that is slow to answer (a page of a LAN server takes a few ms, and
        # one after the other keeps the pace), and slower than the time between two slots.
        if seconds >= SLOW_ANSWER and needed > 1:
            self.window = min(self.reader.ahead, math.ceil(needed))

    def get(self, page: int, *, last: int | None = None) -> Reply:
        """The answer for `page` (its requests counted), asking for the next ones meanwhile."""
        size = self.reading.page_size
        if self.window <= 1 and page not in self._futures:
            reply, sends = self.reader._page(self.fields, page, size)
            self.reading.requests += sends
            return reply
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.window, thread_name_prefix="page")
        end = page + self.window if last is None else min(page + self.window, last)
        for ahead in range(page, max(end, page + 1)):
            if ahead not in self._futures:
                self._futures[ahead] = self._pool.submit(
                    self.reader._page, self.fields, ahead, size, self.enough
                )
        reply, sends = self._futures.pop(page).result()
        self.reading.requests += sends
        return reply

    def close(self) -> None:
        """The reading is over: pages asked for ahead and not sent are not sent; the requests
        of those that were sent are counted."""
        self.enough.set()
        if self._pool is None:
            return
        self._pool.shutdown(wait=True)
        for future in self._futures.values():
            if not future.cancelled() and future.exception() is None:
                self.reading.requests += future.result()[1]
        self._futures.clear()


@dataclass
class _Reading:
    page_size: int
    seen: dict[str, Mapping[str, object]] = field(default_factory=dict)
    requests: int = 0
    pages: int = 0
    duplicates: int = 0
    unnumbered: int = 0  # tickets without a ticket number, left out
    total: int | None = None
    notes: list[str] = field(default_factory=list)


def _number(ticket: Mapping[str, object]) -> str:
    value = ticket_field(ticket, "TicketNumber")[1]
    return str(value).strip().upper() if value is not None else ""


def _keys_text(ticket: Mapping[str, object]) -> str:
    """The keys of a ticket, quoted, as an answer's shape is named to the user."""
    keys = [json.dumps(str(key), ensure_ascii=False) for key in list(ticket)[:_SHOWN_KEYS]]
    more = len(ticket) - len(keys)
    return ", ".join(keys) + (f" and {more} more" if more > 0 else "") if keys else "none"


class PageReader:
    """Reads every ticket a Search query matches, one page per request, paced and retried."""

    def __init__(
        self,
        client: SearchClient,
        limiter: RateLimiter,
        retry: RetryPolicy,
        *,
        halt: threading.Event | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        tell: Callable[[str, float], None] | None = None,
        ahead: int = MAX_AHEAD,
    ) -> None:
        self.client = client
        self.ahead = max(1, ahead)  # pages in flight at most (1: one after the other)
        self.limiter = limiter
        self.retry = retry
        self.halt = halt or threading.Event()
        self.page_size = max(MIN_PAGE_SIZE, page_size)
        self._tell = tell or (lambda reason, delay: None)
        self._rng = random.Random()  # the jitter of the backoff

    def pace(self) -> bool:
        """Wait for a slot of the shared limiter; False when the run stops first."""
        return self.limiter.acquire(self.halt) and not self.halt.is_set()

    def _page(
        self,
        fields: Sequence[tuple[str, str]],
        page: int,
        page_size: int,
        enough: threading.Event | None = None,
    ) -> tuple[Reply, int]:
        """One page's answer, retried as every request is, and the requests it took; sends == 0
        when the run stopped first (or, for a page read ahead, the reading ended first)."""

        def pace() -> bool:
            return self.pace() and not (enough is not None and enough.is_set())

        return self.retried(
            lambda: self.client.search(fields, page, page_size, pace=pace), f"page {page}"
        )

    def retried(self, send: Callable[[], Reply], what: str) -> tuple[Reply, int]:
        """A read (`send`, paced by this reader), retried as every request is (429, 5xx, no
        answer), until its answer is final: the answer, and the requests it took; sends == 0
        when the run stopped before it could go out."""
        tries = Tries()
        sends = 0

        def tell(reason: str, delay: float) -> None:
            self._tell(f"{what}: {reason}", delay)

        while True:
            reply = send()
            sends += reply.sends
            if reply.sends == 0 or not retryable(reply):
                if reply.status is not None:
                    self.limiter.succeeded()  # an answer other than 429: the pace recovers
                return reply, sends
            if not wait_to_retry(
                reply, tries, self.retry, self.limiter, self._rng, self.halt, tell
            ):
                return reply, sends

    def read_one(self, ticket_number: str) -> Mapping[str, object] | Reply | None:
        """One ticket (GET), retried like every request: its values, the answer that refused
        it, or None when the run stopped first."""
        reply, _ = self.retried(
            lambda: self.client.get_ticket(ticket_number, pace=self.pace), ticket_number
        )
        if reply.sends == 0:
            return None
        if not reply.ok:
            return reply
        held = ticket_in_answer(reply.body, ticket_number)
        if held is not None:
            return held
        return Reply(reply.status, f"the answer held no ticket {ticket_number}")

    def read(
        self,
        fields: Sequence[tuple[str, str]] = (),
        *,
        wanted: Collection[str] | None = None,
        max_pages: int | None = None,
    ) -> PageRead:
        """Every ticket the query matches. AuthError propagates: the credentials were refused.

        wanted (ticket numbers): stop as soon as every one of them has been read. max_pages:
        read no more pages than that (and only the first, when the server's total count says
        more would be needed): the caller reads the tickets still missing one by one.
        """
        reading = _Reading(self.page_size)
        looked_for = {number.strip().upper() for number in wanted} if wanted is not None else None
        ahead = _Ahead(self, fields, reading)
        try:
            ended = self._pages(ahead, reading, looked_for, max_pages)
        finally:
            ahead.close()
        return self._done(reading, **ended)

    def _pages(
        self,
        ahead: _Ahead,
        reading: _Reading,
        looked_for: set[str] | None,
        max_pages: int | None,
    ) -> dict[str, Any]:
        """Read page after page until the reading ends; how it ended (for `_done`)."""
        page = 0
        from_one = False  # page 1 repeated page 0: taken as a server counting pages from 1
        while True:
            enough = self._enough(reading, looked_for, max_pages)
            if enough is not None:
                return enough
            reply = ahead.get(page, last=max_pages)
            if reply.sends == 0:
                return {"stopped": True}
            if reply.status == BAD_REQUEST and page == 0 and reading.page_size > MIN_PAGE_SIZE:
                smaller = max(MIN_PAGE_SIZE, reading.page_size // 2)
                reading.notes.append(
                    f"the server refused a page size of {reading.page_size} (HTTP 400); "
                    f"trying {smaller}"
                )
                reading.page_size = smaller
                continue
            if not reply.ok:
                return {"failure": answer_text(reply), "reply": reply}
            try:
                answer = tickets_in(reply.body)
            except AnswerShapeError as exc:
                return {"failure": str(exc), "reply": reply}
            if answer.total is not None:
                reading.total = answer.total
            if page == 0:
                ahead.pace_to(reply)
            unnumbered = reading.unnumbered
            new = self._take(answer.tickets, reading)
            if answer.tickets and reading.unnumbered - unnumbered == len(answer.tickets):
                return {
                    "failure": (
                        f"the tickets of the Search answer (page {page}) have no ticket number "
                        f"(the first one's keys: {_keys_text(answer.tickets[0])}); batch-update "
                        "takes it from a TicketNumber key, in any case. Run `batch-update show "
                        "TICKET` and report the shape your CCS answers with"
                    ),
                    "reply": reply,
                }
            if answer.tickets and not new:
                if page == 1:
                    # A server counting from 1 answers pages 0 and 1 alike: read on from 2.
                    from_one = True
                    reading.notes.append("the server counts pages from 1")
                    page += 1
                    continue
                if from_one and page == 2:
                    # Pages 0, 1 and 2 alike: the server ignores the page number, and the
                    # tickets past the first page were never read.
                    reading.notes.remove("the server counts pages from 1")
                    return {
                        "failure": (
                            "the server answered pages 0, 1 and 2 with the same tickets: it "
                            "seems to ignore the Page parameter; "
                            f"{count_text(len(reading.seen), 'ticket')} were read, more may match"
                        ),
                        "reply": reply,
                    }
                return {}
            reading.pages += 1
            if len(answer.tickets) < reading.page_size:
                return {}
            page += 1

    def _enough(
        self, reading: _Reading, looked_for: set[str] | None, max_pages: int | None
    ) -> dict[str, Any] | None:
        """How the reading ends before its next page (for `_done`), or None to read it: the run
        stopped, every ticket looked for was seen, or the page limit is reached (or would be)."""
        if self.halt.is_set():
            return {"stopped": True}
        if looked_for is not None and looked_for <= reading.seen.keys():
            return {}
        if max_pages is not None and reading.pages >= max_pages:
            reading.notes.append(f"stopped after {count_text(reading.pages, 'page')}")
            return {"partial": True}
        if (
            max_pages is not None
            and reading.total is not None
            and -(-reading.total // reading.page_size) > max_pages
        ):
            reading.notes.append(
                f"the server holds {count_text(reading.total, 'ticket')}: more pages than "
                "reading the missing tickets one by one would take"
            )
            return {"partial": True}
        return None

    def _take(self, tickets: Sequence[Mapping[str, object]], reading: _Reading) -> int:
        """Keep the tickets not seen before; how many were new."""
        new = 0
        for ticket in tickets:
            number = _number(ticket)
            if not number:
                reading.unnumbered += 1
                continue
            if number in reading.seen:
                reading.duplicates += 1
                continue
            reading.seen[number] = ticket
            new += 1
        return new

    def _done(
        self,
        reading: _Reading,
        *,
        failure: str = "",
        reply: Reply | None = None,
        stopped: bool = False,
        partial: bool = False,
    ) -> PageRead:
        notes = list(reading.notes)
        if reading.unnumbered and not failure:
            notes.append(
                f"{count_text(reading.unnumbered, 'ticket')} without a ticket number "
                f"{'was' if reading.unnumbered == 1 else 'were'} left out"
            )
        if reading.page_size != self.page_size and not failure:
            notes.append(f"pages of {reading.page_size} tickets were read")
        count = len(reading.seen)
        if (
            reading.total is not None
            and reading.total != count
            and not (failure or stopped or partial)
        ):
            notes.append(
                f"the server said {count_text(reading.total, 'ticket')} match; "
                f"{count_text(count, 'ticket')} were read"
            )
        return PageRead(
            tickets=tuple(reading.seen.values()),
            requests=reading.requests,
            pages=reading.pages,
            page_size=reading.page_size,
            notes=tuple(notes),
            failure=failure,
            failed_reply=reply,
            stopped=stopped,
            total=reading.total,
            duplicates=reading.duplicates,
            partial=partial,
        )
