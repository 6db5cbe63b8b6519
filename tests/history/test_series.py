"""Readers take raw quotes, 1-minute or daily bars by the span asked for, and a coarser source when the
retention has deleted the finer one's part of the span; the points agree with the quotes they cover."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import db
from history.purge import Purge
from history.retention import Retention
from history.series import DAILY_BARS, MINUTE_BARS, QUOTES, choose_source, read_series
from reference_bars import make_pre_bars_database, quote, stored_in

DAYS = [f"2026-12-{day:02d}" for day in (1, 2, 3, 4, 7, 8, 9, 10, 11)]
NOW = "2026-12-11T21:00:00.000Z"


def session(symbol: str = "IBM") -> list:
    """A snapshot quote every 20 s of each session (14:30 to 21:00 UTC), its volume the day's running total."""
    rows = []
    for day in DAYS:
        start = datetime.fromisoformat(f"{day}T14:30:00+00:00")
        for step in range(390 * 3):
            moment = start + timedelta(seconds=20 * step)
            rows.append(quote(symbol, moment.strftime("%Y-%m-%dT%H:%M:%S.000Z"), 100 + (step % 23) / 4,
                              volume=1000 * (step + 1), trading_day=day))
    return rows


def test_the_span_picks_the_source_and_the_points_agree_with_the_quotes(tmp_path):
    rows = session()
    connection = stored_in(tmp_path / "stocks.db", rows)
    day = read_series(connection, "IBM", "2026-12-11T00:00:00.000Z", NOW, points=None)
    week = read_series(connection, "IBM", "2026-12-04T21:00:00.000Z", NOW, points=None)
    year = read_series(connection, "IBM", "2025-12-11T21:00:00.000Z", NOW, points=None)
    # A year asked for, nine sessions held: the span is the nine sessions', so 1-minute bars.
    assert (day.source, week.source, year.source) == (QUOTES, MINUTE_BARS, MINUTE_BARS)
    assert len(day.points) == 1170 and len(week.points) == 5 * 390 and len(year.points) == 9 * 390
    # A minute's point: its last quote's time and price, its high and low, what the day's volume rose by.
    in_week = [row for row in rows if row.ts >= "2026-12-04T21:00:00.000Z"]
    first_minute = in_week[:3]
    assert week.points[0] == (first_minute[-1].ts, first_minute[-1].price, max(r.price for r in first_minute),
                              min(r.price for r in first_minute), 0)  # no bar before it in the span to rise from
    assert week.points[1][4] == 3000  # three quotes later, the day's volume is 3,000 higher


def test_a_span_longer_than_a_month_of_data_reads_daily_bars(tmp_path):
    rows = []
    day = datetime(2026, 9, 1, tzinfo=UTC)
    while len({row.trading_day for row in rows}) < 45:
        if day.weekday() < 5:
            rows += [quote("IBM", (day + timedelta(hours=14, minutes=30 + 20 * step)).strftime(
                "%Y-%m-%dT%H:%M:%S.000Z"), 100 + step, volume=1000 * (step + 1), trading_day=day.date().isoformat())
                for step in range(19)]
        day += timedelta(days=1)
    connection = stored_in(tmp_path / "stocks.db", rows)
    year = read_series(connection, "IBM", "2025-12-11T21:00:00.000Z", NOW, points=None)
    assert year.source == DAILY_BARS and len(year.points) == 45
    # A day's point: the session's last price, the day's high and low its quotes carried, its volume.
    last_day = [row for row in rows if row.trading_day == rows[-1].trading_day]
    assert year.points[-1] == (last_day[-1].ts, last_day[-1].price, max(r.high for r in last_day),
                               min(r.low for r in last_day), last_day[-1].volume)


def test_a_span_the_retention_has_thinned_reads_the_coarser_bars_that_still_hold_it(tmp_path):
    connection = stored_in(tmp_path / "stocks.db", session())
    day_since = "2026-12-10T21:00:00.000Z"
    assert choose_source(connection, "IBM", day_since, NOW) == QUOTES
    Purge(connection, Retention(quotes=timedelta(hours=24), minute_bars=timedelta(days=3)),
          datetime(2026, 12, 11, 18, 0, tzinfo=UTC), pause=lambda _: None).run()
    # Raw quotes are kept from 12-10 18:00; the 1-day span starts there: they still hold it.
    assert choose_source(connection, "IBM", day_since, NOW) == QUOTES
    # A day from 12-10 14:30 is older than the raw quotes kept, and the minute bars hold it.
    series = read_series(connection, "IBM", "2026-12-10T14:30:00.000Z", "2026-12-11T14:30:00.000Z", points=None)
    assert series.source == MINUTE_BARS and series.points[0][0] == "2026-12-10T14:30:40.000Z"
    # Five days: minute bars kept for three, the daily bars hold all five.
    week = read_series(connection, "IBM", "2026-12-04T21:00:00.000Z", NOW, points=None)
    assert week.source == DAILY_BARS and len(week.points) == 5


def test_long_spans_are_folded_into_the_points_asked_for(tmp_path):
    rows = session()
    connection = stored_in(tmp_path / "stocks.db", rows)
    week = read_series(connection, "IBM", "2026-12-04T21:00:00.000Z", NOW, points=100)
    # Equal slices of time from the first bar (12-07 14:30) to the end: the sessions fill about a third.
    assert week.source == MINUTE_BARS and week.downsampled and 30 <= len(week.points) <= 100
    assert week.points[-1][:2] == (rows[-1].ts, rows[-1].price)
    in_week = [row for row in rows if row.ts >= "2026-12-04T21:00:00.000Z"]
    assert max(point[2] for point in week.points) == max(row.price for row in in_week)
    everything = read_series(connection, "IBM", "2026-12-04T21:00:00.000Z", NOW, points=None)
    assert sum(point[4] for point in week.points) == sum(point[4] for point in everything.points)


def test_a_database_without_bars_or_still_rolling_up_reads_raw_quotes(tmp_path):
    rows = session()[:3000]
    old = tmp_path / "old.db"
    make_pre_bars_database(old, rows)
    reading = sqlite3.connect(old)  # as the monitor finds it before any consumer has upgraded it
    assert choose_source(reading, "IBM", "2025-12-11T21:00:00.000Z", NOW) == QUOTES
    reading.close()
    upgraded = db.connect(old)  # upgraded, its quotes not rolled up yet
    series = read_series(upgraded, "IBM", "2025-12-11T21:00:00.000Z", NOW, points=None)
    assert series.source == QUOTES and len(series.points) == 3000
