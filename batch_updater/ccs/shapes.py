"""The shapes of a Search answer a client must survive (API-CONTRACT, "Reading tickets").

A Search answer may be a bare JSON array of tickets, or an object holding the array under one
member (`Tickets`, `Items`, `Data`, `Results`, `value`, any case), possibly beside a total count.
Ticket keys come in PascalCase or camelCase: they are matched case-insensitively elsewhere
(`tickets.ticket_field`); here the list is found and checked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_SHOWN_KEYS = 12


class AnswerShapeError(ValueError):
    """A Search answer in a shape the client cannot take tickets from; the message says why."""


@dataclass(frozen=True)
class SearchPage:
    """The tickets of one Search answer, and the total count the server gave beside them."""

    tickets: tuple[Mapping[str, object], ...]
    total: int | None = None


def _keys_text(body: Mapping[object, object]) -> str:
    keys = [json.dumps(str(key), ensure_ascii=False) for key in list(body)[:_SHOWN_KEYS]]
    more = len(body) - len(keys)
    return ", ".join(keys) + (f" and {more} more" if more > 0 else "") if keys else "none"


def _total(body: Mapping[object, object]) -> int | None:
    for key, value in body.items():
        words = str(key).casefold()
        if ("total" in words or "count" in words) and type(value) is int and value >= 0:
            return value
    return None


def tickets_in(body: object) -> SearchPage:
    """The tickets of a Search answer; AnswerShapeError if it holds none in a known shape."""
    total = None
    if isinstance(body, list):
        items = body
    elif isinstance(body, Mapping):
        lists = [value for value in body.values() if isinstance(value, list)]
        if len(lists) != 1:
            how = "no list of tickets" if not lists else f"{len(lists)} lists"
            raise AnswerShapeError(
                f"the Search answer is an object with {how} in it (its keys: "
                f"{_keys_text(body)}); batch-update takes the tickets from a bare list or from "
                "the one list an object holds. Run `batch-update show TICKET` and report the "
                "shape your CCS answers with."
            )
        items = lists[0]
        total = _total(body)
    elif body is None:
        raise AnswerShapeError("the Search answer was empty (no JSON in it)")
    else:
        raise AnswerShapeError(
            f"the Search answer is a JSON {type(body).__name__}, not a list of tickets"
        )
    tickets = tuple(item for item in items if isinstance(item, Mapping))
    if len(tickets) != len(items):
        raise AnswerShapeError(
            f"the Search answer's list holds {len(items) - len(tickets)} entries that are not "
            "tickets (JSON objects)"
        )
    return SearchPage(tickets, total)


def ticket_in_answer(body: object, ticket_number: str) -> Mapping[str, object] | None:
    """The ticket a read of one ticket (GET ?TicketNumber=) answered with: the object itself, or
    the one in a list (or in an object holding one) whose TicketNumber is the one asked for, in
    any case; None if the answer holds no such ticket (a list of others is not this ticket)."""
    wanted = ticket_number.strip().casefold()

    def number_of(ticket: Mapping[Any, object]) -> str | None:
        for key, value in ticket.items():
            if str(key).casefold() == "ticketnumber":
                return str(value).strip().casefold()
        return None

    if isinstance(body, Mapping) and number_of(body) is not None:
        return body if number_of(body) == wanted else None
    try:
        tickets = tickets_in(body).tickets
    except AnswerShapeError:
        return None
    return next((ticket for ticket in tickets if number_of(ticket) == wanted), None)
