"""Start-up faults: each is one clear line and a distinct exit status, or a wait that ends by itself."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
from kafka import KafkaProducer

from alphavantage_standin import recorded
from conftest import pipeline_env, run_script, running, script_env, start_script
from tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow


def test_the_consumer_waits_for_a_late_broker_and_creates_the_missing_topic(kafka_broker, topic, standin, tmp_path):
    proxy = TcpProxy.in_front_of(kafka_broker.bootstrap_servers)
    db_path = tmp_path / "stocks.db"
    env = pipeline_env(kafka_broker, topic, standin, db_path, KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{proxy.port}")
    log_path = tmp_path / "consumer.log"
    with running(start_script("consumer.py", env=env, log_path=log_path)) as consumer:
        time.sleep(6)
        assert consumer.poll() is None
        proxy.start()
        try:
            deadline = time.monotonic() + 60
            while f"created topic {topic}" not in log_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
            message = {"v": 1, "symbol": "IBM", "ts": "2020-05-08T18:05:00.000Z", "price": 121.74, "open": 1.0,
                       "high": 2.0, "low": 0.5, "volume": 1, "source": "TIME_SERIES_INTRADAY",
                       "fetched_at": "2020-05-08T18:06:00.000Z"}
            producer.send(topic, key=b"IBM", value=json.dumps(message).encode()).get(timeout=30)
            producer.close()
            while "stored 1 new quote(s)" not in log_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            consumer.terminate()
            assert consumer.wait(15) == 0
        finally:
            proxy.close()
    log = log_path.read_text()
    waiting = [line for line in log.splitlines() if "Kafka is not reachable" in line]
    assert len(waiting) == 1, log
    assert waiting[0].endswith(f"Kafka is not reachable at 127.0.0.1:{proxy.port} (KafkaConnectionError: 111 "
                               "ECONNREFUSED); the consumer will keep retrying")
    assert f"created topic {topic} with 3 partitions" in log
    assert "Traceback" not in log
    assert sqlite3.connect(db_path).execute("SELECT count(*) FROM stock_prices").fetchone() == (1,)


def test_an_unknown_broker_host_is_named_in_the_waiting_line(tmp_path):
    log_path = tmp_path / "producer.log"
    env = script_env(KAFKA_BOOTSTRAP_SERVERS="kafka.invalid:9092", PRODUCER_STATE_PATH=str(tmp_path / "state.json"))
    with running(start_script("producer.py", "--once", env=env, log_path=log_path)) as producer:
        time.sleep(6)
        producer.terminate()
        assert producer.wait(15) == 0
    assert "Kafka is not reachable at kafka.invalid:9092 (KafkaConnectionError: DNS Resolution failure); " \
           "the producer will keep retrying" in log_path.read_text()


@pytest.mark.parametrize(("script", "setting"), [("consumer.py", "DB_PATH"), ("producer.py", "PRODUCER_STATE_PATH")])
def test_an_unwritable_file_location_is_one_line_and_exit_3(tmp_path, script, setting):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where a folder should be")
    target = blocker / "file"
    result = run_script(script, env=script_env(**{setting: str(target)}, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9"),
                        timeout=30)
    assert result.returncode == 3
    expected = {"consumer.py": f"consumer: error: cannot use database '{target}': unable to open database file\n",
                "producer.py": f"producer: error: cannot write state file '{target}': Not a directory\n"}
    assert result.stderr.splitlines()[-1] + "\n" == expected[script]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("settings", "status", "line"), [
    ({"ALPHAVANTAGE_API_KEY": ""}, 2, "producer: error: ALPHAVANTAGE_API_KEY: must not be empty"),
    ({"STOCK_SYMBOLS": ""}, 2, "producer: error: STOCK_SYMBOLS: no symbols given"),
    ({"ALPHAVANTAGE_FUNCTION": "CRYPTO"}, 2,
     "producer: error: ALPHAVANTAGE_FUNCTION: 'CRYPTO' is not one of GLOBAL_QUOTE, TIME_SERIES_INTRADAY, "
     "REALTIME_BULK_QUOTES"),
])
def test_missing_or_invalid_settings_exit_2(settings, status, line):
    result = run_script("producer.py", env=script_env(**settings), timeout=30)
    assert (result.returncode, result.stderr) == (status, line + "\n")


def test_a_failed_once_pass_exits_1(kafka_broker, topic, standin, tmp_path):
    standin.script("GLOBAL_QUOTE", "NOPE", recorded("global_quote_unknown_symbol.json"))
    result = run_script("producer.py", "--once", env=pipeline_env(kafka_broker, topic, standin, tmp_path / "s.db",
                                                                   STOCK_SYMBOLS="NOPE"))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "producer: error: 1 of 1 symbol(s) failed: NOPE: unknown symbol: Alpha Vantage has no quote for NOPE")
