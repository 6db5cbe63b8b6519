"""OHLCV bars of the stored quotes, one a minute and one a trading day per symbol, kept up to date in
the transaction that stores the quotes: they are complete up to the newest committed quote.

A quote goes into the bar of its UTC minute and the bar of its trading day (market.days.quote_day:
the NYSE session it belongs to, not its UTC date). Bars merge by first/last/min/max/sum, so quotes
may come in any order and a batch touches each bar once, with one upsert. What a quote brings:

- a bar (TIME_SERIES_INTRADAY): its own open, high, low, close and volume;
- a snapshot (GLOBAL_QUOTE, REALTIME_BULK_QUOTES): its price as the minute's open, high, low and
  close, and the day's open, high and low it carries to the daily bar; its volume is the day's
  running total, so it is kept as `day_volume` (the largest seen), never summed;
- a session close (TIME_SERIES_DAILY, a backfill): the daily bar only. Its figures are the
  session's official ones and take the place of what the day's other quotes say (`official_ts`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from market.days import quote_day
from quotesource.alphavantage import TIME_SERIES_DAILY, TIME_SERIES_INTRADAY
from streaming.messages import QuoteRow

BARS_SCHEMA = """
-- One bar per symbol and UTC minute: `start` is the minute ('2026-12-03T14:31:00.000Z').
CREATE TABLE IF NOT EXISTS bars_1m (
    symbol     TEXT    NOT NULL,
    start      TEXT    NOT NULL,
    open       REAL    NOT NULL,
    high       REAL    NOT NULL,
    low        REAL    NOT NULL,
    close      REAL    NOT NULL,
    volume     INTEGER NOT NULL,  -- summed from intraday bars
    day_volume INTEGER,           -- the day's running volume at the last snapshot quote (NULL: none)
    quotes     INTEGER NOT NULL,
    first_ts   TEXT    NOT NULL,
    last_ts    TEXT    NOT NULL,
    PRIMARY KEY (symbol, start)
) WITHOUT ROWID;
-- One bar per symbol and trading day (the NYSE session's date, 'YYYY-MM-DD').
CREATE TABLE IF NOT EXISTS bars_1d (
    symbol      TEXT    NOT NULL,
    day         TEXT    NOT NULL,
    open        REAL    NOT NULL,
    high        REAL    NOT NULL,
    low         REAL    NOT NULL,
    close       REAL    NOT NULL,
    volume      INTEGER NOT NULL,  -- summed from intraday bars, or the session close's
    day_volume  INTEGER,
    quotes      INTEGER NOT NULL,
    first_ts    TEXT    NOT NULL,
    last_ts     TEXT    NOT NULL,
    official_ts TEXT,              -- the session close (TIME_SERIES_DAILY) the OHLCV figures are from, if any
    PRIMARY KEY (symbol, day)
) WITHOUT ROWID;
"""


class Bar(NamedTuple):
    """A bar in the column order of its table (`key`: the minute's start or the trading day)."""

    symbol: str
    key: str
    open: float
    high: float
    low: float
    close: float
    volume: int
    day_volume: int | None
    quotes: int
    first_ts: str
    last_ts: str
    official_ts: str | None = None


def minute_of(ts: str) -> str:
    """The start of a stored time's UTC minute, in stored-time form."""
    return f"{ts[:16]}:00.000Z"


def minute_contribution(row: QuoteRow) -> Bar | None:
    """What a quote adds to its minute's bar; None for a session close, which has no minute."""
    if row.source == TIME_SERIES_DAILY:
        return None
    if row.source == TIME_SERIES_INTRADAY:
        return Bar(row.symbol, minute_of(row.ts), row.open, row.high, row.low, row.price, row.volume, None, 1,
                   row.ts, row.ts)
    return Bar(row.symbol, minute_of(row.ts), row.price, row.price, row.price, row.price, 0, row.volume, 1,
               row.ts, row.ts)


def day_contribution(row: QuoteRow) -> Bar:
    """What a quote adds to its trading day's bar."""
    day = quote_day(row.ts, row.trading_day).day
    if row.source == TIME_SERIES_DAILY:
        return Bar(row.symbol, day, row.open, row.high, row.low, row.price, row.volume, None, 1, row.ts, row.ts,
                   row.ts)
    if row.source == TIME_SERIES_INTRADAY:
        return Bar(row.symbol, day, row.open, row.high, row.low, row.price, row.volume, None, 1, row.ts, row.ts)
    return Bar(row.symbol, day, row.open, row.high, row.low, row.price, 0, row.volume, 1, row.ts, row.ts)


def _larger(a: int | str | None, b: int | str | None) -> int | str | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)  # type: ignore[type-var]


def merge(a: Bar, b: Bar) -> Bar:
    """One bar of the quotes of two (the same symbol and key); the same whatever the order. The SQL upsert
    (MERGE_SET) says the same thing."""
    official_a, official_b = a.official_ts or "", b.official_ts or ""
    if official_a or official_b:
        winner = a if official_a > official_b else b
        open_, high, low, close, volume = winner.open, winner.high, winner.low, winner.close, winner.volume
    else:
        open_ = a.open if a.first_ts < b.first_ts else b.open
        close = a.close if a.last_ts > b.last_ts else b.close
        high, low, volume = max(a.high, b.high), min(a.low, b.low), a.volume + b.volume
    return Bar(a.symbol, a.key, open_, high, low, close, volume, _larger(a.day_volume, b.day_volume),  # type: ignore[arg-type]
               a.quotes + b.quotes, min(a.first_ts, b.first_ts), max(a.last_ts, b.last_ts),
               _larger(a.official_ts, b.official_ts))  # type: ignore[arg-type]


def fold_bars(contributions: Iterable[Bar | None]) -> list[Bar]:
    """The contributions merged into one bar per (symbol, key)."""
    bars: dict[tuple[str, str], Bar] = {}
    for bar in contributions:
        if bar is None:
            continue
        key = (bar.symbol, bar.key)
        known = bars.get(key)
        bars[key] = bar if known is None else merge(known, bar)
    return list(bars.values())


# SQLite's upsert reads the row as it was in every SET expression, so the order below does not matter.
OFFICIAL_WINS = "coalesce(excluded.official_ts, '') > coalesce(official_ts, '')"
OFFICIAL_STAYS = "coalesce(official_ts, '') > coalesce(excluded.official_ts, '')"
COMMON_SET = """
    day_volume = CASE WHEN day_volume IS NULL THEN excluded.day_volume WHEN excluded.day_volume IS NULL
                      THEN day_volume ELSE max(day_volume, excluded.day_volume) END,
    quotes = quotes + excluded.quotes,
    first_ts = min(first_ts, excluded.first_ts),
    last_ts = max(last_ts, excluded.last_ts)"""
AGGREGATE = {
    "open": "CASE WHEN excluded.first_ts < first_ts THEN excluded.open ELSE open END",
    "high": "max(high, excluded.high)",
    "low": "min(low, excluded.low)",
    "close": "CASE WHEN excluded.last_ts > last_ts THEN excluded.close ELSE close END",
    "volume": "volume + excluded.volume",
}
UPSERT_MINUTE = f"""
INSERT INTO bars_1m (symbol, start, open, high, low, close, volume, day_volume, quotes, first_ts, last_ts)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (symbol, start) DO UPDATE SET
    {", ".join(f"{column} = {expression}" for column, expression in AGGREGATE.items())}, {COMMON_SET}
"""
UPSERT_DAY = f"""
INSERT INTO bars_1d (symbol, day, open, high, low, close, volume, day_volume, quotes, first_ts, last_ts, official_ts)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (symbol, day) DO UPDATE SET
    {", ".join(f"{column} = CASE WHEN {OFFICIAL_WINS} THEN excluded.{column} WHEN {OFFICIAL_STAYS} THEN {column} "
               f"ELSE {expression} END" for column, expression in AGGREGATE.items())}, {COMMON_SET},
    official_ts = CASE WHEN {OFFICIAL_WINS} THEN excluded.official_ts ELSE official_ts END
"""


def write_bars(connection: sqlite3.Connection, rows: Sequence[QuoteRow]) -> None:
    """Fold newly stored quotes into their bars (inside the caller's transaction)."""
    if not rows:
        return
    connection.executemany(UPSERT_MINUTE, [bar[:11] for bar in fold_bars(map(minute_contribution, rows))])
    connection.executemany(UPSERT_DAY, fold_bars(map(day_contribution, rows)))
