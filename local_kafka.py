"""Run a real single-node Apache Kafka broker on 127.0.0.1, without Docker (Java 17+ and Maven).

    python local_kafka.py                   # a broker on port 9092, its data in .cache/kafka-data
    python local_kafka.py --check SERVERS   # exit 0 when a broker answers there, else 1
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path

from streaming.local_broker import (
    KAFKA_VERSION,
    PROJECT_DIR,
    LocalKafka,
    LocalKafkaError,
    broker_answers,
    port_answers,
)

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="local_kafka", description=(
        "Run a real single-node Apache Kafka broker (KRaft) from Maven Central jars, without Docker. "
        "Needs Java 17+ and Maven. Stop it with Ctrl-C."))
    parser.add_argument("--port", type=int, default=9092, help="client port on 127.0.0.1 (default 9092)")
    parser.add_argument("--data-dir", type=Path, default=PROJECT_DIR / ".cache" / "kafka-data",
                        help="where the broker keeps its log (default .cache/kafka-data); kept between runs")
    parser.add_argument("--check", metavar="SERVERS",
                        help="only report (exit status 0 or 1) whether a broker answers at SERVERS")
    args = parser.parse_args(argv)
    if args.check:
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
        return 0 if broker_answers(args.check) else 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if port_answers(args.port):
        print(f"local_kafka: error: port {args.port} is already in use (is a broker running?)", file=sys.stderr)
        return 1
    broker = LocalKafka(port=args.port, data_dir=args.data_dir)
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        broker.start()
    except LocalKafkaError as exc:
        print(f"local_kafka: error: {exc}", file=sys.stderr)
        return 1
    log.info("Kafka %s is ready at %s (logs in %s); Ctrl-C stops it",
             KAFKA_VERSION, broker.bootstrap_servers, broker.work_dir)
    while not stopping and broker.process is not None and broker.process.poll() is None:
        time.sleep(0.5)
    crashed = not stopping
    broker.stop()
    if crashed:
        print(f"local_kafka: error: the broker stopped unexpectedly; see {broker.log_file}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
