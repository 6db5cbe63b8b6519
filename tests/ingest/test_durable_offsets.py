"""Kafka offsets are committed only for rows on disk, while the rows themselves are visible at once.

The consumer's commits go into the WAL without an fsync; a thread syncs the WAL and only then are
the offsets of what it covered committed. Here the sync is held on purpose (a disk busy with another
process's writes) against a real broker and a real SQLite file.
"""

from __future__ import annotations

import errno
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

import consumer as consumer_script
import db
from alert_feed import quote_message, wait_for
from config import load_settings
from ingest.durable_offsets import DurableOffsets, WalSyncFailed, fsync_file, next_offsets
from ingest.store import QuoteStore
from streaming.kafka_client import TOPIC_PARTITIONS, create_consumer, create_producer, ensure_topic

pytestmark = pytest.mark.slow


class HeldSync:
    """An fsync of the real file that waits until released, and records what it synced."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.synced: list[Path] = []

    def __call__(self, path: Path) -> None:
        self.released.wait()
        fsync_file(path)
        self.synced.append(path)


def committed(client, topic: str) -> dict[int, int | None]:
    return {partition: client.committed(TopicPartition(topic, partition)) for partition in range(TOPIC_PARTITIONS)}


def test_rows_are_visible_at_once_but_their_offsets_wait_for_the_wal_sync(kafka_broker, topic, tmp_path):
    settings = load_settings({"ALPHAVANTAGE_API_KEY": "unused", "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
                              "KAFKA_TOPIC": topic, "KAFKA_GROUP_ID": f"{topic}-group",
                              "DB_PATH": str(tmp_path / "stocks.db")}, environ={}, env_file=None)
    ensure_topic(settings)
    producer = create_producer(settings)
    symbols = ["IBM", "AAPL", "MSFT", "TSLA", "NVDA", "AMZN"]  # spread over the partitions by key
    for minute in range(10):
        for symbol in symbols:
            producer.send(topic, key=symbol.encode(), value=quote_message(100 + minute, minute, symbol))
    producer.flush()
    producer.close()
    connection = db.connect(settings.db_path)
    held = HeldSync()
    durable = DurableOffsets(settings.db_path, sync=held)
    db.commit_without_fsync(connection)
    durable.start()
    client = create_consumer(settings)
    reader = sqlite3.connect(settings.db_path)
    try:
        store = QuoteStore(connection)

        def stored_rows() -> int:
            consumer_script.poll_and_store(client, store, durable, timeout_ms=100)
            return reader.execute("SELECT count(*) FROM stock_prices").fetchone()[0]

        wait_for(lambda: stored_rows() == 60, what="the 60 quotes were not all stored")
        for _ in range(10):  # more cycles: any commit they would make has time to land
            consumer_script.poll_and_store(client, store, durable, timeout_ms=50)
        assert set(committed(client, topic).values()) == {None}, "offsets committed before the WAL was synced"

        held.released.set()
        ends = client.end_offsets([TopicPartition(topic, partition) for partition in range(TOPIC_PARTITIONS)])
        expected = {tp.partition: end for tp, end in ends.items()}
        assert sum(expected.values()) == 60

        def all_committed() -> bool:
            consumer_script.poll_and_store(client, store, durable, timeout_ms=50)
            return {partition: offset or 0 for partition, offset in committed(client, topic).items()} == expected

        wait_for(all_committed, what=lambda: f"committed {committed(client, topic)}, expected {expected}")
        assert held.synced and set(held.synced) == {Path(f"{settings.db_path}-wal")}
    finally:
        held.released.set()
        durable.stop()
        client.close(autocommit=False)
        reader.close()
        connection.close()


def record(partition: int, offset: int) -> ConsumerRecord:
    return ConsumerRecord("t", partition, -1, offset, 0, 0, None, b"", [], None, 0, 0, 0)


def partitions(offsets: dict) -> dict[int, int]:
    return {tp.partition: offset.offset for tp, offset in offsets.items()}


def taken_within(durable: DurableOffsets, timeout: float = 5) -> dict[int, int]:
    """The first non-empty take within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        taken = durable.take()
        if taken:
            return partitions(taken)
        time.sleep(0.01)
    return {}


def test_a_batch_written_while_a_sync_runs_waits_for_the_next_sync(tmp_path):
    (tmp_path / "stocks.db-wal").write_bytes(b"frames")
    began = [threading.Event(), threading.Event()]
    release = [threading.Event(), threading.Event()]
    calls: list[Path] = []

    def sync(path: Path) -> None:
        call = len(calls)
        calls.append(path)
        began[call].set()
        release[call].wait()

    durable = DurableOffsets(tmp_path / "stocks.db", sync=sync).start()
    try:
        durable.written(next_offsets([record(0, 4), record(0, 5), record(1, 9)]))
        assert began[0].wait(5)
        durable.written(next_offsets([record(0, 6)]))  # committed to SQLite after that sync began
        assert durable.take() == {}  # nothing is on disk yet
        release[0].set()
        assert taken_within(durable) == {0: 6, 1: 10}
        assert began[1].wait(5)
        assert durable.take() == {}
        release[1].set()
        assert taken_within(durable) == {0: 7}
    finally:
        for event in release:
            event.set()
        durable.stop()


def test_finish_syncs_what_is_left_and_hands_back_every_offset(tmp_path):
    (tmp_path / "stocks.db-wal").write_bytes(b"frames")
    synced: list[Path] = []
    durable = DurableOffsets(tmp_path / "stocks.db", sync=synced.append)  # not started: nothing synced yet
    durable.written(next_offsets([record(2, 41)]))
    assert durable.take() == {}
    assert partitions(durable.finish()) == {2: 42}
    assert synced == [tmp_path / "stocks.db-wal"]


def test_a_failed_sync_stops_the_commits_and_is_a_storage_error(tmp_path):
    def failing(path: Path) -> None:
        raise OSError(errno.EIO, "Input/output error")

    durable = DurableOffsets(tmp_path / "stocks.db", sync=failing).start()
    try:
        durable.written(next_offsets([record(0, 1)]))
        deadline = time.monotonic() + 5
        with pytest.raises(WalSyncFailed) as failure:
            while time.monotonic() < deadline:
                assert durable.take() == {}
                time.sleep(0.01)
        assert isinstance(failure.value, db.DatabaseError)  # consumer.py exits 3 with its one line
        assert str(failure.value) == (f"cannot sync {tmp_path / 'stocks.db-wal'}: Input/output error; the batches "
                                      "stored since the last sync come again at the next start")
        with pytest.raises(WalSyncFailed):
            durable.finish()  # no offset is handed back on the way out either
    finally:
        durable.stop()


def rows_in_the_database_file_alone(path: Path, copy: Path) -> int:
    """Rows the main file holds without its WAL: what checkpoints have copied back (none, nor the table,
    before the first)."""
    copy.write_bytes(path.read_bytes())
    reader = sqlite3.connect(copy)
    try:
        if not reader.execute("SELECT 1 FROM sqlite_master WHERE name = 'stock_prices'").fetchall():
            return 0
        return reader.execute("SELECT count(*) FROM stock_prices").fetchone()[0]
    finally:
        reader.close()


def test_the_thread_checkpoints_the_wal_and_the_commits_do_not(tmp_path):
    path = tmp_path / "stocks.db"
    connection = db.connect(path)
    db.commit_without_fsync(connection)
    store = QuoteStore(connection)
    feed = [record(0, offset) for offset in range(100)]
    feed = [ConsumerRecord(*item[:7], quote_message(100 + index, index % 60, f"S{index}"), *item[8:])
            for index, item in enumerate(feed)]
    for checkpoint_every, expected in ((None, 0), (0.0, 100)):
        durable = DurableOffsets(path, checkpoint_every=checkpoint_every).start()
        try:
            connection.execute("DELETE FROM stock_prices")
            store.store(feed)
            durable.written(next_offsets(feed))
            assert taken_within(durable) == {0: 100}
            durable.written(next_offsets(feed))  # one more round: its checkpoint follows the sync just taken
            assert taken_within(durable) == {0: 100}
        finally:
            durable.stop()
        assert rows_in_the_database_file_alone(path, tmp_path / "copy.db") == expected
    connection.close()
