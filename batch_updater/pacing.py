"""Pacing: one rate limiter shared by every worker, and the backoff schedule for retries.

The configured rate is a ceiling the CCS server never sees exceeded, retries included: every
request, first try or retry, PATCH or GET, takes a slot from the same limiter. Slots are handed
out strictly spaced (no bursts), a little wider than 1/rate so that scheduling jitter between
here and the server cannot squeeze rate+1 requests into one second at the server's end.

A 429 pauses every worker until the server's Retry-After has passed and halves the pace; each
success afterwards wins back a small step, so the pace recovers slowly instead of snapping back
into the limit that was just hit.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Callable

# Slots are spaced 1% wider than 1/rate: any one-second window at the server then holds at
# most `rate` requests even when one request is delayed by up to ~10 ms on its way.
DEFAULT_SPACING_MARGIN = 1.01
# After a 429 the pace drops to this fraction of the current pace ...
THROTTLE_FACTOR = 0.5
# ... never below this fraction of the configured rate ...
MIN_RATE_FRACTION = 0.05
# ... and each success wins back this fraction of the configured rate.
RECOVERY_STEP = 0.02
# A Retry-After longer than this is capped: a sweep should not sit silent for an hour.
MAX_RETRY_AFTER = 300.0


class RateLimiter:
    """A token bucket of depth one shared by all workers: strictly spaced slots, no bursts."""

    def __init__(
        self,
        rate: float,
        *,
        spacing_margin: float = DEFAULT_SPACING_MARGIN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.max_rate = float(rate)
        self._rate = float(rate)
        self._margin = spacing_margin
        self._clock = clock
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._paused_until = 0.0
        self.throttle_count = 0

    @property
    def current_rate(self) -> float:
        """The pace in force now (lower than max_rate after a 429)."""
        return self._rate

    @property
    def interval(self) -> float:
        """Seconds between two slots at the current pace."""
        return self._margin / self._rate

    def reserve(self) -> float:
        """Book the next free slot and return its time on the limiter's clock."""
        with self._lock:
            slot = max(self._clock(), self._next_slot, self._paused_until)
            self._next_slot = slot + self.interval
            return slot

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Wait for a slot. Returns False, without a slot, if `stop` was set while waiting."""
        stop = stop or threading.Event()
        while True:
            slot = self.reserve()
            delay = slot - self._clock()
            if delay > 0 and stop.wait(delay):
                return False
            if stop.is_set():
                return False
            # A 429 that arrived while we waited moves every booked slot past the pause.
            with self._lock:
                if self._clock() >= self._paused_until:
                    return True

    def throttled(self, retry_after: float | None) -> None:
        """A 429 came back: pause every worker for Retry-After and lower the pace."""
        with self._lock:
            self.throttle_count += 1
            now = self._clock()
            wait = min(max(retry_after or 0.0, self.interval), MAX_RETRY_AFTER)
            self._paused_until = max(self._paused_until, now + wait)
            self._rate = max(self._rate * THROTTLE_FACTOR, self.max_rate * MIN_RATE_FRACTION)

    def succeeded(self) -> None:
        """An answer other than 429 came back: recover the pace a little."""
        if self._rate < self.max_rate:
            with self._lock:
                self._rate = min(self.max_rate, self._rate + self.max_rate * RECOVERY_STEP)


def backoff_delay(
    attempt: int, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): exponential, jittered.

    Half the exponential step is fixed and half is random ("equal jitter"), so that workers that
    failed together do not retry together, yet no retry comes back immediately.
    """
    step = min(cap, base * (2 ** max(attempt - 1, 0)))
    rng = rng or random
    return step / 2 + rng.uniform(0, step / 2)
