"""Doctor lines about what the database holds and how long it keeps it: rows per table, the oldest raw
quote, the retention, and when the consumer next purges."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from checkup.finding import Finding, ok, warn
from history.housekeeper import PURGE_EVERY_SECONDS
from history.retention import Retention, describe
from history.state import LAST_PURGE_AT, pending_catch_up, read_state

TABLES = ("stock_prices", "bars_1m", "bars_1d", "alerts", "rejected_messages")


def history_checks(connection: sqlite3.Connection, retention: Retention, now: datetime) -> list[Finding]:
    """For a database at the current schema (the caller has checked)."""
    return [rows_per_table(connection), oldest_quote(connection, now), retention_line(connection, retention),
            next_purge(connection, retention, now)]


def rows_per_table(connection: sqlite3.Connection) -> Finding:
    counts = [f"{table} {connection.execute(f'SELECT count(*) FROM {table}').fetchone()[0]:,}" for table in TABLES]
    free, pages, size = (connection.execute(f"PRAGMA {name}").fetchone()[0]
                         for name in ("freelist_count", "page_count", "page_size"))
    return ok("database rows", f"{', '.join(counts)}; {free * size / 1e6:.1f} MB of {pages * size / 1e6:.1f} MB "
                               "is free pages")


def oldest_quote(connection: sqlite3.Connection, now: datetime) -> Finding:
    oldest = connection.execute("SELECT min(ts) FROM stock_prices").fetchone()[0]
    if oldest is None:
        return ok("oldest quote", "none stored yet")
    age = now - datetime.fromisoformat(oldest)
    return ok("oldest quote", f"{oldest[:16].replace('T', ' ')} UTC ({age_text(age)} ago)")


def age_text(age: timedelta) -> str:
    if age >= timedelta(days=2):
        return f"{age.days} days"
    hours = age.total_seconds() / 3600
    return f"{hours:.0f} h" if hours >= 1 else f"{max(age.total_seconds(), 0) / 60:.0f} min"


def retention_line(connection: sqlite3.Connection, retention: Retention) -> Finding:
    kept = (f"quotes {describe(retention.quotes)}, 1-minute bars {describe(retention.minute_bars)}, "
            f"daily bars {describe(retention.daily_bars)}, alerts {describe(retention.alerts)}")
    if not retention.any():
        return ok("retention", f"{kept} (RETAIN_* not set: everything is kept)")
    if connection.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
        return warn("retention", f"{kept}; the file is not on incremental vacuum yet: consumer.py converts it at its "
                                 "next start with a VACUUM, which needs as much free disk as the file")
    return ok("retention", kept)


def next_purge(connection: sqlite3.Connection, retention: Retention, now: datetime) -> Finding:
    if not retention.any():
        return ok("next purge", "none: nothing has a retention")
    waiting = ""
    if (pending := pending_catch_up(connection)) is not None:
        waiting = (f"; quotes {pending[0]:,} to {pending[1]:,} are still being rolled up into bars, and no raw quote "
                   "is purged before that ends")
    last = read_state(connection, LAST_PURGE_AT)
    if last is None:
        return ok("next purge", f"at consumer.py's next start (it has never purged this file){waiting}")
    due = datetime.fromisoformat(last) + timedelta(seconds=PURGE_EVERY_SECONDS)
    when = "at consumer.py's next start, or now if it runs" if due <= now else (
        f"about {due.strftime('%Y-%m-%d %H:%M')} UTC while consumer.py runs, else at its next start")
    return ok("next purge", f"{when} (the last at {last[:16].replace('T', ' ')} UTC){waiting}")
