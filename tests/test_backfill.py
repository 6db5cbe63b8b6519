"""History on first start: TIME_SERIES_DAILY through the real producer, broker and consumer."""

from __future__ import annotations

import itertools
import json
import sqlite3

import pytest

from alphavantage_standin import recorded
from conftest import pipeline_env, run_script, topic_values

pytestmark = pytest.mark.slow


def daily_rows(db_path) -> dict[str, list[tuple[str, str, float]]]:
    connection = sqlite3.connect(db_path)
    rows: dict[str, list[tuple[str, str, float]]] = {}
    for symbol, day, ts, price in connection.execute(
            "SELECT symbol, trading_day, ts, price FROM stock_prices WHERE source = 'TIME_SERIES_DAILY' "
            "ORDER BY symbol, ts"):
        rows.setdefault(symbol, []).append((day, ts, price))
    connection.close()
    return rows


def test_backfill_publishes_each_session_close_once_and_paced_like_every_call(kafka_broker, topic, standin, tmp_path):
    standin.script_recorded_daily()
    standin.script("GLOBAL_QUOTE", "IBM", recorded("global_quote_IBM.json"))
    standin.script("GLOBAL_QUOTE", "MSFT", recorded("global_quote_MSFT.json"))
    db_path = tmp_path / "stocks.db"
    env = pipeline_env(kafka_broker, topic, standin, db_path, STOCK_SYMBOLS="MSFT,IBM", ALERT_RULES="MSFT>100")

    produced = run_script("producer.py", "--once", "--backfill", env=env)
    assert produced.returncode == 0, produced.stderr
    assert [(request["function"], request["symbol"]) for request in standin.requests] == [
        ("TIME_SERIES_DAILY", "MSFT"), ("TIME_SERIES_DAILY", "IBM"), ("GLOBAL_QUOTE", "MSFT"), ("GLOBAL_QUOTE", "IBM")]
    assert all(request["outputsize"] == "compact" for request in standin.requests[:2])
    # Every call counts against the budget and keeps its spacing (600/min: 0.1 s, less the stand-in's jitter).
    assert min(b - a for a, b in itertools.pairwise(standin.request_times)) >= 0.1 - 0.03
    state = json.loads((tmp_path / "producer_state.json").read_text())
    assert state["limiter"]["day_count"] == 4
    assert "MSFT history: published 100 new quote(s), daily closes from 2018-01-17 to 2018-06-08" in produced.stderr

    consumed = run_script("consumer.py", "--idle-exit", "3", env=env)
    assert consumed.returncode == 0, consumed.stderr
    history = daily_rows(db_path)
    assert len(history["MSFT"]) == 100 and len(history["IBM"]) == 2
    # Each close is stamped when its session closed, in UTC: 16:00 EST or EDT.
    assert history["MSFT"][0] == ("2018-01-17", "2018-01-17T21:00:00.000Z", 90.14)
    assert history["MSFT"][-1] == ("2018-06-08", "2018-06-08T20:00:00.000Z", 101.63)
    assert history["IBM"][-1][:2] == ("2020-05-08", "2020-05-08T20:00:00.000Z")
    connection = sqlite3.connect(db_path)
    # History sets the scene for the rules but fires nothing: MSFT crossed 100 several times in 2018.
    fired = connection.execute("SELECT ts FROM alerts").fetchall()
    assert all(ts > "2018-06-08T20:00:00.000Z" for (ts,) in fired)
    assert connection.execute("SELECT count(*) FROM stock_prices WHERE source = 'GLOBAL_QUOTE'").fetchone()[0] == 2
    connection.close()

    # Again with --backfill: the days are asked for again (one call each) but none is sent twice.
    sent = len(topic_values(kafka_broker, topic))
    again = run_script("producer.py", "--once", "--backfill", env=env)
    assert again.returncode == 0, again.stderr
    assert "MSFT history: no new quote since the last poll" in again.stderr
    assert len(topic_values(kafka_broker, topic)) == sent

    # BACKFILL=auto (the default) fetches history only for a symbol it has never fetched it for.
    standin.requests.clear()
    standin.script("TIME_SERIES_DAILY", "AAPL", recorded("daily_MSFT_compact.json"))
    standin.script("GLOBAL_QUOTE", "AAPL", recorded("global_quote_MSFT.json"))
    auto = run_script("producer.py", "--once", env={**env, "BACKFILL": "auto", "STOCK_SYMBOLS": "MSFT,IBM,AAPL"})
    assert auto.returncode == 0, auto.stderr
    assert [request["function"] for request in standin.requests].count("TIME_SERIES_DAILY") == 1
    assert standin.requests[0] == {**standin.requests[0], "function": "TIME_SERIES_DAILY", "symbol": "AAPL"}
    assert "history first: the last 100 daily closes of AAPL (1 call(s), TIME_SERIES_DAILY)" in auto.stderr


def test_a_symbol_without_history_is_still_polled_and_the_pass_succeeds(kafka_broker, topic, standin, tmp_path):
    standin.script("GLOBAL_QUOTE", "IBM", recorded("global_quote_IBM.json"))  # no daily answer: "Invalid API call"
    env = pipeline_env(kafka_broker, topic, standin, tmp_path / "s.db", STOCK_SYMBOLS="IBM", BACKFILL="auto")
    produced = run_script("producer.py", "--once", env=env)
    assert produced.returncode == 0, produced.stderr
    assert "ERROR producer: IBM history: invalid call: Invalid API call." in produced.stderr
    assert "going on without it" in produced.stderr
    assert [request["function"] for request in standin.requests] == ["TIME_SERIES_DAILY", "GLOBAL_QUOTE"]
    # Tried once: the next start does not spend a call on it again.
    standin.requests.clear()
    assert run_script("producer.py", "--once", env=env).returncode == 0
    assert [request["function"] for request in standin.requests] == ["GLOBAL_QUOTE"]
