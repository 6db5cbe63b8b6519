"""What the monitor shows, read from the database as of one moment: a line per symbol and the latest alerts.

A symbol's change is measured against the previous close: Alpha Vantage's own for global quotes,
else the last stored price before the trading day began; when neither is known, against the
first quote of the day. Intraday bars carry no day of their own: theirs is the New York date
(market.days). Each symbol's line comes from its summary row (db.SymbolSummary), so a refresh
reads one row and the last few prices per symbol however many quotes are stored.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

from common.timestamps import format_time
from db import SymbolSummary
from market.calendar import TradingCalendar
from market.hours import PollingHours
from market.status import MarketStatus, market_status
from streaming.messages import AlertRow
from view.queries import has_table, last_prices, latest_alerts, newest_details, summaries_until

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
    data_time: str  # the moment the data is about: a global quote's fetch time, but at most its session's close
    age_seconds: float  # since data_time
    stale: bool  # data_time is more than stale_after before the newest moment data can be about
    volume: int | None = None  # the newest quote's (a bar's, or the day's so far for a global quote)
    entitlement: str | None = None  # the newest quote's: realtime, delayed, or None for end-of-day data


@dataclass(frozen=True)
class Board:
    as_of: datetime
    database: str
    lines: tuple[SymbolLine, ...]
    alerts: tuple[AlertRow, ...]
    market: MarketStatus | None = None  # the regular session's state at as_of


@dataclass(frozen=True)
class Freshness:
    """What a quote's age is measured against: the calendar's closes and the polling hours' live edge."""

    as_of: datetime
    live_edge: datetime  # as_of while polling is open, else the last closing: nothing newer can exist
    stale_after: timedelta
    calendar: TradingCalendar

    def data_time(self, ts: str, trading_day: str | None) -> datetime:
        """A quote that names its trading day is about that session, and at most about its close."""
        moment = datetime.fromisoformat(ts)
        if trading_day is None:
            return moment
        return min(moment, self.calendar.close_of(date.fromisoformat(trading_day)))

    def stale(self, data_time: datetime) -> bool:
        return self.live_edge - data_time > self.stale_after


def build_board(connection: sqlite3.Connection, database: str, as_of: datetime, stale_after: timedelta,
                recent: int = 20, alert_count: int = 5, hours: PollingHours | None = None) -> Board:
    """The board as of `as_of`, read in one transaction so that a consumer writing meanwhile cannot
    tear it; an empty board when there are no quotes (or no tables) yet.

    Ages follow `hours` (POLL_HOURS; default market): outside them the last closing is as fresh as
    data gets, so Friday's closing quote is current all weekend and Thursday's is stale."""
    calendar = TradingCalendar.nyse()
    hours = hours or PollingHours("market", calendar)
    freshness = Freshness(as_of, hours.live_edge(as_of), stale_after, calendar)
    market = market_status(calendar, as_of)
    until = format_time(as_of)
    connection.execute("BEGIN")
    try:
        if not has_table(connection, "stock_prices"):
            return Board(as_of, database, (), (), market)
        lines = tuple(_symbol_line(connection, summary, until, freshness, recent)
                      for summary in summaries_until(connection, until))
        alerts = tuple(latest_alerts(connection, until, alert_count))
    finally:
        connection.execute("COMMIT")
    return Board(as_of, database, lines, alerts, market)


def _symbol_line(connection: sqlite3.Connection, summary: SymbolSummary, until: str, freshness: Freshness,
                 recent: int) -> SymbolLine:
    price, change = summary.price, summary.change
    if change is not None:
        reference, reference_price = PREVIOUS_CLOSE, round(price - change, 6)
    else:
        reference, reference_price = ((PREVIOUS_CLOSE, summary.close_price) if summary.close_price is not None
                                      else (FIRST_OF_DAY, summary.first_price))
        change = round(price - reference_price, 6)
    about = freshness.data_time(summary.ts, summary.trading_day)
    volume, entitlement = newest_details(connection, summary.symbol, summary.ts)
    return SymbolLine(symbol=summary.symbol, price=price, ts=summary.ts, change=change,
                      change_percent=round(change / reference_price * 100, 4), reference=reference,
                      reference_price=reference_price, day=summary.day, day_low=summary.day_low,
                      day_high=summary.day_high,
                      recent=tuple(last_prices(connection, summary.symbol, until, recent)),
                      data_time=format_time(about), age_seconds=round((freshness.as_of - about).total_seconds(), 3),
                      stale=freshness.stale(about), volume=volume, entitlement=entitlement)


def market_as_json(market: MarketStatus | None) -> dict[str, Any] | None:
    if market is None:
        return None
    return {"open": market.open, "closes_at": market.closes_at and format_time(market.closes_at),
            "opens_at": market.opens_at and format_time(market.opens_at), "text": market.text()}


def board_as_json(board: Board) -> dict[str, Any]:
    """The board for scripts: the same figures as the table, the market's state and the alerts under it."""
    return {
        "as_of": format_time(board.as_of),
        "database": board.database,
        "market": market_as_json(board.market),
        "symbols": [{**asdict(line), "recent": list(line.recent)} for line in board.lines],
        "alerts": [alert._asdict() for alert in board.alerts],
    }
