"""SQLite: the schema and its upgrades, the connection, and the consumer's one write transaction.

Here is every table and column, and the write that stores a batch's quotes, rejected messages,
alerts and symbol summaries together. The queries one part alone runs sit in that part, against
this schema: the alert outbox's claims in alerts/outbox.py, the notification channels' progress in
notify/delivery.py, the monitor's reads in view/queries.py. Every statement is parameterised.

A symbol summary is that symbol's board line in one row, kept up to date as quotes are stored, so
the monitor reads one row per symbol however many quotes the database holds: the newest quote, its
trading day's first quote, high and low, and the last price before that day began (the previous
close when the quote carries no change of its own). `fold` brings it up to date with newly stored
quotes, in any order (late quotes included); when the newest starts another trading day it answers
None and the summary is recomputed from the quotes table by indexed queries.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from history.bars import BARS_SCHEMA, write_bars
from history.state import CATCH_UP_END_ID, CATCH_UP_NEXT_ID, write_state
from market.days import END_OF_TIME, quote_day
from streaming.messages import AlertRow, QuoteRow

SCHEMA = """
CREATE TABLE IF NOT EXISTS stock_prices (
    id             INTEGER PRIMARY KEY,
    symbol         TEXT    NOT NULL,
    ts             TEXT    NOT NULL,  -- UTC ISO-8601: a bar's time, a global quote's fetch time, a session's close
    price          REAL    NOT NULL,
    open           REAL    NOT NULL,
    high           REAL    NOT NULL,
    low            REAL    NOT NULL,
    volume         INTEGER NOT NULL,
    change         REAL,
    change_percent REAL,
    trading_day    TEXT,
    source         TEXT    NOT NULL,  -- GLOBAL_QUOTE, TIME_SERIES_INTRADAY, REALTIME_BULK_QUOTES or TIME_SERIES_DAILY
    fetched_at     TEXT    NOT NULL,
    ingested_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    entitlement    TEXT,              -- 'realtime' or 'delayed' (premium data); NULL: end-of-day data
    previous_close REAL,
    extended_hours_quote          REAL,  -- bulk quotes: the latest pre- or after-market price
    extended_hours_change         REAL,
    extended_hours_change_percent REAL,
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
CREATE TABLE IF NOT EXISTS alerts (
    id              INTEGER PRIMARY KEY,
    symbol          TEXT    NOT NULL,
    rule            TEXT    NOT NULL,  -- the rule's canonical text, e.g. TSLA:5%/1h or AAPL>200
    direction       TEXT    NOT NULL CHECK (direction IN ('up', 'down')),
    price           REAL    NOT NULL,  -- the quote that fired it
    ts              TEXT    NOT NULL,
    reference_price REAL    NOT NULL,  -- the window's low/high, or the last quote before a level crossing
    reference_ts    TEXT    NOT NULL,
    move_percent    REAL    NOT NULL,
    fired_at        TEXT    NOT NULL,
    published_at    TEXT,              -- when the alerts topic acknowledged it; NULL: still to send
    claimed_by      TEXT,              -- the consumer process sending it (several may share a database)
    claimed_at      TEXT,              -- when that claim was made or renewed; it lapses after CLAIM_LEASE
    UNIQUE (symbol, rule, ts, direction)
);
CREATE INDEX IF NOT EXISTS alerts_to_publish ON alerts (id) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS alerts_by_ts ON alerts (ts);
-- Each notification channel's place in the alerts, in id order (notify/delivery.py). Several consumers
-- share a channel through its claim: one delivers at a time, so no alert reaches a channel twice.
CREATE TABLE IF NOT EXISTS notify_channels (
    channel       TEXT PRIMARY KEY,  -- a digest of the URL: the URL itself holds secrets and is never stored
    last_alert_id INTEGER NOT NULL,  -- alerts up to here are delivered, or came before the channel did
    claimed_by    TEXT,
    claimed_at    TEXT
) WITHOUT ROWID;
-- Each symbol's board line as of its newest quote (symbol_summary.py), written in the transaction that
-- stores the quotes: the monitor reads one row per symbol, not the quotes.
CREATE TABLE IF NOT EXISTS symbol_summary (
    symbol      TEXT PRIMARY KEY,
    earliest_ts TEXT NOT NULL,
    ts          TEXT NOT NULL,
    price       REAL NOT NULL,
    change      REAL,
    trading_day TEXT,
    day         TEXT NOT NULL,
    day_start   TEXT NOT NULL,
    first_ts    TEXT NOT NULL,
    first_price REAL NOT NULL,
    day_high    REAL NOT NULL,
    day_low     REAL NOT NULL,
    close_ts    TEXT,
    close_price REAL
) WITHOUT ROWID;
-- The roll-ups' catch-up over quotes stored before them, and the last purge (history/).
CREATE TABLE IF NOT EXISTS history_state (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
""" + BARS_SCHEMA
# PRAGMA user_version: 1 = alerts carry claims; 2 = quotes carry their entitlement, previous close and
# extended-hours fields; 3 = symbol_summary; 4 = notify_channels; 5 = bars_1m, bars_1d, history_state.
# Older databases are upgraded in place by connect().
SCHEMA_VERSION = 5
SUMMARY_VERSION = 3
# Columns added since the first release, by the version that added them: (table, column, type).
ADDED_COLUMNS = {
    1: [("alerts", "claimed_by", "TEXT"), ("alerts", "claimed_at", "TEXT")],
    2: [("stock_prices", "entitlement", "TEXT"), ("stock_prices", "previous_close", "REAL"),
        ("stock_prices", "extended_hours_quote", "REAL"), ("stock_prices", "extended_hours_change", "REAL"),
        ("stock_prices", "extended_hours_change_percent", "REAL")],
    3: [],
    4: [],
    5: [],
}

# DO NOTHING on the natural keys only: a redelivered message (after a crash between the SQLite
# commit and the Kafka offset commit) changes nothing, while any other constraint still fails loudly.
INSERT_QUOTE = """
INSERT INTO stock_prices
    (symbol, ts, price, open, high, low, volume, change, change_percent, trading_day, source, fetched_at,
     entitlement, previous_close, extended_hours_quote, extended_hours_change, extended_hours_change_percent)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (symbol, ts) DO NOTHING
"""
INSERT_REJECTED = """
INSERT INTO rejected_messages (topic, partition, "offset", key, value, reason)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (topic, partition, "offset") DO NOTHING
"""

ALERT_COLUMNS = "symbol, rule, direction, price, ts, reference_price, reference_ts, move_percent, fired_at"
# Alerts are a function of the stored quotes, so a redelivered batch recomputes the same ones. The
# process that stores an alert claims it: no other process sends it while the claim holds.
INSERT_ALERT = f"""
INSERT INTO alerts ({ALERT_COLUMNS}, claimed_by, claimed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (symbol, rule, ts, direction) DO NOTHING
"""


class SymbolSummary(NamedTuple):
    """A symbol's board line as of its newest quote (in the column order of the symbol_summary table)."""

    symbol: str
    earliest_ts: str  # the symbol's first quote: the board as of an earlier moment leaves it out
    ts: str  # the newest quote
    price: float
    change: float | None
    trading_day: str | None
    day: str  # the newest quote's trading day (market.days.quote_day)
    day_start: str
    first_ts: str  # the day's first quote
    first_price: float
    day_high: float
    day_low: float
    close_ts: str | None  # the last quote before the day began, if any
    close_price: float | None


def fold(summary: SymbolSummary, rows: Sequence[QuoteRow]) -> SymbolSummary | None:
    """The summary with `rows` (newly stored quotes of its symbol) taken in; None when the newest of them
    belongs to another trading day, whose quotes may already be stored: recompute from the table."""
    newest = max(rows, key=lambda row: row.ts)
    if newest.ts > summary.ts:
        if quote_day(newest.ts, newest.trading_day).day != summary.day:
            return None
        summary = summary._replace(ts=newest.ts, price=newest.price, change=newest.change,
                                   trading_day=newest.trading_day)
    earliest, first_ts, first_price = summary.earliest_ts, summary.first_ts, summary.first_price
    high, low, close_ts, close_price = summary.day_high, summary.day_low, summary.close_ts, summary.close_price
    for row in rows:
        earliest = min(earliest, row.ts)
        if row.ts < summary.day_start:  # before the day: a candidate for the previous close
            if close_ts is None or row.ts > close_ts:
                close_ts, close_price = row.ts, row.price
        elif quote_day(row.ts, row.trading_day).day == summary.day:
            high, low = max(high, row.high), min(low, row.low)
            if row.ts < first_ts:
                first_ts, first_price = row.ts, row.price
    return summary._replace(earliest_ts=earliest, first_ts=first_ts, first_price=first_price, day_high=high,
                            day_low=low, close_ts=close_ts, close_price=close_price)


class Claim(NamedTuple):
    """Who is sending an alert, and since when (UTC, stored-time form)."""

    owner: str
    when: str


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


class DatabaseBusy(DatabaseError):
    """Another connection holds the write lock (a shell left in a transaction, a backup): wait and retry."""


def write_failure(exc: sqlite3.Error, what: str) -> DatabaseError:
    """The DatabaseError for a failed write: DatabaseBusy when only a lock stood in the way."""
    busy = getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return (DatabaseBusy if busy else DatabaseError)(f"{what}: {exc}")


def connect(path: str | Path, busy_timeout: float = 30) -> sqlite3.Connection:
    """Open the database, switch it to WAL, create the schema if it is not there yet, upgrade an old one.

    `busy_timeout`: how long one statement waits for another connection's write lock.
    """
    try:
        # Setting up waits up to 30 s for a lock; the writes after that wait `busy_timeout` at a time.
        connection = sqlite3.connect(path, isolation_level=None, timeout=30)
        # A new database gives freed pages back to the disk on request (history/vacuum.py converts an old one).
        connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
        # WAL lets readers (sqlite3 shell, dashboards) query while the consumer writes.
        connection.execute("PRAGMA journal_mode=WAL")
        # FULL: each commit is on disk before it returns. The consumer's own connection relaxes this
        # (commit_without_fsync) and syncs the WAL itself before committing Kafka offsets.
        connection.execute("PRAGMA synchronous=FULL")
        # A big database's index pages for the symbols being written stay cached (64 MiB at most), and
        # the WAL is copied back into the database every 10,000 pages rather than 1,000: the leaf
        # pages every batch rewrites are then written back once per checkpoint, not once per batch.
        connection.execute("PRAGMA cache_size = -65536")
        connection.execute("PRAGMA wal_autocheckpoint = 10000")
        connection.executescript(SCHEMA)
        upgrade(connection)
        connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot use database {str(path)!r}: {exc}") from None
    return connection


def commit_without_fsync(connection: sqlite3.Connection) -> None:
    """Commits on this connection return once in the WAL, before the disk has them (they are already
    visible to readers), and never run a checkpoint. For a caller that syncs the WAL and checkpoints
    elsewhere: the consumer commits Kafka offsets only after its sync (ingest/durable_offsets.py), so a
    power cut loses nothing."""
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")


def upgrade(connection: sqlite3.Connection) -> None:
    """Bring a database written by an older release to SCHEMA_VERSION, in one transaction, keeping its data."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version >= SCHEMA_VERSION:
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for table, column, kind in ADDED_COLUMNS[target]:
                present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
                if column not in present:  # a schema just created already has it
                    connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        if version < SUMMARY_VERSION:
            connection.execute("DELETE FROM symbol_summary")
            write_summaries(connection, [summarize_symbol(connection, symbol, END_OF_TIME)
                                         for symbol in stored_symbols(connection, END_OF_TIME)])
        if version < 5:  # the quotes stored so far are rolled up by history/catchup.py, a slice at a time
            first, last = connection.execute("SELECT min(id), max(id) FROM stock_prices").fetchone()
            if last is not None:
                write_state(connection, CATCH_UP_NEXT_ID, first)
                write_state(connection, CATCH_UP_END_ID, last)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def save_batch(connection: sqlite3.Connection, rows: Sequence[QuoteRow],
               rejected: Sequence[Rejected], alerts: Sequence[AlertRow] = (), claim: Claim | None = None) -> int:
    """Store good rows, rejected messages and the alerts they fired (claimed by `claim`) in one transaction,
    and bring the stored symbols' summaries up to date in it.

    Returns how many rows were new. One transaction: a crash leaves no quote without its alerts, and
    the board never sees a quote its summary does not have.
    """
    try:
        connection.execute("BEGIN IMMEDIATE")
        # One statement a row (as fast as executemany here) tells which rows were new: a redelivered
        # row, or another with the same key, must not touch the summary.
        stored = [row for row in rows if connection.execute(INSERT_QUOTE, row).rowcount]
        update_summaries(connection, stored)
        write_bars(connection, stored)
        connection.executemany(INSERT_REJECTED, rejected)
        if alerts:
            owner, when = (claim.owner, claim.when) if claim else (None, None)
            connection.executemany(INSERT_ALERT, [(*alert, owner, when) for alert in alerts])
        connection.execute("COMMIT")
    except sqlite3.Error as exc:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise write_failure(exc, "writing to the database failed") from None
    return len(stored)


def update_summaries(connection: sqlite3.Connection, stored: Sequence[QuoteRow]) -> None:
    """Fold newly stored quotes into their symbols' summaries (inside the caller's transaction)."""
    by_symbol: dict[str, list[QuoteRow]] = {}
    for row in stored:
        by_symbol.setdefault(row.symbol, []).append(row)
    if not by_symbol:
        return
    known = {summary.symbol: summary for summary in read_summaries(connection, list(by_symbol))}
    updated = []
    for symbol, rows in by_symbol.items():
        summary = known.get(symbol)
        updated.append((summary and fold(summary, rows)) or summarize_symbol(connection, symbol, END_OF_TIME))
    write_summaries(connection, updated)


SUMMARY_COLUMNS = ", ".join(SymbolSummary._fields)


def read_summaries(connection: sqlite3.Connection, symbols: Sequence[str]) -> list[SymbolSummary]:
    found: list[SymbolSummary] = []
    for first in range(0, len(symbols), 500):  # within SQLite's limit on bound parameters
        chunk = symbols[first:first + 500]
        found += [SymbolSummary(*row) for row in connection.execute(
            f"SELECT {SUMMARY_COLUMNS} FROM symbol_summary WHERE symbol IN ({', '.join('?' * len(chunk))})",
            chunk)]
    return found


def write_summaries(connection: sqlite3.Connection, summaries: Sequence[SymbolSummary]) -> None:
    marks = ", ".join("?" * len(SymbolSummary._fields))
    connection.executemany(f"INSERT OR REPLACE INTO symbol_summary ({SUMMARY_COLUMNS}) VALUES ({marks})", summaries)


def summarize_symbol(connection: sqlite3.Connection, symbol: str, until: str) -> SymbolSummary | None:
    """The symbol's summary as of `until` from the quotes table, by indexed queries whose cost follows one
    day's quotes of the symbol; None when it has no quote at or before `until`."""
    latest = connection.execute(
        "SELECT ts, price, change, trading_day FROM stock_prices WHERE symbol = ? AND ts <= ? ORDER BY ts DESC LIMIT 1",
        (symbol, until)).fetchone()
    if latest is None:
        return None
    ts, price, change, trading_day = latest
    day = quote_day(ts, trading_day)
    # Stamped from the day's start on, up to `until`: labelled with the day, or unlabelled (or labelled
    # with a day not yet begun) and stamped before the day ended. See market.days.
    params = {"symbol": symbol, "until": until, "day": day.day, "start": day.start, "end": day.end}
    in_day = ("symbol = :symbol AND ts >= :start AND ts <= :until AND (trading_day = :day"
              " OR (ts < :end AND (trading_day IS NULL OR trading_day > :day)))")
    first_ts, first_price = connection.execute(
        f"SELECT ts, price FROM stock_prices WHERE {in_day} ORDER BY ts LIMIT 1", params).fetchone()
    high, low = connection.execute(f"SELECT max(high), min(low) FROM stock_prices WHERE {in_day}", params).fetchone()
    close = connection.execute(
        "SELECT ts, price FROM stock_prices WHERE symbol = ? AND ts < ? ORDER BY ts DESC LIMIT 1",
        (symbol, day.start)).fetchone()
    earliest = connection.execute("SELECT min(ts) FROM stock_prices WHERE symbol = ?", (symbol,)).fetchone()[0]
    if connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'bars_1d'").fetchone():
        # Raw quotes may have been purged (RETAIN_QUOTES): the daily bars still know the close and the start.
        close = close or connection.execute(
            "SELECT last_ts, close FROM bars_1d WHERE symbol = ? AND day < ? AND last_ts < ? ORDER BY day DESC "
            "LIMIT 1", (symbol, day.day, day.start)).fetchone()
        first_bar = connection.execute("SELECT min(first_ts) FROM bars_1d WHERE symbol = ?", (symbol,)).fetchone()[0]
        earliest = min(earliest, first_bar or earliest)
    return SymbolSummary(symbol, earliest, ts, price, change, trading_day, day.day, day.start, first_ts, first_price,
                         high, low, *(close or (None, None)))


def count_quotes(connection: sqlite3.Connection, symbol: str | None = None) -> int:
    """Number of stored quotes, for one symbol or all."""
    if symbol is None:
        return connection.execute("SELECT count(*) FROM stock_prices").fetchone()[0]
    return connection.execute("SELECT count(*) FROM stock_prices WHERE symbol = ?", (symbol,)).fetchone()[0]


def stored_symbols(connection: sqlite3.Connection, until: str) -> list[str]:
    """Symbols with a quote at or before `until`, from the quotes themselves: a skip scan of the (symbol,
    ts) index, two seeks a symbol rather than a read of every row (16 s on 10,000,000 rows)."""
    found: list[str] = []
    symbol = ""
    while row := connection.execute("SELECT symbol FROM stock_prices WHERE symbol > ? ORDER BY symbol LIMIT 1",
                                    (symbol,)).fetchone():
        symbol = row[0]
        if connection.execute("SELECT min(ts) FROM stock_prices WHERE symbol = ?", (symbol,)).fetchone()[0] <= until:
            found.append(symbol)
    return found
