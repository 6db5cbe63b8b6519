"""Doctor checks against the broker: it answers with the security settings, the topics, the group's lag."""

from __future__ import annotations

import threading
import time

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from checkup.finding import Finding, fail, ok, warn
from config import Settings
from streaming.kafka_client import TOPIC_PARTITIONS, Unreachable, describe, retry_until_connected

ANSWER_SECONDS = 10.0
ATTEMPT_SECONDS = 3.0


def connect(settings: Settings, seconds: float = ANSWER_SECONDS) -> KafkaConsumer:
    """A client in the consumer's group that joins nothing (it only reads metadata and offsets); Unreachable.

    Several shorter attempts rather than one: a broker that refuses a login then drops the socket, and
    an attempt may see only the drop; the answer names the clearest reason any attempt saw."""
    timeout_ms = int(seconds * 1000)
    attempt_ms = int(min(seconds, ATTEMPT_SECONDS) * 1000)

    def attempt() -> KafkaConsumer:
        return KafkaConsumer(bootstrap_servers=settings.bootstrap_servers.split(","), client_id="stockmon-doctor",
                             group_id=settings.group_id, enable_auto_commit=False,
                             bootstrap_timeout_ms=attempt_ms, request_timeout_ms=timeout_ms,
                             **settings.kafka_security())

    return retry_until_connected(attempt, "the doctor", settings.bootstrap_servers, threading.Event(),
                                 deadline=time.monotonic() + seconds)


def kafka_checks(settings: Settings, seconds: float = ANSWER_SECONDS) -> list[Finding]:
    started = time.monotonic()
    try:
        client = connect(settings, seconds)
    except Unreachable as exc:
        return [fail("kafka", f"{exc}; checked within {seconds:g} s with "
                              f"KAFKA_SECURITY_PROTOCOL={settings.security_protocol}")]
    try:
        security = settings.security_protocol + (f" {settings.sasl_mechanism}" if settings.sasl_mechanism else "")
        answered_ms = (time.monotonic() - started) * 1000
        findings = [ok("kafka", f"{settings.bootstrap_servers} answered in {answered_ms:.0f} ms ({security})")]
        try:
            topics = client.topics()
            findings.append(topic_finding(client, topics, settings.topic, "KAFKA_TOPIC", "producer.py"))
            if settings.alert_rules or settings.alerts_topic in topics:
                findings.append(topic_finding(client, topics, settings.alerts_topic, "KAFKA_ALERTS_TOPIC",
                                              "consumer.py"))
            else:
                findings.append(ok("KAFKA_ALERTS_TOPIC", f"topic {settings.alerts_topic} is not needed: "
                                                         "ALERT_RULES is empty"))
            if settings.topic in topics:
                findings.append(group_lag(client, settings.topic, settings.group_id))
        except KafkaError as exc:
            findings.append(fail("kafka", f"the broker answered, then refused a request: {describe(exc)}"))
        return findings
    finally:
        client.close()


def topic_finding(client: KafkaConsumer, topics: set[str], topic: str, setting: str, creator: str) -> Finding:
    if topic not in topics:
        return warn(setting, f"topic {topic} does not exist yet; {creator} creates it with "
                             f"{TOPIC_PARTITIONS} partitions on start")
    count = len(client.partitions_for_topic(topic) or ())
    return ok(setting, f"topic {topic} has {count} partition(s)")


def group_lag(client: KafkaConsumer, topic: str, group: str) -> Finding:
    """Messages the group has not committed yet: end offset minus committed offset, per partition."""
    partitions = [TopicPartition(topic, number) for number in sorted(client.partitions_for_topic(topic) or ())]
    ends = client.end_offsets(partitions)
    committed = {partition: client.committed(partition) for partition in partitions}
    what = "KAFKA_GROUP_ID"
    if all(offset is None for offset in committed.values()):
        waiting = sum(ends.values())
        return warn(what, f"group {group} has committed nothing on {topic} yet: the consumer reads "
                          f"{waiting} message(s) from the start")
    lags = {partition.partition: ends[partition] - (committed[partition] or 0) for partition in partitions}
    each = ", ".join(f"partition {number}: {lag}" for number, lag in lags.items())
    return ok(what, f"group {group} is {sum(lags.values())} message(s) behind on {topic} ({each})")
