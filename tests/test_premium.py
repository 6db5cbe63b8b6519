"""Premium keys end to end: bulk quotes, delayed data and calls in flight, with the real broker and consumer."""

from __future__ import annotations

import itertools
import signal
import sqlite3
import time
from collections import defaultdict
from pathlib import Path

import pytest

from alphavantage_standin import changing_global_quotes, recorded
from conftest import pipeline_env, run_script, running, start_script, topic_records

pytestmark = pytest.mark.slow


def stored(db_path: Path, query: str) -> list[sqlite3.Row]:
    connection = sqlite3.connect(db_path)
    connection.row_factory = sqlite3.Row
    rows = connection.execute(query).fetchall()
    connection.close()
    return rows


def test_250_symbols_in_bulk_mode_are_stored_from_3_calls(kafka_broker, topic, standin, tmp_path):
    symbols = [f"S{index:03d}" for index in range(250)]
    db_path = tmp_path / "stocks.db"
    env = pipeline_env(kafka_broker, topic, standin, db_path, STOCK_SYMBOLS=",".join(symbols),
                       ALPHAVANTAGE_FUNCTION="REALTIME_BULK_QUOTES", ALPHAVANTAGE_ENTITLEMENT="realtime",
                       REQUESTS_PER_MINUTE="75", REQUESTS_PER_DAY="0")
    produced = run_script("producer.py", "--once", env=env)
    assert produced.returncode == 0, produced.stderr
    asked = [request["symbol"].split(",") for request in standin.requests]
    assert sorted(len(chunk) for chunk in asked) == [83, 83, 84]
    assert sorted(symbol for chunk in asked for symbol in chunk) == symbols
    assert {request["function"] for request in standin.requests} == {"REALTIME_BULK_QUOTES"}
    assert {request["entitlement"] for request in standin.requests} == {"realtime"}
    assert "no daily limit; up to 5 calls in flight; 3 call(s) of up to 100 symbols per round" in produced.stderr

    consumed = run_script("consumer.py", "--idle-exit", "2", env=env)
    assert consumed.returncode == 0, consumed.stderr
    rows = stored(db_path, "SELECT * FROM stock_prices ORDER BY symbol")
    assert [row["symbol"] for row in rows] == symbols
    row = rows[0]
    assert (row["source"], row["entitlement"], row["previous_close"], row["extended_hours_quote"],
            row["extended_hours_change"], row["extended_hours_change_percent"]) == \
        ("REALTIME_BULK_QUOTES", "realtime", 233.67, 230.8, 0.7, 0.30422)
    assert row["ts"] < row["fetched_at"]  # the item's own time, not the fetch time

    # Alpha Vantage leaves S249 out of its answers: reported, and the second time in a row it leaves
    # the rotation; the others go on.
    standin.bulk_unknown = {"S249"}
    log_path = tmp_path / "producer.log"
    with running(start_script("producer.py", env=env, log_path=log_path)) as producer:
        deadline = time.monotonic() + 30
        while "no longer polled until restart" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        dropped_at = len(standin.requests)
        while len(standin.requests) < dropped_at + 3:
            time.sleep(0.1)
        producer.send_signal(signal.SIGTERM)
        assert producer.wait(10) == 0, log_path.read_text()
    log = log_path.read_text()
    assert "WARNING producer: S249: unknown symbol: S249 is missing from the REALTIME_BULK_QUOTES answer\n" in log
    assert "S249: unknown symbol: S249 is missing from the REALTIME_BULK_QUOTES answer, 2 times in a row; " \
           "no longer polled until restart (check STOCK_SYMBOLS)" in log
    later = [request["symbol"].split(",") for request in standin.requests[dropped_at + 1:]]
    assert later and all("S249" not in chunk for chunk in later)


def test_the_demo_keys_bulk_sample_publishes_nothing_and_says_why(kafka_broker, topic, standin, tmp_path):
    standin.script("REALTIME_BULK_QUOTES", "MSFT,AAPL,IBM", recorded("realtime_bulk_quotes_demo_sample.json"))
    env = pipeline_env(kafka_broker, topic, standin, tmp_path / "stocks.db", STOCK_SYMBOLS="MSFT,AAPL,IBM",
                       ALPHAVANTAGE_FUNCTION="REALTIME_BULK_QUOTES")
    produced = run_script("producer.py", "--once", env=env)
    assert produced.returncode == 1
    assert "request refused: REALTIME_BULK_QUOTES answered 'This is a premium endpoint." in produced.stderr
    assert topic_records(kafka_broker, topic) == []


def test_a_delayed_global_quote_is_stored_with_its_entitlement(kafka_broker, topic, standin, tmp_path):
    standin.script("GLOBAL_QUOTE", "IBM", recorded("global_quote_delayed_envelope.json"))
    db_path = tmp_path / "stocks.db"
    env = pipeline_env(kafka_broker, topic, standin, db_path, STOCK_SYMBOLS="IBM", ALPHAVANTAGE_ENTITLEMENT="delayed")
    produced = run_script("producer.py", "--once", env=env)
    assert produced.returncode == 0, produced.stderr
    assert standin.requests[0]["entitlement"] == "delayed"
    consumed = run_script("consumer.py", "--idle-exit", "2", env=env)
    assert consumed.returncode == 0, consumed.stderr
    [row] = stored(db_path, "SELECT * FROM stock_prices")
    assert (row["symbol"], row["price"], row["previous_close"], row["entitlement"], row["trading_day"]) == \
        ("IBM", 121.74, 121.23, "delayed", "2020-05-08")


def premium_producer_env(kafka_broker, topic, standin, tmp_path: Path, symbols: int, delay: float,
                         per_minute: int) -> tuple[list[str], dict[str, str]]:
    """Symbols whose every answer brings a new quote, each answer `delay` seconds late, no daily limit."""
    names = [f"S{index:02d}" for index in range(symbols)]
    for symbol in names:
        standin.script("GLOBAL_QUOTE", symbol, *changing_global_quotes(200))
    standin.delay = delay
    return names, pipeline_env(kafka_broker, topic, standin, tmp_path / "stocks.db", STOCK_SYMBOLS=",".join(names),
                               REQUESTS_PER_MINUTE=str(per_minute), REQUESTS_PER_DAY="0")


def wait_for_calls(standin, producer, count: int, log_path: Path) -> None:
    while len(standin.requests) < count:
        assert producer.poll() is None, log_path.read_text()
        time.sleep(0.01)


def test_slow_answers_keep_several_calls_in_flight_within_the_budget_and_in_order(kafka_broker, topic, standin,
                                                                                   tmp_path):
    # 250 ms: about the real API's latency
    symbols, env = premium_producer_env(kafka_broker, topic, standin, tmp_path, symbols=20, delay=0.25, per_minute=600)
    log_path = tmp_path / "producer.log"
    with running(start_script("producer.py", env=env, log_path=log_path)) as producer:
        wait_for_calls(standin, producer, 10, log_path)
        first = standin.request_times[0]
        time.sleep(6)
        producer.send_signal(signal.SIGTERM)
        assert producer.wait(10) == 0, log_path.read_text()
    times = standin.request_times
    calls_in_6s = sum(1 for moment in times if first <= moment < first + 6)
    # One call at a time made 28% of the budget (17 calls) with 250 ms answers; 10 calls a second is the
    # budget. Alone it makes 59-60; beside the other test worker in a clean-clone run it made 54, so the
    # bound is 80%: far from one call at a time, and not a timing test of a loaded machine.
    assert calls_in_6s >= 48, calls_in_6s
    assert max(sum(1 for moment in times if start <= moment < start + 60) for start in times) <= 600
    by_symbol: dict[str, list[float]] = defaultdict(list)
    for request, moment in zip(standin.requests, times, strict=True):
        by_symbol[request["symbol"]].append(moment)
    for moments in by_symbol.values():  # never two calls for one symbol at once: each waits for the answer
        assert all(later - earlier >= 0.25 for earlier, later in itertools.pairwise(moments))
    for symbol in symbols:  # each symbol's quotes reach Kafka in the order they were fetched
        prices = [record.value for record in topic_records(kafka_broker, topic) if record.key == symbol.encode()]
        assert prices == sorted(prices, key=lambda value: value[value.index(b'"ts"'):]) and prices
    assert "Traceback" not in log_path.read_text()


def test_sigterm_with_calls_in_flight_stops_within_seconds_and_publishes_what_they_bring(kafka_broker, topic,
                                                                                         standin, tmp_path):
    # 1 s answers: every call is still waiting for its answer when the stop comes.
    _, env = premium_producer_env(kafka_broker, topic, standin, tmp_path, symbols=30, delay=1.0, per_minute=1200)
    log_path = tmp_path / "producer.log"
    with running(start_script("producer.py", env=env, log_path=log_path)) as producer:
        wait_for_calls(standin, producer, 25, log_path)
        producer.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        assert producer.wait(15) == 0, log_path.read_text()
        assert time.monotonic() - stopped < 7
    # Every call that went out was answered within the grace period, and each answer is in Kafka.
    # Once each: a quote whose send was still on its way (or already taken) is never sent again
    # (each finished call re-sent every held quote: 215 copies of 25 quotes).
    assert len(topic_records(kafka_broker, topic)) == len(standin.requests) >= 25
