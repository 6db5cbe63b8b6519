"""Producer overhead: time per quote spent outside the API call (parse, filter, serialise, send, ack, state).

Runs the real client and Poller.handle (what the poll loop does with each finished call) against a
local Alpha Vantage stand-in serving the recorded IBM quote (a cent higher each call, so every poll
publishes) and a real broker, timing the API call itself separately; the overhead is the rest.

    python bench/producer_overhead.py                 # 500 polls
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from harness import bench_settings, broker, fresh_name

from alphavantage_standin import AlphaVantageStandIn, changing_global_quotes
from config import load_settings
from market.hours import PollingHours
from polling.poller import PassReport, Poller
from polling.publisher import NewQuoteFilter, QuotePublisher
from polling.state import save_state
from quotesource.client import AlphaVantageClient
from quotesource.limiter import RateLimiter
from quotesource.plan import CallPlan
from quotesource.schedule import Finished, Target
from streaming.kafka_client import close_producer, create_producer, ensure_topic


class TimedClient(AlphaVantageClient):
    """The real client, noting how long each HTTP call took."""

    api_seconds: list[float]

    def fetch_payload(self, symbol: str, function: str | None = None) -> object:
        started = time.perf_counter()
        try:
            return super().fetch_payload(symbol, function)
        finally:
            self.api_seconds.append(time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--polls", type=int, default=500, help="polls to time (default 500)")
    args = parser.parse_args(argv)
    with broker() as servers, AlphaVantageStandIn() as standin, tempfile.TemporaryDirectory() as workdir:
        standin.script("GLOBAL_QUOTE", "IBM", *changing_global_quotes(args.polls + 10))
        base = bench_settings(servers, fresh_name("overhead"), "unused", Path(workdir) / "unused.db")
        settings = load_settings({"KAFKA_BOOTSTRAP_SERVERS": servers, "KAFKA_TOPIC": base.topic,
                                  "ALPHAVANTAGE_BASE_URL": standin.url, "ALPHAVANTAGE_API_KEY": "BENCHKEY12345678",
                                  "REQUESTS_PER_MINUTE": "100000", "REQUESTS_PER_DAY": "100000"},
                                 environ={}, env_file=None)
        ensure_topic(settings)
        client = TimedClient(settings.api_key, settings.base_url)
        client.api_seconds = []
        producer = create_producer(settings)
        stop = threading.Event()
        limiter, seen = RateLimiter(settings.requests_per_minute, settings.requests_per_day), NewQuoteFilter()
        publisher = QuotePublisher(producer, settings.topic, seen, stop)
        state_path = Path(workdir) / "state.json"
        poller = Poller(settings, client, publisher, limiter, stop,
                        checkpoint=lambda: save_state(state_path, limiter, seen, publisher.held))
        plan = CallPlan([Target(["IBM"])], [], PollingHours("always"), limiter, {}, datetime.now(UTC))
        report = PassReport()
        totals = []
        for polls in range(1, args.polls + 11):
            started = time.perf_counter()
            target = plan.take(datetime.now(UTC))
            assert target is not None
            call = limiter.record()
            poller.checkpoint()
            fetched = client.fetch(target.symbols)
            poller.handle(Finished(target, call, time.time(), fetched, None), plan, report, once=False)
            totals.append(time.perf_counter() - started)
            assert report.published == polls, report
        close_producer(producer, 5)
    # The first polls warm up connections; leave them out.
    api = client.api_seconds[10:]
    overhead = [total - call for total, call in zip(totals[10:], api, strict=True)]
    print(f"{len(overhead)} polls, each publishing one quote")
    print(f"API call (local stand-in) median {statistics.median(api) * 1e6:,.0f} us")
    p95 = sorted(overhead)[int(0.95 * len(overhead))]
    print(f"producer overhead per quote (parse, filter, serialise, send, Kafka ack, state file) "
          f"median {statistics.median(overhead) * 1e6:,.0f} us, p95 {p95 * 1e6:,.0f} us")
    print(f"ratio overhead / API call: {statistics.median(overhead) / statistics.median(api):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
