"""Alerts from the `alerts` table to the alerts topic, each until Kafka has acknowledged it.

The table is the outbox: an alert is stored with its quotes in one transaction, and marked
published only once the topic has it. An alert Kafka has not taken (broker down, consumer
stopped) stays marked unpublished and is sent later, at the latest on the next start. A crash
between Kafka's acknowledgement and the mark sends that alert twice; subscribers can tell the copies
apart by (symbol, rule, ts, direction).

Several consumers may share one database (a failover pair). Each alert is claimed by one process
(the one that stored it, or the first to claim it afterwards) and only that process sends it. A
claim is renewed each time its holder looks at the outbox and lapses after CLAIM_LEASE, so the
alerts of a process that died are sent by another.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.producer.future import FutureRecordMetadata

import db
from common.timestamps import format_time
from streaming.kafka_client import describe
from streaming.messages import AlertRow, encode_alert

log = logging.getLogger("consumer")
# A live holder renews its claims every `retry_every` seconds; only a dead or stalled one lets them lapse.
CLAIM_LEASE = timedelta(seconds=30)


def process_identity() -> str:
    """Names this process in the claims it makes: host, pid, and a nonce against pid reuse."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def is_gone(owner: str) -> bool:
    """True when `owner` was a process on this host that no longer runs (a crashed consumer): its claims
    need not lapse first. Anything uncertain (another host, a reused pid) counts as still there."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


# This part's own queries, against the schema in db.py.
def claim_alerts(connection: sqlite3.Connection, claim: db.Claim, lapsed_before: str,
                 limit: int = 500) -> list[tuple[int, AlertRow]]:
    """Claim the unpublished alerts no other process holds (or whose claim lapsed before `lapsed_before`),
    renewing this process's own claims; return them, oldest first.

    One UPDATE in one write transaction: two consumers on one database never both get an alert.
    """
    try:
        claimed = connection.execute(
            f"""UPDATE alerts SET claimed_by = :owner, claimed_at = :when
                WHERE id IN (SELECT id FROM alerts WHERE published_at IS NULL
                             AND (claimed_by IS NULL OR claimed_by = :owner OR claimed_at < :lapsed)
                             ORDER BY id LIMIT :limit)
                RETURNING id, {db.ALERT_COLUMNS}""",
            {"owner": claim.owner, "when": claim.when, "lapsed": lapsed_before, "limit": limit}).fetchall()
    except sqlite3.Error as exc:
        raise db.write_failure(exc, "claiming alerts failed") from None
    return sorted((row[0], AlertRow(*row[1:])) for row in claimed)


def mark_alerts_published(connection: sqlite3.Connection, ids: Sequence[int], when: str) -> None:
    """Remember that the alerts topic has these alerts."""
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany("UPDATE alerts SET published_at = ? WHERE id = ?", [(when, i) for i in ids])
        connection.execute("COMMIT")
    except sqlite3.Error as exc:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise db.write_failure(exc, "writing to the database failed") from None


def claimants_of_unpublished_alerts(connection: sqlite3.Connection) -> list[str]:
    """The processes holding claims on alerts not yet published."""
    return [row[0] for row in connection.execute(
        "SELECT DISTINCT claimed_by FROM alerts WHERE published_at IS NULL AND claimed_by IS NOT NULL")]


def release_claims(connection: sqlite3.Connection, owner: str) -> int:
    """Drop the claims of a process known to be gone, so its alerts are sent without waiting for the lease."""
    try:
        return connection.execute("UPDATE alerts SET claimed_by = NULL, claimed_at = NULL "
                                  "WHERE published_at IS NULL AND claimed_by = ?", (owner,)).rowcount
    except sqlite3.Error as exc:
        raise db.write_failure(exc, "releasing alert claims failed") from None


def count_unpublished_alerts(connection: sqlite3.Connection) -> int:
    """Stored alerts the alerts topic does not have yet."""
    return connection.execute("SELECT count(*) FROM alerts WHERE published_at IS NULL").fetchone()[0]


class AlertOutbox:
    """Publishes the unpublished alerts; call `publish` after each batch and whenever idle."""

    def __init__(self, producer: KafkaProducer, connection: sqlite3.Connection, topic: str,
                 retry_every: float = 5.0, clock: Callable[[], float] = time.monotonic,
                 owner: str | None = None, wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.producer = producer
        self.connection = connection
        self.topic = topic
        self.retry_every = retry_every
        self.clock = clock
        self.owner = owner or process_identity()
        self.wall_clock = wall_clock
        self.in_flight: dict[int, FutureRecordMetadata] = {}
        self._next_try = 0.0  # when to look at the table again: at once (alerts from before a restart, say)
        self._behind = False  # a warning about undelivered alerts is out
        self._to_mark: list[int] = []  # acknowledged, but the table was locked when we went to mark them
        self._release_claims_of_the_gone()

    def _release_claims_of_the_gone(self) -> None:
        """A consumer restarted after a crash sends what its previous run held at once, not a lease later."""
        for owner in claimants_of_unpublished_alerts(self.connection):
            if is_gone(owner):
                with contextlib.suppress(db.DatabaseBusy):  # then the lease frees them
                    released = release_claims(self.connection, owner)
                    log.info("%d unpublished alert(s) of a consumer that is gone (%s) are sent by this one",
                             released, owner)

    def claim(self) -> db.Claim:
        """This process's claim, as of now: stored with each alert it fires."""
        return db.Claim(self.owner, format_time(self.wall_clock()))

    def note_new(self) -> None:
        """New alerts were stored: publish them at the next call, without waiting for a retry time."""
        self._next_try = 0.0

    def publish(self, wait: float = 0.0) -> int:
        """Send what is waiting, wait up to `wait` s for acknowledgements; return how many were marked.

        The table is looked at after new alerts and every `retry_every` s (cheap: a partial index holds
        only the unpublished), which renews this process's claims and takes over lapsed ones.
        """
        if self.clock() >= self._next_try:
            self._next_try = self.clock() + self.retry_every
            self._send_waiting()
        if self.in_flight and wait > 0:
            with contextlib.suppress(KafkaTimeoutError):
                self.producer.flush(timeout=wait)
        return self._collect()

    def _send_waiting(self) -> None:
        claim = self.claim()
        lapsed = format_time(datetime.fromisoformat(claim.when) - CLAIM_LEASE)
        try:
            claimed = claim_alerts(self.connection, claim, lapsed)
        except db.DatabaseBusy:
            return  # another writer holds the table; the next look claims them
        waiting = [(alert_id, alert) for alert_id, alert in claimed
                   if alert_id not in self.in_flight and alert_id not in self._to_mark]
        for alert_id, alert in waiting:
            try:
                self.in_flight[alert_id] = self.producer.send(self.topic, key=alert.symbol.encode(),
                                                              value=encode_alert(alert))
            except KafkaError as exc:  # no metadata or no buffer space within max_block_ms
                self._fall_behind(describe(exc))
                return

    def _collect(self) -> int:
        done = [alert_id for alert_id, future in self.in_flight.items() if future.is_done]
        published = [alert_id for alert_id in done if self.in_flight[alert_id].succeeded()]
        failure = next((self.in_flight[alert_id].exception for alert_id in done
                        if self.in_flight[alert_id].failed()), None)
        for alert_id in done:
            del self.in_flight[alert_id]
        self._to_mark += published
        marked = self._mark_acknowledged()
        if marked and self._behind and not self.in_flight:
            log.info("alerts are reaching topic %s again", self.topic)
            self._behind = False
        if failure is not None:
            self._fall_behind(describe(failure))
        return marked

    def _mark_acknowledged(self) -> int:
        """Mark what Kafka acknowledged; with the table locked, keep it for a later call (never resent)."""
        if not self._to_mark:
            return 0
        try:
            mark_alerts_published(self.connection, self._to_mark, format_time(self.wall_clock()))
        except db.DatabaseBusy:
            return 0
        marked, self._to_mark = len(self._to_mark), []
        return marked

    def _fall_behind(self, reason: str) -> None:
        """Keep the alerts for a later try, and say so once per outage."""
        self._next_try = self.clock() + self.retry_every
        if not self._behind:
            log.warning("alerts not yet on topic %s (%s); they are kept and sent again every %.0f s",
                        self.topic, reason, self.retry_every)
            self._behind = True

    def unpublished(self) -> int:
        """How many stored alerts the topic does not have yet."""
        return count_unpublished_alerts(self.connection)
