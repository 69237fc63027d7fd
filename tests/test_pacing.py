"""Pacing maths: slot spacing, pauses on 429, slow recovery, and the backoff schedule."""

from __future__ import annotations

import itertools
import math
import random
import threading

import pytest

from batch_updater.pacing import (
    DEFAULT_SPACING_MARGIN,
    MAX_RETRY_AFTER,
    MIN_RATE_FRACTION,
    RateLimiter,
    backoff_delay,
)


class FakeClock:
    """A clock the test moves by hand, so that the maths is checked without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def take(limiter: RateLimiter, clock: FakeClock, lateness: float = 0.0) -> float:
    """Wait (on the fake clock) for the next slot, waking `lateness` seconds late; its time."""
    while (wait := limiter.try_acquire()) > 0:
        clock.now += wait + lateness
    return clock.now


def most_in_one_second(times: list[float]) -> int:
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


def test_slots_are_evenly_spaced_at_just_under_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock)
    slots = [take(limiter, clock) for _ in range(50)]
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) == pytest.approx(DEFAULT_SPACING_MARGIN / 10)
    assert most_in_one_second(slots) <= 10


@pytest.mark.parametrize("rate", [0.5, 1, 2.5, 7, 20, 50])
@pytest.mark.parametrize("lateness", [0.0, 0.003, 0.015])
def test_late_wake_ups_never_put_more_than_the_rate_in_one_second(rate, lateness) -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate, clock=clock)
    rng = random.Random(7)
    times = [take(limiter, clock, lateness * rng.random()) for _ in range(int(rate * 6) + 3)]
    assert most_in_one_second(times) <= math.ceil(rate)
    achieved = (len(times) - 1) / (times[-1] - times[0])
    if lateness == 0 and rate == int(rate):
        assert achieved == pytest.approx(rate / DEFAULT_SPACING_MARGIN, rel=0.01)
    else:
        assert achieved >= rate * 0.85


def test_idle_time_does_not_build_up_a_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(5, clock=clock)
    take(limiter, clock)
    clock.now += 60  # a minute with nothing to send
    first, second = take(limiter, clock), take(limiter, clock)
    assert second - first == pytest.approx(DEFAULT_SPACING_MARGIN / 5)


def test_throttle_pauses_everyone_and_halves_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(20, clock=clock)
    take(limiter, clock)
    throttled_at = clock.now
    limiter.throttled(retry_after=3)
    assert limiter.current_rate == pytest.approx(10)
    assert take(limiter, clock) >= throttled_at + 3


def test_rate_never_drops_below_the_floor_and_recovers_slowly() -> None:
    limiter = RateLimiter(10, clock=FakeClock())
    for _ in range(20):
        limiter.throttled(retry_after=0)
    assert limiter.current_rate == pytest.approx(10 * MIN_RATE_FRACTION)
    limiter.succeeded()
    assert limiter.current_rate < 1.0  # one success does not snap back
    for _ in range(100):
        limiter.succeeded()
    assert limiter.current_rate == pytest.approx(10)


def test_retry_after_is_capped() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, clock=clock)
    limiter.throttled(retry_after=86400)
    assert limiter.try_acquire() <= MAX_RETRY_AFTER + 1e-9


def test_acquire_returns_false_when_stopped_while_waiting() -> None:
    limiter = RateLimiter(0.2)  # one slot every five seconds
    assert limiter.acquire() is True
    stop = threading.Event()
    threading.Timer(0.05, stop.set).start()
    assert limiter.acquire(stop) is False


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 10])
def test_backoff_is_exponential_jittered_and_capped(attempt: int) -> None:
    rng = random.Random(attempt)
    step = min(30.0, 1.0 * 2 ** (attempt - 1))
    for _ in range(200):
        delay = backoff_delay(attempt, 1.0, 30.0, rng)
        assert step / 2 <= delay <= step
