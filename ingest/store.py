"""Where each poll batch goes: validated, stored in SQLite in one transaction with the alerts its
quotes fire, bad messages set aside with their reason; a locked database is waited out."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TypeVar

from kafka.consumer.fetcher import ConsumerRecord

import db
from alerts.engine import AlertEngine
from alerts.outbox import AlertOutbox
from alerts.text import describe_alert
from ingest.metrics import ConsumerMetrics
from ingest.stored_log import StoredLog
from notify.delivery import NotificationDelivery
from service.heartbeat import beat
from streaming.kafka_client import Stopped
from streaming.messages import InvalidMessage, QuoteRow, check_not_future, decode_quote, future_limit

T = TypeVar("T")
log = logging.getLogger("consumer")  # its log lines are the consumer's

# Each write waits this long for another connection's lock before the consumer checks for a stop request;
# it says it is waiting every LOCK_WARNING_SECONDS, and waits as long as it takes.
BUSY_TIMEOUT_SECONDS = 1.0
LOCK_WARNING_SECONDS = 30.0


def split_batch(records: Iterable[ConsumerRecord], now: datetime) -> tuple[list[QuoteRow], list[db.Rejected]]:
    """Valid quotes, and the messages that are not, each with its reason.

    Whatever goes wrong with one message sets that message aside, never the batch: an error the
    decoder did not foresee would otherwise stop the consumer on the same message at every start.
    """
    rows: list[QuoteRow] = []
    rejected: list[db.Rejected] = []
    limit = future_limit(now)
    for record in records:
        try:
            row = decode_quote(record.value)
            check_not_future(row, limit)
            rows.append(row)
        except InvalidMessage as exc:
            reason = str(exc)
        except Exception as exc:
            log.debug("unforeseen failure decoding %s[%d]@%d", record.topic, record.partition, record.offset,
                      exc_info=True)
            reason = f"cannot be decoded: {type(exc).__name__}: {str(exc)[:200]}"
        else:
            continue
        rejected.append(db.Rejected(record.topic, record.partition, record.offset, record.key, record.value,
                                    reason))
    return rows, rejected


def wait_while_locked(action: Callable[[], T], stop: threading.Event, path: object,
                      warn_every: float = LOCK_WARNING_SECONDS, waiting: Callable[[], None] = lambda: None) -> T:
    """Run `action` until the database's write lock lets it through, saying every `warn_every` s that
    it waits and calling `waiting` between tries. Raise Stopped when asked to stop meanwhile (nothing of
    the batch is stored or committed)."""
    started = time.monotonic()
    warned = 0
    while True:
        try:
            result = action()
        except db.DatabaseBusy:
            if stop.is_set():
                raise Stopped() from None
            waiting()
            waited = time.monotonic() - started
            beat()  # waiting out another connection's lock is work, not a stall (/readyz says it)
            if waited >= (warned + 1) * warn_every:
                warned += 1
                log.warning("database %s has been locked by another connection for %.0f s (an open transaction "
                            "in a sqlite3 shell, a backup?); still waiting, nothing is lost", path, waited)
            continue
        if warned:
            log.info("database %s is writable again after %.0f s; carrying on", path, time.monotonic() - started)
        return result


class QuoteStore:
    """Where each poll batch goes: SQLite, with the alerts its quotes fire (stored in the same
    transaction), and from there to the alerts topic."""

    def __init__(self, connection: sqlite3.Connection, engine: AlertEngine | None = None,
                 outbox: AlertOutbox | None = None, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 path: object = "the database", stop: threading.Event | None = None,
                 metrics: ConsumerMetrics | None = None, turn: AbstractContextManager[object] | None = None,
                 while_locked: Callable[[], None] = lambda: None) -> None:
        self.connection = connection
        self.while_locked = while_locked  # between tries at a locked database (the consumer commits offsets)
        self.turn = turn or contextlib.nullcontext()  # shared with the housekeeping (history/pacing.py)
        self.metrics = metrics
        self.path = path
        self.stop = stop or threading.Event()
        self.clock = clock
        self.stored_log = StoredLog()
        self.engine = engine
        self.outbox = outbox
        self.delivery: NotificationDelivery | None = None  # to NOTIFY_URLS; woken after new alerts

    def store(self, records: list[ConsumerRecord]) -> int:
        """Validate and store one poll batch in one transaction; return the number of new rows."""
        started = time.perf_counter()
        rows, rejected = split_batch(records, self.clock())
        alerts = self.engine.evaluate(rows) if self.engine else []
        # Evaluated once: the engine has moved on past these quotes, so a retry only repeats the write.
        def save() -> int:
            with self.turn:
                return db.save_batch(self.connection, rows, rejected, alerts,
                                     self.outbox.claim() if self.outbox else None)

        stored = wait_while_locked(save, self.stop, self.path, waiting=self.while_locked)
        if self.metrics:
            self.metrics.batch(records, len(rows), stored, rejected, alerts, self.engine.rules if self.engine else (),
                               started)
        for bad in rejected:
            log.warning("set aside message %s[%d]@%d: %s", bad.topic, bad.partition, bad.offset, bad.reason,
                        extra={"partition": bad.partition, "offset": bad.offset})
        self.stored_log.stored(stored, rows)
        if log.isEnabledFor(logging.DEBUG):
            for row in rows:
                log.debug("row %s %s price=%s volume=%s", row.symbol, row.ts, row.price, row.volume)
        for alert in alerts:
            log.warning("ALERT %s", describe_alert(alert))
        if alerts and self.delivery:
            self.delivery.wake()
        if alerts and self.outbox:
            self.outbox.note_new()
            self._publish_alerts(wait=1.0)
        return stored

    def between_polls(self) -> None:
        """Retry alerts the topic has not taken yet, without waiting (cheap when there are none), and
        say what was stored if its line is due."""
        if self.outbox:
            self._publish_alerts()
        self.stored_log.flush()

    def _publish_alerts(self, wait: float = 0.0) -> None:
        assert self.outbox is not None
        published = self.outbox.publish(wait=wait)
        if self.metrics and published:
            self.metrics.alerts_published.inc(published)


