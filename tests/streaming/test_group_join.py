"""A group join that outlasts the poll() that started it is still taken up.

kafka-python 3.0.12 runs a join in the background and, when poll()'s timeout ends first, leaves it
to the next poll(), but only if the consumer still "needs to rejoin" then. A rejoin asked for by a
metadata change (the topic's partitions seen for the first time, or more of them) stops counting as
needed once the group's leader has computed the new assignment, inside the join itself: the next
poll() then never applies it, and the consumer fetches nothing from the partitions the group gave it.
A CI run met it as a test consumer that got no partition for 30 s: its first join came before the
topic's metadata, and the rejoin that followed outlasted a 5 ms poll.
"""

from __future__ import annotations

import time

import pytest
from kafka.admin import NewPartitions

from config import load_settings
from streaming.kafka_client import TOPIC_PARTITIONS, create_admin, create_consumer, create_producer, ensure_topic

pytestmark = pytest.mark.slow


def partitions_assigned(consumer, count: int, poll_ms: int, within: float = 20) -> set[int]:
    """Poll until `count` partitions are assigned or `within` seconds pass; the partitions assigned."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and len(consumer.assignment()) != count:
        consumer.poll(timeout_ms=poll_ms)
    return {partition.partition for partition in consumer.assignment()}


def test_a_rejoin_for_new_partitions_that_outlasts_its_poll_is_still_applied(kafka_broker, topic):
    settings = load_settings({"ALPHAVANTAGE_API_KEY": "unused", "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
                              "KAFKA_TOPIC": topic, "KAFKA_GROUP_ID": f"{topic}-group"}, environ={}, env_file=None)
    ensure_topic(settings)
    consumer = create_consumer(settings)
    producer = create_producer(settings)
    try:
        assert partitions_assigned(consumer, TOPIC_PARTITIONS, poll_ms=500) == set(range(TOPIC_PARTITIONS))
        admin = create_admin(settings)
        try:
            admin.create_partitions({topic: NewPartitions(total_count=TOPIC_PARTITIONS + 1)})
        finally:
            admin.close()
        deadline = time.monotonic() + 20
        while len(consumer.partitions_for_topic(topic)) <= TOPIC_PARTITIONS and time.monotonic() < deadline:
            consumer.topics()  # a metadata refresh: the group's leader (this consumer) sees the new partition
            time.sleep(0.1)
        consumer.poll(timeout_ms=0)  # starts the rejoin and returns before it ends
        time.sleep(1)  # meanwhile the rejoin ends in the background
        new_partition = TOPIC_PARTITIONS
        assert partitions_assigned(consumer, TOPIC_PARTITIONS + 1, poll_ms=500) == set(range(TOPIC_PARTITIONS + 1))
        producer.send(topic, value=b"on the new partition", partition=new_partition)
        producer.flush()
        deadline = time.monotonic() + 20
        values: list[bytes] = []
        while not values and time.monotonic() < deadline:
            values = [record.value for records in consumer.poll(timeout_ms=500).values() for record in records]
        assert values == [b"on the new partition"]
    finally:
        consumer.close(autocommit=False)
        producer.close(timeout=5)
