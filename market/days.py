"""Which trading day a stored quote belongs to, and where that day begins and ends in stored time.

A quote that names its trading day (a global or bulk quote, a daily close) belongs to that day; a
bar names none and belongs to its New York date. A label naming a day that had not begun when the
quote was stamped is not believed: the quote belongs to its New York date. So every quote is stamped
at or after the start of its day, and a day's quotes are found by an indexed range from that start.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, time, timedelta
from typing import NamedTuple

from common.timestamps import format_time
from market.calendar import MARKET_ZONE

WHOLE_HOUR_OFFSETS = "1884"  # New York's offset from UTC has been whole hours since 1883
START_OF_TIME, END_OF_TIME = "0001-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z"  # the stored times' range


class QuoteDay(NamedTuple):
    """A trading day as the ISO date and its first instant and the next day's, as stored times."""

    day: str
    start: str
    end: str


@functools.lru_cache(maxsize=64)
def day_bounds(day: date) -> QuoteDay:
    # The first and last days reach the ends of stored time: no quote falls before or after them.
    start = format_time(datetime.combine(day, time(), MARKET_ZONE)) if day > date.min else START_OF_TIME
    end = format_time(datetime.combine(day + timedelta(days=1), time(), MARKET_ZONE)) if day < date.max else END_OF_TIME
    return QuoteDay(day.isoformat(), start, end)


def quote_day(ts: str, trading_day: str | None) -> QuoteDay:
    """The trading day of a quote stamped `ts` (a stored time) and labelled `trading_day` (or None)."""
    if trading_day is not None:
        labelled = day_bounds(date.fromisoformat(trading_day))
        if labelled.start <= ts:
            return labelled
    if ts >= WHOLE_HOUR_OFFSETS:
        return day_bounds(_new_york_date(ts[:13]))
    return day_bounds(_exact_new_york_date(datetime.fromisoformat(ts)))


@functools.lru_cache(maxsize=256)
def _new_york_date(utc_hour: str) -> date:
    """The New York date during a UTC hour ('2026-11-24T15'). New York's offset has changed only on whole
    UTC hours since 1883 (before that, local mean time), so the consumer converts once an hour of
    quotes rather than once a quote."""
    return _exact_new_york_date(datetime.fromisoformat(f"{utc_hour}:00:00+00:00"))


def _exact_new_york_date(moment: datetime) -> date:
    try:
        return moment.astimezone(MARKET_ZONE).date()
    except OverflowError:  # the first hours of year 1 have no New York date before them
        return moment.date()
