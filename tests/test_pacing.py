"""Pacing maths: slot spacing, pauses on 429, slow recovery, and the backoff schedule."""

from __future__ import annotations

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


def test_slots_are_spaced_at_least_one_over_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock)
    slots = [limiter.reserve() for _ in range(50)]
    gaps = [b - a for a, b in zip(slots, slots[1:])]
    assert min(gaps) == pytest.approx(DEFAULT_SPACING_MARGIN / 10)
    # any window of one second holds at most `rate` slots
    for i, start in enumerate(slots):
        assert sum(1 for s in slots if start <= s < start + 1.0) <= 10


def test_idle_time_does_not_build_up_a_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(5, clock=clock)
    limiter.reserve()
    clock.now += 60  # a minute with nothing to send
    first, second = limiter.reserve(), limiter.reserve()
    assert second - first == pytest.approx(DEFAULT_SPACING_MARGIN / 5)


def test_throttle_pauses_everyone_and_halves_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(20, clock=clock)
    limiter.reserve()
    limiter.throttled(retry_after=3)
    assert limiter.current_rate == pytest.approx(10)
    assert limiter.reserve() >= clock.now + 3


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
    assert limiter.reserve() <= clock.now + MAX_RETRY_AFTER + 1e-9


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
