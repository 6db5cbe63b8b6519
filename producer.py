"""Poll Alpha Vantage for each symbol in turn, within the call budget, and publish new quotes to Kafka.

    python producer.py                 # poll forever
    python producer.py --once          # one pass over the symbols, then exit (cron, tests)
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from kafka import KafkaProducer

from alphavantage import AlphaVantageClient, ApiDailyLimit, ApiError, ApiUnreachable, UnknownSymbol
from cli import ExitCode, install_stop_handlers, print_error, run_guarded, settings_from_args
from config import Settings, add_common_arguments, settings_epilog
from kafka_client import Stopped, Unreachable, close_producer, create_producer, ensure_topic, retry_until_connected
from producer_state import StateError, load_state, save_state, state_lock
from publisher import NewQuoteFilter, QuotePublisher
from ratelimit import Backoff, RateLimiter

log = logging.getLogger("producer")
T = TypeVar("T")

# In --once mode a symbol that keeps failing with a transient error is given up after this many calls.
ONCE_MAX_ATTEMPTS = 3
MAX_BACKOFF_SECONDS = 300.0
# A symbol Alpha Vantage says it does not know this many times in a row leaves the rotation until restart.
UNKNOWN_SYMBOL_LIMIT = 2


@dataclass
class PassReport:
    """What one --once pass achieved."""

    published: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    budget_spent: bool = False
    dropped: list[str] = field(default_factory=list)  # symbols unknown to Alpha Vantage, out of the rotation


class Poller:
    """The poll loop: one call at a time, symbols round-robin, the budget always respected."""

    def __init__(self, settings: Settings, client: AlphaVantageClient, publisher: QuotePublisher,
                 limiter: RateLimiter, stop: threading.Event, checkpoint: Callable[[], None] = lambda: None,
                 kafka_wait: float | None = None) -> None:
        self.settings = settings
        self.symbols = list(settings.symbols)
        self.unknown_in_a_row: dict[str, int] = {}
        self.kafka_wait = kafka_wait  # None: wait for Kafka as long as it takes
        self.checkpoint = checkpoint
        self.client = client
        self.publisher = publisher
        self.limiter = limiter
        self.stop = stop
        # A throttle or server error first waits one budget slot (12 s on the free tier), then doubles.
        self.api_backoff = Backoff(initial=60.0 / settings.requests_per_minute, maximum=MAX_BACKOFF_SECONDS)
        self.kafka_backoff = Backoff(initial=1.0, maximum=30.0)
        self._day_notice_given = False

    def _wait_for_budget(self, once: bool) -> bool:
        """Sleep until the next call is within budget; False if stopping (or, in --once, budget spent)."""
        while not self.stop.is_set():
            if self.limiter.day_exhausted():
                if once:
                    return False
                if not self._day_notice_given:
                    hours = self.limiter.delay() / 3600
                    log.warning("daily budget of %d API calls is spent; waiting %.1f h for the next UTC day",
                                self.settings.requests_per_day, hours)
                    self._day_notice_given = True
            else:
                self._day_notice_given = False
            wait = self.limiter.delay()
            if wait <= 0:
                return True
            self.stop.wait(min(wait, 60.0))
        return False

    def _deliver_held(self) -> bool:
        """Retry held quotes until Kafka takes them (no API calls meanwhile: the budget is scarce).

        With `kafka_wait` (--once) give up after that long: the quotes stay held for the state file.
        """
        started = time.monotonic()
        while not self.publisher.deliver():
            if self.stop.is_set():
                return False
            if self.kafka_wait is not None and time.monotonic() - started >= self.kafka_wait:
                return False
            self.stop.wait(self.kafka_backoff.next_delay())
        self.kafka_backoff.reset()
        return True

    def poll_symbol(self, symbol: str) -> int | ApiError:
        """One API call for `symbol`; returns the number of new quotes published, or the error."""
        self.limiter.record()
        self.checkpoint()  # before the call: a crash during it must still count it
        try:
            quotes = self.client.fetch_quotes(symbol)
        except ApiError as exc:
            if isinstance(exc, ApiDailyLimit):
                self.limiter.exhaust_day()
            elif isinstance(exc, ApiUnreachable):
                self.limiter.refund()  # it never reached Alpha Vantage: offline time must not spend the day
                self.checkpoint()
            return exc
        finally:
            self.limiter.finish()
        self.api_backoff.reset()
        self.unknown_in_a_row.pop(symbol, None)
        fresh = self.publisher.seen.new_quotes(quotes)
        self.publisher.add(fresh)
        delivered = self._deliver_held()
        self.checkpoint()
        if not delivered:
            log.info("%s: %d new quote(s) fetched, kept until Kafka acknowledges them", symbol, len(fresh))
        elif fresh:
            last = fresh[-1]
            log.info("%s: published %d new quote(s), last %s at %s", symbol, len(fresh), last.price,
                     last.ts.strftime("%Y-%m-%d %H:%M:%S UTC"))
        else:
            log.info("%s: no new quote since the last poll", symbol)
        return len(fresh)

    def _drop_if_unknown_again(self, symbol: str, outcome: ApiError) -> bool:
        """Count an unknown-symbol answer; at the limit the symbol leaves the rotation (True)."""
        self.unknown_in_a_row[symbol] = self.unknown_in_a_row.get(symbol, 0) + 1
        if self.unknown_in_a_row[symbol] < UNKNOWN_SYMBOL_LIMIT:
            return False
        self.symbols.remove(symbol)
        log.error("%s: %s, %d times in a row; no longer polled until restart (check STOCK_SYMBOLS)", symbol, outcome,
                  UNKNOWN_SYMBOL_LIMIT)
        return True

    def run(self, once: bool = False) -> PassReport:
        """Poll until stopped (or, with once, until every symbol had its turn)."""
        report = PassReport()
        if not self._deliver_held():
            return report
        symbols = self.symbols
        position = 0
        attempts = 0
        while symbols and not self.stop.is_set() and not (once and position >= len(symbols)):
            if not self._wait_for_budget(once):
                report.budget_spent = self.limiter.day_exhausted()
                break
            index = position % len(symbols)
            symbol = symbols[index]
            outcome = self.poll_symbol(symbol)
            attempts += 1
            if self.publisher.held and self.kafka_wait is not None:
                break  # --once: Kafka did not take them within --kafka-wait; they go to the state file
            if isinstance(outcome, int):
                report.published += outcome
                position, attempts = position + 1, 0
                continue
            if isinstance(outcome, UnknownSymbol) and self._drop_if_unknown_again(symbol, outcome):
                report.failed[symbol] = str(outcome)
                report.dropped.append(symbol)
                position = index if index < len(symbols) else 0  # the next symbol has moved into its place
                attempts = 0
                continue
            if isinstance(outcome, ApiDailyLimit):
                log.warning("%s: %s", symbol, outcome)
                continue  # keep our place: this symbol goes first on the next day
            if outcome.transient and not (once and attempts >= ONCE_MAX_ATTEMPTS):
                delay = self.api_backoff.next_delay()
                log.warning("%s: %s; trying again in %.3g s", symbol, outcome, delay)
                self.stop.wait(delay)
                continue
            log.error("%s: %s; skipping it this round", symbol, outcome)
            report.failed[symbol] = str(outcome)
            position, attempts = position + 1, 0
        return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="producer", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Poll Alpha Vantage for each symbol in turn and publish every new quote to Kafka.",
        epilog=settings_epilog())
    parser.add_argument("--symbols", dest="STOCK_SYMBOLS", metavar="LIST",
                        help="comma-separated symbols, e.g. IBM,MSFT (STOCK_SYMBOLS)")
    parser.add_argument("--function", dest="ALPHAVANTAGE_FUNCTION", metavar="NAME",
                        help="GLOBAL_QUOTE or TIME_SERIES_INTRADAY (ALPHAVANTAGE_FUNCTION)")
    parser.add_argument("--interval", dest="ALPHAVANTAGE_INTERVAL", metavar="INTERVAL",
                        help="intraday bar size, 1min ... 60min (ALPHAVANTAGE_INTERVAL)")
    parser.add_argument("--once", action="store_true", help="one pass over all symbols, then exit")
    parser.add_argument("--kafka-wait", type=float, default=60.0, metavar="SECONDS",
                        help="with --once: how long to wait for an unreachable Kafka before exiting 1, keeping "
                             "what was fetched in the state file (default 60)")
    add_common_arguments(parser)
    return parser


def run(settings: Settings, args: argparse.Namespace) -> int:
    """The script proper, once its settings are known to be good."""
    try:
        with state_lock(settings.state_path):
            return run_locked(settings, args)
    except StateError as exc:
        print_error("producer", str(exc))
        return ExitCode.STORAGE


def connect_kafka(settings: Settings, stop: threading.Event, deadline: float | None) -> KafkaProducer:
    """The topic made sure of and a producer connected, retried until `deadline` (None: for ever)."""
    def retry(connect: Callable[[], T]) -> T:
        return retry_until_connected(connect, "the producer", settings.bootstrap_servers, stop, deadline=deadline)

    retry(lambda: ensure_topic(settings))
    return retry(lambda: create_producer(settings))


def run_locked(settings: Settings, args: argparse.Namespace) -> int:
    """Poll and publish, holding the state file's lock. StateError: the state file cannot be written."""
    stop = threading.Event()
    install_stop_handlers(stop)
    client = AlphaVantageClient(settings.api_key, settings.base_url, settings.function, settings.interval,
                                settings.entitlement, timeout=(min(5.0, settings.api_timeout), settings.api_timeout))
    limiter = RateLimiter(settings.requests_per_minute, settings.requests_per_day)
    seen = NewQuoteFilter()
    held = load_state(settings.state_path, limiter, seen)
    publisher: QuotePublisher | None = None

    def checkpoint() -> None:
        save_state(settings.state_path, limiter, seen, publisher.held if publisher else held)

    checkpoint()
    log.info("polling %s for %s via %s; budget %d/min, %d/day (%d used today)",
             settings.function, ",".join(settings.symbols), settings.base_url,
             settings.requests_per_minute, settings.requests_per_day, limiter.calls_today())
    kafka_wait = args.kafka_wait if args.once else None
    try:
        producer = connect_kafka(settings, stop, None if kafka_wait is None else time.monotonic() + kafka_wait)
    except Stopped:
        return ExitCode.OK
    except Unreachable as exc:
        kept = f"; {len(held)} held quote(s) stay in {settings.state_path}" if held else ""
        print_error("producer", f"{exc}; gave up after {kafka_wait:g} s (--kafka-wait){kept}")
        return ExitCode.FAILURE
    publisher = QuotePublisher(producer, settings.topic, seen, stop,
                               flush_timeout=40.0 if kafka_wait is None else min(40.0, kafka_wait))
    if held:
        log.info("sending %d quote(s) that Kafka had not acknowledged before the last exit", len(held))
        publisher.add(held)
    try:
        report = Poller(settings, client, publisher, limiter, stop, checkpoint, kafka_wait).run(once=args.once)
    finally:
        publisher.deliver(final=True)
        close_producer(producer, timeout=2)
    checkpoint()
    return report_outcome(settings, args, report, publisher)


def report_outcome(settings: Settings, args: argparse.Namespace, report: PassReport,
                   publisher: QuotePublisher) -> int:
    """The closing lines and the exit status of a run."""
    if publisher.held:
        print_error("producer", f"Kafka did not acknowledge {len(publisher.held)} quote(s); they are kept in "
                                f"{settings.state_path} and sent on the next start")
        return ExitCode.FAILURE
    if args.once:
        log.info("pass complete: %d new quote(s) published", report.published)
        if report.budget_spent:
            log.warning("daily budget of %d API calls is spent; the pass stopped early",
                        settings.requests_per_day)
        if report.failed:
            print_error("producer", f"{len(report.failed)} of {len(settings.symbols)} symbol(s) failed: "
                        + "; ".join(f"{symbol}: {reason}" for symbol, reason in report.failed.items()))
            return ExitCode.FAILURE
    elif report.dropped and len(report.dropped) == len(settings.symbols):
        print_error("producer", "no symbol left to poll: Alpha Vantage knows none of "
                                f"{', '.join(report.dropped)} (STOCK_SYMBOLS)")
        return ExitCode.FAILURE
    return ExitCode.OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.kafka_wait > 0:
        parser.error("--kafka-wait must be a positive number of seconds")
    settings = settings_from_args("producer", args)
    if settings is None:
        return ExitCode.BAD_CONFIG
    return run_guarded("producer", settings, lambda: run(settings, args))


if __name__ == "__main__":
    sys.exit(main())
