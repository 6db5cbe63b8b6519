"""What the consumer's /readyz checks: Kafka answers and the client is connected, this consumer has
partitions to read, the database takes a write."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kafka import TopicPartition

from service.health import Check, Health, kafka_answers
from streaming.kafka_client import ConnectionWatch

WRITE_PROBE_SECONDS = 2.0


def database_writable(path: Path, timeout: float = WRITE_PROBE_SECONDS) -> Check:
    """Take the write lock and let it go at once (BEGIN IMMEDIATE; ROLLBACK): writes nothing, waits at
    most `timeout` for a batch in progress."""
    try:
        connection = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=timeout, isolation_level=None)
    except sqlite3.Error as exc:
        return Check(False, f"{path} cannot be opened: {exc}")
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
    except sqlite3.Error as exc:
        reason = "locked by another connection" if "locked" in str(exc) else str(exc)
        return Check(False, f"{path} does not take a write: {reason}")
    finally:
        connection.close()
    return Check(True, f"{path} takes a write")


class ConsumerReadiness:
    """The main loop hands over what it knows (`watch`, `assigned`); the checks run on the listener's thread."""

    def __init__(self, servers: str, topic: str, group: str, db_path: Path) -> None:
        self.servers = servers
        self.topic = topic
        self.group = group
        self.db_path = db_path
        self.watch: ConnectionWatch | None = None
        self.assigned: tuple[TopicPartition, ...] = ()

    def kafka(self) -> Check:
        answer = kafka_answers(self.servers)
        if not answer.ok:
            return answer
        if self.watch is None:
            return Check(False, f"connecting to Kafka at {self.servers}")
        if not self.watch.connected:
            return Check(False, f"the consumer has no connection to Kafka at {self.servers}")
        return answer

    def partitions(self) -> Check:
        mine = sorted(partition.partition for partition in self.assigned)
        if not mine:
            return Check(False, f"no partition of {self.topic} assigned to this consumer (group {self.group})")
        return Check(True, f"{len(mine)} partition(s) of {self.topic}: {', '.join(map(str, mine))}")

    def checks(self) -> dict[str, Check]:
        return {"kafka": self.kafka(), "partitions": self.partitions(), "database": database_writable(self.db_path)}

    def health(self) -> Health:
        return Health(self.checks)
