"""The call budget, driven by a fake clock: no real sleeping."""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quotesource.limiter import Backoff, RateLimiter
from quotesource.schedule import Rotation, Target


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


def simulate(per_minute: int, latencies: Iterator[float], targets: int, seconds: float,
             arrival_share: Iterator[float]) -> tuple[list[tuple[float, float, float, int]], RateLimiter]:
    """Drive the limiter and the rotation as the producer does, on a fake clock, with calls in flight.

    Returns every call as (start, arrival at the server, end, target) and the limiter."""
    clock = FakeClock(START)
    limiter = RateLimiter(per_minute, per_day=0, clock=clock)
    rotation = Rotation([Target([f"S{index}"]) for index in range(targets)])
    in_flight: list[tuple[float, Target, object]] = []
    calls = []
    while clock.now < START + seconds:
        for end, target, token in sorted(in_flight, key=lambda entry: entry[0]):
            if end <= clock.now:
                limiter.finish(token, now=end)
                rotation.put_back(target)
                in_flight.remove((end, target, token))
        busy = {id(target) for _, target, _ in in_flight}
        wait = limiter.delay()
        if wait == 0 and len(in_flight) < limiter.max_in_flight and (target := rotation.take()) is not None:
            assert id(target) not in busy, "a target was called twice at once"
            latency = next(latencies)
            token = limiter.record()
            calls.append((clock.now, clock.now + latency * next(arrival_share), clock.now + latency,
                          int(target.symbols[0][1:])))
            in_flight.append((clock.now + latency, target, token))
            continue
        next_end = min((end for end, _, _ in in_flight), default=math.inf)
        clock.now = min(next_end, clock.now + wait) if wait > 0 else next_end  # wait == 0: no room or no target
    return calls, limiter


def most_in_any_window(times: list[float], width: float = 60.0) -> int:
    times = sorted(times)
    return max((bisect.bisect_left(times, start + width) - index for index, start in enumerate(times)), default=0)


@pytest.mark.parametrize("per_minute", [75, 600, 1200])
def test_calls_in_flight_use_the_budget_and_never_exceed_it_at_the_server(per_minute):
    chance = random.Random(per_minute)
    calls, limiter = simulate(per_minute, iter(lambda: chance.uniform(0.15, 0.35), None), targets=50,
                              seconds=180, arrival_share=iter(chance.random, None))
    assert limiter.max_in_flight > 1
    arrivals = [arrival for _, arrival, _, _ in calls]
    assert most_in_any_window(arrivals) <= per_minute
    starts = [start for start, _, _, _ in calls]
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 60 / per_minute - 1e-6  # float timestamps
    # 250 ms answers: the budget is used, not a third of it (one call at a time made 170 of 600).
    assert len(calls) >= 0.95 * per_minute * 3


@settings(max_examples=100)
@given(per_minute=st.sampled_from([61, 75, 150, 600, 1200]),
       latencies=st.lists(st.floats(0.001, 30.0), min_size=1, max_size=50),
       shares=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=50),
       targets=st.integers(1, 120))
def test_no_latency_pattern_puts_more_than_the_budget_in_a_server_window(per_minute, latencies, shares, targets):
    calls, _ = simulate(per_minute, itertools.cycle(latencies), targets, seconds=130,
                        arrival_share=itertools.cycle(shares))
    assert most_in_any_window([arrival for _, arrival, _, _ in calls]) <= per_minute
    open_calls: dict[int, float] = {}
    for start, _, end, target in sorted(calls):
        assert open_calls.get(target, -math.inf) <= start, "a target was called again before its answer"
        open_calls[target] = end


def test_up_to_60_a_minute_one_call_at_a_time_spaced_from_its_answer():
    for per_minute in (5, 30, 60):
        assert RateLimiter(per_minute, 25).max_in_flight == 1
    assert RateLimiter(61, 25).max_in_flight > 1
    assert RateLimiter(100_000, 0).max_in_flight == 32


def test_no_daily_limit_with_requests_per_day_0_until_the_server_says_otherwise():
    clock = FakeClock(START)
    limiter = RateLimiter(600, 0, clock=clock)
    run_calls(limiter, clock, 2000)
    assert not limiter.day_exhausted()
    limiter.exhaust_day()  # Alpha Vantage's own daily-limit notice
    assert limiter.day_exhausted()
    midnight = datetime(2026, 11, 25, tzinfo=UTC).timestamp()
    assert limiter.delay() == pytest.approx(midnight - clock.now)


@given(st.lists(st.tuples(st.floats(0, 5), st.floats(0, 70), st.booleans()), min_size=1, max_size=12),
       st.floats(0, 200))
def test_the_calls_left_in_the_minute_agree_with_the_wait(calls, later):
    """stockmon_api_calls_left{window="minute"} counts as delay() does (answers out of order, some calls
    still in flight): none left means the next call must wait; once every call is answered, waiting out
    delay() leaves at least one, and one left means only the spacing between calls holds the next back."""
    limiter = RateLimiter(per_minute=3, per_day=0, in_flight=3, clock=lambda: 0.0)
    now, last_end = 0.0, 0.0
    for gap, latency, answered in calls:
        now += gap
        call = limiter.record(now=now)
        if answered:
            limiter.finish(call, now=now + latency)
            last_end = max(last_end, now + latency)
    now = max(now, last_end) + later
    if limiter.calls_left_in_minute(now=now) == 0:
        assert limiter.delay(now=now) > 0
    if all(answered for _, _, answered in calls):
        waited = now + limiter.delay(now=now) + 1e-6  # the wait is a float difference: its sum may fall short
        assert limiter.calls_left_in_minute(now=waited) >= 1
        if limiter.calls_left_in_minute(now=now) > 0:  # then only the spacing between calls may hold one back
            assert limiter.delay(now=now) <= limiter.min_interval + 1e-9
