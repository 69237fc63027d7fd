"""The send loop: a pool of workers, the retry policy, the stop policy, and cancellation.

Modules: `pool` (`Sender`: the workers fed by a bounded queue, automatic concurrency, the stop
policy, every row's result told once), `row` (one row's requests: the read first, the PATCH,
the read-back, and the one retry step every request kind goes through), `pages` (every ticket a
Search matches, a page a request, through the same limiter and retry step), `policy` (what the
sender is told: `SendPolicies`, `EarlierRows`, `CurrentState`, `SenderHooks`; what it reports:
`SendReport`; how answers read: `reply_failure`, the messages).
"""

from .policy import (
    AUTO_MAX_WORKERS,
    AUTO_START_WORKERS,
    RETRYABLE_STATUSES,
    UNANSWERED,
    UNKNOWN_IN_FLIGHT,
    CurrentState,
    EarlierRows,
    Progress,
    RetryPolicy,
    SenderHooks,
    SendPolicies,
    SendReport,
    StopPolicy,
    UpdateClient,
    reply_failure,
    retryable,
)
from .pool import Sender

__all__ = [
    "AUTO_MAX_WORKERS",
    "AUTO_START_WORKERS",
    "RETRYABLE_STATUSES",
    "UNANSWERED",
    "UNKNOWN_IN_FLIGHT",
    "CurrentState",
    "EarlierRows",
    "Progress",
    "RetryPolicy",
    "SendPolicies",
    "SendReport",
    "Sender",
    "SenderHooks",
    "StopPolicy",
    "UpdateClient",
    "reply_failure",
    "retryable",
]
