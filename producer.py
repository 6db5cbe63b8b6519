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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from kafka import KafkaProducer

from cli import ExitCode, install_stop_handlers, print_error, run_guarded, settings_from_args
from config import Settings, add_common_arguments, settings_epilog
from durations import format_seconds
from kafka_client import Stopped, Unreachable, close_producer, create_producer, ensure_topic, retry_until_connected
from market.calendar import TradingCalendar
from market.hours import PollingHours
from market.status import new_york
from producer_state import StateError, load_state, save_state, state_lock
from publisher import NewQuoteFilter, QuotePublisher
from quotesource.alphavantage import TIME_SERIES_DAILY, ApiDailyLimit, ApiError, ApiUnreachable, UnknownSymbol
from quotesource.bulk import REALTIME_BULK_QUOTES, chunks
from quotesource.client import AlphaVantageClient, Fetched
from quotesource.limiter import Backoff, Call, RateLimiter
from quotesource.pace import pace_plan
from quotesource.plan import CallPlan, ScheduleMemory
from quotesource.schedule import CallPool, Finished, Target

log = logging.getLogger("producer")
T = TypeVar("T")

# In --once mode a symbol that keeps failing with a transient error is given up after this many calls.
ONCE_MAX_ATTEMPTS = 3
MAX_BACKOFF_SECONDS = 300.0
# A symbol Alpha Vantage says it does not know this many times in a row leaves the rotation until restart.
UNKNOWN_SYMBOL_LIMIT = 2
# After a stop request, calls still in flight have this long to bring their quotes home.
STOP_GRACE_SECONDS = 5.0


@dataclass
class PassReport:
    """What one --once pass achieved."""

    published: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # symbol (or bulk chunk) -> why
    failed_symbols: int = 0
    budget_spent: bool = False
    dropped: list[str] = field(default_factory=list)  # symbols unknown to Alpha Vantage, out of the rotation

    def fail(self, label: str, reason: str, symbols: int = 1) -> None:
        """A symbol (or a bulk chunk of `symbols`) that got no quote in this pass."""
        self.failed[label] = reason
        self.failed_symbols += symbols

    def drop(self, symbol: str, reason: str) -> None:
        """A symbol Alpha Vantage does not know, out of the rotation."""
        self.fail(symbol, reason)
        self.dropped.append(symbol)


class Poller:
    """The poll loop: targets round-robin, as many calls in flight as the budget allows, never over it.

    Calls run on worker threads (CallPool); everything else (the budget, publishing, the state
    file, back-off) happens on this thread, one finished call at a time, so each symbol's quotes
    are published in the order they were fetched.
    """

    def __init__(self, settings: Settings, client: AlphaVantageClient, publisher: QuotePublisher,
                 limiter: RateLimiter, stop: threading.Event, checkpoint: Callable[[], None] = lambda: None,
                 kafka_wait: float | None = None, hours: PollingHours | None = None,
                 memory: ScheduleMemory | None = None, history: Sequence[str] = ()) -> None:
        self.settings = settings
        self.hours = hours or PollingHours("always")
        self.memory = memory or ScheduleMemory()
        self.history = list(history)  # symbols whose daily closes are fetched first (--backfill, BACKFILL=auto)
        self._closed_notice: datetime | None = None
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
        self.paused_until = 0.0  # time.monotonic() before which no call starts (back-off)
        self._day_notice_given = False

    def targets(self) -> list[Target]:
        if self.settings.function == REALTIME_BULK_QUOTES:
            return [Target(chunk) for chunk in chunks(list(self.settings.symbols))]
        return [Target([symbol]) for symbol in self.settings.symbols]

    def _deliver_held(self) -> bool:
        """Retry held quotes until Kafka takes them (no new API calls meanwhile: the budget is scarce).

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

    def _budget_wait(self) -> float:
        """Seconds until the next call may start (0: now), saying once when the day's budget is spent."""
        if self.limiter.day_exhausted():
            if not self._day_notice_given:
                spent = f"daily budget of {self.settings.requests_per_day} API calls is spent" \
                    if self.settings.requests_per_day else "Alpha Vantage says today's allowance is spent"
                # Spent by the time the polling hours close is the even pace's plan; while they are open, a shortfall.
                level = logging.WARNING if self.hours.window_at(self.now()) else logging.INFO
                log.log(level, "%s; waiting %.1f h for the next UTC day", spent, self.limiter.delay() / 3600)
                self._day_notice_given = True
        else:
            self._day_notice_given = False
        return max(self.limiter.delay(), self.paused_until - time.monotonic())

    def now(self) -> datetime:
        """The wall clock the budget and the calendar both go by (the limiter's, injectable in tests)."""
        return datetime.fromtimestamp(self.limiter.clock(), UTC)

    def _say_when_polling_resumes(self, plan: CallPlan, now: datetime) -> None:
        """One INFO line per closed period: when the polling hours open again."""
        resumes = plan.closed_until(now)
        if resumes is not None and resumes != self._closed_notice:
            log.info("%s", closed_line(self.hours.mode, resumes))
        self._closed_notice = resumes

    def _start(self, pool: CallPool[Fetched], target: Target) -> None:
        call = self.limiter.record()
        self.checkpoint()  # before the call: a crash during it must still count it
        pool.start(target, call)

    def run(self, once: bool = False) -> PassReport:
        """Poll until stopped (or, with once, until every target had its call)."""
        report = PassReport()
        if not self._deliver_held():
            return report
        plan = CallPlan(self.targets(), [Target([symbol], TIME_SERIES_DAILY) for symbol in self.history],
                        self.hours, self.limiter, self.memory.last_called, self.now(), once=once)
        if once and plan.finished():
            log.info("%s; nothing to fetch until then (every symbol was called after the last closing)",
                     closed_line(self.hours.mode, plan.closed_until(self.now())))
        pool: CallPool[Fetched] = CallPool(self.limiter.max_in_flight,
                                           lambda target: self.client.fetch(target.symbols, target.function),
                                           clock=self.limiter.clock)
        while not self.stop.is_set() and not (plan.finished() and not pool.in_flight):
            if self.publisher.held and self.kafka_wait is not None:
                break  # --once: Kafka did not take them within --kafka-wait; they go to the state file
            wait = self._budget_wait()
            if once and self.limiter.day_exhausted():
                report.budget_spent = True
                if not pool.in_flight:
                    break
            elif pool.has_room():
                now = self.now()
                due = plan.wait(now)
                wait = max(wait, due)
                if wait <= 0 and (target := plan.take(now)) is not None:
                    self._start(pool, target)
                    continue
                if due > 0 and not pool.in_flight:  # nothing more to do until the hours open again
                    self._say_when_polling_resumes(plan, now)
            else:
                wait = 1.0  # nothing may start before a call comes back
            finished = pool.next_finished(timeout=min(max(wait, 0.001), 1.0))
            if finished is not None:
                self.handle(finished, plan, report, once)
        self._collect_last(pool, plan, report, once)
        return report

    def _collect_last(self, pool: CallPool[Fetched], plan: CallPlan, report: PassReport, once: bool) -> None:
        """After a stop: publish what the calls in flight bring within a few seconds, so nothing fetched is lost."""
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while pool.in_flight and time.monotonic() < deadline:
            finished = pool.next_finished(timeout=deadline - time.monotonic())
            if finished is not None:
                self.handle(finished, plan, report, once)

    def handle(self, finished: Finished[Fetched], plan: CallPlan, report: PassReport, once: bool) -> None:
        """One call came back: publish what it brought, or decide what its failure means."""
        target = finished.target
        call: Call = finished.token  # type: ignore[assignment]
        self.limiter.finish(call, now=finished.ended_at)
        error = finished.error
        if error is None:
            assert finished.result is not None
            target.attempts = 0
            self.api_backoff.reset()
            self._called(plan, target, call)
            report.published += self._publish(target, finished.result, plan, report)
            plan.put_back(target)
            return
        if not isinstance(error, ApiError):
            raise error
        if isinstance(error, ApiUnreachable):
            self.limiter.refund()  # it never reached Alpha Vantage: offline time must not spend the day
            self.checkpoint()
        target.attempts += 1
        symbol = target.symbols[0]
        if isinstance(error, UnknownSymbol) and self._drop_if_unknown_again(symbol, error, plan):
            report.drop(symbol, str(error))
        elif isinstance(error, ApiDailyLimit):
            self.limiter.exhaust_day()
            log.warning("%s: %s", target.label, error)
            plan.put_back(target, retry_first=True)  # keep our place: it goes first on the next day
        elif error.transient and not (once and target.attempts >= ONCE_MAX_ATTEMPTS):
            delay = self.api_backoff.next_delay()
            log.warning("%s: %s; trying again in %.3g s", target.label, error, delay)
            self.paused_until = max(self.paused_until, time.monotonic() + delay)
            plan.put_back(target, retry_first=True)
        else:
            self._called(plan, target, call)
            if target.function:  # history is extra: a symbol without it is still polled, and --once still passes
                log.error("%s: %s; going on without it", target.label, error)
            else:
                log.error("%s: %s; skipping it this round", target.label, error)
                report.fail(target.label, str(error), len(target.symbols))
            target.attempts = 0
            plan.put_back(target)

    def _called(self, plan: CallPlan, target: Target, call: Call) -> None:
        """A call answered, or given up for good: its symbols are up to date, or have had their history."""
        if target.function == TIME_SERIES_DAILY:
            self.memory.backfilled.update(target.symbols)
        plan.called(target, datetime.fromtimestamp(call.started, UTC))

    def _publish(self, target: Target, fetched: Fetched, plan: CallPlan, report: PassReport) -> int:
        """Send a call's new quotes to Kafka (waiting until it takes them); returns how many."""
        for symbol in target.symbols:
            if symbol not in fetched.missing:
                self.unknown_in_a_row.pop(symbol, None)
        for reason in fetched.skipped:
            log.warning("%s: unusable item in the bulk answer: %s", target.label, reason)
        for symbol in fetched.missing:
            error = UnknownSymbol(f"{symbol} is missing from the {REALTIME_BULK_QUOTES} answer")
            if self._drop_if_unknown_again(symbol, error, plan):
                report.drop(symbol, str(error))
            else:
                log.warning("%s: %s", symbol, error)
        fresh = self.publisher.seen.new_quotes(fetched.quotes)
        self.publisher.add(fresh)
        delivered = self._deliver_held()
        self.checkpoint()
        if not delivered:
            log.info("%s: %d new quote(s) fetched, kept until Kafka acknowledges them", target.label, len(fresh))
        elif fresh:
            last = fresh[-1]
            detail = f"last {last.price} at {last.ts.strftime('%Y-%m-%d %H:%M:%S UTC')}" if len(target.symbols) == 1 \
                else f"{len({quote.symbol for quote in fresh})} symbol(s)"
            if target.function == TIME_SERIES_DAILY:
                detail = f"daily closes from {fresh[0].trading_day} to {last.trading_day}"
            log.info("%s: published %d new quote(s), %s", target.label, len(fresh), detail)
        else:
            log.info("%s: no new quote since the last poll", target.label)
        return len(fresh)

    def _drop_if_unknown_again(self, symbol: str, outcome: ApiError, plan: CallPlan) -> bool:
        """Count an unknown-symbol answer; at the limit the symbol leaves the rotation (True)."""
        self.unknown_in_a_row[symbol] = self.unknown_in_a_row.get(symbol, 0) + 1
        if self.unknown_in_a_row[symbol] < UNKNOWN_SYMBOL_LIMIT:
            return False
        plan.drop(symbol)
        log.error("%s: %s, %d times in a row; no longer polled until restart (check STOCK_SYMBOLS)", symbol, outcome,
                  UNKNOWN_SYMBOL_LIMIT)
        return True


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
    client = AlphaVantageClient(settings.api_key, settings.base_url, settings.function, settings.interval,
                                settings.entitlement, timeout=(min(5.0, settings.api_timeout), settings.api_timeout),
                                close_of=lambda day: TradingCalendar.nyse().close_of(day))
    limiter = RateLimiter(settings.requests_per_minute, settings.requests_per_day,
                          in_flight=settings.requests_in_flight)
    seen, memory = NewQuoteFilter(), ScheduleMemory()
    held = load_state(settings.state_path, limiter, seen, memory)
    publisher: QuotePublisher | None = None

    def checkpoint() -> None:
        save_state(settings.state_path, limiter, seen, publisher.held if publisher else held, memory)

    checkpoint()
    hours = PollingHours(settings.poll_hours)
    history = [symbol for symbol in settings.symbols
               if args.backfill or (settings.backfill == "auto" and symbol not in memory.backfilled)]
    log.info("polling %s for %s via %s; %s", settings.function, describe_symbols(settings.symbols), settings.base_url,
             describe_budget(settings, limiter))
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
    if held:
        log.info("sending %d quote(s) that Kafka had not acknowledged before the last exit", len(held))
        publisher.add(held)
    try:
        report = Poller(settings, client, publisher, limiter, stop, checkpoint, kafka_wait, hours, memory,
                        history).run(once=args.once)
    finally:
        publisher.deliver(final=True)
        close_producer(producer, timeout=2)
    checkpoint()
    return report_outcome(settings, args, report, publisher)


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


def closed_line(mode: str, resumes: datetime | None) -> str:
    """'market closed; next session opens Mon 2026-11-30 09:30 EST' (or the extended hours' version)."""
    when = "a date beyond the trading calendar" if resumes is None else new_york(resumes, "%a %Y-%m-%d %H:%M %Z")
    if mode == "extended":
        return f"outside the extended hours; polling resumes {when}"
    return f"market closed; next session opens {when}"


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
    return run_guarded("producer", settings, lambda: run(settings, args))


if __name__ == "__main__":
    sys.exit(main())
