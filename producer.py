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
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from kafka import KafkaProducer

from common.cli import ExitCode, install_stop_handlers, print_error, run_guarded
from common.durations import format_seconds
from config import Settings, add_common_arguments, settings_epilog, settings_from_args
from market.calendar import TradingCalendar
from market.hours import PollingHours
from market.status import new_york
from polling.metrics import ProducerMetrics
from polling.poller import PassReport, Poller
from polling.publisher import NewQuoteFilter, QuotePublisher
from polling.readiness import producer_health
from polling.state import StateError, load_state, save_state, state_lock
from quotesource.bulk import REALTIME_BULK_QUOTES, chunks
from quotesource.client import AlphaVantageClient
from quotesource.limiter import RateLimiter
from quotesource.pace import pace_plan
from quotesource.plan import ScheduleMemory
from quotesource.send_gate import SendGate
from service.listener import ListenerError
from service.registry import new_registry
from service.start import start_listener
from streaming.kafka_client import (
    Stopped,
    Unreachable,
    close_producer,
    create_producer,
    ensure_topic,
    retry_until_connected,
)

log = logging.getLogger("producer")
T = TypeVar("T")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="producer", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Poll Alpha Vantage for each symbol in turn and publish every new quote to Kafka.",
        epilog=settings_epilog())
    parser.add_argument("--symbols", dest="STOCK_SYMBOLS", metavar="LIST",
                        help="comma-separated symbols, e.g. IBM,MSFT (STOCK_SYMBOLS)")
    parser.add_argument("--function", dest="ALPHAVANTAGE_FUNCTION", metavar="NAME",
                        help="GLOBAL_QUOTE, TIME_SERIES_INTRADAY or REALTIME_BULK_QUOTES (ALPHAVANTAGE_FUNCTION)")
    parser.add_argument("--interval", dest="ALPHAVANTAGE_INTERVAL", metavar="INTERVAL",
                        help="intraday bar size, 1min ... 60min (ALPHAVANTAGE_INTERVAL)")
    parser.add_argument("--once", action="store_true",
                        help="one pass over all symbols (outside the polling hours: those the last closing left "
                             "behind, if any), then exit")
    parser.add_argument("--backfill", action="store_true",
                        help="first fetch the last 100 daily closes of every symbol (TIME_SERIES_DAILY), "
                             "sending only days not sent before")
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
    limiter = RateLimiter(settings.requests_per_minute, settings.requests_per_day,
                          in_flight=settings.requests_in_flight)
    client = AlphaVantageClient(settings.api_key, settings.base_url, settings.function, settings.interval,
                                settings.entitlement, timeout=(min(5.0, settings.api_timeout), settings.api_timeout),
                                gate=SendGate(limiter.min_interval),
                                close_of=lambda day: TradingCalendar.nyse().close_of(day))
    seen, memory = NewQuoteFilter(), ScheduleMemory()
    held = load_state(settings.state_path, limiter, seen, memory)
    publisher: QuotePublisher | None = None

    def checkpoint() -> None:
        save_state(settings.state_path, limiter, seen, publisher.held if publisher else held, memory)

    checkpoint()
    hours = PollingHours(settings.poll_hours)
    registry = new_registry() if settings.metrics_address else None
    metrics = ProducerMetrics(registry) if registry else None
    try:
        listener = start_listener(settings.metrics_address, settings.metrics_token, registry,
                                  producer_health(settings.bootstrap_servers, settings.state_path, limiter, hours,
                                                  lambda: publisher))
    except ListenerError as exc:
        print_error("producer", f"METRICS_ADDRESS: {exc}")
        return ExitCode.BAD_CONFIG

    def poll_and_publish() -> int:
        nonlocal publisher
        history = [symbol for symbol in settings.symbols
                   if args.backfill or (settings.backfill == "auto" and symbol not in memory.backfilled)]
        log.info("polling %s for %s via %s; %s", settings.function, describe_symbols(settings.symbols),
                 settings.base_url, describe_budget(settings, limiter))
        if not args.once:
            log.info("%s", describe_pace(hours, datetime.fromtimestamp(limiter.clock(), UTC), settings, limiter))
        if history:
            log.info("history first: the last 100 daily closes of %s (%d call(s), TIME_SERIES_DAILY)",
                     describe_symbols(tuple(history)), len(history))
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
        if metrics:
            publisher.on_delivered = metrics.published
        if held:
            log.info("sending %d quote(s) that Kafka had not acknowledged before the last exit", len(held))
            publisher.add(held)
        try:
            report = Poller(settings, client, publisher, limiter, stop, checkpoint, kafka_wait, hours, memory,
                            history, metrics).run(once=args.once)
        finally:
            publisher.deliver(final=True)
            close_producer(producer, timeout=2)
        checkpoint()
        return report_outcome(settings, args, report, publisher)

    try:
        return poll_and_publish()
    finally:
        if listener:
            listener.stop()


def describe_symbols(symbols: tuple[str, ...]) -> str:
    return ",".join(symbols) if len(symbols) <= 12 else f"{','.join(symbols[:10])},... ({len(symbols)} symbols)"


def describe_budget(settings: Settings, limiter: RateLimiter) -> str:
    """The budget in one phrase: per minute, per day, calls in flight, and for bulk quotes the calls per round."""
    day = f"{settings.requests_per_day}/day ({limiter.calls_today()} used today)" if settings.requests_per_day \
        else "no daily limit"
    flight = "one call at a time" if limiter.max_in_flight == 1 else f"up to {limiter.max_in_flight} calls in flight"
    text = f"budget {settings.requests_per_minute}/min, {day}; {flight}"
    if settings.function == REALTIME_BULK_QUOTES:
        calls = len(chunks(list(settings.symbols)))
        text += (f"; {calls} call(s) of up to 100 symbols per round, each symbol refreshed about every "
                 f"{calls * 60 / settings.requests_per_minute:.3g} s")
    return text


def describe_pace(hours: PollingHours, now: datetime, settings: Settings, limiter: RateLimiter) -> str:
    """The pace in one line: how the day's calls are spread and how often each symbol is refreshed."""
    targets = len(chunks(list(settings.symbols))) if settings.function == REALTIME_BULK_QUOTES \
        else len(settings.symbols)
    fastest = 60 / settings.requests_per_minute
    if not settings.requests_per_day:
        where = "around the clock" if hours.mode == "always" else f"during the {hours.mode} hours"
        return (f"pace: no daily limit, so {settings.requests_per_minute}/min {where}: each symbol refreshed about "
                f"every {format_seconds(targets * fastest)}")
    start = hours.advance(now, 0.0, now + timedelta(days=7)) or now
    plan = pace_plan(hours, start, settings.requests_per_day, limiter.calls_today(start.timestamp()), targets)
    opening = "" if start == now else f" from {new_york(start, '%a %H:%M %Z')}"
    kept = f", {plan.reserve} kept for the catch-up pass after the close" if plan.reserve else ""
    if plan.interval is None:
        return f"pace{opening}: no call left to pace in the UTC day{kept}"
    interval = max(plan.interval, fastest)
    of_hours = "" if hours.mode == "always" else f" of {hours.mode} hours"
    return (f"pace{opening}: {plan.calls} call(s) over the {format_seconds(plan.polling_seconds)}{of_hours} left in "
            f"the UTC day{kept}: one every {format_seconds(interval)}, each symbol refreshed about every "
            f"{format_seconds(interval * targets)}")


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
            print_error("producer", f"{report.failed_symbols} of {len(settings.symbols)} symbol(s) failed: "
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
    return run_guarded("producer", settings.secrets, lambda: run(settings, args))


if __name__ == "__main__":
    sys.exit(main())
