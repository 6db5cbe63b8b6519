"""SQLite: the schema and every SQL statement of the project, always parameterised."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from messages import QuoteRow

SCHEMA = """
CREATE TABLE IF NOT EXISTS stock_prices (
    id             INTEGER PRIMARY KEY,
    symbol         TEXT    NOT NULL,
    ts             TEXT    NOT NULL,  -- UTC ISO-8601: the bar's time, or a global quote's fetch time
    price          REAL    NOT NULL,
    open           REAL    NOT NULL,
    high           REAL    NOT NULL,
    low            REAL    NOT NULL,
    volume         INTEGER NOT NULL,
    change         REAL,
    change_percent REAL,
    trading_day    TEXT,
    source         TEXT    NOT NULL,
    fetched_at     TEXT    NOT NULL,
    ingested_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (symbol, ts)
);
CREATE TABLE IF NOT EXISTS rejected_messages (
    id          INTEGER PRIMARY KEY,
    topic       TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    "offset"    INTEGER NOT NULL,
    key         BLOB,
    value       BLOB,
    reason      TEXT    NOT NULL,
    rejected_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (topic, partition, "offset")
);
"""

# DO NOTHING on the natural keys only: a redelivered message (after a crash between the SQLite
# commit and the Kafka offset commit) changes nothing, while any other constraint still fails loudly.
INSERT_QUOTE = """
INSERT INTO stock_prices
    (symbol, ts, price, open, high, low, volume, change, change_percent, trading_day, source, fetched_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (symbol, ts) DO NOTHING
"""
INSERT_REJECTED = """
INSERT INTO rejected_messages (topic, partition, "offset", key, value, reason)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (topic, partition, "offset") DO NOTHING
"""


class Rejected(NamedTuple):
    """A message set aside, with where it came from and why."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str


class DatabaseError(RuntimeError):
    """The database file cannot be opened or written."""


def connect(path: str | Path) -> sqlite3.Connection:
    """Open the database, switch it to WAL and create the schema if it is not there yet."""
    try:
        connection = sqlite3.connect(path, isolation_level=None, timeout=30)
        # WAL lets readers (sqlite3 shell, dashboards) query while the consumer writes.
        connection.execute("PRAGMA journal_mode=WAL")
        # FULL: each commit is on disk before it returns, so a batch whose Kafka offsets were
        # committed after it survives a power cut too. One fsync per poll batch, not per row.
        connection.execute("PRAGMA synchronous=FULL")
        connection.executescript(SCHEMA)
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot use database {str(path)!r}: {exc}") from None
    return connection


def save_batch(connection: sqlite3.Connection, rows: Sequence[QuoteRow],
               rejected: Sequence[Rejected]) -> int:
    """Store good rows and rejected messages in one transaction; return how many rows were new."""
    try:
        connection.execute("BEGIN IMMEDIATE")
        before = connection.total_changes
        connection.executemany(INSERT_QUOTE, rows)
        stored = connection.total_changes - before
        connection.executemany(INSERT_REJECTED, rejected)
        connection.execute("COMMIT")
    except sqlite3.Error as exc:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise DatabaseError(f"writing to the database failed: {exc}") from None
    return stored


def count_quotes(connection: sqlite3.Connection, symbol: str | None = None) -> int:
    """Number of stored quotes, for one symbol or all."""
    if symbol is None:
        return connection.execute("SELECT count(*) FROM stock_prices").fetchone()[0]
    return connection.execute("SELECT count(*) FROM stock_prices WHERE symbol = ?", (symbol,)).fetchone()[0]
