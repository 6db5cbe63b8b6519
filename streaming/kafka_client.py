"""Kafka connections for both scripts: built from the settings, retried while the broker is not up yet."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError, TopicAlreadyExistsError

from quotesource.limiter import Backoff
from service.heartbeat import beat
from streaming.group_join import keep_rejoins_asked_for

log = logging.getLogger("kafka_client")  # the name its log lines carry
T = TypeVar("T")

TOPIC_PARTITIONS = 3
BOOTSTRAP_TIMEOUT_MS = 5000


class KafkaSettings(Protocol):
    """What a connection needs of the settings (config.Settings has it): the plumbing reads no configuration."""

    bootstrap_servers: str
    topic: str
    group_id: str
    fetch_max_wait_ms: int

    def kafka_security(self) -> dict[str, str]: ...


class Stopped(Exception):
    """The process was asked to stop while it waited for the broker."""


class Unreachable(Exception):
    """The broker did not answer within the time a caller was prepared to wait (--once runs)."""


def describe(exc: BaseException) -> str:
    """A short, one-line description of a Kafka error."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = re.sub(r"^\[Error \d+\] ", "", text)  # kafka-python's error number tells a user nothing
    return f"{type(exc).__name__}: {text}" if text and type(exc).__name__ not in text else (text or type(exc).__name__)


class _LastConnectionFailure(logging.Handler):
    """Keeps the reason of kafka-python's latest failed connection, which its bootstrap timeout omits.

    Without it a refused connection, an unknown host and a wrong password all read
    "Unable to bootstrap"; with it the user sees which.
    """

    PATTERN = re.compile(r"(?:Connection failed|Bootstrap connection to \S+ failed): (?:\[Error \d+\] )?(.*?)"
                         r"(?: \(backoff [\d.]+ secs\))?$")

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reasons: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        match = self.PATTERN.search(record.getMessage())
        if match and len(self.reasons) < 100:
            # "SaslAuthenticationFailedError: SaslAuthenticationFailedError: Authentication failed" -> once
            self.reasons.append(re.sub(r"^(\w+: )\1", r"\1", match.group(1)))

    @property
    def reason(self) -> str | None:
        """The most telling reason: a refused login explains the dropped sockets and timeouts after it."""
        return min(self.reasons, key=vagueness) if self.reasons else None


def vagueness(reason: str) -> int:
    """0 for a reason that says what to fix (login, TLS, name, refused port), 2 for a dropped socket or timeout."""
    if "socket disconnected" in reason or reason.startswith("RequestTimedOutError"):
        return 2
    return 0 if re.search(r"Authenticat|Authoriz|SSL|DNS|ECONNREFUSED", reason) else 1


def _connection_failures() -> _LastConnectionFailure:
    logger = logging.getLogger("kafka.net.manager")
    for handler in logger.handlers:
        if isinstance(handler, _LastConnectionFailure):
            return handler
    handler = _LastConnectionFailure()
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.WARNING:
        # We want these records for ourselves only, not kafka-python's flood on stderr.
        logger.setLevel(logging.WARNING)
        logger.propagate = False
    return handler


def retry_until_connected(connect: Callable[[], T], what: str, servers: str, stop: threading.Event,
                          backoff: Backoff | None = None, deadline: float | None = None,
                          clock: Callable[[], float] = time.monotonic) -> T:
    """Call `connect` until it succeeds, saying once that the broker is not reachable.

    With a `deadline` (on `clock`), raise Unreachable once it has passed instead of retrying on, naming the
    clearest reason any attempt saw: after a refused login the broker drops the socket, and the last
    attempt may see only that.
    """
    backoff = backoff or Backoff(initial=1.0, maximum=30.0)
    failures = 0
    said: int | None = None  # the vagueness of the reason the user was last told
    clearest: str | None = None  # the least vague reason of any attempt
    last_failure = _connection_failures()
    while True:
        beat()  # waiting for the broker is this process's work now, not a stall
        if stop.is_set():
            raise Stopped()
        last_failure.reasons.clear()
        try:
            result = connect()
        except KafkaError as exc:
            failures += 1
            reason = last_failure.reason or describe(exc)
            if clearest is None or vagueness(reason) < vagueness(clearest):
                clearest = reason
            if deadline is not None and clock() >= deadline:
                raise Unreachable(f"Kafka is not reachable at {servers} ({clearest})") from None
            if said is None:
                limit = "" if deadline is None else f" for up to {deadline - clock():.0f} s"
                log.warning("Kafka is not reachable at %s (%s); %s will keep retrying%s", servers, reason, what,
                            limit)
                said = vagueness(reason)
            elif vagueness(reason) < said:
                # A first attempt may only see a dropped socket; the wrong password behind it is worth a line.
                log.warning("Kafka is still not reachable at %s (%s)", servers, reason)
                said = vagueness(reason)
            else:
                log.debug("still no Kafka at %s (attempt %d): %s", servers, failures, reason)
            delay = backoff.next_delay()
            stop.wait(delay if deadline is None else max(0.0, min(delay, deadline - clock())))
            continue
        if failures:
            log.info("Kafka at %s is reachable again after %d failed attempts", servers, failures)
        return result


def create_admin(settings: KafkaSettings) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers.split(","),
                            bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS, client_id="stockmon-admin",
                            **settings.kafka_security())


def ensure_topic(settings: KafkaSettings, topic: str | None = None) -> bool:
    """Create the topic (the quotes topic unless another is named) unless it exists; True when created."""
    topic = topic or settings.topic
    admin = create_admin(settings)
    try:
        if topic in admin.list_topics():
            return False
        admin.create_topics({topic: {"num_partitions": TOPIC_PARTITIONS}}, wait_for_metadata=True)
        log.info("created topic %s with %d partitions", topic, TOPIC_PARTITIONS)
        return True
    except TopicAlreadyExistsError:
        return False
    finally:
        admin.close()


def create_producer(settings: KafkaSettings, **timeouts_ms: int) -> KafkaProducer:
    """A producer that waits for every replica (acks=all) and blocks at most a few seconds when the broker is gone.

    Not kafka-python's idempotent producer: in 3.0.12, once a batch it had sent expired (a broker
    that took the request and then died or hung for longer than the delivery timeout), it dropped
    its producer id and never asked for a new one, so it never sent anything again. Duplicates are
    harmless here instead: the consumer's unique key (symbol, ts) absorbs them. One request in
    flight at a time keeps each symbol's quotes in order through retries.

    `timeouts_ms` replaces the request or delivery timeout (tests reach their expiry in seconds).
    """
    config: dict[str, object] = {
        "bootstrap_servers": settings.bootstrap_servers.split(","),
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
        "client_id": "stockmon-producer",
        # A poll's quotes are sent together and then awaited at once: lingering would only add delay.
        "linger_ms": 0,
        # send() waits this long for metadata or buffer space before raising, so a dead broker
        # cannot hang the poll loop; what fails is kept and sent again later.
        "max_block_ms": 3_000,
        "delivery_timeout_ms": 30_000,
        "request_timeout_ms": 10_000,
        "acks": "all",
        "enable_idempotence": False,
        "max_in_flight_requests_per_connection": 1,
    }
    return KafkaProducer(**{**config, **timeouts_ms, **settings.kafka_security()})


class _OnAssigned(ConsumerRebalanceListener):
    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback

    def on_partitions_revoked(self, revoked: object) -> None:
        pass

    def on_partitions_assigned(self, assigned: object) -> None:
        self.callback()


def create_consumer(settings: KafkaSettings, max_poll_records: int = 2000,
                    on_assigned: Callable[[], None] | None = None) -> KafkaConsumer:
    """A group consumer that never commits by itself: offsets follow the SQLite commit.

    `on_assigned` runs inside poll() whenever the group hands this consumer its partitions.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers.split(","),
        bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
        client_id="stockmon-consumer",
        group_id=settings.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=max_poll_records,
        # A killed consumer's partitions go to its successor after this, not after 45 s.
        session_timeout_ms=10_000,
        heartbeat_interval_ms=2_000,
        # How long the broker may hold a fetch for partitions with nothing new. kafka-python keeps
        # one fetch in flight per broker and leaves out partitions whose records it still holds, so
        # a fetch can name only quiet partitions while the busy ones wait behind it (see the README's
        # "Latency"): this bounds that wait, at the cost of 1000/N empty fetches a second when idle.
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        **settings.kafka_security(),
    )
    keep_rejoins_asked_for(consumer)
    consumer.subscribe([settings.topic], listener=_OnAssigned(on_assigned) if on_assigned else None)
    return consumer


class ConnectionWatch:
    """Says once when a client has had no broker connection for a while, and once when it is back.

    kafka-python reconnects by itself and logs every refused attempt; we silence that and report
    the outage as one line instead, from the client's public `connection-count` metric.
    """

    def __init__(self, client: KafkaConsumer | KafkaProducer, servers: str, grace: float = 3.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.servers = servers
        self.grace = grace
        self.clock = clock
        self._checked_at = -1.0
        self._lost_since: float | None = None
        self._reported = False
        self.connected = True  # as of the last check (read by /readyz from another thread)

    def _connections(self) -> float:
        for group in self.client.metrics().values():
            if "connection-count" in group:
                return float(group["connection-count"])
        return 1.0  # metrics disabled: assume connected rather than raise false alarms

    def check(self, delivered: bool = False) -> None:
        """Call often (each poll); looks at the metric at most once a second, and at once when a poll
        `delivered` messages after a reported loss (a stop right after the return still says it is back)."""
        now = self.clock()
        if now - self._checked_at < 1.0 and not (delivered and self._reported):
            return
        self._checked_at = now
        self.connected = self._connections() > 0
        if self.connected:
            if self._reported:
                log.info("connection to Kafka at %s is back", self.servers)
            self._lost_since, self._reported = None, False
            return
        if self._lost_since is None:
            self._lost_since = now
        elif not self._reported and now - self._lost_since >= self.grace:
            log.warning("lost the connection to Kafka at %s; reconnecting by itself (uncommitted messages "
                        "will be read again, nothing is lost)", self.servers)
            self._reported = True


def close_producer(producer: KafkaProducer, timeout: float) -> None:
    """Close, even with records Kafka never took (the caller keeps its own copy of those).

    kafka-python 3.0.12's close() raises KafkaTimeoutError from its flush when records are still
    unacknowledged, and then never closes: its sender thread lives on and __del__ later prints a
    traceback. So on that failure we force-close the sender ourselves.
    """
    try:
        producer.close(timeout=timeout)
    except KafkaError:
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            sender.force_close()
        producer._closed = True
