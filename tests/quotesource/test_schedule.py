"""Polling hours, catch-up passes and the even pace as pure functions of the NYSE calendar and a fake clock."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest

from config import Settings, load_settings
from market import calendar as calendar_module
from market.calendar import TradingCalendar
from market.hours import PollingHours
from market.status import market_status
from polling.poller import closed_line
from polling.publisher import NewQuoteFilter
from producer import describe_pace
from quotesource.alphavantage import Quote
from quotesource.limiter import RateLimiter
from quotesource.pace import CATCH_UP_DELAY, catch_up_closing, needs_catch_up, next_paced_call, pace_plan
from quotesource.plan import CallPlan, ScheduleMemory
from quotesource.schedule import Target

CALENDAR = TradingCalendar.nyse()
MARKET = PollingHours("market", CALENDAR)
EXTENDED = PollingHours("extended", CALENDAR)
ALWAYS = PollingHours("always")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def window(hours: PollingHours, moment: str) -> tuple[str, str] | None:
    found = hours.window_at(utc(moment))
    return None if found is None else (found.start.isoformat()[:16], found.end.isoformat()[:16])


# (moment UTC, regular session open then, next opening, last closing) on the days that matter.
CASES = [
    # an ordinary Monday: 09:30-16:00 EST is 14:30-21:00 UTC
    ("2026-11-30 14:29", None, "2026-11-30 14:30", "2026-11-27 18:00"),
    ("2026-11-30 14:30", ("2026-11-30T14:30", "2026-11-30T21:00"), "2026-12-01 14:30", "2026-11-27 18:00"),
    ("2026-11-30 20:59", ("2026-11-30T14:30", "2026-11-30T21:00"), "2026-12-01 14:30", "2026-11-27 18:00"),
    ("2026-11-30 21:00", None, "2026-12-01 14:30", "2026-11-30 21:00"),
    # a weekend
    ("2026-11-28 12:00", None, "2026-11-30 14:30", "2026-11-27 18:00"),
    # Thanksgiving, a holiday
    ("2026-11-26 15:00", None, "2026-11-27 14:30", "2026-11-25 21:00"),
    # the day after: an early close at 13:00 EST
    ("2026-11-27 17:59", ("2026-11-27T14:30", "2026-11-27T18:00"), "2026-11-30 14:30", "2026-11-25 21:00"),
    ("2026-11-27 18:00", None, "2026-11-30 14:30", "2026-11-27 18:00"),
    # clocks go forward on Sunday 2026-03-08: Friday closes 21:00 UTC (EST), Monday opens 13:30 UTC (EDT)
    ("2026-03-08 12:00", None, "2026-03-09 13:30", "2026-03-06 21:00"),
    ("2026-03-09 13:30", ("2026-03-09T13:30", "2026-03-09T20:00"), "2026-03-10 13:30", "2026-03-06 21:00"),
    # clocks go back on Sunday 2026-11-01: Friday closes 20:00 UTC (EDT), Monday opens 14:30 UTC (EST)
    ("2026-11-01 12:00", None, "2026-11-02 14:30", "2026-10-30 20:00"),
    ("2026-11-02 14:30", ("2026-11-02T14:30", "2026-11-02T21:00"), "2026-11-03 14:30", "2026-10-30 20:00"),
]


@pytest.mark.parametrize(("moment", "session", "opening", "closing"), CASES)
def test_market_hours_follow_the_nyse_calendar(moment, session, opening, closing):
    assert window(MARKET, moment) == session
    assert MARKET.next_opening(utc(moment)) == utc(opening)
    assert MARKET.last_closing(utc(moment)) == utc(closing)


def test_the_lines_that_say_when_polling_resumes_and_whether_the_market_is_open():
    assert closed_line("market", MARKET.next_opening(utc("2026-11-28 12:00"))) == \
        "market closed; next session opens Mon 2026-11-30 09:30 EST"
    assert closed_line("extended", EXTENDED.next_opening(utc("2026-11-28 12:00"))) == \
        "outside the extended hours; polling resumes Mon 2026-11-30 04:00 EST"
    assert market_status(CALENDAR, utc("2026-11-28 12:00")).text() == "market closed, opens Mon 09:30 EST"
    assert market_status(CALENDAR, utc("2026-11-30 15:00")).text() == "market open, closes 16:00 EST"
    assert market_status(CALENDAR, utc("2026-11-27 15:00")).text() == "market open, closes 13:00 EST"
    assert market_status(CALENDAR, utc("2026-03-09 14:00")).text() == "market open, closes 16:00 EDT"


def test_extended_hours_run_4_to_20_new_york_time_on_trading_days_and_4_hours_past_an_early_close():
    assert window(EXTENDED, "2026-11-30 12:00") == ("2026-11-30T09:00", "2026-12-01T01:00")
    assert window(EXTENDED, "2026-12-01 00:30") == ("2026-11-30T09:00", "2026-12-01T01:00")
    assert window(EXTENDED, "2026-11-27 21:00") == ("2026-11-27T09:00", "2026-11-27T22:00")  # until 17:00 EST
    assert window(EXTENDED, "2026-11-26 12:00") is None  # Thanksgiving
    assert window(EXTENDED, "2026-03-09 08:00") == ("2026-03-09T08:00", "2026-03-10T00:00")  # EDT
    assert EXTENDED.next_opening(utc("2026-11-01 12:00")) == utc("2026-11-02 09:00")  # EST again


def test_always_is_open_at_any_moment_and_has_no_closing():
    for moment in ("2026-11-26 15:00", "2026-11-28 03:00", "2026-03-08 07:00"):
        assert ALWAYS.window_at(utc(moment)) is not None
    assert ALWAYS.last_closing(utc("2026-11-28 12:00")) is None
    assert ALWAYS.open_seconds(utc("2026-11-28 00:00"), utc("2026-11-29 00:00")) == 86400


def test_polling_time_skips_closed_time():
    # Monday's session, then Tuesday's: 6.5 h each, the night not counted.
    assert MARKET.open_seconds(utc("2026-11-30 00:00"), utc("2026-12-02 00:00")) == 2 * 6.5 * 3600
    assert MARKET.open_seconds(utc("2026-11-27 00:00"), utc("2026-11-28 00:00")) == 3.5 * 3600  # early close
    assert MARKET.advance(utc("2026-11-30 20:00"), 2 * 3600, utc("2026-12-02 00:00")) == utc("2026-12-01 15:30")
    assert MARKET.advance(utc("2026-11-30 20:00"), 2 * 3600, utc("2026-12-01 00:00")) is None


def test_the_catch_up_pass_comes_after_each_closing_for_symbols_last_called_before_it():
    friday_close = utc("2026-11-27 18:00")
    assert catch_up_closing(MARKET, friday_close + CATCH_UP_DELAY - timedelta(seconds=1)) == utc("2026-11-25 21:00")
    assert catch_up_closing(MARKET, friday_close + CATCH_UP_DELAY) == friday_close
    assert needs_catch_up(utc("2026-11-27 17:55"), friday_close)
    assert not needs_catch_up(utc("2026-11-27 18:05"), friday_close)
    assert needs_catch_up(None, friday_close)  # never called: a first start
    assert not needs_catch_up(None, catch_up_closing(ALWAYS, friday_close))


def test_a_start_on_sunday_calls_the_symbols_the_last_closing_left_behind_then_waits_for_monday():
    limiter = RateLimiter(5, 25, clock=lambda: utc("2026-11-29 15:00").timestamp())
    last_called = {"IBM": utc("2026-11-27 18:06"), "MSFT": utc("2026-11-27 17:40")}  # AAPL: never
    targets = [Target([symbol]) for symbol in ("IBM", "MSFT", "AAPL")]
    sunday = utc("2026-11-29 15:00")
    plan = CallPlan(targets, [], MARKET, limiter, last_called, sunday)
    assert plan.wait(sunday) == 0
    taken = [plan.take(sunday), plan.take(sunday)]
    assert [target.symbols for target in taken] == [["MSFT"], ["AAPL"]]
    for target in taken:
        plan.called(target, sunday)
        plan.put_back(target)
    assert plan.wait(sunday) == 3600  # nothing due: look again within the hour
    assert plan.closed_until(sunday) == utc("2026-11-30 14:30")
    # --once on Sunday: the same two, then done; a second --once has nothing to do.
    once = CallPlan(targets, [], MARKET, limiter, {"IBM": utc("2026-11-27 18:06")}, sunday, once=True)
    assert [target.symbols for target in once.rotation.targets] == [["MSFT"], ["AAPL"]]
    assert CallPlan(targets, [], MARKET, limiter, dict.fromkeys(["IBM", "MSFT", "AAPL"], sunday), sunday,
                    once=True).finished()


def test_the_pace_is_a_call_every_16_minutes_for_the_free_tier_with_one_kept_for_the_catch_up():
    plan = pace_plan(MARKET, utc("2026-11-30 14:30"), per_day=25, calls_today=0, targets=1)
    assert (plan.calls, plan.reserve, plan.polling_seconds) == (24, 1, 6.5 * 3600)
    assert plan.interval == 975  # 16.25 minutes
    # Fewer calls than symbols: the catch-up pass after the close is served first.
    assert pace_plan(MARKET, utc("2026-11-30 14:30"), 25, 0, targets=30).calls == 0
    # No daily limit: the hours alone decide.
    assert next_paced_call(MARKET, utc("2026-11-28 12:00"), 0, 0, None, 1) == utc("2026-11-30 14:30")
    assert next_paced_call(ALWAYS, utc("2026-11-28 12:00"), 0, 0, None, 1) == utc("2026-11-28 12:00")
    # Today's calls spent: the next paced call is the next session's first moment.
    assert next_paced_call(MARKET, utc("2026-11-30 16:00"), 25, 25, utc("2026-11-30 15:59"), 1) == \
        utc("2026-12-01 14:30")


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now


def play(plan: CallPlan, limiter: RateLimiter, clock: FakeClock, until: datetime,
         answer_seconds: float = 0.4) -> list[tuple[datetime, str]]:
    """Run the plan and the limiter as the producer's loop does, on the fake clock; the calls made."""
    calls = []
    while clock.now < until.timestamp():
        now = datetime.fromtimestamp(clock.now, UTC)
        wait = max(limiter.delay(), plan.wait(now))
        if wait > 0:
            clock.now = min(clock.now + wait, until.timestamp())
            continue
        target = plan.take(now)
        assert target is not None
        call = limiter.record()
        calls.append((now, target.symbols[0]))
        clock.now += answer_seconds
        limiter.finish(call)
        plan.called(target, now)
        plan.put_back(target)
    return calls


@pytest.mark.parametrize(("day", "opening", "closing", "symbols"), [
    ("2026-11-30", "14:30", "21:00", 1),  # an ordinary day
    ("2026-11-30", "14:30", "21:00", 5),
    ("2026-11-27", "14:30", "18:00", 3),  # the early close
    ("2026-03-09", "13:30", "20:00", 2),  # the first session in daylight-saving time
    ("2026-11-02", "14:30", "21:00", 1),  # the first after it
])
def test_a_whole_session_on_a_fake_clock_spends_the_25_calls_evenly_inside_it(day, opening, closing, symbols):
    names = [f"S{index}" for index in range(symbols)]
    start, end = utc(f"{day} 00:00"), utc(f"{day} 00:00") + timedelta(days=1)
    clock = FakeClock(start)
    limiter = RateLimiter(5, 25, clock=clock)
    # Every symbol was called after the previous session closed: no start-up catch-up.
    last_called = dict.fromkeys(names, start - timedelta(hours=1))
    plan = CallPlan([Target([name]) for name in names], [], MARKET, limiter, last_called, start)
    calls = play(plan, limiter, clock, end)

    assert len(calls) == 25
    session_open, session_close = utc(f"{day} {opening}"), utc(f"{day} {closing}")
    paced, catch_up = calls[:25 - symbols], calls[25 - symbols:]
    assert all(session_open <= moment < session_close for moment, _ in paced)
    assert paced[0][0] == session_open
    # The catch-up pass: each symbol once, right after the close (1 s apart: the burst limit).
    assert sorted(symbol for _, symbol in catch_up) == sorted(names)
    assert all(session_close + CATCH_UP_DELAY <= moment < session_close + CATCH_UP_DELAY + timedelta(minutes=1)
               for moment, _ in catch_up)
    # Evenly spread: the gaps differ by less than a second, one interval of the session each.
    gaps = [(b - a).total_seconds() for (a, _), (b, _) in itertools.pairwise(paced)]
    interval = (session_close - session_open).total_seconds() / (25 - symbols)
    assert max(gaps) - min(gaps) < 1 and abs(gaps[0] - interval) < 1
    # Round-robin: each symbol refreshed every `symbols` calls.
    assert [symbol for _, symbol in paced] == list(itertools.islice(itertools.cycle(names), len(paced)))
    # No 60-second window holds more than 5 calls.
    moments = [moment.timestamp() for moment, _ in calls]
    assert all(sum(1 for other in moments if first <= other < first + 60) <= 5 for first in moments)


@pytest.mark.parametrize("per_day", [0, 25])
def test_around_the_clock_a_call_goes_at_once_and_then_at_the_pace(per_day):
    now = utc("2026-11-28 12:00")
    limiter = RateLimiter(600, per_day, clock=lambda: now.timestamp())
    plan = CallPlan([Target(["IBM"]), Target(["MSFT"])], [], ALWAYS, limiter, {}, now)
    assert plan.wait(now) == 0
    target = plan.take(now)
    limiter.finish(limiter.record())
    plan.called(target, now)
    plan.put_back(target)
    # 24 calls left over the 12 h left of the UTC day: the next one 12 h / 25 later; without a limit, at once.
    assert plan.wait(now) == (0 if per_day == 0 else 12 * 3600 / 25)


def test_a_weekend_on_a_fake_clock_makes_only_the_start_up_catch_up_pass():
    start = utc("2026-11-28 12:00")  # Saturday; the last pass predates Friday's early close
    clock = FakeClock(start)
    limiter = RateLimiter(5, 25, clock=clock)
    last_called = {"IBM": utc("2026-11-27 17:30"), "MSFT": utc("2026-11-27 17:45")}
    plan = CallPlan([Target(["IBM"]), Target(["MSFT"])], [], MARKET, limiter, last_called, start)
    calls = play(plan, limiter, clock, utc("2026-11-30 14:30"))
    assert [(moment.isoformat()[:19], symbol) for moment, symbol in calls] == [
        ("2026-11-28T12:00:00", "IBM"), ("2026-11-28T12:00:01", "MSFT")]


def test_with_no_daily_limit_only_the_per_minute_budget_paces_and_only_inside_the_hours():
    start = utc("2026-11-27 00:00")
    clock = FakeClock(start)
    limiter = RateLimiter(75, 0, clock=clock, in_flight=1)
    names = [f"S{index}" for index in range(10)]
    plan = CallPlan([Target([name]) for name in names], [], MARKET, limiter,
                    dict.fromkeys(names, start), start)
    calls = play(plan, limiter, clock, utc("2026-11-28 00:00"), answer_seconds=0.1)
    inside = [moment for moment, _ in calls if utc("2026-11-27 14:30") <= moment < utc("2026-11-27 18:00")]
    after = [moment for moment, _ in calls if moment >= utc("2026-11-27 18:00")]
    assert len(after) == 10  # the catch-up pass
    assert len(inside) == len(calls) - 10
    # One call at a time, each 0.8 s (60/75) after the previous answer, which takes 0.1 s: 3.5 h of that.
    assert len(inside) == pytest.approx(3.5 * 3600 / 0.9, abs=2)


def test_daily_closes_are_remembered_apart_from_intraday_bars():
    day = datetime(2026, 11, 27, 18, tzinfo=UTC)
    bar = Quote("IBM", day + timedelta(hours=2), 1.0, 1.0, 1.0, 1.0, 1, "TIME_SERIES_INTRADAY", day)
    close = Quote("IBM", day, 1.0, 1.0, 1.0, 1.0, 1, "TIME_SERIES_DAILY", day, trading_day="2026-11-27")
    seen = NewQuoteFilter()
    seen.remember([bar])
    assert seen.new_quotes([close]) == [close]  # an older moment, but the first close: history is not a bar
    seen.remember([close])
    restored = NewQuoteFilter()
    restored.restore(json.loads(json.dumps(seen.snapshot())))
    assert restored.new_quotes([close, bar]) == []


def test_the_schedule_memory_survives_a_restart_and_distrusts_the_future():
    now = utc("2026-11-28 12:00")
    memory = ScheduleMemory({"IBM": utc("2026-11-27 18:06")}, {"IBM"})
    again = ScheduleMemory()
    assert again.restore(json.loads(json.dumps(memory.snapshot())), now) == []
    assert again == memory
    dropped = again.restore({"last_called": {"IBM": 4e9, "MSFT": "yesterday", "AAPL": 1e300}, "backfilled": [1]},
                            now)
    assert again.last_called == {"IBM": now}  # a call in the future counts as made now
    assert len(dropped) == 2 and again.backfilled == set()


def pace_settings(**values: str) -> Settings:
    return load_settings({"STOCK_SYMBOLS": "IBM,MSFT,AAPL,TSLA,NVDA", **values}, environ={}, env_file=None)


def test_the_pace_line_says_how_often_each_symbol_is_refreshed():
    saturday = utc("2026-11-28 12:00")
    limiter = RateLimiter(5, 25, clock=lambda: saturday.timestamp())
    assert describe_pace(MARKET, saturday, pace_settings(), limiter) == (
        "pace from Mon 09:30 EST: 20 call(s) over the 6.5 h of market hours left in the UTC day, 5 kept for the "
        "catch-up pass after the close: one every 19.5 min, each symbol refreshed about every 1.62 h")
    monday = utc("2026-11-30 14:30")
    assert describe_pace(ALWAYS, monday, pace_settings(STOCK_SYMBOLS="IBM"), limiter).startswith(
        "pace: 25 call(s) over the 9.5 h left in the UTC day: one every 22.8 min")
    premium = pace_settings(REQUESTS_PER_MINUTE="75", REQUESTS_PER_DAY="0")
    assert describe_pace(MARKET, monday, premium, RateLimiter(75, 0)) == (
        "pace: no daily limit, so 75/min during the market hours: each symbol refreshed about every 4 s")


def test_the_calendar_is_cached_on_disk_and_a_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setattr(calendar_module, "CACHE_DIR", tmp_path)
    stale = tmp_path / "xnys-4.0.0-2020-01-01.json"
    tmp_path.joinpath(stale.name).write_text("[]")
    try:
        calendar_module._nyse.cache_clear()
        built = TradingCalendar.nyse()
        [cached] = tmp_path.glob("xnys-*.json")  # the old one is gone
        assert cached != stale
        calendar_module._nyse.cache_clear()
        assert TradingCalendar.nyse().sessions == built.sessions  # read back from the file
        cached.write_text('[[1, "x"')
        calendar_module._nyse.cache_clear()
        assert TradingCalendar.nyse().sessions == built.sessions
        assert built.session_on(datetime(2026, 11, 27).date()).close == utc("2026-11-27 18:00")
    finally:
        calendar_module._nyse.cache_clear()
