"""End to end: the real producer against the stand-in, a real broker, the real consumer, a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer

from alphavantage_standin import recorded
from conftest import TEST_API_KEY, pipeline_env, run_script, topic_records, topic_values

pytestmark = pytest.mark.slow


def rows_by_symbol(db_path: Path) -> dict[str, list[sqlite3.Row]]:
    connection = sqlite3.connect(db_path)
    connection.row_factory = sqlite3.Row
    rows: dict[str, list[sqlite3.Row]] = {}
    for row in connection.execute("SELECT * FROM stock_prices ORDER BY symbol, ts"):
        rows.setdefault(row["symbol"], []).append(row)
    connection.close()
    return rows


def test_global_quotes_flow_from_api_to_sqlite_exactly_once(kafka_broker, topic, standin, tmp_path):
    standin.script("GLOBAL_QUOTE", "IBM", recorded("global_quote_IBM.json"))
    standin.script("GLOBAL_QUOTE", "MSFT", recorded("global_quote_MSFT.json"))
    standin.script("GLOBAL_QUOTE", "NOPE", recorded("global_quote_unknown_symbol.json"))
    db_path = tmp_path / "stocks.db"
    env = pipeline_env(kafka_broker, topic, standin, db_path, STOCK_SYMBOLS="ibm,MSFT,NOPE")

    started = datetime.now(UTC).isoformat()
    produced = run_script("producer.py", "--once", env=env)
    finished = datetime.now(UTC).isoformat()
    assert produced.returncode == 1, produced.stderr
    assert produced.stderr.splitlines()[-1] == (
        "producer: error: 1 of 3 symbol(s) failed: NOPE: unknown symbol: Alpha Vantage has no quote for NOPE")
    assert [request["symbol"] for request in standin.requests] == ["IBM", "MSFT", "NOPE"]

    # A malformed message between the good ones must be set aside, not block them.
    bad = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    bad.send(topic, key=b"IBM", value=b"this is not json").get(timeout=30)
    bad.close()

    consumed = run_script("consumer.py", "--idle-exit", "3", env=env)
    assert consumed.returncode == 0, consumed.stderr

    rows = rows_by_symbol(db_path)
    assert sorted(rows) == ["IBM", "MSFT"]
    ibm, msft = rows["IBM"], rows["MSFT"]
    assert len(ibm) == 1 and len(msft) == 1
    ibm, msft = ibm[0], msft[0]
    assert (ibm["price"], ibm["open"], ibm["high"], ibm["low"], ibm["volume"]) == (
        121.74, 122.67, 122.8, 121.06, 2528814)
    assert (ibm["change"], ibm["change_percent"], ibm["trading_day"]) == (0.51, 0.4207, "2020-05-08")
    assert (msft["price"], msft["open"], msft["high"], msft["low"], msft["volume"]) == (
        112.13, 112.63, 113.17, 110.64, 29062853)
    assert (msft["change"], msft["change_percent"], msft["trading_day"]) == (-0.66, -0.5852, "2018-10-05")
    for row in (ibm, msft):
        assert row["source"] == "GLOBAL_QUOTE"
        assert row["ts"] == row["fetched_at"]  # a global quote names only its day: ts is the fetch time
        assert started[:19] <= row["ts"][:19] <= finished[:19]
        assert row["ingested_at"] >= row["fetched_at"]

    connection = sqlite3.connect(db_path)
    rejected = connection.execute('SELECT topic, key, value, reason FROM rejected_messages').fetchall()
    assert rejected == [(topic, b"IBM", b"this is not json", "not JSON: Expecting value: line 1 column 1 (char 0)")]
    connection.close()

    # Reading everything again from the start (a new group) adds nothing.
    again = run_script("consumer.py", "--idle-exit", "3", env={**env, "KAFKA_GROUP_ID": f"{topic}-replay"})
    assert again.returncode == 0, again.stderr
    connection = sqlite3.connect(db_path)
    assert connection.execute("SELECT count(*) FROM stock_prices").fetchone()[0] == 2
    assert connection.execute("SELECT count(*) FROM rejected_messages").fetchone()[0] == 1
    dump = "\n".join(connection.iterdump())
    connection.close()

    messages = topic_values(kafka_broker, topic)
    assert len(messages) == 3
    captured = produced.stdout + produced.stderr + consumed.stdout + consumed.stderr + again.stderr
    for place in (captured, dump, repr(messages)):
        assert TEST_API_KEY not in place
    assert all(request["apikey"] == TEST_API_KEY for request in standin.requests)


def test_intraday_bars_are_converted_to_utc_and_published_once(kafka_broker, topic, standin, tmp_path):
    standin.script_recorded_intraday()
    db_path = tmp_path / "stocks.db"
    env = pipeline_env(kafka_broker, topic, standin, db_path, STOCK_SYMBOLS="MSFT,IBM",
                       ALPHAVANTAGE_FUNCTION="TIME_SERIES_INTRADAY", ALPHAVANTAGE_INTERVAL="1min")
    first = run_script("producer.py", "--once", env=env)
    assert first.returncode == 0, first.stderr
    # A second pass sees the same bars: nothing new may be published.
    second = run_script("producer.py", "--once", env=env)
    assert second.returncode == 0, second.stderr
    consumed = run_script("consumer.py", "--idle-exit", "3", env=env)
    assert consumed.returncode == 0, consumed.stderr

    rows = rows_by_symbol(db_path)
    assert len(rows["MSFT"]) == 100
    assert len(rows["IBM"]) == 2
    # 2018-06-01 16:00 US/Eastern is EDT (UTC-4).
    last = rows["MSFT"][-1]
    assert (last["ts"], last["price"], last["open"], last["high"], last["low"], last["volume"]) == (
        "2018-06-01T20:00:00.000Z", 100.79, 100.615, 100.81, 100.59, 4129781)
    assert rows["MSFT"][0]["ts"] == "2018-06-01T18:21:00.000Z"
    assert [(row["ts"], row["price"]) for row in rows["IBM"]] == [
        ("2020-05-08T18:00:00.000Z", 121.78), ("2020-05-08T18:05:00.000Z", 121.74)]
    assert all(row["source"] == "TIME_SERIES_INTRADAY" and row["change"] is None for row in rows["MSFT"])
    # The second pass remembered what the first published: the topic holds each bar once, and each
    # symbol's bars sit in one partition, oldest first.
    records = topic_records(kafka_broker, topic)
    assert len(records) == 102
    for symbol in ("MSFT", "IBM"):
        mine = sorted((r for r in records if r.key == symbol.encode()), key=lambda r: r.offset)
        assert len({r.partition for r in mine}) == 1
        stamps = [json.loads(r.value)["ts"] for r in mine]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert "MSFT: no new quote since the last poll" in second.stderr
