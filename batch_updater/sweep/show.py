"""`show TICKET`: one ticket exactly as the server sends it, for a user to see (and report) the
shape their CCS version answers with (API-CONTRACT, "Reading tickets")."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .outcome import ExitStatus, Transport
from .server import client_for, server

if TYPE_CHECKING:
    from ..settings import Settings
    from .console import Console


@dataclass(frozen=True)
class ShowRequest:
    """One ticket to show, and how to reach the server."""

    ticket: str
    simulate: bool = False
    transport: Transport = field(default_factory=Transport)


@dataclass(frozen=True)
class ShowOutcome:
    """The server's answer: its text as sent (secrets removed), its status, what it means."""

    status: ExitStatus
    http_status: int | None
    text: str  # the body as the server sent it; "" when none came
    message: str  # the answer in words (the server's message, or why nothing came)
    server_url: str = ""
    key_spelling: str = ""  # "PascalCase", "camelCase", "mixed" or "" (not a ticket)


def key_spelling(body: object) -> str:
    """How a ticket's keys are spelt: "PascalCase", "camelCase", "mixed", or "" if no ticket."""
    ticket = body[0] if isinstance(body, list) and body else body
    if not isinstance(ticket, dict) or not ticket:
        return ""
    firsts = {str(key)[:1].isupper() for key in ticket if str(key)[:1].isalpha()}
    if firsts == {True}:
        return "PascalCase"
    if firsts == {False}:
        return "camelCase"
    return "mixed"


def show(request: ShowRequest, settings: Settings, console: Console) -> ShowOutcome:
    """GET one ticket (paced and retried like every request) and return the answer as sent."""
    from ..pacing import RateLimiter
    from ..runner.pages import PageReader
    from .sending import retry_policy

    def tell(reason: str, delay: float) -> None:
        console.note(f"Retrying {reason}, in {delay:.1f} s.")

    with ExitStack() as stack:
        login = server(stack, settings, request, console)
        client = client_for(login, settings, request, console)
        stack.callback(client.close)
        client.login()
        reader = PageReader(client, RateLimiter(settings.rate), retry_policy(settings), tell=tell)
        reply, _ = reader.retried(
            lambda: client.show_ticket(request.ticket, pace=reader.pace), request.ticket
        )
    if reply.ok:
        return ShowOutcome(
            ExitStatus.OK,
            reply.status,
            reply.text,
            f"HTTP {reply.status}",
            login.url,
            key_spelling(reply.body),
        )
    from ..runner.policy import answer_text

    return ShowOutcome(
        ExitStatus.ROWS_FAILED, reply.status, reply.text, answer_text(reply), login.url
    )
