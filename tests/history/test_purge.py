"""Retention: what is past it goes in short batches, never a quote whose bars are not written, and the
freed pages go back to the disk; the settings are checked like every other."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import db
from config import ConfigError, load_settings
from conftest import run_script, script_env
from history.catchup import catch_up
from history.purge import Purge
from history.retention import Retention
from history.state import LAST_PURGE_AT, pending_catch_up, read_state
from history.vacuum import convert_to_incremental, file_size, give_back_pages
from reference_bars import daily_bars, make_pre_bars_database, minute_bars, quote, stored_in, stored_quotes, table_bars

NOW = datetime(2026, 12, 11, 18, 0, tzinfo=UTC)
DAYS = [f"2026-12-{day:02d}" for day in (1, 2, 3, 4, 7, 8, 9, 10, 11)]


def session_quotes(symbols=("IBM", "TSLA", "MSFT"), per_day: int = 390) -> list:
    """A quote a minute from 14:30 UTC for each symbol and day."""
    rows = []
    for day in DAYS:
        for symbol in symbols:
            for minute in range(per_day):
                ts = f"{day}T{14 + (30 + minute) // 60:02d}:{(30 + minute) % 60:02d}:00.000Z"
                rows.append(quote(symbol, ts, 100 + (minute % 17) / 4, volume=1000 + minute))
    return rows


def test_a_purge_deletes_what_is_past_each_retention_in_short_batches_and_keeps_the_bars(tmp_path):
    rows = session_quotes()
    connection = stored_in(tmp_path / "stocks.db", rows)
    minutes_before, days_before = minute_bars(rows), daily_bars(rows)
    pauses: list[float] = []
    retention = Retention(quotes=timedelta(days=3), minute_bars=timedelta(days=7))
    report = Purge(connection, retention, NOW, pause=pauses.append, batch_rows=500).run()
    quote_cutoff, minute_cutoff = "2026-12-08T18:00:00.000Z", "2026-12-04T18:00:00.000Z"
    kept = stored_quotes(connection)
    assert kept == [row for row in rows if row.ts >= quote_cutoff]
    assert report.deleted == {"stock_prices": len(rows) - len(kept),
                              "bars_1m": sum(1 for (_, start) in minutes_before if start < minute_cutoff)}
    minutes, days = table_bars(connection)
    assert minutes == {key: bar for key, bar in minutes_before.items() if key[1] >= minute_cutoff}
    assert days == days_before  # daily bars are kept forever by default, whole
    # Each batch is its own transaction of at most 500 rows, with a pause as long after it.
    assert len(pauses) >= report.total() / 500
    assert 0 < report.longest_lock < 1
    assert read_state(connection, LAST_PURGE_AT) == "2026-12-11T18:00:00.000Z"
    assert Purge(connection, retention, NOW).run().total() == 0


def test_each_purge_step_takes_the_consumers_turn_and_keeps_the_wal_small(tmp_path):
    """The consumer holds the turn around its batches: a step waits for it, and holds it while it writes;
    each step's checkpoint lets the WAL start over instead of growing until the consumer copies it back."""
    path = tmp_path / "stocks.db"
    stored_in(path, session_quotes(symbols=tuple(f"S{index}" for index in range(12)))).execute(
        "PRAGMA wal_checkpoint(TRUNCATE)")
    turn = threading.Lock()
    held_while_writing: list[bool] = []
    reports = []

    def housekeeping() -> None:  # on its own thread and connection, as in consumer.py
        connection = db.connect(path)
        connection.set_trace_callback(lambda sql: held_while_writing.append(turn.locked()) if sql.startswith(
            "DELETE") else None)
        reports.append(Purge(connection, Retention(quotes=timedelta(days=1)), NOW, pause=lambda _: None,
                             batch_rows=300, turn=turn).run())

    with turn:  # the consumer is in the middle of a batch: nothing is deleted until it ends
        worker = threading.Thread(target=housekeeping)
        worker.start()
        time.sleep(0.3)
        assert not held_while_writing
    worker.join(60)
    assert reports[0].total() > 30_000 and len(held_while_writing) > 100 and all(held_while_writing)
    assert os.path.getsize(f"{path}-wal") < 4e6  # the steps' pages went back to the file as it went


# Quotes of three symbols over three days around the cutoff (2026-12-08T18:00Z for 3 days before NOW).
STAMPS = [f"2026-12-{day:02d}T{hour:02d}:{minute:02d}:00.000Z" for day in (7, 8, 9) for hour in (15, 18, 20)
          for minute in (0, 30)]
stamped_quotes = st.builds(lambda symbol, ts, price: quote(symbol, ts, price), st.sampled_from(["IBM", "TSLA", "S3"]),
                           st.sampled_from(STAMPS), st.floats(1, 500, allow_nan=False).map(lambda price: round(price, 2)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=st.lists(stamped_quotes, min_size=1, max_size=80, unique_by=lambda row: (row.symbol, row.ts)),
       data=st.data())
def test_a_purge_deletes_exactly_the_old_quotes_whatever_order_they_were_stored_in(tmp_path_factory, stream, data):
    """The purge goes by stored order first: an old quote stored after new ones (a backfill, a late
    delivery) goes too, and no new one does, in ranges of any size."""
    connection = db.connect(tmp_path_factory.mktemp("purge") / "stocks.db")
    deliveries = data.draw(st.permutations(stream))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(deliveries)), max_size=4)))
    for start, end in zip([0, *cuts], [*cuts, len(deliveries)], strict=True):
        db.save_batch(connection, deliveries[start:end], [])
    bars = table_bars(connection)
    report = Purge(connection, Retention(quotes=timedelta(days=3)), NOW, pause=lambda _: None,
                   batch_rows=data.draw(st.integers(1, 40))).run()
    cutoff = "2026-12-08T18:00:00.000Z"
    assert stored_quotes(connection) == [row for row in deliveries if row.ts >= cutoff]
    assert report.total() == sum(1 for row in deliveries if row.ts < cutoff)
    assert table_bars(connection) == bars
    connection.close()


def test_old_quotes_stored_after_new_ones_are_purged_too(tmp_path):
    """A backfill of old closes stored after a day of live quotes: the pass in stored order stops at the
    live ones, the pass by symbol finds the closes."""
    live = session_quotes(symbols=("IBM", "TSLA"), per_day=60)
    live = [row for row in live if row.ts >= "2026-12-09"]
    backfill = [quote("MSFT", f"2026-11-{day:02d}T21:00:00.000Z", 300 + day, "TIME_SERIES_DAILY") for day in
                range(2, 27)]
    connection = stored_in(tmp_path / "stocks.db", live + backfill + [quote("IBM", "2026-12-11T17:59:00.000Z", 99)])
    ranges: list[str] = []
    connection.set_trace_callback(lambda sql: ranges.append(sql) if sql.startswith("DELETE FROM stock_prices WHERE "
                                                                                   "id >=") else None)
    report = Purge(connection, Retention(quotes=timedelta(days=3)), NOW, pause=lambda _: None).run()
    assert report.deleted == {"stock_prices": len(backfill)}
    assert stored_quotes(connection) == [*live, quote("IBM", "2026-12-11T17:59:00.000Z", 99)]
    assert len(ranges) == 1  # the first range held only new quotes: the rest were not scanned


def test_a_hole_in_the_ids_is_stepped_over_not_walked(tmp_path):
    connection = stored_in(tmp_path / "stocks.db", [quote("IBM", "2026-12-01T15:00:00.000Z", 100)])
    connection.execute("INSERT INTO stock_prices (id, symbol, ts, price, open, high, low, volume, source, fetched_at) "
                       "VALUES (10000000000, 'IBM', '2026-12-02T15:00:00.000Z', 1, 1, 1, 1, 1, 'GLOBAL_QUOTE', "
                       "'2026-12-02T15:00:00.000Z')")
    ranges: list[str] = []
    connection.set_trace_callback(lambda sql: ranges.append(sql) if sql.startswith("DELETE FROM stock_prices WHERE "
                                                                                   "id >=") else None)
    report = Purge(connection, Retention(quotes=timedelta(days=3)), NOW, pause=lambda _: None).run()
    assert report.deleted == {"stock_prices": 2} and stored_quotes(connection) == []
    assert len(ranges) == 3  # the first quote's range, an empty one, and the far quote's: not 50 million ranges


def test_quotes_the_catch_up_has_not_rolled_up_are_never_purged(tmp_path):
    rows = session_quotes(symbols=("IBM",), per_day=30)
    path = tmp_path / "stocks.db"
    make_pre_bars_database(path, rows)
    connection = db.connect(path)
    assert pending_catch_up(connection)
    Purge(connection, Retention(quotes=timedelta(days=1)), NOW).run()
    assert len(stored_quotes(connection)) == len(rows)  # nothing is in its bars yet: nothing goes
    catch_up(connection, pause=lambda seconds: None)
    Purge(connection, Retention(quotes=timedelta(days=1)), NOW).run()
    assert stored_quotes(connection) == [row for row in rows if row.ts >= "2026-12-10T18:00:00.000Z"]
    assert table_bars(connection) == (minute_bars(rows), daily_bars(rows))


def test_only_alerts_the_topic_and_every_channel_have_had_are_purged(tmp_path):
    connection = db.connect(tmp_path / "stocks.db")
    for number, (ts, published) in enumerate([("2026-12-01T15:00:00.000Z", "2026-12-01T15:00:01.000Z"),
                                               ("2026-12-01T16:00:00.000Z", "2026-12-01T16:00:01.000Z"),
                                               ("2026-12-01T17:00:00.000Z", None),
                                               ("2026-12-11T17:00:00.000Z", "2026-12-11T17:00:01.000Z")], 1):
        connection.execute("INSERT INTO alerts (id, symbol, rule, direction, price, ts, reference_price, reference_ts, "
                           "move_percent, fired_at, published_at) VALUES (?, 'IBM', 'IBM>1', 'up', 2, ?, 1, ?, 100, "
                           "?, ?)", (number, ts, ts, ts, published))
    connection.execute("INSERT INTO notify_channels (channel, last_alert_id) VALUES ('a', 1), ('b', 4)")
    Purge(connection, Retention(alerts=timedelta(days=2)), NOW).run()
    # 2 is published but channel a has not had it yet; 3 is not published; 4 is recent.
    assert [row[0] for row in connection.execute("SELECT id FROM alerts ORDER BY id")] == [2, 3, 4]


def test_the_freed_pages_go_back_to_the_disk(tmp_path):
    path = tmp_path / "stocks.db"
    connection = stored_in(path, session_quotes())
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = file_size(path)
    assert connection.execute("PRAGMA auto_vacuum").fetchone() == (2,)  # INCREMENTAL from the start
    Purge(connection, Retention(quotes=timedelta(days=1), minute_bars=timedelta(days=1)), NOW).run()
    free = connection.execute("PRAGMA freelist_count").fetchone()[0]
    steps: list[float] = []
    pages, longest = give_back_pages(connection, pause=steps.append, step_pages=200)
    # Each step returns its 200 pages (not one: a pragma run by a single step of its statement frees one).
    assert pages == free and len(steps) == -(-free // 200) and longest < 1
    assert connection.execute("PRAGMA freelist_count").fetchone() == (0,)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert file_size(path) < before * 0.4
    assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.parametrize(("settings", "name", "words"), [
    ({"RETAIN_QUOTES": "30 days"}, "RETAIN_QUOTES", "is not a retention"),
    ({"RETAIN_QUOTES": "12h"}, "RETAIN_QUOTES", "shorter than a day"),
    ({"RETAIN_QUOTES": "30d", "RETAIN_MINUTE_BARS": "7d"}, "RETAIN_MINUTE_BARS", "shorter than RETAIN_QUOTES"),
    ({"RETAIN_QUOTES": "7d", "RETAIN_MINUTE_BARS": "1y", "RETAIN_DAILY_BARS": "30d"}, "RETAIN_DAILY_BARS", "shorter than RETAIN_MINUTE"),
    ({"RETAIN_QUOTES": "2d", "ALERT_RULES": "5%/1w"}, "RETAIN_QUOTES", "longest ALERT_RULES window"),
])
def test_a_bad_retention_is_a_one_line_error_naming_the_setting(settings, name, words):
    with pytest.raises(ConfigError) as raised:
        load_settings(settings, environ={}, env_file=None)
    assert raised.value.setting == name
    assert words in str(raised.value)


def test_retentions_are_read_in_hours_days_weeks_and_years():
    settings = load_settings({"RETAIN_QUOTES": "36h", "RETAIN_MINUTE_BARS": "12w", "RETAIN_DAILY_BARS": "2y",
                              "RETAIN_ALERTS": "30d"}, environ={}, env_file=None)
    assert settings.retention == Retention(timedelta(hours=36), timedelta(weeks=12), timedelta(days=730),
                                           timedelta(days=30))
    assert load_settings({}, environ={}, env_file=None).retention == Retention()  # the default: everything is kept


def test_the_consumer_refuses_a_bad_retention_with_exit_2():
    result = run_script("consumer.py", env=script_env(RETAIN_QUOTES="1y", RETAIN_MINUTE_BARS="30d"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "RETAIN_MINUTE_BARS" in lines[0], result.stderr


def test_a_database_from_before_is_converted_to_incremental_vacuum_once_with_a_log_line(tmp_path, caplog):
    path = tmp_path / "stocks.db"
    make_pre_bars_database(path, session_quotes(symbols=("IBM",), per_day=30))
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=DELETE")
    connection.execute("VACUUM")  # as the release before wrote it: no auto_vacuum
    connection.execute("PRAGMA auto_vacuum = NONE")
    connection.execute("VACUUM")
    assert connection.execute("PRAGMA auto_vacuum").fetchone() == (0,)
    connection.close()
    connection = db.connect(path)
    with caplog.at_level(logging.INFO, logger="consumer"):
        took = convert_to_incremental(connection, path)
        assert convert_to_incremental(connection, path) is None  # once
    assert took is not None
    assert connection.execute("PRAGMA auto_vacuum").fetchone() == (2,)
    assert [record.getMessage().split(" (")[0] for record in caplog.records] == [
        f"converting {path}", f"converted {path} to incremental vacuum in {took:.1f} s"]
    assert len(stored_quotes(connection)) == 9 * 30
