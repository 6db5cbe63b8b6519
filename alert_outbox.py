"""Alerts from the `alerts` table to the alerts topic, each until Kafka has acknowledged it.

The table is the outbox: an alert is stored with its quotes in one transaction, and marked
published only once the topic has it. An alert Kafka has not taken (broker down, consumer
stopped) stays marked unpublished and is sent later, at the latest on the next start. A crash
between Kafka's acknowledgement and the mark sends that alert twice; subscribers can tell the copies
apart by (symbol, rule, ts, direction).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.producer.future import FutureRecordMetadata

import db
from kafka_client import describe
from messages import encode_alert, format_time

log = logging.getLogger("consumer")


class AlertOutbox:
    """Publishes the unpublished alerts; call `publish` after each batch and whenever idle."""

    def __init__(self, producer: KafkaProducer, connection: sqlite3.Connection, topic: str,
                 retry_every: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.producer = producer
        self.connection = connection
        self.topic = topic
        self.retry_every = retry_every
        self.clock = clock
        self.in_flight: dict[int, FutureRecordMetadata] = {}
        self._look = True  # unpublished alerts may be waiting (from before a restart, say)
        self._next_try = 0.0
        self._behind = False  # a warning about undelivered alerts is out

    def note_new(self) -> None:
        """New alerts were stored: publish them at the next call, without waiting for a retry time."""
        self._look, self._next_try = True, 0.0

    def publish(self, wait: float = 0.0) -> int:
        """Send what is waiting, wait up to `wait` s for acknowledgements; return how many were marked."""
        if self._look and self.clock() >= self._next_try:
            self._send_waiting()
        if self.in_flight and wait > 0:
            with contextlib.suppress(KafkaTimeoutError):
                self.producer.flush(timeout=wait)
        return self._collect()

    def _send_waiting(self) -> None:
        waiting = [(alert_id, alert) for alert_id, alert in db.alerts_to_publish(self.connection)
                   if alert_id not in self.in_flight]
        for alert_id, alert in waiting:
            try:
                self.in_flight[alert_id] = self.producer.send(self.topic, key=alert.symbol.encode(),
                                                              value=encode_alert(alert))
            except KafkaError as exc:  # no metadata or no buffer space within max_block_ms
                self._fall_behind(describe(exc))
                return
        self._look = False

    def _collect(self) -> int:
        done = [alert_id for alert_id, future in self.in_flight.items() if future.is_done]
        published = [alert_id for alert_id in done if self.in_flight[alert_id].succeeded()]
        failure = next((self.in_flight[alert_id].exception for alert_id in done
                        if self.in_flight[alert_id].failed()), None)
        for alert_id in done:
            del self.in_flight[alert_id]
        if published:
            db.mark_alerts_published(self.connection, published, format_time(datetime.now(UTC)))
            if self._behind and not self.in_flight:
                log.info("alerts are reaching topic %s again", self.topic)
                self._behind = False
        if failure is not None:
            self._fall_behind(describe(failure))
        return len(published)

    def _fall_behind(self, reason: str) -> None:
        """Keep the alerts for a later try, and say so once per outage."""
        self._look, self._next_try = True, self.clock() + self.retry_every
        if not self._behind:
            log.warning("alerts not yet on topic %s (%s); they are kept and sent again every %.0f s",
                        self.topic, reason, self.retry_every)
            self._behind = True

    def unpublished(self) -> int:
        """How many stored alerts the topic does not have yet."""
        return db.count_unpublished_alerts(self.connection)
