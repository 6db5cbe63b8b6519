"""Every alert to each channel its rule routes it to, at least once, in order, without holding up the quotes.

The alerts table is the outbox and `notify_channels` holds each channel's place in it (the last alert
id delivered). A thread of its own, with its own connection, walks each channel forward one alert
at a time and moves the place only after the service accepted the message: a crash sends at most
the alert in flight again. A channel that is down is retried with back-off (1 s doubling to a
minute) and said once per outage; one that refuses us (a bad token) is an ERROR naming it.
Several consumers on one database share a channel through a claim with a lease, like the alerts
topic's outbox: one delivers at a time, so no alert reaches a channel twice. An alert a channel does
not get (its rule routes elsewhere, alerts/routes.py) moves the channel's place like a delivered one;
a channel in its quiet hours or waiting for its digest keeps its place until the summary is accepted
(notify/outgoing.py says what each message holds).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import db
from alerts.outbox import CLAIM_LEASE, is_gone
from alerts.routes import Routes
from common.timestamps import format_time
from market.calendar import TradingCalendar
from notify.channels import Channel, Sent, send
from notify.metrics import NotifyMetrics
from notify.outgoing import Message, digest, digest_due, each_alert
from streaming.messages import AlertRow

log = logging.getLogger("consumer")
LONGEST_BACKOFF = 60.0
BATCH = 50
SUMMARY_MOST = 5000  # the most alerts a quiet-hours summary or a digest reads at once
LONGEST_HOLD = 60.0  # a held channel looks again at least this often (a SIGHUP, a clock change)


# This part's own queries, against the schema in db.py.
def register_channels(connection: sqlite3.Connection, channels: Sequence[str]) -> None:
    """Channels seen for the first time start after the newest alert: a new channel gets what comes next,
    not the history."""
    try:
        connection.executemany("INSERT OR IGNORE INTO notify_channels (channel, last_alert_id) "
                               "SELECT ?, coalesce(max(id), 0) FROM alerts", [(channel,) for channel in channels])
    except sqlite3.Error as exc:
        raise db.write_failure(exc, "registering notification channels failed") from None


def channels_behind(connection: sqlite3.Connection) -> set[str]:
    """The channels some stored alert has not reached yet (a read: nothing to claim when all are done)."""
    return {row[0] for row in connection.execute(
        "SELECT channel FROM notify_channels WHERE last_alert_id < (SELECT coalesce(max(id), 0) FROM alerts)")}


def claim_channel(connection: sqlite3.Connection, channel: str, claim: db.Claim, lapsed_before: str) -> int | None:
    """Take (or renew) the channel for this process and return where its delivery stands; None while
    another process holds it."""
    try:
        row = connection.execute(
            """UPDATE notify_channels SET claimed_by = :owner, claimed_at = :when
               WHERE channel = :channel AND (claimed_by IS NULL OR claimed_by = :owner OR claimed_at < :lapsed)
               RETURNING last_alert_id""",
            {"owner": claim.owner, "when": claim.when, "channel": channel, "lapsed": lapsed_before}).fetchone()
    except sqlite3.Error as exc:
        raise db.write_failure(exc, "claiming a notification channel failed") from None
    return row[0] if row else None


def alerts_after(connection: sqlite3.Connection, after_id: int, limit: int) -> list[tuple[int, AlertRow]]:
    """The alerts stored after `after_id`, oldest first."""
    return [(row[0], AlertRow(*row[1:])) for row in connection.execute(
        f"SELECT id, {db.ALERT_COLUMNS} FROM alerts WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))]


def mark_notified(connection: sqlite3.Connection, channel: str, alert_id: int, owner: str) -> bool:
    """Move the channel past `alert_id`, if this process still holds it."""
    try:
        return connection.execute("UPDATE notify_channels SET last_alert_id = ? WHERE channel = ? AND claimed_by = ?",
                                  (alert_id, channel, owner)).rowcount == 1
    except sqlite3.Error as exc:
        raise db.write_failure(exc, "recording a notification failed") from None


def channel_backlog(connection: sqlite3.Connection, channel: str, skipped_rules: Sequence[str] = ()) -> int:
    """How many stored alerts the channel has not had yet, leaving out those of the rules it does not get."""
    marks = ", ".join("?" * len(skipped_rules))
    row = connection.execute(
        "SELECT count(*) FROM alerts, notify_channels WHERE channel = ? AND id > last_alert_id"
        + (f" AND rule NOT IN ({marks})" if skipped_rules else ""), (channel, *skipped_rules)).fetchone()
    return row[0]


def channel_claimants(connection: sqlite3.Connection) -> list[str]:
    return [row[0] for row in connection.execute(
        "SELECT DISTINCT claimed_by FROM notify_channels WHERE claimed_by IS NOT NULL")]


def release_channels(connection: sqlite3.Connection, owner: str) -> None:
    try:
        connection.execute("UPDATE notify_channels SET claimed_by = NULL, claimed_at = NULL WHERE claimed_by = ?",
                           (owner,))
    except sqlite3.Error as exc:
        raise db.write_failure(exc, "releasing notification channels failed") from None


@dataclass
class ChannelState:
    channel: Channel
    failures: int = 0
    next_try: float = 0.0
    down_since: float | None = None  # when the outage began; None while delivering
    held_until: datetime | None = None  # the end of the quiet hours or the digest time it waits for, once said


class NotificationDelivery:
    """`start()`, then `wake()` after storing alerts; `stop()` at the end (it finishes the send in flight)."""

    def __init__(self, path: Path, channels: tuple[Channel, ...], owner: str, zone: ZoneInfo | None = None,
                 sender: Callable[[Channel, str, str], Sent] = send,
                 clock: Callable[[], float] = time.monotonic, metrics: NotifyMetrics | None = None,
                 routes: Routes | None = None, now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 calendar: TradingCalendar | None = None) -> None:
        self.path = path
        self.routes = routes or Routes()
        self.now = now  # the wall clock of quiet hours and digests (tests inject one)
        self._calendar = calendar
        self.metrics = metrics
        self._counted_at = -1.0
        self.states = [ChannelState(channel) for channel in channels]
        self.owner = owner
        self.zone = zone
        self.sender = sender
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notifications", daemon=True)

    def start(self) -> None:
        connection = db.connect(self.path)
        try:
            register_channels(connection, [state.channel.key for state in self.states])
            # A consumer restarted after a crash carries on at once, not a lease later.
            for owner in channel_claimants(connection):
                if is_gone(owner):
                    release_channels(connection, owner)
        finally:
            connection.close()
        log.info("notifications go to %s", ", ".join(state.channel.name for state in self.states))
        if self.metrics:
            self.metrics.channels([state.channel.key for state in self.states])
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        connection = db.connect(self.path, busy_timeout=1.0)
        try:
            while not self._stop.is_set():
                self._count_backlog(connection)
                behind = channels_behind(connection)  # a read; the claim below is a write
                more = False
                for state in self.states:
                    if self._stop.is_set():
                        break
                    if state.channel.key in behind and self.clock() >= state.next_try:
                        more |= self._deliver(connection, state)
                if not more:
                    self._wake.wait(self._next_wait())
                    self._wake.clear()
        except Exception as exc:  # never silently: the consumer goes on storing, the alerts wait in the table
            log.debug("notification delivery failed", exc_info=True)
            log.error("notification delivery stopped (%s: %s); undelivered alerts are sent after a restart",
                      type(exc).__name__, exc)
        finally:
            with contextlib.suppress(db.DatabaseError):  # else the lease frees them
                release_channels(connection, self.owner)
            connection.close()

    def _count_backlog(self, connection: sqlite3.Connection) -> None:
        """The backlog gauges, at most once a second (a count per channel over the alerts it has not had)."""
        if not self.metrics or self.clock() - self._counted_at < 1.0:
            return
        self._counted_at = self.clock()
        for state in self.states:
            skipped = self.routes.skipped_by(state.channel.label)
            self.metrics.backlog.labels(state.channel.key).set(channel_backlog(connection, state.channel.key,
                                                                               skipped))

    def _next_wait(self) -> float:
        """Until the first retry is due, and at most a second (alerts stored by other consumers); new
        alerts of this one wake the thread at once."""
        now = self.clock()
        return max(0.05, min([1.0, *(state.next_try - now for state in self.states if state.next_try > now)]))

    def _deliver(self, connection: sqlite3.Connection, state: ChannelState) -> bool:
        """Send what the channel has not had yet, up to BATCH messages; True when there may be more."""
        channel, now = state.channel, self.now()
        if channel.quiet and channel.quiet.holds(now):
            self._hold(state, channel.quiet.ends_after(now), now, "quiet hours")
            return False
        claim = db.Claim(self.owner, format_time(datetime.now(UTC)))
        try:
            place = claim_channel(connection, channel.key, claim, format_time(datetime.now(UTC) - CLAIM_LEASE))
            if place is None:
                return False  # another consumer delivers to this channel now
            most = SUMMARY_MOST if channel.quiet or channel.digest else BATCH
            waiting = alerts_after(connection, place, most)
            if not waiting:
                return False
            if channel.digest:
                due = digest_due(channel, self.routes, waiting, self.calendar)
                if due is not None and now < due:
                    self._hold(state, due, now, f"the digest {channel.digest.text()}")
                    return False
                messages = [digest(channel, self.routes, waiting, due)] if due else [Message(waiting[-1][0])]
            else:
                messages = each_alert(channel, self.routes, waiting)
            for message in messages:
                if self._stop.is_set() or not self._send(connection, state, message):
                    return False
            return len(waiting) == most or bool(channel.digest and messages and messages[-1].up_to < waiting[-1][0])
        except db.DatabaseBusy:
            state.next_try = self.clock() + 1.0
            return False

    @property
    def calendar(self) -> TradingCalendar:
        if self._calendar is None:
            self._calendar = TradingCalendar.nyse()
        return self._calendar

    def _send(self, connection: sqlite3.Connection, state: ChannelState, message: Message) -> bool:
        """Send one message (none for alerts routed elsewhere) and move the channel's place past it."""
        if message.alerts:
            sent = self.sender(state.channel, message.title(), message.body(self.zone))
            if not sent.ok:
                self._failed(state, sent)
                return False
        if not mark_notified(connection, state.channel.key, message.up_to, self.owner):
            return False  # the claim lapsed meanwhile (a stall): another process carries on
        if message.alerts:
            if message.summary_of:
                log.info("notifications to %s: %d alert(s) sent as one summary (%s)", state.channel.name,
                         len(message.alerts), message.summary_of)
            self._delivered(state, len(message.alerts))
        return True

    def _hold(self, state: ChannelState, until: datetime, now: datetime, why: str) -> None:
        """Look again when the hold ends (at least every LONGEST_HOLD), saying it once per hold."""
        state.next_try = self.clock() + min(LONGEST_HOLD, max(0.05, (until - now).total_seconds()))
        if state.held_until != until:
            state.held_until = until
            log.info("notifications to %s wait for %s, until %s", state.channel.name, why,
                     until.astimezone(self.zone).strftime("%Y-%m-%d %H:%M %Z"))

    def _failed(self, state: ChannelState, sent: Sent) -> None:
        if self.metrics:
            self.metrics.failures.labels(state.channel.key).inc()
        state.failures += 1
        delay = min(LONGEST_BACKOFF, 2.0 ** (state.failures - 1))
        state.next_try = self.clock() + delay
        if state.down_since is not None:
            return  # said once per outage
        state.down_since = self.clock()
        if sent.rejected:
            log.error("notifications to %s are refused: %s; check the URL in NOTIFY_URLS (alerts are kept and "
                      "retried with back-off)", state.channel.name, sent.reason)
        else:
            log.warning("notifications to %s cannot be delivered (%s); alerts are kept and retried with back-off "
                        "up to every %.0f s", state.channel.name, sent.reason, LONGEST_BACKOFF)

    def _delivered(self, state: ChannelState, alerts: int = 1) -> None:
        if self.metrics:
            self.metrics.delivered.labels(state.channel.key).inc(alerts)
        if state.down_since is not None:
            log.info("notifications to %s are delivered again after %s", state.channel.name,
                     timedelta(seconds=round(self.clock() - state.down_since)))
            state.down_since = None
        state.failures = 0
        state.next_try = 0.0
