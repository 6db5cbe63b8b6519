"""Shared fixtures: a real Kafka broker, a topic per test, the Alpha Vantage stand-in, script runners.

The broker comes from KAFKA_BOOTSTRAP_SERVERS if set, else testcontainers where a Docker engine
answers, else a real Apache Kafka started from Maven Central jars (local_kafka.py). Tests never
skip for want of a broker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from hypothesis import HealthCheck, settings
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from alphavantage_standin import AlphaVantageStandIn
from config import DEFAULTS
from streaming.local_broker import LocalKafka, free_port
from webhook import Mailbox, Webhook

PROJECT_DIR = Path(__file__).resolve().parent.parent

# Property tests: "ci" keeps the suite quick; HYPOTHESIS_PROFILE=deep searches far longer (see README).
settings.register_profile("ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deep", max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
TEST_API_KEY = "TESTKEY9F3A7Q2Z8X"  # made up; the suite greps every output for it

# A suite started in the background of a non-interactive shell (`cmd &`) inherits SIGINT ignored, and
# every script it starts would keep ignoring it: the Ctrl-C tests need SIGINT to arrive as a terminal's.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass
class Broker:
    """The broker under test; `local` is set when this suite runs it and so can stop and start it."""

    bootstrap_servers: str
    local: LocalKafka | None = None


def docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Broker]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield Broker(configured)
        return
    if docker_answers():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft() as container:
            yield Broker(container.get_bootstrap_server())
        return
    with LocalKafka() as broker:
        yield Broker(broker.bootstrap_servers, broker)


@pytest.fixture(scope="session")
def restartable_broker(kafka_broker: Broker) -> Iterator[LocalKafka]:
    """A broker the test may stop and start (same port, same data): the suite's own, or one just for this."""
    if kafka_broker.local is not None:
        yield kafka_broker.local
        return
    with LocalKafka() as broker:
        yield broker


@pytest.fixture
def topic() -> str:
    return f"stockmon-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def standin() -> Iterator[AlphaVantageStandIn]:
    with AlphaVantageStandIn() as server:
        yield server


# Every table of the schema: tests that check a run created nothing else (no injected table) compare to it.
SCHEMA_TABLES = {"stock_prices", "rejected_messages", "alerts", "symbol_summary", "notify_channels", "history_state",
                 "bars_1m", "bars_1d"}


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """A notification channel's HTTP server (json:// URLs)."""
    server = Webhook()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, str]]:
    """An SMTP server and the mailto:// URL that sends to it."""
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, f"mailto://127.0.0.1:{port}?from=stockmon@example.com&to=trader@example.com"
    controller.stop()


def script_env(**settings: str) -> dict[str, str]:
    """The environment for a script under test: none of the user's own settings, then ours."""
    env = {name: value for name, value in os.environ.items() if name not in DEFAULTS}
    # Any hour, any day: tests that are about the polling hours or the history set them themselves.
    env.update({"POLL_HOURS": "always", "BACKFILL": "off"})
    env.update(settings)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_script(script: str, *args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run producer.py or consumer.py to completion, as a user would, with no .env file."""
    command = [sys.executable, str(PROJECT_DIR / script), "--env-file", os.devnull, *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=PROJECT_DIR,
                          check=False)


def start_script(script: str, *args: str, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start a script in the background, its stderr going to log_path."""
    command = [sys.executable, str(PROJECT_DIR / script), "--env-file", os.devnull, *args]
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=PROJECT_DIR)
    process.log_path = log_path  # type: ignore[attr-defined]  # for running()'s report of a failed test
    return process


@contextlib.contextmanager
def running(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """Make sure a background script is gone when the test ends, whatever happened. When the test fails
    with the script still running (a stop that never came, say), print its threads' stacks and the end of
    its log first: pytest shows them with the failure, even from a CI machine that is gone since."""
    try:
        yield process
    except BaseException:
        if process.poll() is None:
            print_stacks_and_log(process)
        raise
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def print_stacks_and_log(process: subprocess.Popen[bytes], lines: int = 120) -> None:
    """Ask a running script for its threads' stacks (SIGUSR1, common/cli.py) and print its log's last lines."""
    log_path: Path | None = getattr(process, "log_path", None)
    if log_path is None:
        return
    process.send_signal(signal.SIGUSR1)
    time.sleep(1.0)  # the dump is written by the script's signal handler
    tail = log_path.read_text(errors="replace").splitlines()[-lines:]
    script = process.args[1]  # type: ignore[index]  # start_script's [python, script, ...]
    print(f"--- {script} (pid {process.pid}) was still running; its stacks and the last {len(tail)} lines of "
          f"{log_path.name}:")
    print("\n".join(tail))


def pipeline_env(broker: Broker, topic: str, standin: AlphaVantageStandIn, db_path: Path,
                 **extra: str) -> dict[str, str]:
    settings = {
        "ALPHAVANTAGE_API_KEY": TEST_API_KEY,
        "ALPHAVANTAGE_BASE_URL": standin.url,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "KAFKA_TOPIC": topic,
        "KAFKA_GROUP_ID": f"{topic}-group",
        "DB_PATH": str(db_path),
        "PRODUCER_STATE_PATH": str(db_path.with_name("producer_state.json")),
        "REQUESTS_PER_MINUTE": "600",
        # No daily pace: polls as fast as the per-minute budget allows (tests about the day set their own).
        "REQUESTS_PER_DAY": "0",
    }
    return script_env(**{**settings, **extra})


def topic_records(broker: Broker, topic: str) -> list[ConsumerRecord]:
    """Every record in the topic, read from the beginning to its current end."""
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers, enable_auto_commit=False)
    partitions = [TopicPartition(topic, partition) for partition in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    ends = consumer.end_offsets(partitions)
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + 30
    while any(consumer.position(tp) < end for tp, end in ends.items()) and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    consumer.close()
    return records


def topic_values(broker: Broker, topic: str) -> list[bytes]:
    return [record.value for record in topic_records(broker, topic)]
