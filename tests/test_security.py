"""Secrets stay secret, hostile input stays data, and Kafka security settings work against a real SASL broker."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator

import pytest

from alphavantage_standin import Answer, fixture, recorded
from conftest import PROJECT_DIR, SCHEMA_TABLES, TEST_API_KEY, Broker, pipeline_env, run_script, running, start_script
from streaming.local_broker import LocalKafka

pytestmark = pytest.mark.slow

SASL_PASSWORD = "sasl-pw-7Hq2Lx9"


@pytest.fixture(scope="module")
def sasl_broker() -> Iterator[LocalKafka]:
    with LocalKafka(sasl_users={"stockmon": SASL_PASSWORD}) as broker:
        yield broker


def test_the_pipeline_runs_over_sasl_and_neither_secret_leaks_even_at_debug(sasl_broker, topic, standin, tmp_path):
    standin.script("GLOBAL_QUOTE", "IBM", recorded("global_quote_IBM.json"))
    # The server echoing the key back (as its daily-limit notice does) must not leak it either.
    echoed = fixture("information_daily_limit_key_detected.json").replace(b"XXXXXXXXXXXXXXXX", TEST_API_KEY.encode())
    standin.script("GLOBAL_QUOTE", "MSFT", Answer(echoed))
    db_path = tmp_path / "stocks.db"
    env = pipeline_env(Broker(sasl_broker.bootstrap_servers), topic, standin, db_path, STOCK_SYMBOLS="IBM,MSFT",
                       KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_MECHANISM="PLAIN",
                       KAFKA_SASL_USERNAME="stockmon", KAFKA_SASL_PASSWORD=SASL_PASSWORD, LOG_LEVEL="DEBUG")
    produced = run_script("producer.py", "--once", env=env)
    assert produced.returncode == 0, produced.stderr[-3000:]
    consumed = run_script("consumer.py", "--idle-exit", "3", env=env)
    assert consumed.returncode == 0, consumed.stderr[-3000:]
    assert "daily limit reached: We have detected your API key as *** and" in produced.stderr
    assert "GET /query?function=GLOBAL_QUOTE&symbol=IBM&datatype=json&apikey=***" in produced.stderr  # urllib3 at DEBUG

    connection = sqlite3.connect(db_path)
    assert connection.execute("SELECT symbol, price FROM stock_prices").fetchall() == [("IBM", 121.74)]
    dump = "\n".join(connection.iterdump())
    connection.close()
    captured = "\n".join([produced.stdout, produced.stderr, consumed.stdout, consumed.stderr, dump,
                          (tmp_path / "producer_state.json").read_text(),
                          repr(topic_values_sasl(sasl_broker, topic))])
    assert TEST_API_KEY not in captured
    assert SASL_PASSWORD not in captured


def topic_values_sasl(broker: LocalKafka, topic: str) -> list[bytes]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap_servers, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000, **broker.client_options)
    values = [record.value for record in consumer]
    consumer.close()
    return values


def test_a_wrong_sasl_password_is_said_once_and_retried_without_a_traceback(sasl_broker, topic, standin, tmp_path):
    env = pipeline_env(Broker(sasl_broker.bootstrap_servers), topic, standin, tmp_path / "s.db",
                       KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_MECHANISM="PLAIN",
                       KAFKA_SASL_USERNAME="stockmon", KAFKA_SASL_PASSWORD="wrong-password")
    log_path = tmp_path / "consumer.log"
    told = (f"reachable at {sasl_broker.bootstrap_servers} (SaslAuthenticationFailedError: "
            "Authentication failed: Invalid username or password)")
    with running(start_script("consumer.py", env=env, log_path=log_path)) as consumer:
        deadline = time.monotonic() + 60
        while told not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        time.sleep(5)  # more failed attempts, which must not add lines
        consumer.terminate()
        assert consumer.wait(15) == 0
    log = log_path.read_text()
    lines = [line for line in log.splitlines() if "not reachable" in line]
    # One line, or two when a loaded broker dropped the first socket before it refused the login.
    assert [told in line for line in lines] in ([True], [False, True]), log
    assert "wrong-password" not in log and "Traceback" not in log


def test_a_hostile_symbol_in_a_message_changes_no_schema_and_no_other_row(kafka_broker, topic, standin, tmp_path):
    from kafka import KafkaProducer

    good = {"v": 1, "symbol": "IBM", "ts": "2020-05-08T18:05:00.000Z", "price": 121.74, "open": 1.0, "high": 2.0,
            "low": 0.5, "volume": 1, "source": "TIME_SERIES_INTRADAY", "fetched_at": "2020-05-08T18:06:00.000Z"}
    hostile = [{**good, "symbol": "IBM'; DROP TABLE stock_prices; --"},
               {**good, "symbol": "X\"); UPDATE stock_prices SET price = 0; --"},
               {**good, "symbol": "IBM", "ts": "2020-05-08T18:10:00.000Z', 1); DROP TABLE rejected_messages; --"},
               {**good, "symbol": "IBM", "source": "GLOBAL_QUOTE'); DELETE FROM stock_prices; --"}]
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    producer.send(topic, value=json.dumps(good).encode())
    for message in hostile:
        producer.send(topic, key=message["symbol"].encode(), value=json.dumps(message).encode())
    producer.flush()
    producer.close()
    db_path = tmp_path / "stocks.db"
    result = run_script("consumer.py", "--idle-exit", "3", env=pipeline_env(kafka_broker, topic, standin, db_path))
    assert result.returncode == 0, result.stderr
    connection = sqlite3.connect(db_path)
    assert connection.execute("SELECT symbol, price FROM stock_prices").fetchall() == [("IBM", 121.74)]
    assert connection.execute("SELECT count(*) FROM rejected_messages").fetchone() == (len(hostile),)
    tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == SCHEMA_TABLES
    assert connection.execute("SELECT symbol, price FROM symbol_summary").fetchall() == [("IBM", 121.74)]
    connection.close()


def test_no_api_key_is_committed_to_the_repository():
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT_DIR, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        path = PROJECT_DIR / name
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        assert not any(line.strip().startswith("ALPHAVANTAGE_API_KEY=") and line.strip() not in (
            "ALPHAVANTAGE_API_KEY=demo", "ALPHAVANTAGE_API_KEY=") for line in text.splitlines()), name
        if not name.startswith("tests/"):
            assert TEST_API_KEY not in text, name
    assert ".env\n" in (PROJECT_DIR / ".gitignore").read_text()


def test_the_doctor_checks_kafka_with_the_security_settings_and_hides_the_password(sasl_broker, topic, standin,
                                                                                  tmp_path):
    env = pipeline_env(Broker(sasl_broker.bootstrap_servers), topic, standin, tmp_path / "stocks.db",
                       KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_MECHANISM="PLAIN",
                       KAFKA_SASL_USERNAME="stockmon", KAFKA_SASL_PASSWORD=SASL_PASSWORD)
    good = run_script("doctor.py", env=env)
    assert f"ok    kafka: {sasl_broker.bootstrap_servers} answered in " in good.stdout
    assert "(SASL_PLAINTEXT PLAIN)" in good.stdout
    wrong = "not-the-pw-3Jd9"
    refused = run_script("doctor.py", env={**env, "KAFKA_SASL_PASSWORD": wrong})
    assert refused.returncode == 1
    [line] = [line for line in refused.stdout.splitlines() if " kafka: " in line]
    assert line.startswith(f"FAIL  kafka: Kafka is not reachable at {sasl_broker.bootstrap_servers} "
                           "(SaslAuthenticationFailedError: ")
    assert line.endswith("checked within 10 s with KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT")
    for output in (good.stdout, good.stderr, refused.stdout, refused.stderr):
        assert SASL_PASSWORD not in output and wrong not in output and TEST_API_KEY not in output

