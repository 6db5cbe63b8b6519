"""Store every quote from Kafka in SQLite exactly once.

Each poll batch is validated, written in one SQLite transaction (bad messages set aside in
`rejected_messages`), and only then are the Kafka offsets committed. A crash at any point
therefore redelivers at most the last batch, and the unique key on (symbol, ts) absorbs it.

    python consumer.py                 # run until Ctrl-C / SIGTERM
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable

from kafka import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CommitFailedError, KafkaError

import db
from cli import ExitCode, install_stop_handlers, print_error, run_guarded, settings_from_args
from config import Settings, add_common_arguments, settings_epilog
from kafka_client import (
    ConnectionWatch,
    Stopped,
    create_consumer,
    describe,
    ensure_topic,
    retry_until_connected,
)
from messages import InvalidMessage, QuoteRow, decode_quote

log = logging.getLogger("consumer")


def split_batch(records: Iterable[ConsumerRecord]) -> tuple[list[QuoteRow], list[db.Rejected]]:
    """Valid quotes, and the messages that are not, each with its reason."""
    rows: list[QuoteRow] = []
    rejected: list[db.Rejected] = []
    for record in records:
        try:
            rows.append(decode_quote(record.value))
        except InvalidMessage as exc:
            rejected.append(db.Rejected(record.topic, record.partition, record.offset, record.key,
                                        record.value, str(exc)))
    return rows, rejected


class PriceBoard:
    """The last price seen per symbol, to show what moved in each batch's log line."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def moves(self, rows: list[QuoteRow]) -> str:
        latest: dict[str, QuoteRow] = {}
        for row in rows:
            if row.symbol not in latest or row.ts >= latest[row.symbol].ts:
                latest[row.symbol] = row
        parts = []
        for symbol in sorted(latest):
            price = latest[symbol].price
            before = self.last.get(symbol)
            move = f" ({(price - before) / before * 100:+.2f}%)" if before else ""
            parts.append(f"{symbol} {price:g}{move}")
            self.last[symbol] = price
        return ", ".join(parts)


def store_batch(connection: sqlite3.Connection, records: list[ConsumerRecord], board: PriceBoard) -> int:
    """Validate and store one poll batch in one transaction; return the number of new rows."""
    rows, rejected = split_batch(records)
    stored = db.save_batch(connection, rows, rejected)
    for bad in rejected:
        log.warning("set aside message %s[%d]@%d: %s", bad.topic, bad.partition, bad.offset, bad.reason)
    if stored:
        log.info("stored %d new quote(s): %s", stored, board.moves(rows))
    if log.isEnabledFor(logging.DEBUG):
        for row in rows:
            log.debug("row %s %s price=%s volume=%s", row.symbol, row.ts, row.price, row.volume)
    return stored


def commit_offsets(consumer: KafkaConsumer, wait: bool = True) -> None:
    """Commit what was stored. A failure is harmless: those messages come again and are ignored.

    In steady state the commit is asynchronous (no round trip per batch); a commit lost to a crash
    only means a redelivery. The last one, on the way out, waits.
    """
    if not wait:
        consumer.commit_async(callback=_log_async_commit)
        return
    try:
        consumer.commit()
    except CommitFailedError:
        log.warning("offset commit refused after a group rebalance; the batch will be redelivered "
                    "and ignored as a duplicate")
    except KafkaError as exc:
        log.warning("offset commit failed (%s); the batch will be redelivered and ignored as a duplicate",
                    describe(exc))


def _log_async_commit(offsets: object, result: object) -> None:
    if isinstance(result, Exception):
        log.debug("asynchronous offset commit failed (%s); a later commit covers it", describe(result))


def poll_and_store(consumer: KafkaConsumer, connection: sqlite3.Connection, board: PriceBoard,
                   timeout_ms: int = 500) -> tuple[int, int]:
    """One cycle: poll a batch, store it, then commit its offsets. Returns (messages seen, new rows)."""
    batches = consumer.poll(timeout_ms=timeout_ms)
    records = [record for partition_records in batches.values() for record in partition_records]
    if not records:
        return 0, 0
    stored = store_batch(connection, records, board)
    commit_offsets(consumer, wait=False)
    return len(records), stored


def consume(consumer: KafkaConsumer, connection: sqlite3.Connection, stop: threading.Event,
            watch: ConnectionWatch, idle_exit: float | None = None) -> int:
    """Poll, store, commit until stopped (or idle for `idle_exit` seconds); return rows stored."""
    board = PriceBoard()
    total = 0
    last_message = time.monotonic()
    while not stop.is_set():
        seen, stored = poll_and_store(consumer, connection, board)
        watch.check()
        total += stored
        if seen:
            last_message = time.monotonic()
        elif not consumer.assignment():
            last_message = time.monotonic()  # still joining the group: not idle yet
        elif idle_exit is not None and time.monotonic() - last_message >= idle_exit:
            log.info("no message for %.0f s; stopping", idle_exit)
            break
    commit_offsets(consumer)
    return total


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="consumer", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Store every quote from the Kafka topic in SQLite, exactly once.",
        epilog=settings_epilog())
    parser.add_argument("--db", dest="DB_PATH", metavar="PATH", help="SQLite database file (DB_PATH)")
    parser.add_argument("--group-id", dest="KAFKA_GROUP_ID", metavar="ID", help="consumer group (KAFKA_GROUP_ID)")
    parser.add_argument("--idle-exit", type=float, metavar="SECONDS",
                        help="exit once no message has arrived for this long (batch jobs, tests)")
    add_common_arguments(parser)
    return parser


def open_consumer(settings: Settings, stop: threading.Event) -> KafkaConsumer:
    retry_until_connected(lambda: ensure_topic(settings), "the consumer", settings.bootstrap_servers, stop)
    return retry_until_connected(lambda: create_consumer(settings), "the consumer",
                                 settings.bootstrap_servers, stop)


def run(settings: Settings, args: argparse.Namespace) -> int:
    """The script proper, once its settings are known to be good."""
    try:
        connection = db.connect(settings.db_path)
    except db.DatabaseError as exc:
        print_error("consumer", str(exc))
        return ExitCode.STORAGE
    stop = threading.Event()
    install_stop_handlers(stop)
    try:
        consumer = open_consumer(settings, stop)
    except Stopped:
        return ExitCode.OK
    log.info("consuming %s as group %s into %s", settings.topic, settings.group_id, settings.db_path)
    try:
        watch = ConnectionWatch(consumer, settings.bootstrap_servers)
        total = consume(consumer, connection, stop, watch, args.idle_exit)
    except db.DatabaseError as exc:
        # Offsets of the failed batch were not committed: it is redelivered after a restart.
        print_error("consumer", str(exc))
        return ExitCode.STORAGE
    finally:
        consumer.close(autocommit=False)
        connection.close()
    log.info("stopped; %d new quote(s) stored in this run", total)
    return ExitCode.OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from_args("consumer", args)
    if settings is None:
        return ExitCode.BAD_CONFIG
    return run_guarded("consumer", settings, lambda: run(settings, args))


if __name__ == "__main__":
    sys.exit(main())
