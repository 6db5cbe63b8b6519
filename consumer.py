"""Store every quote from Kafka in SQLite exactly once.

Each poll batch is validated and written in one SQLite transaction (bad messages set aside in
`rejected_messages`); its Kafka offsets are committed once that transaction is on disk (the WAL is
synced beside the storing, so a slow disk delays the offsets, not the quotes). A crash or a power
cut at any point therefore redelivers only batches not yet synced, and the unique key on
(symbol, ts) absorbs them.
The alert rules (ALERT_RULES) are evaluated on each new quote; the alerts they fire are stored in
the same transaction and then published to the alerts topic.

    python consumer.py                 # run until Ctrl-C / SIGTERM
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
import threading
import time
from collections.abc import Callable

from kafka import KafkaConsumer
from kafka.errors import CommitFailedError, KafkaError

import db
from alerts.engine import AlertEngine
from alerts.outbox import AlertOutbox, count_unpublished_alerts, process_identity
from alerts.routes import Routes
from common.cli import ExitCode, install_stop_handlers, print_error, run_guarded
from config import Settings, add_common_arguments, settings_epilog, settings_from_args
from history.housekeeper import Housekeeper
from history.vacuum import convert_to_incremental
from ingest.durable_offsets import CHECKPOINT_SECONDS, DurableOffsets, Offsets, next_offsets
from ingest.metrics import ConsumerMetrics
from ingest.readiness import ConsumerReadiness
from ingest.reload import RuleReloader
from ingest.store import BUSY_TIMEOUT_SECONDS, QuoteStore
from notify.channels import Channel, ChannelError, check_channels
from notify.check import notify_test
from notify.delivery import NotificationDelivery
from service.heartbeat import beat
from service.listener import ListenerError
from service.registry import new_registry
from service.start import start_listener
from streaming.fetch_wait import FetchWait
from streaming.kafka_client import (
    ConnectionWatch,
    Stopped,
    close_producer,
    create_consumer,
    create_producer,
    describe,
    ensure_topic,
    retry_until_connected,
)

log = logging.getLogger("consumer")


def commit_offsets(consumer: KafkaConsumer, offsets: Offsets | None, wait: bool = True) -> None:
    """Commit these offsets (None: all the consumer has read). A failure is harmless: those messages
    come again and are ignored.

    In steady state the commit is asynchronous (no round trip per batch); a commit lost to a crash
    only means a redelivery. The last one, on the way out, waits. Offsets of partitions this consumer
    no longer owns are left out: another member has them now and commits its own.
    """
    if offsets is not None:
        owned = consumer.assignment()
        offsets = {partition: offset for partition, offset in offsets.items() if partition in owned}
        if not offsets:
            return
    if not wait:
        consumer.commit_async(offsets, callback=_log_async_commit)
        return
    try:
        consumer.commit(offsets)
    except CommitFailedError:
        log.warning("offset commit refused after a group rebalance; the batch will be redelivered "
                    "and ignored as a duplicate")
    except KafkaError as exc:
        log.warning("offset commit failed (%s); the batch will be redelivered and ignored as a duplicate",
                    describe(exc))


def _log_async_commit(offsets: object, result: object) -> None:
    if isinstance(result, Exception):
        log.debug("asynchronous offset commit failed (%s); a later commit covers it", describe(result))


def store_behind_the_disk(connection: sqlite3.Connection, path: str) -> DurableOffsets:
    """Commits on `connection` return before the disk has them; the DurableOffsets returned (started)
    syncs them, says which offsets may then be committed, and checkpoints the WAL."""
    db.commit_without_fsync(connection)
    return DurableOffsets(path, checkpoint_every=CHECKPOINT_SECONDS).start()


def poll_and_store(consumer: KafkaConsumer, store: QuoteStore, durable: DurableOffsets,
                   timeout_ms: int = 500) -> tuple[int, int]:
    """One cycle: poll a batch, store it (waiting out a lock), and commit the offsets of the batches
    now on disk (this one's follow once its WAL is synced). Returns (messages seen, new rows)."""
    try:
        batches = consumer.poll(timeout_ms=timeout_ms)
    except KafkaError as exc:
        # kafka-python 3.0.12 lets a refused reconnection escape poll() while it looks for the group
        # coordinator. Nothing was fetched: wait as a poll would have and try again (the
        # ConnectionWatch says once that the broker is gone).
        log.debug("poll failed: %s", describe(exc))
        time.sleep(timeout_ms / 1000)
        return 0, 0
    records = [record for partition_records in batches.values() for record in partition_records]
    stored = 0
    if records:
        stored = store.store(records)
        durable.written(next_offsets(records))
    commit_offsets(consumer, durable.take(), wait=False)
    return len(records), stored


def consume(consumer: KafkaConsumer, store: QuoteStore, durable: DurableOffsets, stop: threading.Event,
            watch: ConnectionWatch, idle_exit: float | None = None,
            between_batches: Callable[[], None] = lambda: None, working: Callable[[], bool] = lambda: False) -> int:
    """Poll, store, commit until stopped (or idle for `idle_exit` seconds); return rows stored.
    `between_batches` runs after each cycle (a SIGHUP's reload of the rules); while `working()` (the
    housekeeping's purge) the consumer is not idle, so --idle-exit leaves no purge half done."""
    total = 0
    last_message = time.monotonic()
    fetch_wait = FetchWait(consumer)
    while not stop.is_set():
        beat()
        between_batches()
        try:
            seen, stored = poll_and_store(consumer, store, durable)
        except Stopped:
            # That batch is neither stored nor handed to `durable`: it is read again at the next start.
            log.info("stopped while the database was locked; the batch is read again at the next start")
            break
        fetch_wait.after_poll(seen)
        watch.check(delivered=bool(seen))
        store.between_polls()
        total += stored
        if seen:
            last_message = time.monotonic()
        elif not consumer.assignment():
            last_message = time.monotonic()  # still joining the group: not idle yet
        elif working():
            last_message = time.monotonic()
        elif idle_exit is not None and time.monotonic() - last_message >= idle_exit:
            log.info("no message for %.0f s; stopping", idle_exit)
            break
    commit_offsets(consumer, durable.finish())
    return total


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="consumer", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Store every quote from the Kafka topic in SQLite, exactly once.",
        epilog=settings_epilog())
    parser.add_argument("--db", dest="DB_PATH", metavar="PATH", help="SQLite database file (DB_PATH)")
    parser.add_argument("--group-id", dest="KAFKA_GROUP_ID", metavar="ID", help="consumer group (KAFKA_GROUP_ID)")
    parser.add_argument("--idle-exit", type=float, metavar="SECONDS",
                        help="exit once no message has arrived for this long and no purge is under way "
                             "(batch jobs, tests)")
    parser.add_argument("--notify-test", nargs="?", const="", metavar="NAME",
                        help="send a test message to every NOTIFY_URLS channel (or only the one named NAME), "
                             "print each result and exit (1 if any failed)")
    add_common_arguments(parser)
    return parser


def open_consumer(settings: Settings, stop: threading.Event, engine: AlertEngine | None) -> KafkaConsumer:
    retry_until_connected(lambda: ensure_topic(settings), "the consumer", settings.bootstrap_servers, stop)
    # After a rebalance this consumer may own symbols another one stored since: reload their state.
    on_assigned = engine.forget if engine else None
    return retry_until_connected(lambda: create_consumer(settings, on_assigned=on_assigned), "the consumer",
                                 settings.bootstrap_servers, stop)


def open_alert_outbox(settings: Settings, connection: sqlite3.Connection,
                      stop: threading.Event) -> AlertOutbox | None:
    """A producer for the alerts topic, when there are rules or alerts still to publish."""
    if not settings.alert_rules and not count_unpublished_alerts(connection):
        return None
    retry_until_connected(lambda: ensure_topic(settings, settings.alerts_topic), "the consumer",
                          settings.bootstrap_servers, stop)
    producer = retry_until_connected(lambda: create_producer(settings), "the consumer",
                                     settings.bootstrap_servers, stop)
    return AlertOutbox(producer, connection, settings.alerts_topic)


def announce_rules(settings: Settings) -> None:
    if not settings.alert_rules:
        return
    log.info("alert rules: %s (alerts go to topic %s)",
             ", ".join(settings.alert_routes.describe(rule) for rule in settings.alert_rules), settings.alerts_topic)
    for rule in settings.alert_rules:
        if rule.symbol is not None and rule.symbol not in settings.symbols:
            log.warning("alert rule %s names %s, which is not in STOCK_SYMBOLS; it fires only if quotes "
                        "for %s arrive from elsewhere", rule.text, rule.symbol, rule.symbol)


def close_alert_outbox(outbox: AlertOutbox) -> None:
    """Give Kafka a last chance at the waiting alerts; what it does not take is sent at the next start."""
    try:
        outbox.publish(wait=3.0)
        left = outbox.unpublished()
        if left:
            log.warning("%d alert(s) not yet on topic %s; they are kept and sent at the next start",
                        left, outbox.topic)
    finally:
        close_producer(outbox.producer, timeout=3.0)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """The script proper, once its settings are known to be good."""
    try:
        connection = db.connect(settings.db_path, busy_timeout=BUSY_TIMEOUT_SECONDS)
    except db.DatabaseError as exc:
        print_error("consumer", str(exc))
        return ExitCode.STORAGE
    try:
        convert_to_incremental(connection, settings.db_path)
    except sqlite3.Error as exc:  # a full disk: VACUUM needs room for a copy
        print_error("consumer", f"cannot convert {settings.db_path} to incremental vacuum: {exc}")
        connection.close()
        return ExitCode.STORAGE
    try:
        channels = check_channels(settings.notify_channels)
    except ChannelError as exc:
        print_error("consumer", f"NOTIFY_URLS: {exc}")
        connection.close()
        return ExitCode.BAD_CONFIG
    registry = new_registry() if settings.metrics_address else None
    metrics = ConsumerMetrics(registry, settings.db_path) if registry else None
    readiness = ConsumerReadiness(settings.bootstrap_servers, settings.topic, settings.group_id, settings.db_path)
    try:
        listener = start_listener(settings.metrics_address, settings.metrics_token, registry, readiness.health())
    except ListenerError as exc:
        print_error("consumer", f"METRICS_ADDRESS: {exc}")
        connection.close()
        return ExitCode.BAD_CONFIG
    try:
        return consume_until_stopped(settings, args, connection, channels, metrics, readiness)
    finally:
        if listener:
            listener.stop()


def consume_until_stopped(settings: Settings, args: argparse.Namespace, connection: sqlite3.Connection,
                          channels: tuple[Channel, ...], metrics: ConsumerMetrics | None,
                          readiness: ConsumerReadiness) -> int:
    """Consume, store and alert until asked to stop (or idle for --idle-exit), then close everything."""
    stop = threading.Event()
    install_stop_handlers(stop)
    announce_rules(settings)
    # An engine even without rules: a SIGHUP may bring some, and a rebalance must reach it.
    engine = AlertEngine(settings.alert_rules, connection)
    for line in engine.rules_holding_now():
        log.info("alert rule %s", line)
    outbox = None
    try:
        outbox = open_alert_outbox(settings, connection, stop)
        consumer = open_consumer(settings, stop, engine)
    except Stopped:
        if outbox:  # stopped while waiting for the consumer's connection: the alerts wait in the table
            close_producer(outbox.producer, timeout=3.0)
        return ExitCode.OK
    log.info("consuming %s as group %s into %s", settings.topic, settings.group_id, settings.db_path)
    turn = threading.Lock()  # one writer at a time in this process: a batch, or a housekeeping step
    durable = store_behind_the_disk(connection, settings.db_path)
    # While a batch waits for another connection's lock, the batches before it on disk are committed.
    store = QuoteStore(connection, engine, outbox, path=settings.db_path, stop=stop, metrics=metrics, turn=turn,
                       while_locked=lambda: commit_offsets(consumer, durable.take(), wait=False))
    owner = outbox.owner if outbox else process_identity()

    def switch_channels(to: tuple[Channel, ...], routes: Routes) -> None:
        """Deliver to these channels by these routes from now on (at start, and after a SIGHUP changed
        NOTIFY_URLS or the routes in ALERT_RULES)."""
        if store.delivery:
            store.delivery.stop()
        store.delivery = NotificationDelivery(settings.db_path, to, owner, metrics=metrics.notify if metrics else None,
                                              routes=routes) if to else None
        if store.delivery:
            store.delivery.start()

    reloader = RuleReloader(args, store, lambda fresh: open_alert_outbox(fresh, connection, stop), announce_rules,
                            settings.notify_channels, settings.alert_routes, switch_channels)
    reloader.install()
    housekeeper = Housekeeper(settings.db_path, lambda: db.connect(settings.db_path, busy_timeout=1.0),
                              settings.retention, turn=turn)
    try:
        switch_channels(channels, settings.alert_routes)
        housekeeper.start()
        readiness.watch = watch = ConnectionWatch(consumer, settings.bootstrap_servers)

        def between_batches() -> None:
            reloader.reload_if_asked()
            readiness.assigned = tuple(consumer.assignment())
            if metrics:
                metrics.turn(consumer, store.outbox)

        total = consume(consumer, store, durable, stop, watch, args.idle_exit, between_batches,
                        housekeeper.working)
    except db.DatabaseError as exc:
        # Offsets of the failed batch were not committed: it is redelivered after a restart.
        print_error("consumer", str(exc))
        return ExitCode.STORAGE
    finally:
        durable.stop()  # after finish(), or an error: the offsets not committed come again
        housekeeper.stop()
        if store.delivery:
            store.delivery.stop()
        consumer.close(autocommit=False)
        if store.outbox:  # opened at start, or by a SIGHUP that brought the first rules
            close_alert_outbox(store.outbox)
        connection.close()
    store.stored_log.flush(force=True)  # the last second's line, not yet due
    log.info("stopped; %d new quote(s) stored in this run", total)
    return ExitCode.OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from_args("consumer", args)
    if settings is None:
        return ExitCode.BAD_CONFIG
    if args.notify_test is not None:
        return run_guarded("consumer", settings.secrets,
                           lambda: notify_test(settings.notify_channels, args.notify_test or None))
    return run_guarded("consumer", settings.secrets, lambda: run(settings, args))


if __name__ == "__main__":
    sys.exit(main())
