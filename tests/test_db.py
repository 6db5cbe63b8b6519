"""SQLite: schema, idempotent writes, rejected messages, parameters only. A real file, real queries."""

from __future__ import annotations

import sqlite3

import pytest

import db
from alerts.outbox import claim_alerts
from conftest import SCHEMA_TABLES
from streaming.messages import QuoteRow

ROW = QuoteRow("IBM", "2020-05-08T18:05:00.000Z", 121.74, 121.79, 121.86, 121.7225, 31454, None, None, None,
               "TIME_SERIES_INTRADAY", "2026-11-24T15:00:01.987Z")


def test_schema_is_created_idempotently_in_wal_mode_with_full_sync(tmp_path):
    path = tmp_path / "stocks.db"
    db.connect(path).close()
    connection = db.connect(path)
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert connection.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL: a commit is on disk
    tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == SCHEMA_TABLES
    columns = {row[1] for row in connection.execute("PRAGMA table_info(stock_prices)")}
    assert {"symbol", "ts", "price", "open", "high", "low", "volume", "source", "fetched_at", "ingested_at"} <= columns


def test_a_redelivered_row_is_not_stored_twice(tmp_path):
    connection = db.connect(tmp_path / "stocks.db")
    assert db.save_batch(connection, [ROW], []) == 1
    assert db.save_batch(connection, [ROW, ROW._replace(price=999.0)], []) == 0
    assert connection.execute("SELECT symbol, ts, price FROM stock_prices").fetchall() == [
        ("IBM", "2020-05-08T18:05:00.000Z", 121.74)]


def test_rejected_messages_keep_raw_bytes_reason_and_position_once(tmp_path):
    connection = db.connect(tmp_path / "stocks.db")
    bad = db.Rejected("quotes", 2, 17, b"IBM", b"\xff\x00raw", "not UTF-8 (byte 0)")
    db.save_batch(connection, [], [bad])
    db.save_batch(connection, [], [bad])
    assert connection.execute('SELECT topic, partition, "offset", key, value, reason FROM rejected_messages'
                              ).fetchall() == [("quotes", 2, 17, b"IBM", b"\xff\x00raw", "not UTF-8 (byte 0)")]


def test_a_hostile_symbol_is_stored_as_data_and_changes_nothing_else(tmp_path):
    connection = db.connect(tmp_path / "stocks.db")
    db.save_batch(connection, [ROW], [])
    hostile = ROW._replace(symbol="X'); DROP TABLE stock_prices; --", ts="2020-05-08T18:10:00.000Z")
    db.save_batch(connection, [hostile], [])
    assert db.count_quotes(connection) == 2
    assert db.count_quotes(connection, "IBM") == 1
    assert db.count_quotes(connection, hostile.symbol) == 1


def test_an_unusable_database_file_is_one_clear_error(tmp_path):
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a database" * 100)
    with pytest.raises(db.DatabaseError) as caught:
        db.connect(corrupt)
    assert str(caught.value) == f"cannot use database '{corrupt}': file is not a database"
    with pytest.raises(db.DatabaseError, match="unable to open database file"):
        db.connect(tmp_path / "missing-dir" / "stocks.db")


def test_a_failed_batch_leaves_nothing_half_written(tmp_path):
    connection = db.connect(tmp_path / "stocks.db")
    with pytest.raises(db.DatabaseError):
        db.save_batch(connection, [ROW, ROW._replace(fetched_at=None)], [])  # NOT NULL fetched_at fails mid-batch
    assert db.count_quotes(connection) == 0
    assert not connection.in_transaction
    assert isinstance(connection, sqlite3.Connection)


def test_a_database_of_the_previous_release_is_upgraded_in_place_keeping_its_alerts(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    # The alerts table as the previous release created it (no claim columns, user_version 0).
    old.executescript(db.SCHEMA.replace("    claimed_by      TEXT,", "").split("    claimed_at")[0]
                      + "    UNIQUE (symbol, rule, ts, direction)\n);")
    old.execute("INSERT INTO alerts (symbol, rule, direction, price, ts, reference_price, reference_ts, move_percent, "
                "fired_at) VALUES ('IBM', 'IBM>150', 'up', 151, 't1', 149, 't0', 1.3, 'f')")
    old.commit()
    assert "claimed_by" not in {row[1] for row in old.execute("PRAGMA table_info(alerts)")}
    old.close()
    connection = db.connect(path)
    assert connection.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
    assert connection.execute("SELECT symbol, claimed_by, published_at FROM alerts").fetchall() == [
        ("IBM", None, None)]
    claimed = claim_alerts(connection, db.Claim("me", "2026-01-01T00:00:00.000Z"), "2025-12-31T23:59:30.000Z")
    assert [alert.rule for _, alert in claimed] == ["IBM>150"]
    # Another process gets nothing while the claim holds, and takes it over once the claim lapses.
    assert claim_alerts(connection, db.Claim("other", "2026-01-01T00:00:10.000Z"), "2025-12-31T23:59:40.000Z") == []
    assert len(claim_alerts(connection, db.Claim("other", "2026-01-01T00:01:00.000Z"),
                               "2026-01-01T00:00:30.000Z")) == 1
    connection.close()
