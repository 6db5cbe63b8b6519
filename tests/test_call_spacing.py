"""Above 60 calls a minute, calls reach the API at least 60/N s apart, however many are in flight.

Measured where the promise is made: at the server, from the arrival of each request.
"""

from __future__ import annotations

import itertools

import pytest

from alphavantage_standin import Answer, fixture
from conftest import pipeline_env, run_script

pytestmark = pytest.mark.slow


def global_quote(symbol: str) -> Answer:
    return Answer(fixture("global_quote_IBM.json").replace(b'"IBM"', f'"{symbol}"'.encode()))


def test_calls_in_flight_reach_the_api_no_closer_than_the_spacing(kafka_broker, topic, standin, tmp_path):
    symbols = [f"S{index:03d}" for index in range(250)]
    for symbol in symbols:
        standin.script("GLOBAL_QUOTE", symbol, global_quote(symbol))
    standin.delay = 0.25  # about the real API's answer time: a dozen calls in flight at once
    env = pipeline_env(kafka_broker, topic, standin, tmp_path / "stocks.db", STOCK_SYMBOLS=",".join(symbols),
                       REQUESTS_PER_MINUTE="3000", POLL_HOURS="always")
    produced = run_script("producer.py", "--once", env=env, timeout=60)
    assert produced.returncode == 0, produced.stderr
    assert sorted(request["symbol"] for request in standin.requests) == symbols
    gaps = sorted(later - earlier for earlier, later in itertools.pairwise(sorted(standin.request_times)))
    print(f"closest arrivals (ms): {[round(gap * 1000, 1) for gap in gaps[:5]]}")
    assert gaps[0] >= 0.020
