"""The real consumer process on a real broker: bad messages set aside, good ones stored, clean stops."""

from __future__ import annotations

import json
import logging
import signal
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from conftest import SCHEMA_TABLES, pipeline_env, run_script, running, start_script

pytestmark = pytest.mark.slow

GOOD = {"v": 1, "symbol": "IBM", "price": 121.74, "open": 121.79, "high": 121.86, "low": 121.7225, "volume": 31454,
        "source": "TIME_SERIES_INTRADAY", "fetched_at": "2026-11-24T15:00:01.987Z"}


def good(minute: int, symbol: str = "IBM") -> bytes:
    return json.dumps({**GOOD, "symbol": symbol, "ts": f"2020-05-08T18:{minute:02d}:00.000Z"}).encode()


def bad(**changes: object) -> bytes:
    message = {**GOOD, "ts": "2020-05-08T17:00:00.000Z", **changes}
    return json.dumps({k: v for k, v in message.items() if v is not ...}).encode()


BAD_MESSAGES = [
    (b"\xc3\x28\xa0\xa1", "not UTF-8 (byte 0)"),
    (b"{not json}", "not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    (b"[1, 2]", "not a JSON object but list"),
    (bad(symbol=...), "symbol is missing"),
    (bad(price=...), "price is missing"),
    (bad(price=None), "price is null"),
    (bad(price="cheap"), "price is not a number: 'cheap'"),
    (bad(price=-5), "price must be positive, got -5"),
    (bad(price=0), "price must be positive, got 0"),
    (b'{"v": 1, "symbol": "IBM", "ts": "2020-05-08T17:00:00Z", "price": NaN, "open": 1, "high": 1, "low": 1, '
     b'"volume": 1, "source": "GLOBAL_QUOTE", "fetched_at": "2020-05-08T17:00:00Z"}', "price is not finite: nan"),
    (bad(price=float("inf")), "price is not finite: inf"),
    (bad(ts="half past nine"), "ts does not parse as ISO-8601: 'half past nine'"),
    (bad(v=7), "unsupported message version '7'"),
    (bad(price="big", padding="x" * 1_000_000), "price is not a number: 'big'"),
    (b"", "empty value"),
    (None, "null value (tombstone)"),
    (bad(symbol="IBM'); DELETE FROM stock_prices; --"), "symbol is not valid: \"IBM'); DELETE FROM stock_prices; --\""),
    (bad(symbol="IB\x1bM"), "symbol is not valid: 'IB\\x1bM'"),
    # Each of these once made the consumer exit 1 with its whole batch, on every restart.
    (bad(price=10**400), f"price is out of range: '{str(10**400)[:40]}'"),
    (bad(volume=2**63), "volume is out of range (at most 2^63-1): '9223372036854775808'"),
    (bad(extra=0).replace(b'"extra": 0', b'"extra": ' + b"[" * 100_000 + b"]" * 100_000),
     "not JSON we accept: nested more than 1024 levels deep"),
    (bad(ts="9999-12-31T23:00:00-05:00"), "ts is out of range in UTC: '9999-12-31T23:00:00-05:00'"),
    (bad(fetched_at="0001-01-01T00:00:00+05:00"), "fetched_at is out of range in UTC: '0001-01-01T00:00:00+05:00'"),
    (bad(source={"GLOBAL_QUOTE": 1}), "source is not one of ['GLOBAL_QUOTE', 'REALTIME_BULK_QUOTES', 'TIME_SERIES_DAILY', 'TIME_SERIES_INTRADAY']: \"{'GLOBAL_QUOTE': 1}\""),
]


def test_bad_messages_are_set_aside_and_good_ones_around_them_all_stored(kafka_broker, topic, standin, tmp_path):
    db_path = tmp_path / "stocks.db"
    env = pipeline_env(kafka_broker, topic, standin, db_path)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers, max_request_size=2_000_000)
    for index, (value, _) in enumerate(BAD_MESSAGES):
        producer.send(topic, key=b"IBM", value=good(index))
        producer.send(topic, key=b"IBM", value=value)
    producer.send(topic, key=b"IBM", value=good(59))
    producer.flush()
    producer.close()

    result = run_script("consumer.py", "--idle-exit", "3", env=env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr

    connection = sqlite3.connect(db_path)
    stored = connection.execute("SELECT ts FROM stock_prices ORDER BY ts").fetchall()
    assert stored == [(f"2020-05-08T18:{minute:02d}:00.000Z",) for minute in [*range(len(BAD_MESSAGES)), 59]]
    rejected = connection.execute('SELECT "offset", value, reason FROM rejected_messages ORDER BY "offset"').fetchall()
    assert [(value, reason) for _, value, reason in rejected] == BAD_MESSAGES
    assert [offset for offset, _, _ in rejected] == list(range(1, 2 * len(BAD_MESSAGES), 2))
    # The schema is intact: the hostile symbol was never executed.
    tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == SCHEMA_TABLES
    connection.close()
    warnings = [line for line in result.stderr.splitlines() if " WARNING " in line]
    assert len(warnings) == len(BAD_MESSAGES)


def committed_and_end(broker_servers: str, topic: str, group: str) -> tuple[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=broker_servers, group_id=group, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    ends = consumer.end_offsets(partitions)
    committed = sum(consumer.committed(tp) or 0 for tp in partitions)
    consumer.close(autocommit=False)
    return committed, sum(ends.values())


def test_sigterm_finishes_the_batch_commits_and_exits_0(kafka_broker, topic, standin, tmp_path):
    db_path = tmp_path / "stocks.db"
    env = pipeline_env(kafka_broker, topic, standin, db_path)
    log_path = tmp_path / "consumer.log"
    with running(start_script("consumer.py", env=env, log_path=log_path)) as consumer:
        producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers, linger_ms=20)
        symbols = ["IBM", "MSFT", "AAPL"]
        for minute in range(3000):
            symbol = symbols[minute % 3]
            producer.send(topic, key=symbol.encode(),
                          value=json.dumps({**GOOD, "symbol": symbol,
                                            "ts": f"2020-05-{1 + minute // 1440:02d}T{minute // 60 % 24:02d}:"
                                                  f"{minute % 60:02d}:00.000Z"}).encode())
        producer.flush()
        producer.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if db_path.exists() and "stored" in log_path.read_text():
                break
            time.sleep(0.2)
        consumer.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        assert consumer.wait(15) == 0
        assert time.monotonic() - stopped < 5
    connection = sqlite3.connect(db_path)
    stored = connection.execute("SELECT count(*) FROM stock_prices").fetchone()[0]
    connection.close()
    committed, end = committed_and_end(kafka_broker.bootstrap_servers, topic, f"{topic}-group")
    # Everything committed is stored (it may have stopped before the end: that part is still in Kafka).
    assert stored > 0 and committed == stored and committed <= end
    log = log_path.read_text()
    assert "Traceback" not in log
    assert "stored" in log and "IBM 121.74" in log

    # A restart picks up exactly where the committed offsets point, and finishes the topic.
    rest = run_script("consumer.py", "--idle-exit", "3", env=env)
    assert rest.returncode == 0, rest.stderr
    connection = sqlite3.connect(db_path)
    assert connection.execute("SELECT count(*) FROM stock_prices").fetchone()[0] == 3000
    assert connection.execute("SELECT count(DISTINCT symbol) FROM stock_prices").fetchone()[0] == 3
    connection.close()
    assert committed_and_end(kafka_broker.bootstrap_servers, topic, f"{topic}-group") == (3000, 3000)


def test_an_unusable_database_is_one_line_and_exit_3(kafka_broker, topic, standin, tmp_path):
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"garbage" * 1000)
    result = run_script("consumer.py", "--db", str(corrupt), env=pipeline_env(kafka_broker, topic, standin, corrupt),
                        timeout=30)
    assert result.returncode == 3
    assert result.stderr == f"consumer: error: cannot use database '{corrupt}': file is not a database\n"


def send_minutes(producer: KafkaProducer, topic: str, minutes: Iterable[int]) -> None:
    for minute in minutes:
        producer.send(topic, key=b"IBM", value=good(minute))
    producer.flush()


def send_and_wait_until_stored(producer: KafkaProducer, topic: str, log_path: Path) -> None:
    """IBM's quote of minute 0, waited for (up to 60 s) until the running consumer says it stored it."""
    send_minutes(producer, topic, [0])
    deadline = time.monotonic() + 60
    while "stored 1 new quote" not in log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)


def test_a_wal_that_cannot_be_synced_is_one_line_exit_3_and_nothing_lost(kafka_broker, topic, standin, tmp_path):
    db_path = tmp_path / "stocks.db"
    wal = Path(f"{db_path}-wal")
    env = pipeline_env(kafka_broker, topic, standin, db_path)
    log_path = tmp_path / "consumer.log"
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    with running(start_script("consumer.py", env=env, log_path=log_path)) as consumer:
        send_and_wait_until_stored(producer, topic, log_path)
        wal.unlink()  # a clean-up job that took it for a temporary file: what is stored next cannot be synced
        send_minutes(producer, topic, range(1, 11))
        assert consumer.wait(30) == 3, log_path.read_text()
    log = log_path.read_text()
    assert (f"consumer: error: cannot sync {wal}: No such file or directory; the batches stored since the last "
            "sync come again at the next start\n") in log
    assert "Traceback" not in log

    rest = run_script("consumer.py", "--idle-exit", "3", env=env)
    assert rest.returncode == 0, rest.stderr
    connection = sqlite3.connect(db_path)
    assert connection.execute("SELECT count(*) FROM stock_prices").fetchone()[0] == 11
    connection.close()
    assert committed_and_end(kafka_broker.bootstrap_servers, topic, f"{topic}-group") == (11, 11)


def test_the_batch_line_prints_prices_as_stored():
    from ingest.stored_log import PriceBoard
    from streaming.messages import decode_quote

    rows = [decode_quote(json.dumps({**GOOD, "symbol": symbol, "price": price, "ts": "2020-05-08T18:00:00Z"}).encode())
            for symbol, price in [("IBM", 164.0625), ("BRK.A", 1234567)]]
    assert PriceBoard().moves(rows) == "BRK.A 1234567.0, IBM 164.0625"


def test_a_write_lock_held_past_30_s_is_waited_out_with_a_warning_and_nothing_lost(kafka_broker, topic, standin,
                                                                                     tmp_path):
    db_path = tmp_path / "stocks.db"
    env = pipeline_env(kafka_broker, topic, standin, db_path)
    log_path = tmp_path / "consumer.log"
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    with running(start_script("consumer.py", env=env, log_path=log_path)) as consumer:
        send_and_wait_until_stored(producer, topic, log_path)
        shell = sqlite3.connect(db_path, isolation_level=None)  # as a sqlite3 shell left in a transaction
        shell.execute("BEGIN IMMEDIATE")
        send_minutes(producer, topic, range(1, 11))
        time.sleep(34)
        assert consumer.poll() is None, log_path.read_text()
        committed, end = committed_and_end(kafka_broker.bootstrap_servers, topic, f"{topic}-group")
        assert (committed, end) == (1, 11)  # offsets wait for the rows
        shell.execute("ROLLBACK")
        shell.close()
        deadline = time.monotonic() + 30
        while "writable again" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        consumer.send_signal(signal.SIGTERM)
        assert consumer.wait(15) == 0
    producer.close()
    connection = sqlite3.connect(db_path)
    assert connection.execute("SELECT count(*) FROM stock_prices").fetchone()[0] == 11
    connection.close()
    log = log_path.read_text()
    waits = [line for line in log.splitlines() if "locked by another connection" in line]
    assert len(waits) == 1 and waits[0].split(" WARNING consumer: ")[1].startswith(
        f"database {db_path} has been locked by another connection for 3"), log
    assert "Traceback" not in log and "error" not in log
    assert committed_and_end(kafka_broker.bootstrap_servers, topic, f"{topic}-group") == (11, 11)


def test_under_load_the_stored_line_comes_at_most_once_a_second(caplog):
    from ingest.stored_log import StoredLog
    from streaming.messages import decode_quote

    def row(symbol: str, minute: int, price: float):
        return decode_quote(json.dumps({**GOOD, "symbol": symbol, "price": price,
                                        "ts": f"2020-05-08T18:{minute:02d}:00Z"}).encode())

    now = [100.0]
    stored = StoredLog(clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="consumer"):
        stored.stored(2, [row("IBM", 0, 100.0), row("MSFT", 0, 50.0)])  # the first batch: said at once
        for moment, minute, price in ((100.1, 1, 100.5), (100.2, 2, 101.0)):
            now[0] = moment
            stored.stored(1, [row("IBM", minute, price)])
        now[0] = 100.9
        stored.flush()  # not yet a second since the last line
        now[0] = 101.2
        stored.flush()
        stored.stored(0, [])  # a redelivery: nothing new, nothing said
        now[0] = 105.0
        stored.stored(1, [row("MSFT", 5, 49.0)])  # after a quiet spell: said at once
        now[0] = 105.3
        stored.stored(1, [row("IBM", 6, 102.01)])
        stored.flush(force=True)  # on the way out: said although not yet due
    assert [record.getMessage() for record in caplog.records] == [
        "stored 2 new quote(s): IBM 100.0, MSFT 50.0",
        "stored 2 new quote(s) in 2 batches over 1.1 s: IBM 101.0 (+1.00%)",
        "stored 1 new quote(s): MSFT 49.0 (-2.00%)",
        "stored 1 new quote(s): IBM 102.01 (+1.00%)",
    ]
