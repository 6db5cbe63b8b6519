"""A symbol's prices over a span, read from raw quotes, 1-minute bars or daily bars by the span's length.

A day or less reads raw quotes; up to a month, 1-minute bars; longer, daily bars: a 1-year chart reads
about 250 rows a symbol, not millions. The span is the part of the one asked for that the symbol has
data in (a 1-year chart of three days of quotes reads 1-minute bars). A finer source is passed over
when the retention has deleted part of the span from it and a coarser one still holds it
(RETAIN_QUOTES=12h, a 1-day chart: minute bars). Each point is (ts, close, high, low, volume): the
time of its close, the close, the high and low of what it covers, and the volume traded in it.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import NamedTuple

from history.state import pending_catch_up

QUOTES, MINUTE_BARS, DAILY_BARS = "quotes", "1m", "1d"
SOURCES = (QUOTES, MINUTE_BARS, DAILY_BARS)  # finest first
ROW_NAMES = {QUOTES: "quote(s)", MINUTE_BARS: "1-minute bar(s)", DAILY_BARS: "daily bar(s)"}  # for log lines
RAW_SPAN = timedelta(days=1)  # at one quote per 5 s, 17,280 rows a symbol
MINUTE_SPAN = timedelta(days=31)  # at most 44,640 minutes a symbol

Point = tuple[str, float, float, float, int]


class Series(NamedTuple):
    points: list[Point]
    downsampled: bool  # True: more rows than points were asked for, folded into equal slices of time
    source: str  # QUOTES, MINUTE_BARS or DAILY_BARS


def has_bars(connection: sqlite3.Connection) -> bool:
    """Whether the bars hold every stored quote: not so for a database no consumer with bars has upgraded
    yet (a reader never writes), nor while the consumer is still rolling up the quotes from before them."""
    tables = connection.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                                "AND name IN ('bars_1m', 'bars_1d', 'history_state')").fetchone()[0]
    return tables == 3 and pending_catch_up(connection) is None


def oldest(connection: sqlite3.Connection, source: str, symbol: str) -> str | None:
    """The oldest time the source holds for the symbol (each read is the first entry of a primary key)."""
    query = {QUOTES: "SELECT min(ts) FROM stock_prices WHERE symbol = ?",
             MINUTE_BARS: "SELECT min(start) FROM bars_1m WHERE symbol = ?",
             DAILY_BARS: "SELECT first_ts FROM bars_1d WHERE symbol = ? ORDER BY day LIMIT 1"}[source]
    row = connection.execute(query, (symbol,)).fetchone()
    return row[0] if row else None


def covers(connection: sqlite3.Connection, finer: str, coarser: str, symbol: str, since: str) -> bool:
    """Whether the finer source holds as much of the span as the coarser: it reaches back to `since`, or
    the coarser reaches no further back than it does."""
    kept, reaches = oldest(connection, finer, symbol), oldest(connection, coarser, symbol)
    if kept is None:
        return reaches is None
    return kept <= since or reaches is None or reaches[:16] >= kept[:16]


def choose_source(connection: sqlite3.Connection, symbol: str, since: str, until: str) -> str:
    """The finest source the span's length allows, passed over while a coarser one holds more of the span."""
    if not has_bars(connection):
        return QUOTES
    # The span the symbol has data in: "all" of a week of quotes is a week, not a century.
    earliest = min(filter(None, (oldest(connection, DAILY_BARS, symbol), oldest(connection, QUOTES, symbol))),
                   default=since)
    span = datetime.fromisoformat(until) - datetime.fromisoformat(max(since, earliest))
    wanted = QUOTES if span <= RAW_SPAN else MINUTE_BARS if span <= MINUTE_SPAN else DAILY_BARS
    for finer, coarser in ((QUOTES, MINUTE_BARS), (MINUTE_BARS, DAILY_BARS)):
        if SOURCES.index(finer) >= SOURCES.index(wanted) and covers(connection, finer, coarser, symbol, since):
            return finer
    return DAILY_BARS


def read_series(connection: sqlite3.Connection, symbol: str, since: str, until: str,
                points: int | None) -> Series:
    """The symbol's points between `since` and `until`, oldest first, at most `points` (None: every row)."""
    source = choose_source(connection, symbol, since, until)
    if source == QUOTES:
        return Series(*quote_points(connection, symbol, since, until, points), source)
    query = MINUTE_POINTS if source == MINUTE_BARS else DAILY_POINTS
    found = connection.execute(query, (symbol, since[:16], until, since, until)).fetchall()
    if points is None or len(found) <= points:
        return Series([tuple(row[:5]) for row in found], False, source)  # type: ignore[misc]
    return Series(fold_slices(found, points, until_day=connection.execute("SELECT julianday(?)",
                                                                          (until,)).fetchone()[0]), True, source)


# A bar's volume: what its intraday bars traded, plus, for snapshot quotes (whose volume is the day's
# running total), how far the day's total rose since the bar before (a fall means a new day began).
MINUTE_POINTS = """
SELECT ts, close, high, low, volume + CASE
           WHEN day_volume IS NULL OR previous IS NULL THEN 0
           WHEN day_volume >= previous THEN day_volume - previous
           ELSE day_volume END, julianday(ts)
FROM (SELECT last_ts AS ts, close, high, low, volume, day_volume,
             lag(day_volume) OVER (ORDER BY start) AS previous
      FROM bars_1m WHERE symbol = ? AND start >= ? || ':00.000Z' AND start <= ?)
WHERE ts >= ? AND ts <= ? ORDER BY ts
"""
DAILY_POINTS = """
SELECT last_ts, close, high, low,
       CASE WHEN official_ts IS NOT NULL THEN volume ELSE max(volume, coalesce(day_volume, 0)) END, julianday(last_ts)
FROM bars_1d WHERE symbol = ? AND day >= substr(?, 1, 10) AND first_ts <= ? AND last_ts >= ? AND last_ts <= ?
ORDER BY last_ts
"""


def fold_slices(rows: list[tuple], points: int, until_day: float) -> list[Point]:
    """Rows of (ts, close, high, low, volume, julian day), oldest first, folded into `points` equal slices of
    the time from the first row to `until`: each slice's last close, its high and low, its summed volume."""
    first = rows[0][5]
    width = (until_day - first + 1e-9) / points
    folded: list[Point] = []
    current = -1
    for ts, close, high, low, volume, day in rows:
        index = int((day - first) / width)
        if index == current:
            _, _, top, bottom, traded = folded[-1]
            folded[-1] = (ts, close, max(top, high), min(bottom, low), traded + volume)
        else:
            folded.append((ts, close, high, low, volume))
            current = index
    return folded


def quote_points(connection: sqlite3.Connection, symbol: str, since: str, until: str,
                 points: int | None) -> tuple[list[Point], bool]:
    """Raw quotes as points: each one if there are at most `points`, else one per equal slice of the time
    from the first of them to `until` (its last quote's time and price, the slice's high, low and volume)."""
    count, first = connection.execute("SELECT count(*), min(ts) FROM stock_prices WHERE symbol = ? AND ts >= ? "
                                      "AND ts <= ?", (symbol, since, until)).fetchone()
    since = first or since  # the slices span the quotes there are, not a year with a week of data in it
    if points is None or count <= points:
        rows = connection.execute("SELECT ts, price, price, price, volume FROM stock_prices "
                                  "WHERE symbol = ? AND ts >= ? AND ts <= ? ORDER BY ts", (symbol, since, until))
        return [tuple(row) for row in rows], False
    # Each slice's last quote is found again by its (symbol, ts) key, the unique index.
    rows = connection.execute(
        "SELECT slice.last_ts, quote.price, slice.high, slice.low, slice.volume FROM ("
        "  SELECT max(ts) AS last_ts, max(price) AS high, min(price) AS low, sum(volume) AS volume"
        "  FROM stock_prices WHERE symbol = ? AND ts >= ? AND ts <= ?"
        "  GROUP BY CAST((julianday(ts) - julianday(?)) * ? / (julianday(?) - julianday(?) + 1e-9) AS INTEGER)"
        ") AS slice JOIN stock_prices AS quote ON quote.symbol = ? AND quote.ts = slice.last_ts ORDER BY slice.last_ts",
        (symbol, since, until, since, points, until, since, symbol))
    return [tuple(row) for row in rows], True
