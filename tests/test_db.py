"""SQLite: schema, idempotent writes, rejected messages, parameters only. A real file, real queries."""

from __future__ import annotations

import sqlite3

import pytest

import db
from messages import QuoteRow

ROW = QuoteRow("IBM", "2020-05-08T18:05:00.000Z", 121.74, 121.79, 121.86, 121.7225, 31454, None, None, None,
               "TIME_SERIES_INTRADAY", "2026-11-24T15:00:01.987Z")


def test_schema_is_created_idempotently_in_wal_mode_with_full_sync(tmp_path):
    path = tmp_path / "stocks.db"
    db.connect(path).close()
    connection = db.connect(path)
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert connection.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL: a commit is on disk
    tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"stock_prices", "rejected_messages", "alerts"}
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
        db.save_batch(connection, [ROW, (*ROW[:-1], None)], [])  # NOT NULL fetched_at fails mid-batch
    assert db.count_quotes(connection) == 0
    assert not connection.in_transaction
    assert isinstance(connection, sqlite3.Connection)
