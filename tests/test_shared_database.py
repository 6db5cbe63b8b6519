"""Several consumer.py processes on one database (a failover pair): every row and alert once, each alert
sent to the alerts topic by one process only, and a killed one's alerts sent by the other."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaProducer

from conftest import pipeline_env, running, start_script, topic_records

pytestmark = pytest.mark.slow

SYMBOLS = ["IBM", "MSFT", "AAPL", "NVDA", "TSLA", "AMZN"]


def quote(symbol: str, index: int) -> bytes:
    price = 90.0 if index % 2 == 0 else 110.0  # crosses 100 on every other quote: an alert each time
    ts = f"2026-01-05T{14 + index // 3600:02d}:{index // 60 % 60:02d}:{index % 60:02d}.000Z"
    return json.dumps({"v": 1, "symbol": symbol, "ts": ts, "price": price, "open": price, "high": price,
                       "low": price, "volume": 1, "source": "TIME_SERIES_INTRADAY", "fetched_at": ts}).encode()


def send_quotes(servers: str, topic: str, per_symbol: range, pace: float) -> None:
    producer = KafkaProducer(bootstrap_servers=servers, linger_ms=5)
    for index in per_symbol:
        for symbol in SYMBOLS:
            producer.send(topic, key=symbol.encode(), value=quote(symbol, index))
        time.sleep(pace)
    producer.flush()
    producer.close()


def table(db_path: Path, query: str) -> list[tuple]:
    connection = sqlite3.connect(db_path)
    try:
        return connection.execute(query).fetchall()
    finally:
        connection.close()


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def test_two_consumers_on_one_database_send_each_alert_once_and_survive_one_being_killed(kafka_broker, topic,
                                                                                          standin, tmp_path):
    db_path = tmp_path / "stocks.db"
    alerts_topic = f"{topic}-alerts"
    env = pipeline_env(kafka_broker, topic, standin, db_path, KAFKA_ALERTS_TOPIC=alerts_topic,
                       ALERT_RULES=",".join(f"{symbol}>100" for symbol in SYMBOLS))
    servers = kafka_broker.bootstrap_servers
    with running(start_script("consumer.py", env=env, log_path=tmp_path / "a.log")) as first, \
            running(start_script("consumer.py", env=env, log_path=tmp_path / "b.log")) as second:
        # Both share the partitions while quotes keep coming (one alert per two quotes per symbol).
        wait_for(lambda: all("consuming" in (tmp_path / name).read_text() for name in ("a.log", "b.log")), 60,
                 "both consumers up")
        send_quotes(servers, topic, range(0, 100), pace=0.01)
        time.sleep(3)  # the second to join the group gets its share of the partitions
        send_quotes(servers, topic, range(100, 400), pace=0.01)
        wait_for(lambda: table(db_path, "SELECT count(*) FROM stock_prices")[0][0] == 2400, 90, "first rows")
        wait_for(lambda: table(db_path, "SELECT count(*) FROM alerts WHERE published_at IS NULL")[0][0] == 0, 60,
                 "first alerts published")
        owners = {owner for (owner,) in table(db_path, "SELECT DISTINCT claimed_by FROM alerts")}
        on_topic = Counter((a["symbol"], a["rule"], a["ts"], a["direction"])
                           for a in map(json.loads, (r.value for r in topic_records(kafka_broker, alerts_topic))))
        assert sum(on_topic.values()) == len(on_topic) == 1200  # every alert once: none sent by both
        assert len(owners) == 2, owners  # both processes fired and sent alerts

        # One of them dies mid-run; the other takes over its partitions and whatever alerts it held.
        sender = threading.Thread(target=send_quotes, args=(servers, topic, range(400, 800), 0.01))
        sender.start()
        wait_for(lambda: table(db_path, "SELECT count(*) FROM stock_prices")[0][0] > 2700, 60, "second rows")
        first.send_signal(signal.SIGKILL)
        first.wait()
        sender.join()
        wait_for(lambda: table(db_path, "SELECT count(*) FROM stock_prices")[0][0] == 4800, 90, "all rows")
        wait_for(lambda: table(db_path, "SELECT count(*) FROM alerts WHERE published_at IS NULL")[0][0] == 0, 90,
                 "all alerts published")
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0
    assert table(db_path, "SELECT count(*) FROM alerts")[0][0] == 2400
    on_topic = Counter((a["symbol"], a["rule"], a["ts"], a["direction"])
                       for a in map(json.loads, (r.value for r in topic_records(kafka_broker, alerts_topic))))
    assert len(on_topic) == 2400  # every alert reached the topic
    # A copy is possible only for an alert the killed process had sent but not yet marked (documented).
    duplicates = sum(on_topic.values()) - len(on_topic)
    assert duplicates <= 2000 // 2, duplicates
    assert "Traceback" not in (tmp_path / "b.log").read_text()
