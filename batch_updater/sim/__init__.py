"""A local simulator of the CCS remediation-ticket API, for the demo, rehearsals and the tests.

It is a real HTTP server that answers like the CCS server described in API-CONTRACT.md (tokens,
PATCH and GET of tickets, the exact messages), and can misbehave on purpose: latency, throttling,
errors, outages, dropped connections. It imports nothing from the rest of `batch_updater`, so it
cannot share the client's mistakes, and needs nothing beyond the standard library to run.

By default it reads tickets back in PascalCase (`TicketNumber`...), answers a Search with a bare
JSON array, counts pages from 0, takes a PageSize up to 1000 and runs no verification job; the
other shapes the contract says a client must survive are settings (key_case, search_shape,
max_page_size, first_page, verification, verification_delay).

    with Simulator(port=0, seed=1, rate_limit=10) as sim:
        ... point the client at sim.url ...
        assert sim.ticket("INCA0000001")["TicketState"] == 2
"""

from __future__ import annotations

from .auth import DEFAULT_USERS, PasswordEncoding, SimUser
from .requestlog import RequestRecord
from .server import DEFAULT_HOST, DEFAULT_PORT, Simulator
from .settings import KeyCase, RetryAfterFormat, SearchShape, SimSettings, Verification
from .store import RESTRICTED_STANDARD, SeedFileError, TicketState, ticket_number

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_USERS",
    "RESTRICTED_STANDARD",
    "KeyCase",
    "PasswordEncoding",
    "RequestRecord",
    "RetryAfterFormat",
    "SearchShape",
    "SeedFileError",
    "SimSettings",
    "SimUser",
    "Simulator",
    "TicketState",
    "Verification",
    "ticket_number",
]
