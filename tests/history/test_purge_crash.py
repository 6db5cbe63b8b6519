"""kill -9 of a real consumer in the middle of its purge loses nothing that is not in its bars, and the
next start finishes the purge."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import pytest

import db
from common.timestamps import format_time
from conftest import pipeline_env, running, start_script
from reference_bars import daily_bars, minute_bars, quote, stored_quotes, table_bars

pytestmark = pytest.mark.slow


def old_quotes(count: int) -> list:
    """`count` quotes of 4 symbols, one every 4 seconds each, ending 3 days ago."""
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    return [quote(f"S{number % 4}", format_time(end - timedelta(seconds=number)), 100 + number % 97 / 8)
            for number in range(count)]


def quote_count(path) -> int:
    connection = sqlite3.connect(path, timeout=5)
    try:
        return connection.execute("SELECT count(*) FROM stock_prices").fetchone()[0]
    finally:
        connection.close()


def test_kill_9_mid_purge_loses_no_quote_that_is_not_in_its_bars(kafka_broker, topic, standin, tmp_path):
    rows = old_quotes(60_000)
    path = tmp_path / "stocks.db"
    connection = db.connect(path)
    for start in range(0, len(rows), 5000):
        db.save_batch(connection, rows[start:start + 5000], [])
    expected = (minute_bars(rows), daily_bars(rows))
    assert table_bars(connection) == expected
    connection.close()
    env = pipeline_env(kafka_broker, topic, standin, path, RETAIN_QUOTES="1d")
    log_path = tmp_path / "consumer.log"
    with running(start_script("consumer.py", env=env, log_path=log_path)) as consumer:
        deadline = time.monotonic() + 60
        while (left := quote_count(path)) == len(rows) and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(consumer.pid, signal.SIGKILL)
        consumer.wait(10)
    assert 0 < left < len(rows), log_path.read_text()  # killed in the middle
    connection = db.connect(path)
    assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    kept = stored_quotes(connection)
    assert 0 < len(kept) < len(rows)
    assert set(kept) <= set(rows)
    assert table_bars(connection) == expected  # every bar whole: each deleted quote is in one
    connection.close()
    # The next start carries on and finishes, and says what it did: --idle-exit waits for the purge,
    # however much longer than its second that takes.
    with running(start_script("consumer.py", "--idle-exit", "1", env=env, log_path=log_path)) as consumer:
        consumer.wait(90)
    assert consumer.returncode == 0, log_path.read_text()
    connection = db.connect(path)
    assert stored_quotes(connection) == []
    assert table_bars(connection) == expected
    assert "purged " in log_path.read_text()
