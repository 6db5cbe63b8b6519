"""A real single-node Apache Kafka broker (KRaft) run from Maven Central jars, without Docker.

The test suite uses it when neither KAFKA_BOOTSTRAP_SERVERS nor a Docker engine is available,
and users without Docker run it with `python local_kafka.py` (the script at the root). It needs
Java 17+ and Maven.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

log = logging.getLogger("local_kafka")

KAFKA_VERSION = "4.3.1"
LOG4J_VERSION = "2.25.5"
PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_CACHE_DIR = PROJECT_DIR / ".cache" / "kafka"

POM_TEMPLATE = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>stockmon</groupId><artifactId>local-kafka</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId>
      <version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version></dependency>
  </dependencies>
</project>
"""

# Warnings only, to a file: the broker is chatty and its output matters only when it fails.
LOG4J2_PROPERTIES = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.file.ref = file
"""


# Only for the throw-away SASL brokers tests start on loopback.
ADMIN_PASSWORD = "local-admin-secret"


class LocalKafkaError(RuntimeError):
    """The local broker could not be prepared or started."""


# Free ports are looked for from here up to where the kernel's ports for outgoing connections begin,
# above the ports services commonly use (Kafka's 9092, 8080, databases).
FIRST_CHOSEN_PORT = 20_000


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing holds right now.

    Chosen below the kernel's range for outgoing connections where it can be: the port is often bound
    seconds later (a broker's JVM starting), and meanwhile any client connection on the machine may be
    given a port from that range (a test once found its port taken that way)."""
    candidates = _ports_below_outgoing_range()
    for port in random.Random().sample(candidates, k=min(200, len(candidates))):
        if can_bind(port):
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def can_bind(port: int) -> bool:
    """True when nothing holds 127.0.0.1:port (a listener, or a socket merely bound to it)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _ports_below_outgoing_range() -> range:
    """The ports from FIRST_CHOSEN_PORT up to the kernel's first port for outgoing connections (Linux; an
    empty range elsewhere or when that range starts lower)."""
    try:
        first_outgoing = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return range(0)
    return range(FIRST_CHOSEN_PORT, max(FIRST_CHOSEN_PORT, first_outgoing))


def port_answers(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:port."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def fetch_jars(cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """Download the broker's jars with Maven once; later calls reuse the cached folder."""
    jar_dir = cache_dir / f"kafka-{KAFKA_VERSION}" / "jars"
    stamp = jar_dir / ".complete"
    if stamp.exists():
        return jar_dir
    jar_dir.mkdir(parents=True, exist_ok=True)
    # Test workers running side by side each want a broker: one downloads, the others wait for it.
    with open(jar_dir.parent / ".download.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists():
            _download_jars(jar_dir)
            stamp.touch()
    return jar_dir


def _download_jars(jar_dir: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalKafkaError("Maven (mvn) is needed to download the Kafka jars; install it or use Docker")
    pom = jar_dir.parent / "pom.xml"
    pom.write_text(POM_TEMPLATE.format(kafka=KAFKA_VERSION, log4j=LOG4J_VERSION))
    command = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
               f"-DoutputDirectory={jar_dir}", "-DincludeScope=runtime"]
    log.info("downloading Apache Kafka %s jars with Maven (first run only)", KAFKA_VERSION)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise LocalKafkaError("Maven could not download the Kafka jars: " + " | ".join(tail))


def java_command() -> str:
    """The java executable: $JAVA_HOME/bin/java if set, else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise LocalKafkaError("Java 17+ is needed to run the local Kafka broker; none found on PATH")
    return java


def _die_with_parent() -> None:
    """Linux only: the broker gets SIGKILL if the process that started it dies, so none is orphaned."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def broker_answers(bootstrap_servers: str, **client_options: str) -> bool:
    """True when a Kafka broker at `bootstrap_servers` answers a metadata request."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers.split(","), bootstrap_timeout_ms=2000,
                                 request_timeout_ms=3000, **client_options)
    except KafkaError:
        return False
    try:
        admin.describe_cluster()
        return True
    except KafkaError:
        return False
    finally:
        admin.close()


class LocalKafka:
    """One KRaft broker+controller process on 127.0.0.1; `stop()` then `start()` keeps its data."""

    def __init__(self, port: int | None = None, data_dir: Path | None = None,
                 cache_dir: Path = DEFAULT_CACHE_DIR, heap: str = "512m",
                 sasl_users: dict[str, str] | None = None) -> None:
        """`sasl_users` (name -> password) makes the client listener SASL_PLAINTEXT with PLAIN logins."""
        self.sasl_users = sasl_users
        self.port = port or free_port()
        self.controller_port = free_port()
        self._own_dir = data_dir is None
        self.work_dir = Path(data_dir or tempfile.mkdtemp(prefix="stockmon-kafka-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.cache_dir = cache_dir
        self.heap = heap
        self.process: subprocess.Popen[bytes] | None = None
        self.log_file = self.work_dir / "broker.log"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def client_options(self) -> dict[str, str]:
        """kafka-python options a client needs for this broker (an admin login when SASL is on)."""
        if not self.sasl_users:
            return {}
        return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                "sasl_plain_username": "admin", "sasl_plain_password": ADMIN_PASSWORD}

    def _listener_properties(self) -> dict[str, str]:
        if not self.sasl_users:
            return {
                "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
                "inter.broker.listener.name": "PLAINTEXT",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            }
        users = {"admin": ADMIN_PASSWORD, **self.sasl_users}
        logins = " ".join(f'user_{name}="{password}"' for name, password in users.items())
        return {
            "listeners": f"SASL_PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"SASL_PLAINTEXT://127.0.0.1:{self.port}",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
            "sasl.enabled.mechanisms": "PLAIN",
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config":
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="admin" password="{ADMIN_PASSWORD}" {logins};',
        }

    def _classpath(self) -> str:
        return str(fetch_jars(self.cache_dir) / "*")

    def _write_config(self) -> Path:
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            **self._listener_properties(),
            "log.dirs": str(self.work_dir / "data"),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
        }
        config = self.work_dir / "server.properties"
        config.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
        (self.work_dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES.format(log_file=self.log_file))
        return config

    def _java(self, main_class: str, *args: str) -> list[str]:
        return [java_command(), f"-Xmx{self.heap}", f"-Xms{self.heap}", "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.work_dir / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={self.work_dir}",
                "-cp", self._classpath(), main_class, *args]

    def _format_storage(self, config: Path) -> None:
        if (self.work_dir / "data" / "meta.properties").exists():
            return
        command = self._java("kafka.tools.StorageTool", "format", "-t", uuid.uuid4().hex[:22],
                             "-c", str(config), "--ignore-formatted")
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LocalKafkaError(f"formatting Kafka storage failed: {result.stdout}{result.stderr}".strip())

    def start(self, timeout: float = 90.0) -> LocalKafka:
        """Start the broker (formatting its storage the first time) and wait until it serves requests."""
        if self.process and self.process.poll() is None:
            return self
        config = self._write_config()
        self._format_storage(config)
        with open(self.work_dir / "stdout.log", "ab") as out:
            self.process = subprocess.Popen(self._java("kafka.Kafka", str(config)), stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            preexec_fn=_die_with_parent)
        self._wait_until_ready(timeout)
        return self

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise LocalKafkaError(f"the Kafka broker exited during start-up; see {self.work_dir}")
            if port_answers(self.port) and self._serves_metadata():
                return
            time.sleep(0.25)
        self.stop()
        raise LocalKafkaError(f"the Kafka broker did not answer within {timeout:.0f}s; see {self.work_dir}")

    def _serves_metadata(self) -> bool:
        # A broker that accepts TCP may still be electing its controller.
        return broker_answers(self.bootstrap_servers, **self.client_options)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the broker cleanly (SIGTERM), or kill it if it does not go in time."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        """Stop the broker and remove its data when it was a throw-away one."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
