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
from operator import attrgetter

from market.days import WHOLE_HOUR_OFFSETS, quote_day
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


by_time = attrgetter("ts")  # no two quotes of a symbol share a time (the table's UNIQUE key)


Key = tuple[str, str]


def bars_of(rows: Iterable[QuoteRow]) -> tuple[list[tuple], list[tuple]]:
    """The minute bars and the daily bars of `rows` (in UPSERT_MINUTE's and UPSERT_DAY's column order).

    The rows are grouped in one pass and each group folded at once: a bar object per quote, merged into
    the next, cost the consumer a quarter of its throughput."""
    minutes: dict[Key, list[QuoteRow]] = {}
    days: dict[Key, list[QuoteRow]] = {}
    day_of_hour: dict[tuple[str | None, str], str] = {}
    for row in rows:
        symbol, ts = row.symbol, row.ts
        if row.source != TIME_SERIES_DAILY:
            if (group := minutes.get(key := (symbol, ts[:16]))) is None:
                minutes[key] = [row]
            else:
                group.append(row)
        # A trading day starts on a whole UTC hour (market.days), so quotes of the same label and UTC hour
        # share their day: one calendar look-up an hour of quotes, not one a quote.
        if ts < WHOLE_HOUR_OFFSETS or (day := day_of_hour.get((row.trading_day, ts[:13]))) is None:
            day = day_of_hour[row.trading_day, ts[:13]] = quote_day(ts, row.trading_day).day
        if (group := days.get(key := (symbol, day))) is None:
            days[key] = [row]
        else:
            group.append(row)
    return ([minute_bar(symbol, f"{minute}:00.000Z", group) for (symbol, minute), group in minutes.items()],
            [day_bar(symbol, day, group) for (symbol, day), group in days.items()])


def minute_bar(symbol: str, start: str, group: list[QuoteRow]) -> tuple:
    if len(group) == 1:  # the usual case live: a quote per symbol every few seconds
        row = group[0]
        if row.source == TIME_SERIES_INTRADAY:
            return symbol, start, row.open, row.high, row.low, row.price, row.volume, None, 1, row.ts, row.ts
        return symbol, start, row.price, row.price, row.price, row.price, 0, row.volume, 1, row.ts, row.ts
    first, last = min(group, key=by_time), max(group, key=by_time)
    intraday = [row for row in group if row.source == TIME_SERIES_INTRADAY]
    snapshots = [row for row in group if row.source != TIME_SERIES_INTRADAY] if intraday else group
    prices = [row.price for row in snapshots]
    highs, lows = [row.high for row in intraday] + prices, [row.low for row in intraday] + prices
    open_ = first.open if first.source == TIME_SERIES_INTRADAY else first.price
    return (symbol, start, open_, max(highs), min(lows), last.price, sum(row.volume for row in intraday),
            max(row.volume for row in snapshots) if snapshots else None, len(group), first.ts, last.ts)


def day_bar(symbol: str, day: str, group: list[QuoteRow]) -> tuple:
    if len(group) == 1:
        row = group[0]
        if row.source == TIME_SERIES_DAILY:
            return symbol, day, row.open, row.high, row.low, row.price, row.volume, None, 1, row.ts, row.ts, row.ts
        if row.source == TIME_SERIES_INTRADAY:
            return symbol, day, row.open, row.high, row.low, row.price, row.volume, None, 1, row.ts, row.ts, None
        return symbol, day, row.open, row.high, row.low, row.price, 0, row.volume, 1, row.ts, row.ts, None
    first, last = min(group, key=by_time), max(group, key=by_time)
    volumes = [row.volume for row in group if row.source not in (TIME_SERIES_DAILY, TIME_SERIES_INTRADAY)]
    common = (max(volumes) if volumes else None, len(group), first.ts, last.ts)
    closes = [row for row in group if row.source == TIME_SERIES_DAILY]
    if closes:  # the session's official figures: the latest close
        official = max(closes, key=by_time)
        return (symbol, day, official.open, official.high, official.low, official.price, official.volume, *common,
                official.ts)
    return (symbol, day, first.open, max(row.high for row in group), min(row.low for row in group), last.price,
            sum(row.volume for row in group if row.source == TIME_SERIES_INTRADAY), *common, None)


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
    minutes, days = bars_of(rows)
    connection.executemany(UPSERT_MINUTE, minutes)
    connection.executemany(UPSERT_DAY, days)
