"""The real poll loop, broker and stand-in, on a wall clock moved to a Saturday: POLL_HOURS=market."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime

import pytest

from alphavantage_standin import recorded
from config import load_settings
from conftest import TEST_API_KEY, topic_values
from market.hours import PollingHours
from polling.poller import Poller
from polling.publisher import NewQuoteFilter, QuotePublisher
from quotesource.client import AlphaVantageClient
from quotesource.limiter import RateLimiter
from quotesource.plan import ScheduleMemory
from streaming.kafka_client import close_producer, create_producer, ensure_topic

pytestmark = pytest.mark.slow

CLOSED_LINE = "market closed; next session opens Mon 2026-11-30 09:30 EST"


def test_on_a_saturday_the_producer_catches_up_what_friday_left_then_waits_for_monday(
        kafka_broker, topic, standin, caplog):
    standin.script("GLOBAL_QUOTE", "IBM", recorded("global_quote_IBM.json"))
    standin.script("GLOBAL_QUOTE", "MSFT", recorded("global_quote_MSFT.json"))
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC).timestamp()
    offset = saturday - time.time()

    def clock() -> float:
        return time.time() + offset

    settings = load_settings({"ALPHAVANTAGE_API_KEY": TEST_API_KEY, "ALPHAVANTAGE_BASE_URL": standin.url,
                              "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers, "KAFKA_TOPIC": topic,
                              "STOCK_SYMBOLS": "IBM,MSFT", "REQUESTS_PER_MINUTE": "600"}, environ={}, env_file=None)
    ensure_topic(settings)
    producer = create_producer(settings)
    stop = threading.Event()
    publisher = QuotePublisher(producer, topic, NewQuoteFilter(), stop)
    # MSFT was called after Friday's 13:00 EST close; IBM last at 12:40, before it.
    memory = ScheduleMemory({"IBM": datetime(2026, 11, 27, 17, 40, tzinfo=UTC),
                             "MSFT": datetime(2026, 11, 27, 18, 6, tzinfo=UTC)})
    poller = Poller(settings, AlphaVantageClient(TEST_API_KEY, standin.url), publisher,
                    RateLimiter(600, 25, clock=clock), stop, hours=PollingHours("market"), memory=memory)
    caplog.set_level(logging.INFO, logger="producer")
    runner = threading.Thread(target=poller.run)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while CLOSED_LINE not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # long enough for a second call or a repeated line, if either were coming
    finally:
        stop.set()
        runner.join(timeout=10)
        close_producer(producer, timeout=2)
    assert [request["symbol"] for request in standin.requests] == ["IBM"]
    assert caplog.text.count("market closed") == 1
    assert [json.loads(value)["symbol"] for value in topic_values(kafka_broker, topic)] == ["IBM"]
    assert memory.last_called["IBM"].timestamp() == pytest.approx(saturday, abs=10)
