"""SQLite: the schema and every SQL statement of the project, always parameterised."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from market.days import END_OF_TIME, quote_day
from messages import AlertRow, QuoteRow
from symbol_summary import SymbolSummary, fold

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
"""
# PRAGMA user_version: 1 = alerts carry claims; 2 = quotes carry their entitlement, previous close and
# extended-hours fields; 3 = symbol_summary; 4 = notify_channels. Older databases are upgraded in place
# by connect().
SCHEMA_VERSION = 4
SUMMARY_VERSION = 3
# Columns added since the first release, by the version that added them: (table, column, type).
ADDED_COLUMNS = {
    1: [("alerts", "claimed_by", "TEXT"), ("alerts", "claimed_at", "TEXT")],
    2: [("stock_prices", "entitlement", "TEXT"), ("stock_prices", "previous_close", "REAL"),
        ("stock_prices", "extended_hours_quote", "REAL"), ("stock_prices", "extended_hours_change", "REAL"),
        ("stock_prices", "extended_hours_change_percent", "REAL")],
    3: [],
    4: [],
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


def _failure(exc: sqlite3.Error, what: str) -> DatabaseError:
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
        # WAL lets readers (sqlite3 shell, dashboards) query while the consumer writes.
        connection.execute("PRAGMA journal_mode=WAL")
        # FULL: each commit is on disk before it returns, so a batch whose Kafka offsets were
        # committed after it survives a power cut too. One fsync per poll batch, not per row.
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
                                         for symbol in _stored_symbols(connection, END_OF_TIME)])
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
        connection.executemany(INSERT_REJECTED, rejected)
        if alerts:
            owner, when = (claim.owner, claim.when) if claim else (None, None)
            connection.executemany(INSERT_ALERT, [(*alert, owner, when) for alert in alerts])
        connection.execute("COMMIT")
    except sqlite3.Error as exc:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise _failure(exc, "writing to the database failed") from None
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
    return SymbolSummary(symbol, earliest, ts, price, change, trading_day, day.day, day.start, first_ts, first_price,
                         high, low, *(close or (None, None)))


def count_quotes(connection: sqlite3.Connection, symbol: str | None = None) -> int:
    """Number of stored quotes, for one symbol or all."""
    if symbol is None:
        return connection.execute("SELECT count(*) FROM stock_prices").fetchone()[0]
    return connection.execute("SELECT count(*) FROM stock_prices WHERE symbol = ?", (symbol,)).fetchone()[0]


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


def claim_alerts(connection: sqlite3.Connection, claim: Claim, lapsed_before: str,
                 limit: int = 500) -> list[tuple[int, AlertRow]]:
    """Claim the unpublished alerts no other process holds (or whose claim lapsed before `lapsed_before`),
    renewing this process's own claims; return them, oldest first.

    One UPDATE in one write transaction: two consumers on one database never both get an alert.
    """
    try:
        claimed = connection.execute(
            f"""UPDATE alerts SET claimed_by = :owner, claimed_at = :when
                WHERE id IN (SELECT id FROM alerts WHERE published_at IS NULL
                             AND (claimed_by IS NULL OR claimed_by = :owner OR claimed_at < :lapsed)
                             ORDER BY id LIMIT :limit)
                RETURNING id, {ALERT_COLUMNS}""",
            {"owner": claim.owner, "when": claim.when, "lapsed": lapsed_before, "limit": limit}).fetchall()
    except sqlite3.Error as exc:
        raise _failure(exc, "claiming alerts failed") from None
    return sorted((row[0], AlertRow(*row[1:])) for row in claimed)


def register_channels(connection: sqlite3.Connection, channels: Sequence[str]) -> None:
    """Channels seen for the first time start after the newest alert: a new channel gets what comes next,
    not the history."""
    try:
        connection.executemany("INSERT OR IGNORE INTO notify_channels (channel, last_alert_id) "
                               "SELECT ?, coalesce(max(id), 0) FROM alerts", [(channel,) for channel in channels])
    except sqlite3.Error as exc:
        raise _failure(exc, "registering notification channels failed") from None


def channels_behind(connection: sqlite3.Connection) -> set[str]:
    """The channels some stored alert has not reached yet (a read: nothing to claim when all are done)."""
    return {row[0] for row in connection.execute(
        "SELECT channel FROM notify_channels WHERE last_alert_id < (SELECT coalesce(max(id), 0) FROM alerts)")}


def claim_channel(connection: sqlite3.Connection, channel: str, claim: Claim, lapsed_before: str) -> int | None:
    """Take (or renew) the channel for this process and return where its delivery stands; None while
    another process holds it."""
    try:
        row = connection.execute(
            """UPDATE notify_channels SET claimed_by = :owner, claimed_at = :when
               WHERE channel = :channel AND (claimed_by IS NULL OR claimed_by = :owner OR claimed_at < :lapsed)
               RETURNING last_alert_id""",
            {"owner": claim.owner, "when": claim.when, "channel": channel, "lapsed": lapsed_before}).fetchone()
    except sqlite3.Error as exc:
        raise _failure(exc, "claiming a notification channel failed") from None
    return row[0] if row else None


def alerts_after(connection: sqlite3.Connection, after_id: int, limit: int) -> list[tuple[int, AlertRow]]:
    """The alerts stored after `after_id`, oldest first."""
    return [(row[0], AlertRow(*row[1:])) for row in connection.execute(
        f"SELECT id, {ALERT_COLUMNS} FROM alerts WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))]


def mark_notified(connection: sqlite3.Connection, channel: str, alert_id: int, owner: str) -> bool:
    """Move the channel past `alert_id`, if this process still holds it."""
    try:
        return connection.execute("UPDATE notify_channels SET last_alert_id = ? WHERE channel = ? AND claimed_by = ?",
                                  (alert_id, channel, owner)).rowcount == 1
    except sqlite3.Error as exc:
        raise _failure(exc, "recording a notification failed") from None


def channel_claimants(connection: sqlite3.Connection) -> list[str]:
    return [row[0] for row in connection.execute(
        "SELECT DISTINCT claimed_by FROM notify_channels WHERE claimed_by IS NOT NULL")]


def release_channels(connection: sqlite3.Connection, owner: str) -> None:
    try:
        connection.execute("UPDATE notify_channels SET claimed_by = NULL, claimed_at = NULL WHERE claimed_by = ?",
                           (owner,))
    except sqlite3.Error as exc:
        raise _failure(exc, "releasing notification channels failed") from None


def mark_alerts_published(connection: sqlite3.Connection, ids: Sequence[int], when: str) -> None:
    """Remember that the alerts topic has these alerts."""
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany("UPDATE alerts SET published_at = ? WHERE id = ?", [(when, i) for i in ids])
        connection.execute("COMMIT")
    except sqlite3.Error as exc:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise _failure(exc, "writing to the database failed") from None


def claimants_of_unpublished_alerts(connection: sqlite3.Connection) -> list[str]:
    """The processes holding claims on alerts not yet published."""
    return [row[0] for row in connection.execute(
        "SELECT DISTINCT claimed_by FROM alerts WHERE published_at IS NULL AND claimed_by IS NOT NULL")]


def release_claims(connection: sqlite3.Connection, owner: str) -> int:
    """Drop the claims of a process known to be gone, so its alerts are sent without waiting for the lease."""
    try:
        return connection.execute("UPDATE alerts SET claimed_by = NULL, claimed_at = NULL "
                                  "WHERE published_at IS NULL AND claimed_by = ?", (owner,)).rowcount
    except sqlite3.Error as exc:
        raise _failure(exc, "releasing alert claims failed") from None


def count_unpublished_alerts(connection: sqlite3.Connection) -> int:
    """Stored alerts the alerts topic does not have yet."""
    return connection.execute("SELECT count(*) FROM alerts WHERE published_at IS NULL").fetchone()[0]


# Read side: monitor.py. Every query takes `until` (a stored-time string) so a board can be shown
# as of any moment, and reads inside one transaction for a consistent snapshot while the consumer writes.

def open_for_reading(path: str | Path) -> sqlite3.Connection:
    """Open an existing database without creating it, and refuse any write through this connection."""
    try:
        connection = sqlite3.connect(f"file:{Path(path).resolve()}?mode=rw", uri=True, isolation_level=None,
                                     timeout=30)
        connection.execute("PRAGMA query_only=1")
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open database {str(path)!r}: {exc}") from None
    return connection


def has_table(connection: sqlite3.Connection, name: str) -> bool:
    return connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                              (name,)).fetchone() is not None


def has_summaries(connection: sqlite3.Connection) -> bool:
    """False for a database no consumer of this release has upgraded yet (the monitor never writes)."""
    return (connection.execute("PRAGMA user_version").fetchone()[0] >= SUMMARY_VERSION
            and has_table(connection, "symbol_summary"))


def _stored_symbols(connection: sqlite3.Connection, until: str) -> list[str]:
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


def symbols_until(connection: sqlite3.Connection, until: str) -> list[str]:
    """Symbols with at least one quote at or before `until`, sorted."""
    if not has_summaries(connection):
        return _stored_symbols(connection, until)
    return [row[0] for row in connection.execute(
        "SELECT symbol FROM symbol_summary WHERE earliest_ts <= ? ORDER BY symbol", (until,))]


def summaries_until(connection: sqlite3.Connection, until: str) -> list[SymbolSummary]:
    """Each symbol's summary as of `until`, sorted by symbol: the stored one when its newest quote is not
    later, else (the board as it was, or a quote stamped ahead of `until`) recomputed by indexed queries."""
    if not has_summaries(connection):
        found = [summarize_symbol(connection, symbol, until) for symbol in _stored_symbols(connection, until)]
        return [summary for summary in found if summary is not None]
    stored = [SymbolSummary(*row) for row in connection.execute(
        f"SELECT {SUMMARY_COLUMNS} FROM symbol_summary WHERE earliest_ts <= ? ORDER BY symbol", (until,))]
    as_of = [summary if summary.ts <= until else summarize_symbol(connection, summary.symbol, until)
             for summary in stored]
    return [summary for summary in as_of if summary is not None]


def last_prices(connection: sqlite3.Connection, symbol: str, until: str, count: int) -> list[float]:
    """The symbol's last `count` prices at or before `until`, oldest first."""
    rows = connection.execute("SELECT price FROM stock_prices WHERE symbol = ? AND ts <= ? ORDER BY ts DESC LIMIT ?",
                              (symbol, until, count)).fetchall()
    return [row[0] for row in reversed(rows)]


def latest_alerts(connection: sqlite3.Connection, until: str, count: int) -> list[AlertRow]:
    """The last `count` alerts fired by quotes at or before `until`, newest first."""
    if not has_table(connection, "alerts"):
        return []  # a database from before alerts existed
    return [AlertRow(*row) for row in connection.execute(
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE ts <= ? ORDER BY ts DESC, id DESC LIMIT ?", (until, count))]


def price_history(connection: sqlite3.Connection, symbols: Sequence[str], since: str,
                  until: str) -> dict[str, list[tuple[str, float]]]:
    """(ts, price) per symbol between `since` and `until`, oldest first."""
    history: dict[str, list[tuple[str, float]]] = {}
    for symbol in symbols:
        rows = connection.execute(
            "SELECT ts, price FROM stock_prices WHERE symbol = ? AND ts >= ? AND ts <= ? ORDER BY ts",
            (symbol, since, until)).fetchall()
        if rows:
            history[symbol] = rows
    return history


def alerts_between(connection: sqlite3.Connection, symbols: Sequence[str], since: str, until: str) -> list[AlertRow]:
    """Alerts of these symbols fired by quotes between `since` and `until`, oldest first."""
    if not has_table(connection, "alerts"):
        return []
    marks = ", ".join("?" for _ in symbols)
    return [AlertRow(*row) for row in connection.execute(
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE symbol IN ({marks}) AND ts >= ? AND ts <= ? ORDER BY ts",
        (*symbols, since, until))]
