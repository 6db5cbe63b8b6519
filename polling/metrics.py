"""The producer's metrics: what the API answered, what reached Kafka, what is left of the budget, how old
each symbol's newest quote is. Updated by the poll loop; read by scrapes on the listener's threads."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from quotesource.alphavantage import ApiThrottled, ApiTimeout, Quote
from quotesource.limiter import RateLimiter

OUTCOMES = ("ok", "throttled", "error", "timeout")


def call_outcome(error: BaseException | None) -> str:
    """ok, throttled (the API's rate or daily limit), timeout (no answer in ALPHAVANTAGE_TIMEOUT) or error."""
    if error is None:
        return "ok"
    if isinstance(error, ApiThrottled):
        return "throttled"
    if isinstance(error, ApiTimeout):
        return "timeout"
    return "error"


class QuoteAges(Collector):
    """stockmon_quote_age_seconds{symbol}: seconds since the newest published quote's own time, at scrape time."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.newest: dict[str, float] = {}  # symbol -> the newest quote's time (epoch seconds)

    def note(self, quotes: list[Quote]) -> None:
        for quote in quotes:
            moment = quote.ts.timestamp()
            if moment > self.newest.get(quote.symbol, -math.inf):
                self.newest[quote.symbol] = moment

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("stockmon_quote_age_seconds",
                                   "Seconds since the time of each symbol's newest quote published to Kafka",
                                   labels=["symbol"])
        now = self.clock()
        for symbol, moment in sorted(self.newest.copy().items()):
            family.add_metric([symbol], max(0.0, now - moment))
        yield family


class ProducerMetrics:
    def __init__(self, registry: CollectorRegistry, clock: Callable[[], float] = time.time) -> None:
        self.api_calls = Counter("stockmon_api_calls", "Alpha Vantage calls by outcome", ["outcome"],
                                 registry=registry)
        for outcome in OUTCOMES:
            self.api_calls.labels(outcome)
        self.quotes_published = Counter("stockmon_quotes_published", "Quotes Kafka acknowledged", registry=registry)
        self.calls_left = Gauge("stockmon_api_calls_left",
                                "API calls that may still start: in the current minute, and in the UTC day "
                                "(+Inf without a daily limit)", ["window"], registry=registry)
        self.in_flight = Gauge("stockmon_api_calls_in_flight", "API calls waiting for their answer", registry=registry)
        self.unacknowledged = Gauge("stockmon_messages_unacknowledged",
                                    "Quotes handed to Kafka and not acknowledged yet (held through an outage)",
                                    registry=registry)
        self.market_open = Gauge("stockmon_market_open", "1 while the polling hours (POLL_HOURS) are open, else 0",
                                 registry=registry)
        self.ages = QuoteAges(clock)
        registry.register(self.ages)

    def turn(self, limiter: RateLimiter, in_flight: int, unacknowledged: int, market_open: bool) -> None:
        """The gauges, as the poll loop sees them at one of its turns."""
        now = limiter.clock()
        self.calls_left.labels("minute").set(limiter.calls_left_in_minute(now))
        day = limiter.calls_left_today(now)
        self.calls_left.labels("day").set(math.inf if day is None else day)
        self.in_flight.set(in_flight)
        self.unacknowledged.set(unacknowledged)
        self.market_open.set(1 if market_open else 0)

    def published(self, quotes: list[Quote]) -> None:
        self.quotes_published.inc(len(quotes))
        self.ages.note(quotes)
