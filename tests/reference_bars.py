"""Bars computed from scratch, the plain way (group, sort, take), to check the incremental ones against,
and small builders of quote rows the history tests share."""

from __future__ import annotations

import sqlite3
from collections import defaultdict

import db
from market.days import quote_day
from streaming.messages import QuoteRow

DAILY, INTRADAY = "TIME_SERIES_DAILY", "TIME_SERIES_INTRADAY"
BAR_COLUMNS = "open, high, low, close, volume, day_volume, quotes, first_ts, last_ts"


def quote(symbol: str, ts: str, price: float, source: str = "GLOBAL_QUOTE", volume: int = 100,
          spread: float = 1.0, trading_day: str | None = None) -> QuoteRow:
    """A quote row: a snapshot carries the day's open/high/low around its price, a bar its own."""
    return QuoteRow(symbol, ts, price, price - spread / 2, price + spread, price - spread, volume, None, None,
                    trading_day, source, ts)


def stored_in(path, rows: list[QuoteRow]) -> sqlite3.Connection:
    """A database at `path` holding `rows`, stored as the consumer stores them (2,000 a batch)."""
    connection = db.connect(path)
    for start in range(0, len(rows), 2000):
        db.save_batch(connection, rows[start:start + 2000], [])
    return connection


def stored_quotes(connection: sqlite3.Connection) -> list[QuoteRow]:
    return [QuoteRow(*row) for row in connection.execute(
        "SELECT symbol, ts, price, open, high, low, volume, change, change_percent, trading_day, source, fetched_at "
        "FROM stock_prices ORDER BY id")]


def _snapshot_volume(rows: list[QuoteRow]) -> int | None:
    volumes = [row.volume for row in rows if row.source not in (DAILY, INTRADAY)]
    return max(volumes) if volumes else None


def minute_bars(rows: list[QuoteRow]) -> dict[tuple[str, str], tuple]:
    groups: dict[tuple[str, str], list[QuoteRow]] = defaultdict(list)
    for row in rows:
        if row.source != DAILY:
            groups[row.symbol, row.ts[:16] + ":00.000Z"].append(row)
    bars = {}
    for key, group in groups.items():
        group.sort(key=lambda row: row.ts)
        bar_like = [row for row in group if row.source == INTRADAY]
        opens = {row.ts: (row.open if row.source == INTRADAY else row.price) for row in group}
        highs = [row.high if row.source == INTRADAY else row.price for row in group]
        lows = [row.low if row.source == INTRADAY else row.price for row in group]
        bars[key] = (opens[group[0].ts], max(highs), min(lows), group[-1].price,
                     sum(row.volume for row in bar_like), _snapshot_volume(group), len(group), group[0].ts,
                     group[-1].ts)
    return bars


def daily_bars(rows: list[QuoteRow]) -> dict[tuple[str, str], tuple]:
    groups: dict[tuple[str, str], list[QuoteRow]] = defaultdict(list)
    for row in rows:
        groups[row.symbol, quote_day(row.ts, row.trading_day).day].append(row)
    bars = {}
    for key, group in groups.items():
        group.sort(key=lambda row: row.ts)
        closes = [row for row in group if row.source == DAILY]
        common = (_snapshot_volume(group), len(group), group[0].ts, group[-1].ts)
        if closes:  # the session's official figures: the latest close stored
            official = closes[-1]
            bars[key] = (official.open, official.high, official.low, official.price, official.volume, *common,
                         official.ts)
        else:
            bars[key] = (group[0].open, max(row.high for row in group), min(row.low for row in group),
                         group[-1].price, sum(row.volume for row in group if row.source == INTRADAY), *common, None)
    return bars


def table_bars(connection: sqlite3.Connection) -> tuple[dict, dict]:
    """(minute bars, daily bars) as stored, keyed like the reference."""
    minutes = {(row[0], row[1]): tuple(row[2:]) for row in connection.execute(
        f"SELECT symbol, start, {BAR_COLUMNS} FROM bars_1m")}
    days = {(row[0], row[1]): tuple(row[2:]) for row in connection.execute(
        f"SELECT symbol, day, {BAR_COLUMNS}, official_ts FROM bars_1d")}
    return minutes, days


def make_pre_bars_database(path, rows: list) -> None:
    """A database as the release before the bars wrote it: quotes, no bars tables, user_version 4."""
    connection = db.connect(path)
    db.save_batch(connection, rows, [])
    connection.executescript("DROP TABLE bars_1m; DROP TABLE bars_1d; DROP TABLE history_state; "
                             "PRAGMA user_version = 4;")
    connection.close()
