"""The consumer's metrics: what it read, stored, skipped and set aside, how far behind the topic it is,
how long batches take, how old a quote is when its row commits, the alerts and the database file."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from kafka import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

import db
from alerts.outbox import AlertOutbox
from alerts.rules import RULE_KINDS, Rule, rule_kind
from notify.metrics import NotifyMetrics
from service.batch_histogram import BatchHistogram
from streaming.messages import REJECTION_KINDS, AlertRow, rejection_kind

BATCH_SIZES = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000)
BATCH_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LATENCY_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
REJECTIONS = (*(kind for _, kind in REJECTION_KINDS), "missing", "invalid")


def file_bytes(path: Path) -> int:
    """The database with its write-ahead log: what it takes on the disk."""
    total = 0
    for part in (path, path.with_name(path.name + "-wal")):
        with contextlib.suppress(OSError):  # no log yet, or the file is being replaced
            total += part.stat().st_size
    return total


class ConsumerMetrics:
    def __init__(self, registry: CollectorRegistry, db_path: Path, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.messages_read = Counter("stockmon_messages_read", "Kafka messages read", registry=registry)
        self.rows_stored = Counter("stockmon_rows_stored", "New quote rows committed to SQLite", registry=registry)
        self.duplicates = Counter("stockmon_duplicates_skipped", "Valid quotes whose row was already stored "
                                  "(a redelivery or a resend)", registry=registry)
        self.rejected = Counter("stockmon_messages_rejected", "Messages set aside in rejected_messages, by reason",
                                ["reason"], registry=registry)
        for reason in REJECTIONS:
            self.rejected.labels(reason)
        self.lag = Gauge("stockmon_consumer_lag", "Messages in the partition after the consumer's committed "
                         "offset (end offset minus committed)", ["topic", "partition"], registry=registry)
        self.batch_messages = Histogram("stockmon_batch_messages", "Messages per stored poll batch",
                                        buckets=BATCH_SIZES, registry=registry)
        self.batch_seconds = Histogram("stockmon_batch_duration_seconds", "Time to validate and store one batch "
                                       "in its transaction", buckets=BATCH_SECONDS, registry=registry)
        self.ingest_latency = BatchHistogram("stockmon_ingest_latency_seconds", "From a message's Kafka timestamp "
                                             "to the commit of its batch", LATENCY_SECONDS, registry)
        self.alerts_fired = Counter("stockmon_alerts_fired", "Alerts fired, by rule kind", ["kind"],
                                    registry=registry)
        for kind in RULE_KINDS.values():
            self.alerts_fired.labels(kind)
        self.alerts_published = Counter("stockmon_alerts_published", "Alerts the alerts topic acknowledged",
                                        registry=registry)
        self.alerts_unpublished = Gauge("stockmon_alerts_unpublished", "Stored alerts the alerts topic does not "
                                        "have yet", registry=registry)
        size = Gauge("stockmon_database_size_bytes", "The SQLite file and its write-ahead log", registry=registry)
        size.set_function(lambda: file_bytes(db_path))
        self.last_commit = clock()  # before the first: since the start
        since = Gauge("stockmon_last_commit_age_seconds", "Seconds since the consumer last committed a batch "
                      "(since it started, before the first)", registry=registry)
        since.set_function(lambda: max(0.0, self.clock() - self.last_commit))
        self.notify = NotifyMetrics(registry)
        self._lag_at = -1.0
        self._lagging: set[tuple[str, str]] = set()  # the partitions with a lag series

    def batch(self, records: Sequence[ConsumerRecord], valid: int, stored: int, rejected: Sequence[db.Rejected],
              alerts: Sequence[AlertRow], rules: Sequence[Rule], started: float) -> None:
        """One stored batch: `started` is time.perf_counter() before it was split."""
        self.last_commit = now = self.clock()
        self.batch_seconds.observe(time.perf_counter() - started)
        self.batch_messages.observe(len(records))
        self.messages_read.inc(len(records))
        self.rows_stored.inc(stored)
        if valid > stored:
            self.duplicates.inc(valid - stored)
        for bad in rejected:
            self.rejected.labels(rejection_kind(bad.reason)).inc()
        if alerts:
            kinds = {rule.text: rule_kind(rule) for rule in rules}
            for alert in alerts:
                self.alerts_fired.labels(kinds.get(alert.rule, "unknown")).inc()
        now_ms = now * 1000.0
        self.ingest_latency.observe_many([(now_ms - record.timestamp) / 1000.0 for record in records
                                          if record.timestamp is not None and record.timestamp >= 0])

    def turn(self, consumer: KafkaConsumer, outbox: AlertOutbox | None) -> None:
        """The lag per assigned partition and the alerts still to publish, at most once a second. The lag is
        the newest offset the broker told the client of minus the position this consumer stored (and committed)
        up to: each batch is committed before the next poll."""
        if time.monotonic() - self._lag_at < 1.0:
            return
        self._lag_at = time.monotonic()
        if outbox:
            self.alerts_unpublished.set(outbox.unpublished())
        shown = set()
        for partition in consumer.assignment():
            end = consumer.highwater(partition)
            try:
                # Known after the first fetch; before it, position() asks the broker, which may be gone.
                position = consumer.position(partition, timeout_ms=100) if end is not None else None
            except KafkaError:
                position = None
            labels = (partition.topic, str(partition.partition))
            if end is None or position is None:
                shown |= {labels} & self._lagging  # keeps its last figure rather than a gap in the series
            else:
                self.lag.labels(*labels).set(max(0, end - position))
                shown.add(labels)
        for gone in self._lagging - shown:  # revoked in a rebalance: another consumer reports it now
            self.lag.remove(*gone)
        self._lagging = shown
