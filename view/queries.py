"""The monitor's reads, through a connection that cannot write.

Every query takes `until` (a stored-time string) so a board can be shown as of any moment, and reads
inside one transaction for a consistent snapshot while the consumer writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import db
from history.series import Series, read_series
from streaming.messages import AlertRow


def open_for_reading(path: str | Path) -> sqlite3.Connection:
    """Open an existing database without creating it, and refuse any write through this connection."""
    try:
        connection = sqlite3.connect(f"file:{Path(path).resolve()}?mode=rw", uri=True, isolation_level=None,
                                     timeout=30)
        connection.execute("PRAGMA query_only=1")
    except sqlite3.Error as exc:
        raise db.DatabaseError(f"cannot open database {str(path)!r}: {exc}") from None
    return connection


def has_table(connection: sqlite3.Connection, name: str) -> bool:
    return connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                              (name,)).fetchone() is not None


def has_summaries(connection: sqlite3.Connection) -> bool:
    """False for a database no consumer of this release has upgraded yet (the monitor never writes)."""
    return (connection.execute("PRAGMA user_version").fetchone()[0] >= db.SUMMARY_VERSION
            and has_table(connection, "symbol_summary"))


def symbols_until(connection: sqlite3.Connection, until: str) -> list[str]:
    """Symbols with at least one quote at or before `until`, sorted."""
    if not has_summaries(connection):
        return db.stored_symbols(connection, until)
    return [row[0] for row in connection.execute(
        "SELECT symbol FROM symbol_summary WHERE earliest_ts <= ? ORDER BY symbol", (until,))]


def summaries_until(connection: sqlite3.Connection, until: str) -> list[db.SymbolSummary]:
    """Each symbol's summary as of `until`, sorted by symbol: the stored one when its newest quote is not
    later, else (the board as it was, or a quote stamped ahead of `until`) recomputed by indexed queries."""
    if not has_summaries(connection):
        found = [db.summarize_symbol(connection, symbol, until) for symbol in db.stored_symbols(connection, until)]
        return [summary for summary in found if summary is not None]
    stored = [db.SymbolSummary(*row) for row in connection.execute(
        f"SELECT {db.SUMMARY_COLUMNS} FROM symbol_summary WHERE earliest_ts <= ? ORDER BY symbol", (until,))]
    as_of = [summary if summary.ts <= until else db.summarize_symbol(connection, summary.symbol, until)
             for summary in stored]
    return [summary for summary in as_of if summary is not None]


def last_prices(connection: sqlite3.Connection, symbol: str, until: str, count: int) -> list[float]:
    """The symbol's last `count` prices at or before `until`, oldest first."""
    rows = connection.execute("SELECT price FROM stock_prices WHERE symbol = ? AND ts <= ? ORDER BY ts DESC LIMIT ?",
                              (symbol, until, count)).fetchall()
    return [row[0] for row in reversed(rows)]


def newest_details(connection: sqlite3.Connection, symbol: str, ts: str) -> tuple[int | None, str | None]:
    """The volume and entitlement of the symbol's quote at `ts` (its newest, found by the unique key)."""
    row = connection.execute("SELECT volume, entitlement FROM stock_prices WHERE symbol = ? AND ts = ?",
                             (symbol, ts)).fetchone()
    return (row[0], row[1]) if row else (None, None)


def latest_alerts(connection: sqlite3.Connection, until: str, count: int) -> list[AlertRow]:
    """The last `count` alerts fired by quotes at or before `until`, newest first."""
    if not has_table(connection, "alerts"):
        return []  # a database from before alerts existed
    return [AlertRow(*row) for row in connection.execute(
        f"SELECT {db.ALERT_COLUMNS} FROM alerts WHERE ts <= ? ORDER BY ts DESC, id DESC LIMIT ?", (until, count))]


def price_history(connection: sqlite3.Connection, symbols: Sequence[str], since: str,
                  until: str) -> dict[str, Series]:
    """Every point per symbol between `since` and `until`, oldest first: raw quotes, or for a longer span
    1-minute or daily bars (history/series.py). Symbols with none are left out."""
    found = {symbol: read_series(connection, symbol, since, until, points=None) for symbol in symbols}
    return {symbol: series for symbol, series in found.items() if series.points}


def closes(found: dict[str, Series]) -> dict[str, list[tuple[str, float]]]:
    """(ts, price) per symbol: what a line chart draws."""
    return {symbol: [(point[0], point[1]) for point in series.points] for symbol, series in found.items()}


def alerts_between(connection: sqlite3.Connection, symbols: Sequence[str], since: str, until: str) -> list[AlertRow]:
    """Alerts of these symbols fired by quotes between `since` and `until`, oldest first."""
    if not has_table(connection, "alerts"):
        return []
    marks = ", ".join("?" for _ in symbols)
    return [AlertRow(*row) for row in connection.execute(
        f"SELECT {db.ALERT_COLUMNS} FROM alerts WHERE symbol IN ({marks}) AND ts >= ? AND ts <= ? ORDER BY ts",
        (*symbols, since, until))]


def alerts_since(connection: sqlite3.Connection, since: str, until: str, limit: int) -> list[AlertRow]:
    """Alerts fired by quotes after `since` and at or before `until`, newest first, at most `limit`."""
    if not has_table(connection, "alerts"):
        return []
    return [AlertRow(*row) for row in connection.execute(
        f"SELECT {db.ALERT_COLUMNS} FROM alerts WHERE ts > ? AND ts <= ? ORDER BY ts DESC, id DESC LIMIT ?",
        (since, until, limit))]
