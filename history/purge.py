"""Deleting what is older than its retention, in small batches, each its own short transaction.

Quotes go only once they are in their bars: the bars are written in the transaction that stores a
quote, and the quotes the catch-up has not reached yet are never picked. A batch deletes whole rows
and nothing else, so a crash between batches (kill -9 included) leaves every bar whole and every
quote either kept or already rolled up; the next purge carries on where it stopped.

Raw quotes go in the order they were stored (rowid ranges) before any by symbol: a table page holds
quotes of many symbols stored at about the same time, so a batch of one symbol's quotes dirtied a
page a quote (on a disk capped at 1,000 writes a second the purge then kept the consumer's p99 over
2 s), where a range of ids empties whole pages. The pass by symbol that follows finds what is left
out of order (a backfill's old closes, stored late) through the (symbol, ts) index.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from common.timestamps import format_time
from history.pacing import Pacer
from history.retention import Retention
from history.state import LAST_PURGE_AT, pending_catch_up, write_state
from market.calendar import MARKET_ZONE

T = TypeVar("T")

BATCH_ROWS = 2000  # the most rows a batch deletes; each deletes as many as fit in pacing.TARGET_SECONDS
FIRST_BATCH_ROWS = 200


@dataclass
class PurgeReport:
    """What a purge did: rows deleted per table, and the longest any one batch held the write lock."""

    deleted: dict[str, int] = field(default_factory=dict)
    longest_lock: float = 0.0
    seconds: float = 0.0

    def total(self) -> int:
        return sum(self.deleted.values())

    def describe(self) -> str:
        parts = [f"{count} {table}" for table, count in self.deleted.items() if count]
        return ", ".join(parts) or "nothing"


def _symbols(connection: sqlite3.Connection, table: str) -> list[str]:
    """The table's symbols by a skip scan of its (symbol, ...) key: two seeks a symbol."""
    found: list[str] = []
    while row := connection.execute(f"SELECT symbol FROM {table} WHERE symbol > ? ORDER BY symbol LIMIT 1",
                                    (found[-1] if found else "",)).fetchone():
        found.append(row[0])
    return found


class Purge:
    """One purge pass over every table with a retention, as of `now`."""

    def __init__(self, connection: sqlite3.Connection, retention: Retention, now: datetime,
                 keep_going: Callable[[], bool] = lambda: True, pause: Callable[[float], None] = time.sleep,
                 batch_rows: int = BATCH_ROWS, turn: AbstractContextManager[object] | None = None) -> None:
        self.connection = connection
        self.retention = retention
        self.now = now
        self.keep_going = keep_going
        self.batch_rows = batch_rows
        self.rows = min(batch_rows, FIRST_BATCH_ROWS)
        self.pacer = Pacer(connection, pause, turn)
        self.report = PurgeReport()

    def cutoff(self, span: timedelta) -> str:
        return format_time(self.now - span)

    def run(self) -> PurgeReport:
        """Purge quotes, minute bars, daily bars and alerts past their retention; stops early when asked."""
        started = time.monotonic()
        retention = self.retention
        if retention.quotes is not None and pending_catch_up(self.connection) is None:
            self._in_stored_order(self.cutoff(retention.quotes))
            self._per_symbol("stock_prices", "ts", self.cutoff(retention.quotes))
        if retention.minute_bars is not None:
            self._per_symbol("bars_1m", "start", self.cutoff(retention.minute_bars))
        if retention.daily_bars is not None:
            day = (self.now - retention.daily_bars).astimezone(MARKET_ZONE).date().isoformat()
            self._per_symbol("bars_1d", "day", day)
        if retention.alerts is not None:
            self._alerts(self.cutoff(retention.alerts))
        if self.keep_going():
            self._write(lambda: write_state(self.connection, LAST_PURGE_AT, format_time(self.now)))
        self.report.seconds = time.monotonic() - started
        return self.report

    def _write(self, action: Callable[[], T]) -> T:
        """Run `action` in its own short write transaction (history/pacing.py)."""
        with self.pacer.step():
            result = action()
        self.report.longest_lock = self.pacer.longest
        return result

    def _in_stored_order(self, before: str) -> None:
        """Quotes older than `before`, a range of ids at a time from the oldest, until a range holds quotes
        and none of them is old (the rest were stored after the cutoff, but for stragglers)."""
        first, last = self.connection.execute("SELECT min(id), max(id) FROM stock_prices").fetchone()
        if first is None:
            return
        while self.keep_going() and first <= last:
            span = self.rows
            deleted, kept = self._write(lambda first=first, span=span: self._delete_range(first, first + span,
                                                                                          before))
            self.report.deleted["stock_prices"] = self.report.deleted.get("stock_prices", 0) + deleted
            if kept and not deleted:
                break
            if deleted + kept >= span // 2:  # a dense range: size the next to the target hold
                self.rows = self.pacer.fit(span, 10, self.batch_rows)
            first += span
            if not deleted + kept:  # a hole in the ids (a purge by symbol before): on to the next quote
                first = self.connection.execute("SELECT min(id) FROM stock_prices WHERE id >= ?",
                                                (first,)).fetchone()[0] or last + 1

    def _delete_range(self, first: int, end: int, before: str) -> tuple[int, int]:
        """Delete the old quotes with ids first..end-1 (those rolled up); (deleted, kept) in that range."""
        pending = pending_catch_up(self.connection)  # checked in the transaction, as below
        pending_first, pending_last = pending if pending else (0, -1)
        deleted = self.connection.execute(
            "DELETE FROM stock_prices WHERE id >= ? AND id < ? AND ts < ? AND NOT id BETWEEN ? AND ?",
            (first, end, before, pending_first, pending_last)).rowcount
        kept = self.connection.execute("SELECT count(*) FROM stock_prices WHERE id >= ? AND id < ?",
                                       (first, end)).fetchone()[0]
        return deleted, kept

    def _per_symbol(self, table: str, column: str, before: str) -> None:
        # The rowid's own table has `id`; the bars tables have none (WITHOUT ROWID): their keys pick the rows.
        for symbol in _symbols(self.connection, table):
            while self.keep_going():
                rows = self.rows
                deleted = self._write(lambda symbol=symbol, rows=rows: self._delete_some(table, column, symbol,
                                                                                         before, rows))
                self.report.deleted[table] = self.report.deleted.get(table, 0) + deleted
                if deleted == rows:  # a full batch: size the next to the target hold
                    self.rows = self.pacer.fit(rows, 10, self.batch_rows)
                if deleted < rows:
                    break

    def _delete_some(self, table: str, column: str, symbol: str, before: str, rows: int) -> int:
        if table == "stock_prices":
            # Checked again in the transaction: a quote the catch-up has not reached is kept.
            pending = pending_catch_up(self.connection)
            first, last = pending if pending else (0, -1)
            return self.connection.execute(
                "DELETE FROM stock_prices WHERE id IN (SELECT id FROM stock_prices WHERE symbol = ? AND ts < ? "
                "AND NOT id BETWEEN ? AND ? ORDER BY ts LIMIT ?)",
                (symbol, before, first, last, rows)).rowcount
        return self.connection.execute(
            f"DELETE FROM {table} WHERE symbol = ? AND {column} IN (SELECT {column} FROM {table} "
            f"WHERE symbol = ? AND {column} < ? ORDER BY {column} LIMIT ?)",
            (symbol, symbol, before, rows)).rowcount

    def _alerts(self, before: str) -> None:
        """Alerts published to the topic and delivered to every notification channel; none still owed."""
        while self.keep_going():
            deleted = self._write(lambda: self.connection.execute(
                "DELETE FROM alerts WHERE id IN (SELECT id FROM alerts WHERE ts < ? AND published_at IS NOT NULL "
                "AND id <= coalesce((SELECT min(last_alert_id) FROM notify_channels), id) ORDER BY ts LIMIT ?)",
                (before, self.batch_rows)).rowcount)
            self.report.deleted["alerts"] = self.report.deleted.get("alerts", 0) + deleted
            if deleted < self.batch_rows:
                break
