"""The producer's poll loop: which target to call next, as many calls in flight as the budget allows,
and what each finished call publishes, backs off or gives up."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from config import Settings
from market.hours import PollingHours
from market.status import new_york
from polling.call_log import CallLog
from polling.metrics import ProducerMetrics, call_outcome
from polling.publisher import QuotePublisher
from quotesource.alphavantage import TIME_SERIES_DAILY, ApiDailyLimit, ApiError, ApiUnreachable, UnknownSymbol
from quotesource.bulk import REALTIME_BULK_QUOTES, chunks
from quotesource.client import AlphaVantageClient, Fetched
from quotesource.limiter import Backoff, Call, RateLimiter
from quotesource.plan import CallPlan, ScheduleMemory
from quotesource.schedule import CallPool, Finished, Target
from service.heartbeat import beat

log = logging.getLogger("producer")  # its log lines are the producer's

# In --once mode a symbol that keeps failing with a transient error is given up after this many calls.
ONCE_MAX_ATTEMPTS = 3
MAX_BACKOFF_SECONDS = 300.0
# A symbol Alpha Vantage says it does not know this many times in a row leaves the rotation until restart.
UNKNOWN_SYMBOL_LIMIT = 2
# After a stop request, calls still in flight have this long to bring their quotes home.
STOP_GRACE_SECONDS = 5.0
# The gauges are brought up to date at most this often (a turn can come every few milliseconds).
GAUGE_INTERVAL_SECONDS = 0.25


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
                 memory: ScheduleMemory | None = None, history: Sequence[str] = (),
                 metrics: ProducerMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.call_log = CallLog()
        self._gauges_at = -1.0
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
            beat()
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
            self._turn(pool)
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
        self.call_log.flush(force=True)
        return report

    def _turn(self, pool: CallPool[Fetched]) -> None:
        """Each turn of the loop: the heartbeat, the summary line if due, the gauges."""
        beat()
        self.call_log.flush()
        if self.metrics and time.monotonic() - self._gauges_at >= GAUGE_INTERVAL_SECONDS:
            self._gauges_at = time.monotonic()
            self.metrics.turn(self.limiter, len(pool.in_flight), len(self.publisher.held),
                              self.hours.window_at(self.now()) is not None)

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
        if self.metrics:
            self.metrics.api_calls.labels(call_outcome(error)).inc()
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
            log.warning("%s: %s", target.label, error, extra={"symbol": target.label})
            plan.put_back(target, retry_first=True)  # keep our place: it goes first on the next day
        elif error.transient and not (once and target.attempts >= ONCE_MAX_ATTEMPTS):
            delay = self.api_backoff.next_delay()
            log.warning("%s: %s; trying again in %.3g s", target.label, error, delay, extra={"symbol": target.label})
            self.paused_until = max(self.paused_until, time.monotonic() + delay)
            plan.put_back(target, retry_first=True)
        else:
            self._called(plan, target, call)
            if target.function:  # history is extra: a symbol without it is still polled, and --once still passes
                log.error("%s: %s; going on without it", target.label, error, extra={"symbol": target.label})
            else:
                log.error("%s: %s; skipping it this round", target.label, error, extra={"symbol": target.label})
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
            log.warning("%s: unusable item in the bulk answer: %s", target.label, reason,
                        extra={"symbol": target.label})
        for symbol in fetched.missing:
            error = UnknownSymbol(f"{symbol} is missing from the {REALTIME_BULK_QUOTES} answer")
            if self._drop_if_unknown_again(symbol, error, plan):
                report.drop(symbol, str(error))
            else:
                log.warning("%s: %s", symbol, error, extra={"symbol": symbol})
        fresh = self.publisher.seen.new_quotes(fetched.quotes)
        self.publisher.add(fresh)
        delivered = self._deliver_held()
        self.checkpoint()
        if not delivered:
            log.info("%s: %d new quote(s) fetched, kept until Kafka acknowledges them", target.label, len(fresh),
                     extra={"symbol": target.label, "count": len(fresh)})
        elif fresh:
            last = fresh[-1]
            symbols = {quote.symbol for quote in fresh}
            detail = f"last {last.price} at {last.ts.strftime('%Y-%m-%d %H:%M:%S UTC')}" if len(target.symbols) == 1 \
                else f"{len(symbols)} symbol(s)"
            if target.function == TIME_SERIES_DAILY:
                detail = f"daily closes from {fresh[0].trading_day} to {last.trading_day}"
            self.call_log.said(f"{target.label}: published {len(fresh)} new quote(s), {detail}", symbols, len(fresh),
                               target.label)
        else:
            self.call_log.said(f"{target.label}: no new quote since the last poll", set(), 0, target.label)
        return len(fresh)

    def _drop_if_unknown_again(self, symbol: str, outcome: ApiError, plan: CallPlan) -> bool:
        """Count an unknown-symbol answer; at the limit the symbol leaves the rotation (True)."""
        self.unknown_in_a_row[symbol] = self.unknown_in_a_row.get(symbol, 0) + 1
        if self.unknown_in_a_row[symbol] < UNKNOWN_SYMBOL_LIMIT:
            return False
        plan.drop(symbol)
        log.error("%s: %s, %d times in a row; no longer polled until restart (check STOCK_SYMBOLS)", symbol, outcome,
                  UNKNOWN_SYMBOL_LIMIT, extra={"symbol": symbol})
        return True


def closed_line(mode: str, resumes: datetime | None) -> str:
    """'market closed; next session opens Mon 2026-11-30 09:30 EST' (or the extended hours' version)."""
    when = "a date beyond the trading calendar" if resumes is None else new_york(resumes, "%a %Y-%m-%d %H:%M %Z")
    if mode == "extended":
        return f"outside the extended hours; polling resumes {when}"
    return f"market closed; next session opens {when}"


