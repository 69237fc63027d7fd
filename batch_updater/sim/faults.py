"""The trouble the simulator can make on purpose: throttling, errors, outages, drops and delay.

All of it is reproducible from one seed (given the order in which requests arrive) and reads its
knobs from the settings of the request at hand, so it can be changed while a run is going on.

The rate limit behaves like a proxy's (nginx `limit_req`, a gateway's sliding window): it keeps
the arrival times of the requests it let through in the last window, and turns a request away
when the window is full. A turned-away request is not added, so a client that keeps knocking
while throttled is not punished further, and the server never passes more than the limit in any
window, however hard it is pushed.
"""

from __future__ import annotations

import math
import random
import threading
from collections import deque
from enum import Enum

from .settings import SimSettings


class Fault(str, Enum):
    """A fault that replaced the normal answer to a request (the log records its value)."""

    RATE_LIMITED = "rate_limited"  # 429
    DROP = "drop"  # connection closed, no answer
    UNAVAILABLE = "unavailable"  # 503, as IIS says it
    ERROR = "error"  # 500, the vendor's message
    FAIL_TICKET = "fail_ticket"  # 500 for a ticket in fail_tickets
    FAILURE_BODY = "failure_body"  # 200 whose body says the update failed (failure_body_tickets)
    LOST_ANSWER = "lost_answer"  # applied, then the connection closed (lost_answer_tickets)


class FaultInjector:
    """Decides, request by request: throttle or not, which fault to inject, how long to wait."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        # Two generators, so that turning jitter on does not change which requests fail.
        self._faults = random.Random(seed)
        self._jitter = random.Random(None if seed is None else seed + 1)
        self._accepted: deque[float] = deque()

    def throttled(self, arrival: float, limit: float) -> bool:
        """Whether a request arriving at `arrival` (monotonic seconds) is over `limit` a second."""
        # An integer limit N means at most N in any 1-second window; a fractional one (0.5/s)
        # becomes a longer window with room for the whole part (1 in 2 s).
        capacity = max(1, math.floor(limit))
        window = capacity / limit
        with self._lock:
            accepted = self._accepted
            while accepted and accepted[0] <= arrival - window:
                accepted.popleft()
            if len(accepted) >= capacity:
                return True
            accepted.append(arrival)
            return False

    def draw(self, settings: SimSettings) -> Fault | None:
        """The random fault for one request, if any (drop, then unavailable, then error)."""
        # One draw per request whatever the rates, so that the sequence stays reproducible when a
        # test changes the rates halfway.
        with self._lock:
            roll = self._faults.random()
        threshold = settings.drop_rate
        if roll < threshold:
            return Fault.DROP
        threshold += settings.unavailable_rate
        if roll < threshold:
            return Fault.UNAVAILABLE
        threshold += settings.error_rate
        if roll < threshold:
            return Fault.ERROR
        return None

    def delay(self, settings: SimSettings) -> float:
        """Seconds to wait before answering: the fixed latency plus a uniform jitter."""
        delay = settings.latency_ms
        if settings.jitter_ms > 0:
            with self._lock:
                delay += self._jitter.uniform(0.0, settings.jitter_ms)
        return delay / 1000.0
