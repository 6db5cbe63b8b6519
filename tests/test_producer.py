"""The real producer process against the stand-in and a real broker: faults, back-off, signals, state."""

from __future__ import annotations

import itertools
import json
import signal
import time

import pytest

from alphavantage_standin import Answer, changing_global_quotes, fixture, recorded
from conftest import (
    TEST_API_KEY,
    pipeline_env,
    run_script,
    running,
    start_script,
    topic_values,
)
from streaming.local_broker import free_port
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
    # 120/min: calls start at least 0.5 s apart (the stand-in may see them up to a few ms closer,
    # each on its own connection), and the back-off (one budget slot, 0.5 s) came on top.
    gaps = [b - a for a, b in itertools.pairwise(standin.request_times)]
    assert min(gaps) >= 0.5 - 0.03
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
    # 600/min: calls start at least 0.1 s apart; a retry also waits out its back-off (0.1 s, then 0.2 s).
    # With calls in flight each has its own connection, so the stand-in may see two a little closer.
    jitter = 0.03
    times = standin.request_times
    assert all(b - a >= 0.1 - jitter for a, b in itertools.pairwise(times)), list(itertools.pairwise(times))
    bad_times = [t for request, t in zip(standin.requests, times, strict=True) if request["symbol"] == "BAD"]
    assert all(b - a >= 0.1 * 2 ** n - jitter for n, (a, b) in enumerate(itertools.pairwise(bad_times)))


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
        f"{symbol}: connection failed: {closed_url}: Connection refused; trying again in {delay} s"
        for symbol, delay in (("IBM", "0.1"), ("IBM", "0.2"), ("MSFT", "0.4"), ("MSFT", "0.8"))]
    assert result.stderr.splitlines()[-1] == (
        f"producer: error: 2 of 2 symbol(s) failed: IBM: connection failed: {closed_url}: Connection refused; "
        f"MSFT: connection failed: {closed_url}: Connection refused")
    assert TEST_API_KEY not in result.stderr and "Traceback" not in result.stderr
    assert topic_values(kafka_broker, topic) == []


def test_calls_that_never_reached_the_api_are_not_charged_to_the_day(kafka_broker, topic, standin, tmp_path):
    env = pipeline_env(kafka_broker, topic, standin, tmp_path / "s.db", STOCK_SYMBOLS="IBM,MSFT",
                       ALPHAVANTAGE_BASE_URL="http://stockmon-test.invalid/query", REQUESTS_PER_DAY="2")
    result = run_script("producer.py", "--once", env=env)
    assert result.returncode == 1
    retries = [line for line in result.stderr.splitlines() if "trying again in" in line]
    assert len(retries) == 4  # three tries per symbol: the budget of 2 a day did not stop them
    assert all("connection failed: http://stockmon-test.invalid/query: Failed to resolve 'stockmon-test.invalid' ("
               in line for line in retries), retries
    assert "daily budget" not in result.stderr
    state = json.loads((tmp_path / "producer_state.json").read_text())
    assert state["limiter"]["day_count"] == 0


def test_an_unknown_symbol_leaves_the_rotation_after_two_answers_in_a_row(kafka_broker, topic, standin, tmp_path):
    standin.script("GLOBAL_QUOTE", "IBM", recorded("global_quote_IBM.json"))  # BAD gets the unknown-symbol body
    env = pipeline_env(kafka_broker, topic, standin, tmp_path / "s.db", STOCK_SYMBOLS="BAD,IBM")
    log_path = tmp_path / "producer.log"
    with running(start_script("producer.py", env=env, log_path=log_path)) as producer:
        deadline = time.monotonic() + 60
        while standin.calls_for("IBM") < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        producer.send_signal(signal.SIGTERM)
        assert producer.wait(10) == 0
    assert standin.calls_for("BAD") == 2
    errors = [line.split(" ERROR producer: ")[1] for line in log_path.read_text().splitlines() if " ERROR " in line]
    assert errors[-1] == ("BAD: unknown symbol: Alpha Vantage has no quote for BAD, 2 times in a row; no longer "
                          "polled until restart (check STOCK_SYMBOLS)")


def test_producer_once_gives_up_on_an_unreachable_kafka_after_kafka_wait(standin, tmp_path):
    standin.script("GLOBAL_QUOTE", "IBM", recorded("global_quote_IBM.json"))
    servers = f"127.0.0.1:{free_port()}"
    env = pipeline_env_without_broker(standin, tmp_path, servers)
    started = time.monotonic()
    result = run_script("producer.py", "--once", "--kafka-wait", "2", env=env, timeout=60)
    assert time.monotonic() - started < 20
    assert result.returncode == 1
    last = result.stderr.splitlines()[-1]
    assert last.startswith(f"producer: error: Kafka is not reachable at {servers} (")
    assert last.endswith("; gave up after 2 s (--kafka-wait)")
    assert standin.requests == []  # no API call is spent on quotes that could not be published


def pipeline_env_without_broker(standin, tmp_path, servers: str) -> dict[str, str]:
    from conftest import Broker

    return pipeline_env(Broker(servers), "prices", standin, tmp_path / "s.db", STOCK_SYMBOLS="IBM")


def test_a_second_producer_on_the_same_state_file_refuses_to_start(kafka_broker, topic, standin, tmp_path):
    standin.script("GLOBAL_QUOTE", "IBM", *changing_global_quotes(1000))
    env = pipeline_env(kafka_broker, topic, standin, tmp_path / "s.db", STOCK_SYMBOLS="IBM", REQUESTS_PER_MINUTE="5")
    log_path = tmp_path / "first.log"
    with running(start_script("producer.py", env=env, log_path=log_path)) as first:
        deadline = time.monotonic() + 60
        while not standin.requests and time.monotonic() < deadline:
            time.sleep(0.1)
        second = run_script("producer.py", "--once", env=env, timeout=30)
        assert second.returncode == 3
        assert second.stderr == (f"producer: error: another producer (pid {first.pid}) is using state file "
                                 f"'{tmp_path / 'producer_state.json'}'; stop it first, or give this one its own "
                                 "PRODUCER_STATE_PATH\n")
        assert len(standin.requests) == 1  # 5/min: the second one would have called at once
        first.kill()  # the OS releases the lock of a process that dies
        first.wait()
    third = run_script("producer.py", "--once", env=env, timeout=90)
    assert third.returncode == 0, third.stderr


HELD = json.dumps({"v": 1, "symbol": "IBM", "ts": "9999-12-31T23:00:00-05:00", "price": 1, "open": 1, "high": 1,
                   "low": 1, "volume": 1, "source": "GLOBAL_QUOTE", "fetched_at": "2026-01-01T00:00:00Z"})
STATE_FAULTS = {
    "call-time-in-the-future": ({"limiter": {"recent": [4e9], "day": 1, "day_count": 1}, "published": {}, "held": []},
                                "1 call time(s) in the future, counted as made now"),
    "naive-bar-time": ({"limiter": {"recent": [], "day": 1, "day_count": 0},
                        "published": {"last_bar": {"IBM": "2020-05-08T18:05:00"}}, "held": []},
                       "the last published bar time of IBM ('2020-05-08T18:05:00')"),
    "held-quote-out-of-range": ({"limiter": {"recent": [], "day": 1, "day_count": 0}, "published": {},
                                 "held": [HELD]},
                                "1 held quote(s) that are not valid (ts is out of range in UTC: "
                                "'9999-12-31T23:00:00-05:00')"),
}


@pytest.mark.parametrize("fault", sorted(STATE_FAULTS))
def test_state_that_cannot_be_trusted_is_discarded_with_one_warning(kafka_broker, topic, standin, tmp_path, fault):
    state, discarded = STATE_FAULTS[fault]
    standin.script("GLOBAL_QUOTE", "IBM", recorded("global_quote_IBM.json"))
    standin.script_recorded_intraday()
    env = pipeline_env(kafka_broker, topic, standin, tmp_path / "s.db", STOCK_SYMBOLS="IBM",
                       ALPHAVANTAGE_FUNCTION="TIME_SERIES_INTRADAY", REQUESTS_PER_MINUTE="5")
    state_path = tmp_path / "producer_state.json"
    state_path.write_text(json.dumps(state))
    started = time.monotonic()
    result = run_script("producer.py", "--once", env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30  # no silent wait for a clock set back
    warnings = [line.split(" WARNING producer_state: ")[1] for line in result.stderr.splitlines() if " WARNING " in line]
    assert warnings == [f"state file {state_path}: discarded {discarded}; carrying on within the call budget"]
    assert len(standin.requests) == 1
    assert json.loads(state_path.read_text())["limiter"]["day_count"] >= 1
