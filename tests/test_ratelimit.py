"""The call budget, driven by a fake clock: no real sleeping."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from quotesource.limiter import Backoff, RateLimiter


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


START = datetime(2026, 11, 24, 15, 0, tzinfo=UTC).timestamp()


def run_calls(limiter: RateLimiter, clock: FakeClock, count: int, work: float = 0.0) -> list[float]:
    """Make `count` calls as the producer does: wait what the limiter says, call for `work` seconds, finish."""
    times = []
    for _ in range(count):
        clock.now += limiter.delay()
        assert limiter.delay() == 0
        limiter.record()
        times.append(clock.now)
        clock.now += work
        limiter.finish()
    return times


@pytest.mark.parametrize(("per_minute", "work"), [(5, 0.0), (5, 0.4), (5, 7.3), (30, 0.05), (75, 0.0), (600, 0.0)])
def test_no_60_second_window_ever_holds_more_than_the_budget(per_minute, work):
    clock = FakeClock(START)
    limiter = RateLimiter(per_minute, per_day=100_000, clock=clock)
    times = run_calls(limiter, clock, 500, work)
    for index, start in enumerate(times):
        in_window = [t for t in times[index:index + per_minute + 1] if t < start + 60]
        assert len(in_window) <= per_minute
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= min(1.0, 60 / per_minute) - 1e-6  # float timestamps


def test_free_tier_calls_go_one_second_apart_then_wait_for_the_window():
    clock = FakeClock(START)
    limiter = RateLimiter(5, 25, clock=clock)
    times = run_calls(limiter, clock, 7)
    assert [t - START for t in times] == [0, 1, 2, 3, 4, 60, 61]


def test_slow_calls_do_not_make_the_limiter_drift():
    clock = FakeClock(START)
    limiter = RateLimiter(5, 25, clock=clock)
    times = run_calls(limiter, clock, 10, work=3.0)
    # Each call 1 s after the previous one ended, and the sixth 60 s after the first one ended (at 3 s):
    # the wait is computed from the calls made, not a fixed sleep added after each one.
    assert [t - START for t in times] == [0, 4, 8, 12, 16, 63, 67, 71, 75, 79]


def test_the_next_call_is_spaced_from_when_the_last_one_completed():
    clock = FakeClock(START)
    limiter = RateLimiter(5, 25, clock=clock)
    limiter.record()
    clock.now += 0.3  # a slow first call (new connection)
    limiter.finish()
    assert limiter.delay() == pytest.approx(1.0)


def test_the_daily_budget_waits_until_the_next_utc_day():
    clock = FakeClock(START)
    limiter = RateLimiter(5, 25, clock=clock)
    run_calls(limiter, clock, 25)
    assert limiter.day_exhausted()
    midnight = datetime(2026, 11, 25, tzinfo=UTC).timestamp()
    assert limiter.delay() == pytest.approx(midnight - clock.now)
    clock.now = midnight
    assert not limiter.day_exhausted()
    assert limiter.calls_today() == 0
    assert limiter.delay() == 0


def test_the_server_saying_the_day_is_spent_overrides_our_count():
    clock = FakeClock(START)
    limiter = RateLimiter(5, 25, clock=clock)
    run_calls(limiter, clock, 3)
    limiter.exhaust_day()
    assert limiter.day_exhausted()
    assert limiter.delay() == pytest.approx(datetime(2026, 11, 25, tzinfo=UTC).timestamp() - clock.now)


def test_a_restored_limiter_keeps_the_budget_of_the_one_before_it():
    clock = FakeClock(START)
    first = RateLimiter(5, 25, clock=clock)
    run_calls(first, clock, 5)
    second = RateLimiter(5, 25, clock=clock)
    second.restore(first.snapshot())
    assert second.calls_today() == 5
    assert clock.now + second.delay() == START + 60


def test_a_malformed_snapshot_is_refused():
    with pytest.raises(ValueError):
        RateLimiter(5, 25).restore({"recent": "x", "day": 1, "day_count": 1})


def test_backoff_doubles_up_to_its_cap_and_resets():
    backoff = Backoff(initial=12, maximum=100)
    assert [backoff.next_delay() for _ in range(5)] == [12, 24, 48, 96, 100]
    backoff.reset()
    assert backoff.next_delay() == 12
