"""Deciding which quotes are new, and getting them into Kafka without losing any."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.producer.future import FutureRecordMetadata

from quotesource.alphavantage import GLOBAL_QUOTE, TIME_SERIES_DAILY, Quote
from streaming.kafka_client import describe
from streaming.messages import encode_quote

log = logging.getLogger("publisher")  # the name its log lines carry

# Acknowledgements normally take milliseconds; after this long the broker is probably gone.
OUTAGE_NOTICE_SECONDS = 5.0


class NewQuoteFilter:
    """Remembers what was published per symbol so the same quote is never sent twice."""

    def __init__(self) -> None:
        self._last_global: dict[str, tuple[object, ...]] = {}
        self._last_bar: dict[str, datetime] = {}
        self._last_daily: dict[str, datetime] = {}  # history (TIME_SERIES_DAILY) apart: its closes predate the bars

    def _bars(self, quote: Quote) -> dict[str, datetime]:
        return self._last_daily if quote.source == TIME_SERIES_DAILY else self._last_bar

    @staticmethod
    def _global_identity(quote: Quote) -> tuple[object, ...]:
        return (quote.trading_day, quote.price, quote.open, quote.high, quote.low, quote.volume, quote.change)

    def _is_new(self, quote: Quote) -> bool:
        if quote.source == GLOBAL_QUOTE:
            return self._last_global.get(quote.symbol) != self._global_identity(quote)
        last = self._bars(quote).get(quote.symbol)
        return last is None or quote.ts > last

    def new_quotes(self, quotes: list[Quote]) -> list[Quote]:
        """The quotes not published before: a changed global quote, or every bar newer than the last one."""
        return [quote for quote in quotes if self._is_new(quote)]

    def snapshot(self) -> dict[str, object]:
        """What was published, in JSON-ready form, so a restart does not publish it again."""
        return {"last_global": {symbol: list(identity) for symbol, identity in self._last_global.items()},
                "last_bar": {symbol: moment.isoformat() for symbol, moment in self._last_bar.items()},
                "last_daily": {symbol: moment.isoformat() for symbol, moment in self._last_daily.items()}}

    def restore(self, snapshot: dict[str, object]) -> list[str]:
        """Continue from a snapshot; return what was dropped because it cannot be trusted.

        A bar time must carry its time zone (comparing a naive one with the API's would fail on
        every poll); a symbol whose entry is dropped may have its latest quote published once more.
        """
        last_global, last_bar = snapshot.get("last_global", {}), snapshot.get("last_bar", {})
        last_daily = snapshot.get("last_daily", {})
        if not isinstance(last_global, dict) or not isinstance(last_bar, dict) or not isinstance(last_daily, dict):
            raise ValueError("malformed published-quote snapshot")
        dropped: list[str] = []
        self._last_global = {}
        for symbol, identity in last_global.items():
            if isinstance(identity, list):  # any other list only makes the next quote count as new
                self._last_global[symbol] = tuple(identity)
            else:
                dropped.append(f"the last published quote of {symbol} ({str(identity)[:40]!r})")
        self._last_bar = _bar_times(last_bar, "bar", dropped)
        self._last_daily = _bar_times(last_daily, "daily close", dropped)
        return dropped

    def remember(self, quotes: list[Quote]) -> None:
        """Mark quotes as published (call once Kafka has acknowledged them)."""
        for quote in quotes:
            if not self._is_new(quote):
                continue
            if quote.source == GLOBAL_QUOTE:
                self._last_global[quote.symbol] = self._global_identity(quote)
            else:
                self._bars(quote)[quote.symbol] = quote.ts


def _bar_times(recorded: dict[str, object], what: str, dropped: list[str]) -> dict[str, datetime]:
    """The recorded times that carry a time zone and convert to UTC; the others are named in `dropped`."""
    times = {}
    for symbol, moment in recorded.items():
        try:
            parsed = datetime.fromisoformat(moment)  # type: ignore[arg-type]
            if parsed.tzinfo is None:
                raise ValueError("no time zone")
            parsed.astimezone(UTC)  # OverflowError at the ends of the calendar
        except (TypeError, ValueError, OverflowError):
            dropped.append(f"the last published {what} time of {symbol} ({str(moment)[:40]!r})")
            continue
        times[symbol] = parsed
    return times


class QuotePublisher:
    """Sends quotes keyed by symbol and waits for the broker's acknowledgement.

    Quotes that were not acknowledged stay held and are sent again by the next `deliver()`, so
    a broker outage delays quotes but does not lose them. Keying by symbol keeps each symbol's
    quotes in one partition, in order. A quote whose first send was in fact stored may be sent
    twice this way; the consumer's unique key on (symbol, ts) makes that harmless.
    """

    def __init__(self, producer: KafkaProducer, topic: str, seen: NewQuoteFilter, stop: threading.Event,
                 flush_timeout: float = 40.0) -> None:
        self.producer = producer
        self.topic = topic
        self.seen = seen
        self.stop = stop
        self.flush_timeout = flush_timeout
        self.held: list[Quote] = []
        # Held quotes already sent (by id), with their send's outcome: sent again only once that send
        # has failed, or every deliver() during a slow spell would add another copy.
        self._in_flight: dict[int, FutureRecordMetadata] = {}
        self._outage = False
        self.on_delivered: Callable[[list[Quote]], None] = lambda quotes: None  # the metrics count them

    @property
    def in_outage(self) -> bool:
        """Kafka has not been taking the held quotes (said once in the log; /readyz says it while it lasts)."""
        return self._outage

    def add(self, quotes: list[Quote]) -> None:
        self.held.extend(quotes)

    def _send_all(self) -> tuple[list[FutureRecordMetadata], KafkaError | None]:
        futures = []
        for quote in self.held:
            earlier = self._in_flight.get(id(quote))
            if earlier is not None and (not earlier.is_done or earlier.succeeded()):
                futures.append(earlier)  # still on its way, or taken since the last look: not again
                continue
            try:
                future = self.producer.send(self.topic, key=quote.symbol.encode(), value=encode_quote(quote))
            except KafkaError as exc:  # no metadata or no buffer space within max_block_ms
                return futures, exc
            self._in_flight[id(quote)] = future
            futures.append(future)
        return futures, None

    def _wait_for(self, futures: list[FutureRecordMetadata], timeout: float, honour_stop: bool) -> None:
        """Wait for acknowledgements in short slices, so a stop request is honoured within a second."""
        started = time.monotonic()
        while not all(future.is_done for future in futures) and time.monotonic() - started < timeout:
            if honour_stop and self.stop.is_set():
                return
            if not self._outage and time.monotonic() - started > OUTAGE_NOTICE_SECONDS:
                log.warning("Kafka has not acknowledged %d quote(s) for %.0f s; holding them until it does",
                            len(futures), OUTAGE_NOTICE_SECONDS)
                self._outage = True
            with contextlib.suppress(KafkaTimeoutError):
                self.producer.flush(timeout=0.5)

    def deliver(self, final: bool = False) -> bool:
        """Send every held quote; True when all were acknowledged, False when some are still held.

        `final` is the last try before exit: it waits a few seconds even though a stop was requested.
        """
        if not self.held:
            return True
        futures, failure = self._send_all()
        self._wait_for(futures, timeout=3.0 if final else self.flush_timeout, honour_stop=not final)
        delivered: list[Quote] = []
        still_held: list[Quote] = []
        for index, quote in enumerate(self.held):
            future = futures[index] if index < len(futures) else None
            if future is not None and future.is_done and future.succeeded():
                delivered.append(quote)
            else:
                still_held.append(quote)
                if future is not None and future.is_done and failure is None:
                    failure = future.exception
        self.seen.remember(delivered)
        if delivered:
            self.on_delivered(delivered)
        self.held = still_held
        self._in_flight = {id(quote): self._in_flight[id(quote)] for quote in still_held
                           if id(quote) in self._in_flight and not self._in_flight[id(quote)].is_done}
        if still_held and self.stop.is_set() and not final:
            return False  # stopping, not an outage: the final deliver() waits for these
        if still_held:
            reason = describe(failure) if failure else "no acknowledgement in time"
            if not self._outage:
                log.warning("Kafka did not take %d quote(s) (%s); holding them and retrying until it does",
                            len(still_held), reason)
                self._outage = True
            else:
                log.debug("still holding %d quote(s): %s", len(still_held), reason)
            return False
        if self._outage:
            log.info("Kafka is taking quotes again; the held ones are delivered")
            self._outage = False
        return True
