"""The suite's own broker: cached jars, readiness, a restart that keeps the data, clean shutdown."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from streaming.local_broker import (
    DEFAULT_CACHE_DIR,
    FIRST_CHOSEN_PORT,
    KAFKA_VERSION,
    LocalKafka,
    broker_answers,
    fetch_jars,
    free_port,
    port_answers,
)

pytestmark = pytest.mark.slow


def test_jars_are_cached_so_a_second_fetch_costs_nothing():
    jar_dir = fetch_jars()
    assert jar_dir == DEFAULT_CACHE_DIR / f"kafka-{KAFKA_VERSION}" / "jars"
    names = {path.name for path in jar_dir.glob("*.jar")}
    assert f"kafka_2.13-{KAFKA_VERSION}.jar" in names
    assert any(name.startswith("log4j-slf4j-impl-") for name in names)
    started = time.monotonic()
    assert fetch_jars() == jar_dir
    assert time.monotonic() - started < 0.1


def test_a_restarted_broker_keeps_its_messages_and_a_closed_one_frees_its_port(tmp_path):
    broker = LocalKafka(data_dir=tmp_path / "kafka")
    with broker:
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        producer.send("kept", b"before restart").get(timeout=30)
        producer.close()
        broker.stop()
        assert not port_answers(broker.port)
        broker.start()
        consumer = KafkaConsumer("kept", bootstrap_servers=broker.bootstrap_servers, auto_offset_reset="earliest",
                                 consumer_timeout_ms=5000)
        assert [record.value for record in consumer] == [b"before restart"]
        consumer.close()
    assert broker.process is None
    assert not port_answers(broker.port)
    assert not broker_answers(broker.bootstrap_servers)
    assert "ERROR" not in broker.log_file.read_text()


def test_a_free_port_is_chosen_below_the_ports_the_kernel_gives_outgoing_connections():
    """A broker binds its port seconds after it is chosen; a client connection meanwhile can take any
    port of the kernel's outgoing range, never one below it."""
    first_outgoing = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(20)]
    if first_outgoing > FIRST_CHOSEN_PORT:
        assert all(FIRST_CHOSEN_PORT <= port < first_outgoing for port in ports), ports
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # nothing held it
