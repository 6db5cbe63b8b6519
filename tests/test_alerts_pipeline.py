"""Alerts end to end: the real producer, a real broker, the real consumer; the table and the alerts topic."""

from __future__ import annotations

import json
import re
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

import db
from alphavantage_standin import Answer, fixture
from common.timestamps import format_time
from conftest import PROJECT_DIR, pipeline_env, run_script, running, start_script, topic_records
from streaming.messages import AlertRow

pytestmark = pytest.mark.slow

ALERT_COLUMNS = [name.strip() for name in db.ALERT_COLUMNS.split(",")]


def ibm_at(*prices: float) -> list[Answer]:
    """IBM's recorded global quote, at each of these prices in turn."""
    body = fixture("global_quote_IBM.json")
    return [Answer(body.replace(b'"121.7400"', f'"{price:.4f}"'.encode())) for price in prices]


def poll(env: dict[str, str], times: int) -> None:
    for _ in range(times):
        result = run_script("producer.py", "--once", env=env)
        assert result.returncode == 0, result.stderr


def stored_alerts(db_path: Path) -> list[dict]:
    connection = sqlite3.connect(db_path)
    connection.row_factory = sqlite3.Row
    rows = [dict(row) for row in connection.execute("SELECT * FROM alerts ORDER BY id")]
    connection.close()
    return rows


def stored_quotes(path: Path) -> list[tuple]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT symbol, ts, price FROM stock_prices ORDER BY ts").fetchall()
    finally:
        connection.close()


def published_alerts(broker, topic: str) -> list[dict]:
    return [json.loads(record.value) for record in topic_records(broker, topic)]


def test_a_crossing_fires_exactly_one_alert_in_the_table_and_on_the_topic(kafka_broker, topic, standin, tmp_path):
    standin.script("GLOBAL_QUOTE", "IBM", *ibm_at(149.5, 150.75, 151.2, 149.0, 150.5))
    db_path = tmp_path / "stocks.db"
    alerts_topic = f"{topic}-alerts"
    env = pipeline_env(kafka_broker, topic, standin, db_path, STOCK_SYMBOLS="IBM",
                       ALERT_RULES="IBM>150, IBM:5%/1h", KAFKA_ALERTS_TOPIC=alerts_topic)

    poll(env, 3)  # 149.50, 150.75 (crosses 150), 151.20 (still above: no second alert)
    consumed = run_script("consumer.py", "--idle-exit", "3", env=env)
    assert consumed.returncode == 0, consumed.stderr
    [first] = stored_alerts(db_path)
    assert (first["symbol"], first["rule"], first["direction"], first["price"], first["reference_price"],
            first["move_percent"]) == ("IBM", "IBM>150", "up", 150.75, 149.5, 0.8361)
    assert first["published_at"] is not None
    assert first["reference_ts"] < first["ts"] <= first["fired_at"]
    assert "ALERT IBM crossed above 150: 150.75 at " in consumed.stderr
    assert consumed.stderr.count("ALERT ") == 1
    expected = {"v": 1, **{name: first[name] for name in ALERT_COLUMNS}}
    assert published_alerts(kafka_broker, alerts_topic) == [expected]

    # A restarted consumer carries on from the database: back under the line, then across it again.
    poll(env, 2)  # 149.00, 150.50
    again = run_script("consumer.py", "--idle-exit", "3", env=env)
    assert again.returncode == 0, again.stderr
    rows = stored_alerts(db_path)
    assert [(row["price"], row["reference_price"]) for row in rows] == [(150.75, 149.5), (150.5, 149.0)]
    assert again.stderr.count("ALERT ") == 1
    # It said at start that the rule already held (151.20 was the last quote), and would fire on a crossing.
    assert re.search(r"alert rule IBM>150 holds now at 151\.2 \(quote of [\d-]+T[\d:.]+Z\): it fires on the next "
                     r"crossing\n", again.stderr), again.stderr
    assert "holds now" not in consumed.stderr

    # Reading every quote again (a new consumer group) repeats no alert, in the table or on the topic.
    replay = run_script("consumer.py", "--idle-exit", "3", env={**env, "KAFKA_GROUP_ID": f"{topic}-replay"})
    assert replay.returncode == 0, replay.stderr
    assert "ALERT" not in replay.stderr
    assert len(stored_alerts(db_path)) == 2
    assert [alert["price"] for alert in published_alerts(kafka_broker, alerts_topic)] == [150.75, 150.5]
    assert all(row["published_at"] for row in stored_alerts(db_path))


def test_an_alert_stored_but_never_published_is_sent_at_the_next_start(kafka_broker, topic, standin, tmp_path):
    """As after a crash between the SQLite commit and Kafka's acknowledgement: the table is the outbox."""
    db_path = tmp_path / "stocks.db"
    alerts_topic = f"{topic}-alerts"
    connection = db.connect(db_path)
    stranded = AlertRow("MSFT", "MSFT<100", "down", 99.5, "2026-11-24T15:00:00.000Z", 100.25,
                        "2026-11-24T14:59:00.000Z", -0.7481, "2026-11-24T15:00:01.000Z")
    db.save_batch(connection, [], [], [stranded])
    # Another, claimed a moment ago by a consumer process of this host that has died since.
    dead_pid = subprocess.Popen(["true"])
    dead_pid.wait()
    claimed = stranded._replace(ts="2026-11-24T15:01:00.000Z")
    db.save_batch(connection, [], [], [claimed],
                  db.Claim(f"{socket.gethostname()}:{dead_pid.pid}:0a1b2c3d", format_time(datetime.now(UTC))))
    connection.close()
    # No rules configured any more: the waiting alerts are still delivered, without waiting for the lease.
    env = pipeline_env(kafka_broker, topic, standin, db_path, KAFKA_ALERTS_TOPIC=alerts_topic)
    consumed = run_script("consumer.py", "--idle-exit", "2", env=env)
    assert consumed.returncode == 0, consumed.stderr
    assert published_alerts(kafka_broker, alerts_topic) == [{"v": 1, **stranded._asdict()},
                                                            {"v": 1, **claimed._asdict()}]
    assert all(row["published_at"] is not None for row in stored_alerts(db_path))


def quote_message(price: float, ts: str) -> bytes:
    return json.dumps({"v": 1, "symbol": "IBM", "ts": ts, "price": price, "open": price, "high": price, "low": price,
                       "volume": 1, "source": "TIME_SERIES_INTRADAY", "fetched_at": ts}).encode()


def test_a_quote_stamped_in_the_future_is_set_aside_and_alerts_go_on_firing(kafka_broker, topic, standin, tmp_path):
    from kafka import KafkaProducer

    db_path = tmp_path / "stocks.db"
    env = pipeline_env(kafka_broker, topic, standin, db_path, ALERT_RULES="IBM>100",
                       KAFKA_ALERTS_TOPIC=f"{topic}-alerts")
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    prices = [90, 110, 90, 110, 90, 110]
    for minute, price in enumerate(prices[:2]):
        producer.send(topic, key=b"IBM", value=quote_message(price, f"2026-01-05T15:{minute:02d}:00.000Z"))
    producer.send(topic, key=b"IBM", value=quote_message(110, "2100-01-01T00:00:00.000Z"))
    for minute, price in enumerate(prices[2:], start=2):
        producer.send(topic, key=b"IBM", value=quote_message(price, f"2026-01-05T15:{minute:02d}:00.000Z"))
    producer.flush()

    result = run_script("consumer.py", "--idle-exit", "3", env=env)
    assert result.returncode == 0, result.stderr
    assert [alert["ts"] for alert in stored_alerts(db_path)] == [f"2026-01-05T15:{m:02d}:00.000Z" for m in (1, 3, 5)]
    connection = sqlite3.connect(db_path)
    (reason,) = connection.execute("SELECT reason FROM rejected_messages").fetchone()
    assert reason.startswith("ts is in the future: 2100-01-01T00:00:00.000Z is after ")
    assert reason.endswith(", the consumer's clock plus 10 minutes")
    # A database that already holds such a quote (stored by an earlier release) silences nothing either.
    connection.execute("INSERT INTO stock_prices (symbol, ts, price, open, high, low, volume, source, fetched_at) "
                       "VALUES ('IBM', '2100-01-01T00:00:00.000Z', 110, 110, 110, 110, 1, 'GLOBAL_QUOTE', "
                       "'2100-01-01T00:00:00.000Z')")
    connection.commit()
    connection.close()
    for minute, price in [(6, 90), (7, 110)]:
        producer.send(topic, key=b"IBM", value=quote_message(price, f"2026-01-05T15:{minute:02d}:00.000Z"))
    producer.flush()
    producer.close()
    result = run_script("consumer.py", "--idle-exit", "3", env=env)
    assert result.returncode == 0, result.stderr
    assert [alert["ts"] for alert in stored_alerts(db_path)][-1] == "2026-01-05T15:07:00.000Z"


def test_sighup_reloads_the_rules_from_the_settings_file_and_a_bad_set_keeps_the_old(kafka_broker, topic, standin,
                                                                                      tmp_path):
    from kafka import KafkaProducer

    db_path, log_path, settings_file = tmp_path / "stocks.db", tmp_path / "consumer.log", tmp_path / "settings.env"
    settings_file.write_text("ALERT_RULES=IBM>100\n")
    env = pipeline_env(kafka_broker, topic, standin, db_path, KAFKA_ALERTS_TOPIC=f"{topic}-alerts")
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    minute = iter(range(60))

    def send(*prices: float) -> None:
        for price in prices:
            producer.send(topic, key=b"IBM", value=quote_message(price, f"2026-01-05T15:{next(minute):02d}:00.000Z"))
        producer.flush()

    def wait_for(what, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while not what() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert what(), log_path.read_text()

    def logged(text: str) -> bool:
        return text in log_path.read_text()

    with running(start_script("consumer.py", "--env-file", str(settings_file), env=env, log_path=log_path)) as process:
        wait_for(lambda: logged("consuming "))
        send(90, 110)
        wait_for(lambda: [a["rule"] for a in stored_alerts(db_path)] == ["IBM>100"])
        settings_file.write_text("ALERT_RULES=IBM>120 cooldown 1h\n")
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: logged("SIGHUP: alert rules now IBM>120 cooldown 1h (were IBM>100)"))
        send(90, 130)  # crosses 100 again (no rule any more) and 120 (the new one)
        wait_for(lambda: [a["rule"] for a in stored_alerts(db_path)] == ["IBM>100", "IBM>120 cooldown 1h"])
        settings_file.write_text("ALERT_RULES=IBM>>1\n")
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: logged("SIGHUP: the settings cannot be read, so the alert rules"))
        settings_file.write_text("ALERT_RULES=\n")  # none: the engine stays, with no rules
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: logged("SIGHUP: alert rules now none (were IBM>120 cooldown 1h)"))
        send(90, 130)
        wait_for(lambda: len(stored_quotes(db_path)) == 6)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    producer.close()
    log = log_path.read_text()
    assert [a["rule"] for a in stored_alerts(db_path)] == ["IBM>100", "IBM>120 cooldown 1h"]
    assert ("ERROR consumer: SIGHUP: the settings cannot be read, so the alert rules (IBM>120 cooldown 1h) and "
            "notification channels in force are kept: ALERT_RULES: 'IBM>>1': '>1' is not a price") in log
    assert log.count(" ERROR ") == 1 and "Traceback" not in log


def test_the_documented_snippet_that_follows_alerts_shows_those_already_on_the_topic(kafka_broker, topic):
    from kafka import KafkaProducer

    page = (PROJECT_DIR / "docs" / "alerts.md").read_text()
    snippet = page.split("To follow alerts from another program:", 1)[1].split("```python\n", 1)[1].split("```")[0]
    alerts_topic = f"{topic}-alerts"
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    producer.send(alerts_topic, key=b"IBM", value=b'{"v":1,"symbol":"IBM","rule":"IBM>150"}').get(timeout=30)
    producer.close()
    program = snippet.replace("localhost:9092", kafka_broker.bootstrap_servers).replace("stock_alerts", alerts_topic)
    process = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, text=True, cwd=PROJECT_DIR)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready, "the snippet printed nothing within 60 s"
        assert process.stdout.readline() == '{"v":1,"symbol":"IBM","rule":"IBM>150"}\n'
    finally:
        process.kill()
        process.wait()
