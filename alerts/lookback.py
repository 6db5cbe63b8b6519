"""The stored history the alert engine replays after a start or a rebalance: each symbol's recent
quotes and when each rule last fired."""

from __future__ import annotations

import sqlite3


def recent_quotes(connection: sqlite3.Connection, symbol: str, lookback_seconds: float, count: int,
                  until: str) -> list[tuple[str, float, str | None, int]]:
    """(ts, price, trading_day, volume) of a symbol's last `count` quotes at or before `until` and of those up to
    `lookback_seconds` before the latest, oldest first: what the alert rules look back over."""
    within = connection.execute(
        """SELECT ts, price, trading_day, volume FROM stock_prices
           WHERE symbol = :symbol AND ts <= :until AND ts >= (
               SELECT strftime('%Y-%m-%dT%H:%M:%fZ', max(ts), '-' || :lookback || ' seconds')
               FROM stock_prices WHERE symbol = :symbol AND ts <= :until)""",
        {"symbol": symbol, "lookback": lookback_seconds, "until": until}).fetchall()
    last = connection.execute(
        "SELECT ts, price, trading_day, volume FROM stock_prices WHERE symbol = ? AND ts <= ? ORDER BY ts DESC LIMIT ?",
        (symbol, until, count)).fetchall()
    return sorted(set(within) | set(last))


def last_alert_times(connection: sqlite3.Connection, symbol: str) -> dict[tuple[str, str], str]:
    """When each (rule, direction) last fired for `symbol`: the ts of its newest alert."""
    return {(rule, direction): ts for rule, direction, ts in connection.execute(
        "SELECT rule, direction, max(ts) FROM alerts WHERE symbol = ? GROUP BY rule, direction", (symbol,))}
