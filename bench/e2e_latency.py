"""End-to-end latency: from the producer's send to the row being committed in SQLite, at a fixed load.

The real consumer.py runs as its own process; this process sends project-format messages at a
fixed rate with the project's producer settings, and a reader thread watches the database (WAL
readers see only committed rows) to stamp the moment each row becomes visible.

    python bench/e2e_latency.py                       # 1,000 msg/s for 30 s
    python bench/e2e_latency.py --rate 500 --seconds 10
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import PROJECT_DIR, bench_settings, broker, fresh_name, quote_message

from kafka_client import create_producer, ensure_topic


def watch_commits(db_path: Path, seen: dict[tuple[str, str], float], stop: threading.Event) -> None:
    """Stamp each row with the time it first became visible to a reader, polling every millisecond."""
    while not db_path.exists() and not stop.is_set():
        time.sleep(0.01)
    connection = sqlite3.connect(db_path)
    last_id = 0
    while not stop.is_set():
        try:
            rows = connection.execute("SELECT id, symbol, ts FROM stock_prices WHERE id > ?", (last_id,)).fetchall()
        except sqlite3.OperationalError:  # schema not created yet
            rows = []
        now = time.time()
        for row_id, symbol, ts in rows:
            seen[(symbol, ts)] = now
            last_id = max(last_id, row_id)
        time.sleep(0.001)
    connection.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=1000, help="messages per second (default 1,000)")
    parser.add_argument("--seconds", type=float, default=30, help="how long to send (default 30)")
    args = parser.parse_args(argv)

    with broker() as servers, tempfile.TemporaryDirectory(prefix="stockmon-bench-") as workdir:
        topic, db_path = fresh_name("latency"), Path(workdir) / "latency.db"
        settings = bench_settings(servers, topic, fresh_name("latency"), db_path)
        ensure_topic(settings)
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": servers, "KAFKA_TOPIC": topic,
               "KAFKA_GROUP_ID": settings.group_id, "DB_PATH": str(db_path), "LOG_LEVEL": "WARNING"}
        consumer = subprocess.Popen([sys.executable, str(PROJECT_DIR / "consumer.py"), "--env-file", os.devnull],
                                    env=env, stderr=subprocess.DEVNULL)
        seen: dict[tuple[str, str], float] = {}
        stop = threading.Event()
        watcher = threading.Thread(target=watch_commits, args=(db_path, seen, stop), daemon=True)
        watcher.start()
        producer = create_producer(settings)
        try:
            # Warm up: the consumer has joined its group once a first row is visible.
            # A bar a minute before the run's first: its key is not among them, and its time is in the past
            # (the consumer sets aside quotes stamped in the future, as index 10**9 once was).
            key, value = quote_message(-1)
            producer.send(topic, key=key, value=value)
            deadline = time.monotonic() + 60
            while not seen and time.monotonic() < deadline:
                time.sleep(0.05)
            if not seen:
                print("e2e_latency: error: the warm-up quote never reached the database; see consumer.py's log",
                      file=sys.stderr)
                return 1
            total = int(args.rate * args.seconds)
            sent: dict[tuple[str, str], float] = {}
            started = time.monotonic()
            for index in range(total):
                delay = started + index / args.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                key, value = quote_message(index)
                sent_at = time.time()
                producer.send(topic, key=key, value=value)
                sent[(key.decode(), value.split(b'"ts":"')[1][:24].decode())] = sent_at
            offered = total / (time.monotonic() - started)
            producer.flush()
            deadline = time.monotonic() + 60
            while any(k not in seen for k in sent) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            producer.close(timeout=5)
            consumer.send_signal(signal.SIGTERM)
            consumer.wait(30)
    latencies = [(seen[k] - t) * 1000 for k, t in sent.items() if k in seen]
    print(f"offered {offered:,.0f} msg/s for {args.seconds:g} s: {len(latencies):,} of {total:,} rows committed")
    print(f"send -> committed row latency (ms): p50 {percentile(latencies, 0.50):.1f}  "
          f"p95 {percentile(latencies, 0.95):.1f}  p99 {percentile(latencies, 0.99):.1f}  max {max(latencies):.1f}  "
          f"(mean {statistics.fmean(latencies):.1f})")
    return 0 if len(latencies) == total else 1


if __name__ == "__main__":
    sys.exit(main())
