"""Fault injection against real processes and the real broker: nothing lost, nothing doubled, nothing crashes."""

from __future__ import annotations

import itertools
import json
import random
import signal
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaProducer

from alphavantage_standin import changing_global_quotes, recorded, served_prices
from config import load_settings
from conftest import (
    Broker,
    pipeline_env,
    run_script,
    running,
    start_script,
    topic_values,
)
from polling.publisher import NewQuoteFilter, QuotePublisher
from quotesource.alphavantage import GLOBAL_QUOTE, Quote
from streaming.kafka_client import close_producer, create_producer, ensure_topic
from streaming.messages import decode_quote

pytestmark = pytest.mark.slow

SYMBOLS = ("IBM", "MSFT", "AAPL", "BRK.B")


def project_messages(count: int) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs in the project's message format, each (symbol, ts) distinct."""
    messages = []
    for index in range(count):
        symbol = SYMBOLS[index % len(SYMBOLS)]
        step = index // len(SYMBOLS)
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_600_000_000 + step * 60)) + ".000Z"
        message = {"v": 1, "symbol": symbol, "ts": ts, "price": round(100 + index * 0.01, 2), "open": 100.0,
                   "high": 200.0, "low": 50.0, "volume": index, "source": "TIME_SERIES_INTRADAY",
                   "fetched_at": "2026-11-24T15:00:00.000Z"}
        messages.append((symbol.encode(), json.dumps(message).encode()))
    return messages


def produce(broker: Broker, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=50, batch_size=256 * 1024)
    for key, value in messages:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def stored_rows(db_path: Path) -> list[tuple]:
    connection = sqlite3.connect(db_path)
    rows = connection.execute("SELECT symbol, ts, price, volume FROM stock_prices").fetchall()
    connection.close()
    return rows


def row_count(db_path: Path) -> int:
    if not db_path.exists():
        return 0
    try:
        connection = sqlite3.connect(db_path, timeout=1)
        count = connection.execute("SELECT count(*) FROM stock_prices").fetchone()[0]
        connection.close()
        return count
    except sqlite3.OperationalError:  # schema not created yet
        return 0


def expected_rows(messages: list[tuple[bytes, bytes]]) -> set[tuple]:
    return {(m["symbol"], m["ts"], m["price"], m["volume"]) for m in (json.loads(v) for _, v in messages)}


def test_consumer_killed_at_random_instants_stores_every_message_exactly_once(kafka_broker, topic, standin, tmp_path):
    messages = project_messages(14_000)
    produce(kafka_broker, topic, messages)
    db_path = tmp_path / "stocks.db"
    env = pipeline_env(kafka_broker, topic, standin, db_path)
    log_path = tmp_path / "consumer.log"
    chance = random.Random(20261124)
    kills = 0
    for low, high in ((1_000, 2_500), (3_500, 5_000), (6_000, 7_500), (8_500, 10_000)):
        target = chance.randint(low, high)
        with running(start_script("consumer.py", env=env, log_path=log_path)) as consumer:
            deadline = time.monotonic() + 90
            while row_count(db_path) < target and consumer.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(chance.uniform(0, 0.05))  # anywhere in the batch cycle: parse, insert, commit, offsets
            assert consumer.poll() is None, "the consumer exited before it could be killed"
            consumer.send_signal(signal.SIGKILL)
            consumer.wait()
            kills += 1
    assert kills >= 3
    assert row_count(db_path) < len(messages)  # the kills really interrupted the ingest

    final = run_script("consumer.py", "--idle-exit", "3", env=env, timeout=180)
    assert final.returncode == 0, final.stderr
    rows = stored_rows(db_path)
    assert len(rows) == len(messages)
    assert set(rows) == expected_rows(messages)
    connection = sqlite3.connect(db_path)
    assert connection.execute("SELECT count(*) FROM rejected_messages").fetchone()[0] == 0
    assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    connection.close()
    assert "Traceback" not in log_path.read_text() + final.stderr


def wait_until(condition, timeout: float = 90, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.1)


def test_a_broker_restart_mid_run_is_ridden_out_by_both_processes(restartable_broker, topic, standin, tmp_path):
    broker = Broker(restartable_broker.bootstrap_servers, restartable_broker)
    standin.script("GLOBAL_QUOTE", "IBM", *changing_global_quotes(1000))
    db_path = tmp_path / "stocks.db"
    env = pipeline_env(broker, topic, standin, db_path, STOCK_SYMBOLS="IBM", REQUESTS_PER_MINUTE="300")
    consumer_log, producer_log = tmp_path / "consumer.log", tmp_path / "producer.log"
    with running(start_script("consumer.py", env=env, log_path=consumer_log)) as consumer, \
            running(start_script("producer.py", env=env, log_path=producer_log)) as producer:
        wait_until(lambda: row_count(db_path) >= 5, message=consumer_log.read_text())
        restartable_broker.stop()
        try:
            # Both stay up: kafka-python 3.0.12 let a refused reconnection escape the consumer's poll()
            # (the consumer exited 1), and its idempotent producer never sent again after a batch it had
            # sent expired (now test_a_quote_kafka_gave_up_on_mid_request_is_delivered_once_the_broker_answers_again).
            for _ in range(16):
                time.sleep(0.5)
                assert consumer.poll() is None, consumer_log.read_text()
                assert producer.poll() is None, producer_log.read_text()
        finally:
            restartable_broker.start()
        calls_after_restart = len(standin.requests)
        wait_until(lambda: len(standin.requests) >= calls_after_restart + 5, message=producer_log.read_text())
        producer.send_signal(signal.SIGTERM)
        assert producer.wait(15) == 0, producer_log.read_text()
        served = served_prices(len(standin.requests))
        wait_until(lambda: row_count(db_path) >= len(served), message=consumer_log.read_text())
        consumer.send_signal(signal.SIGTERM)
        assert consumer.wait(15) == 0, consumer_log.read_text()
    assert {price for _, _, price, _ in stored_rows(db_path)} == served
    assert row_count(db_path) == len(served)
    producer_text, consumer_text = producer_log.read_text(), consumer_log.read_text()
    assert "Traceback" not in producer_text + consumer_text
    assert producer_text.count("Kafka has not acknowledged") + producer_text.count("Kafka did not take") == 1, producer_text
    assert producer_text.count("Kafka is taking quotes again") == 1, producer_text
    assert consumer_text.count("lost the connection to Kafka") == 1, consumer_text
    assert consumer_text.count("is back") == 1, consumer_text


def test_a_killed_producer_restarts_without_publishing_bars_again(kafka_broker, topic, standin, tmp_path):
    standin.script_recorded_intraday()
    db_path = tmp_path / "stocks.db"
    # DEBUG: at a call a second the INFO log sums the calls into one line a second; each call's own is at DEBUG.
    env = pipeline_env(kafka_broker, topic, standin, db_path, STOCK_SYMBOLS="MSFT,IBM",
                       ALPHAVANTAGE_FUNCTION="TIME_SERIES_INTRADAY", REQUESTS_PER_MINUTE="60", LOG_LEVEL="DEBUG")
    log_path = tmp_path / "producer.log"
    with running(start_script("producer.py", env=env, log_path=log_path)) as producer:
        wait_until(lambda: "IBM: published 2 new quote(s)" in log_path.read_text(), message=log_path.read_text())
        producer.send_signal(signal.SIGKILL)  # between polls: the next one is a second away
        producer.wait()
    calls_before = len(standin.requests)
    with running(start_script("producer.py", env=env, log_path=log_path)) as producer:
        wait_until(lambda: len(standin.requests) >= calls_before + 2, message=log_path.read_text())
        producer.send_signal(signal.SIGTERM)
        assert producer.wait(15) == 0
    log = log_path.read_text()
    assert "MSFT: no new quote since the last poll" in log and "IBM: no new quote since the last poll" in log
    assert len(topic_values(kafka_broker, topic)) == 102
    consumed = run_script("consumer.py", "--idle-exit", "3", env=env)
    assert consumed.returncode == 0, consumed.stderr
    assert row_count(db_path) == 102


def test_a_restarted_producer_does_not_exceed_the_per_minute_budget(kafka_broker, topic, standin, tmp_path):
    standin.script("GLOBAL_QUOTE", "IBM", *changing_global_quotes(50))
    env = pipeline_env(kafka_broker, topic, standin, tmp_path / "s.db", STOCK_SYMBOLS="IBM", REQUESTS_PER_MINUTE="3")
    log_path = tmp_path / "producer.log"
    with running(start_script("producer.py", env=env, log_path=log_path)) as producer:
        wait_until(lambda: len(standin.requests) == 3, message=log_path.read_text())
        producer.send_signal(signal.SIGKILL)
        producer.wait()
    with running(start_script("producer.py", env=env, log_path=log_path)) as producer:
        time.sleep(10)  # a budget reset by the restart would have made up to 3 more calls by now
        producer.send_signal(signal.SIGTERM)
        assert producer.wait(15) == 0
    assert len(standin.requests) == 3
    assert "budget 3/min, no daily limit" in log_path.read_text()
    times = standin.request_times
    assert all(b - a >= 1.0 - 0.01 for a, b in itertools.pairwise(times))


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1])


def test_while_kafka_is_down_the_producer_stays_small_and_keeps_what_it_fetched(restartable_broker, topic, standin,
                                                                               tmp_path):
    broker = Broker(restartable_broker.bootstrap_servers, restartable_broker)
    standin.script("GLOBAL_QUOTE", "IBM", *changing_global_quotes(1000))
    env = pipeline_env(broker, topic, standin, tmp_path / "s.db", STOCK_SYMBOLS="IBM", REQUESTS_PER_MINUTE="600")
    log_path = tmp_path / "producer.log"
    try:
        with running(start_script("producer.py", env=env, log_path=log_path)) as producer:
            wait_until(lambda: len(standin.requests) >= 3, message=log_path.read_text())
            restartable_broker.stop()
            calls_at_stop = len(standin.requests)
            samples = []
            for _ in range(24):
                samples.append(rss_kib(producer.pid))
                time.sleep(0.5)
            # No quote is fetched that cannot be delivered: the API is left alone while Kafka is away.
            assert len(standin.requests) <= calls_at_stop + 1
            assert max(samples) - min(samples) < 10_000, samples
            producer.send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            assert producer.wait(15) == 1
            assert time.monotonic() - stopped < 8
    finally:
        restartable_broker.start()
    log = log_path.read_text()
    assert log.splitlines()[-1].startswith("producer: error: Kafka did not acknowledge 1 quote(s); they are kept in ")
    assert "Traceback" not in log
    state = json.loads((tmp_path / "producer_state.json").read_text())
    assert len(state["held"]) == 1

    # The next start sends the kept quote before anything else.
    again = run_script("producer.py", "--once", env=env)
    assert again.returncode == 0, again.stderr
    assert "sending 1 quote(s) that Kafka had not acknowledged before the last exit" in again.stderr
    published = [json.loads(value)["price"] for value in topic_values(broker, topic)]
    assert set(published) == served_prices(len(standin.requests))


def test_producer_once_losing_kafka_mid_pass_keeps_the_quote_and_exits_within_kafka_wait(restartable_broker, topic,
                                                                                        standin, tmp_path):
    broker = Broker(restartable_broker.bootstrap_servers, restartable_broker)
    standin.script("GLOBAL_QUOTE", "IBM", recorded("global_quote_IBM.json", delay=4.0), recorded("global_quote_IBM.json"))
    env = pipeline_env(broker, topic, standin, tmp_path / "s.db", STOCK_SYMBOLS="IBM")
    log_path = tmp_path / "producer.log"
    try:
        with running(start_script("producer.py", "--once", "--kafka-wait", "3", env=env, log_path=log_path)) as once:
            wait_until(lambda: len(standin.requests) == 1, message=log_path.read_text())
            restartable_broker.stop()  # while Alpha Vantage is still answering
            stopped = time.monotonic()
            assert once.wait(60) == 1
            assert time.monotonic() - stopped < 30
    finally:
        restartable_broker.start()
    log = log_path.read_text()
    assert log.splitlines()[-1] == (f"producer: error: Kafka did not acknowledge 1 quote(s); they are kept in "
                                    f"{tmp_path / 'producer_state.json'} and sent on the next start")
    [held] = json.loads((tmp_path / "producer_state.json").read_text())["held"]
    again = run_script("producer.py", "--once", env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(held)["ts"] in {json.loads(value)["ts"] for value in topic_values(broker, topic)}


def test_a_quote_kafka_gave_up_on_mid_request_is_delivered_once_the_broker_answers_again(restartable_broker, topic):
    """A produce request sent to a broker that then stops answering expires in the client; after that
    the client must still deliver (kafka-python 3.0.12's idempotent producer never sent again)."""
    settings = load_settings({"KAFKA_BOOTSTRAP_SERVERS": restartable_broker.bootstrap_servers, "KAFKA_TOPIC": topic},
                             environ={}, env_file=None)
    ensure_topic(settings)
    producer = create_producer(settings, request_timeout_ms=1_000, delivery_timeout_ms=3_000)
    publisher = QuotePublisher(producer, topic, NewQuoteFilter(), threading.Event(), flush_timeout=6.0)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    quotes = [Quote("IBM", start + timedelta(minutes=minute), 120.0 + minute, 120.0, 125.0, 119.0, 1000, GLOBAL_QUOTE,
                    start + timedelta(minutes=minute), trading_day=start.date().isoformat()) for minute in range(3)]
    broker = restartable_broker.process
    assert broker is not None
    try:
        publisher.add(quotes[:1])
        assert publisher.deliver()
        broker.send_signal(signal.SIGSTOP)  # the request goes out and no answer comes back
        try:
            publisher.add(quotes[1:2])
            assert not publisher.deliver()  # the client gave up on it after its delivery timeout
        finally:
            broker.send_signal(signal.SIGCONT)
        publisher.add(quotes[2:])
        deadline = time.monotonic() + 60
        while not publisher.deliver():
            assert time.monotonic() < deadline, "the producer never delivered again after the broker came back"
        assert not publisher.held
    finally:
        close_producer(producer, timeout=2)
    stored = [decode_quote(value) for value in topic_values(Broker(restartable_broker.bootstrap_servers), topic)]
    assert sorted({row.price for row in stored}) == [120.0, 121.0, 122.0]

