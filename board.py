"""What the monitor shows, read from the database as of one moment: a line per symbol and the latest alerts.

A symbol's change is measured against the previous close: Alpha Vantage's own for global quotes,
else the last stored price before the trading day began; when neither is known, against the
first quote of the day. Intraday bars carry no day of their own: theirs is the US/Eastern date.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import db
from messages import AlertRow, format_time

MARKET_ZONE = ZoneInfo("America/New_York")
PREVIOUS_CLOSE = "previous close"
FIRST_OF_DAY = "first quote of the day"


@dataclass(frozen=True)
class SymbolLine:
    """One symbol on the board."""

    symbol: str
    price: float
    ts: str
    change: float
    change_percent: float
    reference: str  # PREVIOUS_CLOSE or FIRST_OF_DAY
    reference_price: float
    day: str
    day_low: float
    day_high: float
    recent: tuple[float, ...]  # the last prices, oldest first, for the sparkline
    age_seconds: float
    stale: bool


@dataclass(frozen=True)
class Board:
    as_of: datetime
    database: str
    lines: tuple[SymbolLine, ...]
    alerts: tuple[AlertRow, ...]


def market_day(ts: str, trading_day: str | None) -> tuple[str, str, str]:
    """(day, first instant, first instant of the next day) of a quote's trading day, as stored times."""
    day = date.fromisoformat(trading_day) if trading_day else datetime.fromisoformat(ts).astimezone(MARKET_ZONE).date()
    start = datetime.combine(day, time(), MARKET_ZONE)
    end = datetime.combine(day + timedelta(days=1), time(), MARKET_ZONE)
    return day.isoformat(), format_time(start), format_time(end)


def build_board(connection: sqlite3.Connection, database: str, as_of: datetime, stale_after: timedelta,
                recent: int = 20, alert_count: int = 5) -> Board:
    """The board as of `as_of`, read in one transaction so that a consumer writing meanwhile cannot
    tear it; an empty board when there are no quotes (or no tables) yet."""
    until = format_time(as_of)
    connection.execute("BEGIN")
    try:
        if not db.has_table(connection, "stock_prices"):
            return Board(as_of, database, (), ())
        lines = tuple(_symbol_line(connection, symbol, until, as_of, stale_after, recent)
                      for symbol in db.symbols_until(connection, until))
        alerts = tuple(db.latest_alerts(connection, until, alert_count))
    finally:
        connection.execute("COMMIT")
    return Board(as_of, database, lines, alerts)


def _symbol_line(connection: sqlite3.Connection, symbol: str, until: str, as_of: datetime,
                 stale_after: timedelta, recent: int) -> SymbolLine:
    ts, price, change, trading_day = db.latest_quote(connection, symbol, until)
    day, start, end = market_day(ts, trading_day)
    first, high, low = db.day_range(connection, symbol, day, start, end, until)
    if change is not None:
        reference, reference_price = PREVIOUS_CLOSE, round(price - change, 6)
    else:
        before = db.last_price_before(connection, symbol, start)
        reference, reference_price = (PREVIOUS_CLOSE, before) if before is not None else (FIRST_OF_DAY, first)
        change = round(price - reference_price, 6)
    age = (as_of - datetime.fromisoformat(ts)).total_seconds()
    return SymbolLine(symbol=symbol, price=price, ts=ts, change=change,
                      change_percent=round(change / reference_price * 100, 4), reference=reference,
                      reference_price=reference_price, day=day, day_low=low, day_high=high,
                      recent=tuple(db.last_prices(connection, symbol, until, recent)),
                      age_seconds=round(age, 3), stale=age > stale_after.total_seconds())


def board_as_json(board: Board) -> dict[str, Any]:
    """The board for scripts: the same figures as the table, and the alerts under it."""
    return {
        "as_of": format_time(board.as_of),
        "database": board.database,
        "symbols": [{**asdict(line), "recent": list(line.recent)} for line in board.lines],
        "alerts": [alert._asdict() for alert in board.alerts],
    }
