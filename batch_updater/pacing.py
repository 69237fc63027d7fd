"""Pacing: one rate limiter shared by every worker, and the backoff schedule for retries.

The configured rate is a ceiling, retries included, that holds where requests leave; at the
server it holds as long as requests do not arrive unevenly by more than the margin below (about
25 ms), which covers a LAN and a quiet machine but not every network. Every
request, first try or retry, PATCH or GET, takes a slot from the same limiter. Slots are evenly
spaced (no bursts), a little wider than 1/rate, and a guard over the real send times keeps a
late wake-up from squeezing rate+1 requests into one second at the server's end.

A 429 pauses every worker until the server's Retry-After has passed and halves the pace; each
success afterwards wins back a small step, so the pace recovers slowly instead of snapping back
into the limit that was just hit.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable

# Slots are spaced 2.5% wider than 1/rate: any one-second window at the server then holds at
# most `rate` requests even when requests are delayed unevenly by up to ~25 ms on their way.
DEFAULT_SPACING_MARGIN = 1.025
# After a 429 the pace drops to this fraction of the current pace ...
THROTTLE_FACTOR = 0.5
# ... never below this fraction of the configured rate ...
MIN_RATE_FRACTION = 0.05
# ... and each success wins back this fraction of the configured rate.
RECOVERY_STEP = 0.02
# A Retry-After longer than this is capped: a sweep should not sit silent for an hour.
MAX_RETRY_AFTER = 300.0


class RateLimiter:
    """The pace shared by all workers: evenly spaced slots, and never a burst above the rate.

    Two rules hold together. Slots follow an even schedule 1/rate apart (kept across small
    delays so a late wake-up costs no throughput). And a guard over the times requests really
    left: at most ceil(rate) of them in any stretch of ceil(rate)/rate seconds, widened by a small
    margin. The guard is what makes "never above the rate" true at the server's end too: a
    worker that woke late cannot squeeze an extra request into someone else's second.
    """

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
        self._sent: deque[float] = deque(maxlen=math.ceil(self.max_rate) + 1)
        self.throttle_count = 0

    @property
    def current_rate(self) -> float:
        """The pace in force now (lower than max_rate after a 429)."""
        return self._rate

    @property
    def interval(self) -> float:
        """Seconds between two slots at the current pace."""
        return self._margin / self._rate

    def try_acquire(self) -> float:
        """Take a slot now and return 0.0, or return how many seconds to wait before asking again."""
        with self._lock:
            now = self._clock()
            due = max(self._next_slot, self._paused_until)
            burst = math.ceil(self._rate - 1e-9)
            if len(self._sent) >= burst:
                due = max(due, self._sent[-burst] + self._margin * burst / self._rate)
            if now < due:
                return due - now
            # Keep the even schedule through small delays; after idling, start afresh from now.
            base = due if now - due < self.interval else now
            self._next_slot = base + self.interval
            self._sent.append(now)
            return 0.0

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Wait for a slot. Returns False, without a slot, if `stop` was set while waiting."""
        stop = stop or threading.Event()
        while not stop.is_set():
            wait = self.try_acquire()
            if wait <= 0:
                return True
            if stop.wait(wait):
                return False
        return False

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


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based): exponential, jittered.

    Half the exponential step is fixed and half is random ("equal jitter"), so that workers that
    failed together do not retry together, yet no retry comes back immediately.
    """
    step = min(cap, base * (2 ** max(attempt - 1, 0)))
    uniform = rng.uniform if rng is not None else random.uniform
    return step / 2 + uniform(0, step / 2)
