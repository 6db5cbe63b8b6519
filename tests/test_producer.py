"""The real producer process against the stand-in and a real broker: faults, back-off, signals, state."""

from __future__ import annotations

import itertools
import json
import signal
import time

import pytest

from alphavantage_standin import Answer, fixture, recorded
from conftest import (
    TEST_API_KEY,
    pipeline_env,
    run_script,
    running,
    start_script,
    topic_values,
)
from local_kafka import free_port
from tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow


def test_a_throttle_backs_off_keeps_its_place_and_carries_on(kafka_broker, topic, standin, tmp_path):
    standin.script("GLOBAL_QUOTE", "IBM", recorded("note_rate_limit.json"), recorded("global_quote_IBM.json"))
    standin.script("GLOBAL_QUOTE", "MSFT", recorded("global_quote_MSFT.json"))
    env = pipeline_env(kafka_broker, topic, standin, tmp_path / "s.db", STOCK_SYMBOLS="IBM,MSFT",
                       REQUESTS_PER_MINUTE="120")
    result = run_script("producer.py", "--once", env=env)
    assert result.returncode == 0, result.stderr
    assert [request["symbol"] for request in standin.requests] == ["IBM", "IBM", "MSFT"]
    # 120/min: calls at least 0.5 s apart, and the back-off (one budget slot, 0.5 s) came on top.
    gaps = [b - a for a, b in zip(standin.request_times, standin.request_times[1:], strict=False)]
    assert min(gaps) >= 0.5 - 0.01
    warnings = [line for line in result.stderr.splitlines() if " WARNING " in line]
    assert len(warnings) == 1
    assert warnings[0].endswith("IBM: rate limited: Thank you for using Alpha Vantage! Our standard API call "
                                "frequency is 5 calls per minute and 500 calls per day. Please visit "
                                "https://www.alphavantage.co/premium/ if you would like to target a higher API call "
                                "frequency.; trying again in 0.5 s")
    assert sorted(json.loads(value)["symbol"] for value in topic_values(kafka_broker, topic)) == ["IBM", "MSFT"]


FAULTS = {
    "http-500": (Answer(b'{"error": "internal"}', status=500), "HTTP error: status 500 Internal Server Error"),
    "http-503-html": (Answer(b"<html><h1>Application Error</h1></html>", status=503, content_type="text/html"),
                      "HTTP error: status 503 Service Unavailable"),
    "http-429": (Answer(b"Too Many Requests", status=429, content_type="text/plain"),
                 "HTTP error: status 429 Too Many Requests"),
    "timeout": (recorded("global_quote_IBM.json", delay=2.0), "timeout: no answer from {url} within 0.5s"),
    "html-200": (Answer(b"<!DOCTYPE html><html>down for maintenance</html>", content_type="text/html"),
                 "response is not JSON: body starts with '<!DOCTYPE html><html>down for maintenance</html>'"),
    "truncated": (Answer(fixture("global_quote_IBM.json")[:100]), "response is not JSON: body starts with"),
    "note": (recorded("note_rate_limit.json"), "rate limited: Thank you for using Alpha Vantage! Our standard"),
    "information": (recorded("information_rate_limit_2025.json"), "rate limited: Thank you for using Alpha Vantage!"),
    "demo-key": (recorded("information_demo_key.json"), "request refused: The **demo** API key is for demo"),
    "error-message": (recorded("error_invalid_symbol_daily.json"), "invalid call: Invalid API call."),
    "empty-quote": (recorded("global_quote_unknown_symbol.json"), "unknown symbol: Alpha Vantage has no quote for BAD"),
    "missing-key": (Answer(fixture("global_quote_IBM.json").replace(b'"05. price": "121.7400",', b"")),
                    "malformed payload: field '05. price' is missing"),
    "non-numeric": (Answer(fixture("global_quote_IBM.json").replace(b'"121.7400"', b'"n/a"')),
                    "malformed payload: field '05. price' is not a number: 'n/a'"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_an_api_fault_is_logged_and_the_other_symbols_still_flow(kafka_broker, topic, standin, tmp_path, fault):
    answer, message = FAULTS[fault]
    standin.script("GLOBAL_QUOTE", "BAD", answer)
    standin.script("GLOBAL_QUOTE", "IBM", recorded("global_quote_IBM.json"))
    env = pipeline_env(kafka_broker, topic, standin, tmp_path / "s.db", STOCK_SYMBOLS="BAD,IBM",
                       ALPHAVANTAGE_TIMEOUT="0.5")
    result = run_script("producer.py", "--once", env=env)
    assert result.returncode == 1
    last = result.stderr.splitlines()[-1]
    assert last.startswith("producer: error: 1 of 2 symbol(s) failed: BAD: " + message.format(url=standin.url))
    assert "Traceback" not in result.stderr
    assert TEST_API_KEY not in result.stderr + result.stdout
    values = topic_values(kafka_broker, topic)
    assert [json.loads(value)["symbol"] for value in values] == ["IBM"]
    transient = fault in {"http-500", "http-503-html", "http-429", "timeout", "html-200", "truncated", "note",
                          "information"}
    assert standin.calls_for("BAD") == (3 if transient else 1)
    # 600/min: calls at least 0.1 s apart; a retry also waits out its back-off (0.1 s, then 0.2 s).
    times = standin.request_times
    assert all(b - a >= 0.1 - 0.005 for a, b in itertools.pairwise(times)), list(itertools.pairwise(times))
    bad_times = [t for request, t in zip(standin.requests, times, strict=True) if request["symbol"] == "BAD"]
    assert all(b - a >= 0.1 * 2 ** n - 0.005 for n, (a, b) in enumerate(itertools.pairwise(bad_times)))


def test_the_producer_waits_for_a_broker_that_is_not_up_yet(kafka_broker, topic, standin, tmp_path):
    proxy = TcpProxy.in_front_of(kafka_broker.bootstrap_servers)
    standin.script("GLOBAL_QUOTE", "IBM", recorded("global_quote_IBM.json"))
    env = pipeline_env(kafka_broker, topic, standin, tmp_path / "s.db", STOCK_SYMBOLS="IBM",
                       KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{proxy.port}")
    log_path = tmp_path / "producer.log"
    with running(start_script("producer.py", "--once", env=env, log_path=log_path)) as producer:
        time.sleep(8)
        assert producer.poll() is None
        proxy.start()
        try:
            assert producer.wait(60) == 0
        finally:
            proxy.close()
    log = log_path.read_text()
    unreachable = [line for line in log.splitlines() if "Kafka is not reachable" in line]
    assert len(unreachable) == 1, log
    assert f"Kafka is not reachable at 127.0.0.1:{proxy.port}" in unreachable[0]
    assert "Traceback" not in log
    assert [json.loads(value)["symbol"] for value in topic_values(kafka_broker, topic)] == ["IBM"]


def test_sigterm_stops_the_producer_cleanly_with_everything_sent(kafka_broker, topic, standin, tmp_path):
    standin.script_recorded_intraday()
    env = pipeline_env(kafka_broker, topic, standin, tmp_path / "s.db", STOCK_SYMBOLS="MSFT,IBM",
                       ALPHAVANTAGE_FUNCTION="TIME_SERIES_INTRADAY", REQUESTS_PER_MINUTE="60")
    log_path = tmp_path / "producer.log"
    with running(start_script("producer.py", env=env, log_path=log_path)) as producer:
        deadline = time.monotonic() + 60
        while standin.calls_for("MSFT") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        producer.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        assert producer.wait(10) == 0
        assert time.monotonic() - stopped < 5
    assert len(topic_values(kafka_broker, topic)) == 102
    state = json.loads((tmp_path / "producer_state.json").read_text())
    assert state["limiter"]["day_count"] == len(standin.requests)
    assert state["published"]["last_bar"] == {"MSFT": "2018-06-01T20:00:00+00:00", "IBM": "2020-05-08T18:05:00+00:00"}


def test_a_restarted_producer_keeps_its_budget(kafka_broker, topic, standin, tmp_path):
    standin.script("GLOBAL_QUOTE", "IBM", recorded("global_quote_IBM.json"))
    env = pipeline_env(kafka_broker, topic, standin, tmp_path / "s.db", STOCK_SYMBOLS="IBM",
                       REQUESTS_PER_DAY="1")
    first = run_script("producer.py", "--once", env=env)
    assert first.returncode == 0, first.stderr
    second = run_script("producer.py", "--once", env=env)
    assert second.returncode == 0, second.stderr
    assert "daily budget of 1 API calls is spent; the pass stopped early" in second.stderr
    assert len(standin.requests) == 1


def test_a_refused_api_connection_is_retried_with_back_off_then_reported(kafka_broker, topic, standin, tmp_path):
    closed_url = f"http://127.0.0.1:{free_port()}/query"
    env = pipeline_env(kafka_broker, topic, standin, tmp_path / "s.db", STOCK_SYMBOLS="IBM,MSFT",
                       ALPHAVANTAGE_BASE_URL=closed_url)
    started = time.monotonic()
    result = run_script("producer.py", "--once", env=env)
    assert result.returncode == 1
    # Three tries per symbol; the back-off keeps doubling across symbols until a call succeeds,
    # since an API that refuses one symbol's connection refuses them all.
    assert time.monotonic() - started >= 0.1 + 0.2 + 0.4 + 0.8
    retries = [line for line in result.stderr.splitlines() if "trying again in" in line]
    assert [line.split(" WARNING producer: ")[1] for line in retries] == [
        f"{symbol}: connection failed: {closed_url}: ConnectionError; trying again in {delay} s"
        for symbol, delay in (("IBM", "0.1"), ("IBM", "0.2"), ("MSFT", "0.4"), ("MSFT", "0.8"))]
    assert result.stderr.splitlines()[-1] == (
        f"producer: error: 2 of 2 symbol(s) failed: IBM: connection failed: {closed_url}: ConnectionError; "
        f"MSFT: connection failed: {closed_url}: ConnectionError")
    assert TEST_API_KEY not in result.stderr and "Traceback" not in result.stderr
    assert topic_values(kafka_broker, topic) == []
