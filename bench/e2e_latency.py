"""End-to-end latency: from the producer's send to the row being committed in SQLite.

Each run starts the real consumer.py as its own process on a fresh topic, group and database;
this process sends project-format messages at a fixed rate with the project's producer settings,
and a watcher process reads the database (WAL readers see only committed rows) to stamp the
moment each row becomes visible. A run first sends at the rate for --warmup seconds, unmeasured
(the consumer's start, the group join and a cold JIT in a fresh broker are not the steady state),
then measures for --seconds. The runs share one broker. Each run also says where its slowest 1% of
quotes spent their time: until the broker appended them, until the consumer wrote their rows (the
fetch, the decoding, and waiting while the batch before was stored), and until the commit was seen.
With --busy-cores N the runs are repeated while N other processes each keep a core busy, and with
--busy-disk while another process writes files beside the database and syncs the disk, round after
round (a package unpacked, a backup: a service's disk is shared too).

After the runs: the latency of a single quote sent to an idle consumer (the case a real feed
mostly is), and what an idle consumer costs: its fetch requests per second and its CPU.

    python bench/e2e_latency.py                          # 5 runs of 1,000 msg/s for 30 s
    python bench/e2e_latency.py --rate 5000 --seconds 20
    python bench/e2e_latency.py --runs 1 --rate 500 --seconds 10 --idle-quotes 5
    python bench/e2e_latency.py --busy-cores 1             # 5 runs, then 5 with one core taken
    python bench/e2e_latency.py --busy-disk                # 5 runs, then 5 beside a disk writer
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from harness import PROJECT_DIR, bench_settings, broker, fresh_name, percentile, quote_message
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from slow_disk import join

from config import load_settings
from streaming.kafka_client import TOPIC_PARTITIONS, create_admin, create_consumer, create_producer, ensure_topic

Key = tuple[str, str]  # (symbol, ts): a stored row


class CommitWatch:
    """Stamps each row with the time it first became visible to a reader.

    The stamping runs in its own process (`--watch`), polling every millisecond: in this process it
    would share the GIL with the sending loop and kafka-python's sender thread, and at 5,000 msg/s
    that alone added up to 45 ms to the measured p99 (measured with a broker-stamped topic).
    """

    def __init__(self, db_path: Path, after_id: int = 0) -> None:
        self.stamps_path = db_path.with_suffix(".stamps")
        self.stamps_path.touch()
        self.seen: dict[Key, float] = {}
        self._unread = ""
        self._offset = 0
        self._process = subprocess.Popen([sys.executable, __file__, "--watch", str(db_path),
                                          "--after-id", str(after_id)])

    def _read_stamps(self) -> None:
        with self.stamps_path.open() as stamps:
            stamps.seek(self._offset)
            text = stamps.read()
            self._offset = stamps.tell()
        *lines, self._unread = (self._unread + text).split("\n")
        for line in lines:
            symbol, ts, at = line.split("\t")
            self.seen[(symbol, ts)] = float(at)

    def wait_for_rows(self, count: int, timeout: float) -> bool:
        """Until the watcher has stamped `count` rows (its file is read every 5 ms)."""
        deadline = time.monotonic() + timeout
        while True:
            self._read_stamps()
            if len(self.seen) >= count or time.monotonic() >= deadline:
                return len(self.seen) >= count
            time.sleep(0.005)

    def close(self) -> None:
        """Stop the watcher, and read what it stamped last."""
        self._process.send_signal(signal.SIGTERM)
        self._process.wait(30)
        self._read_stamps()


def watch_commits(db_path: Path, after_id: int = 0) -> None:
    """The watcher process: poll the rows after `after_id` every millisecond, write each one's first-seen time."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not db_path.exists() and not stop.is_set():
        time.sleep(0.001)
    connection = sqlite3.connect(db_path)
    last_id = after_id
    with db_path.with_suffix(".stamps").open("a") as stamps:
        while not stop.is_set():
            try:
                rows = connection.execute("SELECT id, symbol, ts FROM stock_prices WHERE id > ?", (last_id,)).fetchall()
            except sqlite3.OperationalError:  # schema not created yet
                rows = []
            now = time.time()
            for row_id, symbol, ts in rows:
                stamps.write(f"{symbol}\t{ts}\t{now}\n")
                last_id = max(last_id, row_id)
            if rows:
                stamps.flush()
            time.sleep(0.001)
    connection.close()


# The stages of a quote's way, each stamped by a different clock reader of this machine: this process
# at send(), the broker when it appended the record (a LogAppendTime topic), SQLite when the consumer
# inserted its row (`ingested_at`: after the decoding, inside the batch's transaction), the watcher
# when the committed row became visible.
# --busy-disk: each round writes --disk-load-mib files of 1 MiB beside the database, then syncs the disk.
DISK_LOAD_MIB = 256
STAGES = ("send -> broker", "broker -> row written", "row written -> committed and seen")


@dataclass
class Run:
    """One measured run: the latency of each quote sent (ms), the rate actually offered, and where the
    slowest 1% of quotes spent their time (mean ms per stage)."""

    latencies: list[float]
    sent: int
    offered: float
    tail_stages: dict[str, float]


def row_key(key: bytes, value: bytes) -> Key:
    return key.decode(), value.split(b'"ts":"')[1][:24].decode()


@dataclass
class Pipeline:
    """A running consumer.py, the watcher of its database, and a producer to its topic."""

    topic: str
    consumer: subprocess.Popen
    watch: CommitWatch
    producer: KafkaProducer


@contextmanager
def running_consumer(servers: str, workdir: Path, label: str, db_path: Path | None = None,
                     settings_env: dict[str, str] | None = None, log_path: Path | None = None,
                     first_message: tuple[bytes, bytes] | None = None,
                     cgroup_tasks: Path | None = None) -> Iterator[Pipeline]:
    """consumer.py on a fresh topic and group, and a fresh database unless `db_path` names one, joined to its
    group, until the block ends (SIGTERM). `settings_env` adds settings; its log goes to `log_path` if given;
    `cgroup_tasks` puts it into that cgroup (bench/slow_disk.py);
    `first_message` (a quote the database does not hold yet) tells when it has joined. The topic's records
    carry the time the broker appended them (LogAppendTime), for the stages of the tail."""
    topic = fresh_name(label)
    db_path = db_path or workdir / f"{fresh_name(label)}.db"
    settings = bench_settings(servers, topic, fresh_name(label), db_path)
    admin = create_admin(settings)
    try:
        admin.create_topics({topic: {"num_partitions": TOPIC_PARTITIONS,
                                     "configs": {"message.timestamp.type": "LogAppendTime"}}}, wait_for_metadata=True)
    finally:
        admin.close()
    ensure_topic(settings)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": servers, "KAFKA_TOPIC": topic,
           "KAFKA_GROUP_ID": settings.group_id, "DB_PATH": str(db_path), "LOG_LEVEL": "WARNING",
           **(settings_env or {})}
    after_id = newest_id(db_path)
    with open(log_path or os.devnull, "ab") as log:
        process = subprocess.Popen([sys.executable, str(PROJECT_DIR / "consumer.py"), "--env-file", os.devnull],
                                   env=env, stderr=log,
                                   preexec_fn=(lambda: join(cgroup_tasks)) if cgroup_tasks else None)
    watch = CommitWatch(db_path, after_id)
    producer = create_producer(settings)
    try:
        # A first quote reaches the database once the consumer has joined its group. It is a bar a
        # minute before the runs' first: its key is not among theirs, and its time is in the past
        # (the consumer sets aside quotes stamped in the future).
        key, value = first_message or quote_message(-1)
        producer.send(topic, key=key, value=value)
        if not watch.wait_for_rows(1, 60):
            raise SystemExit("e2e_latency: error: the first quote never reached the database; see consumer.py's log")
        yield Pipeline(topic, process, watch, producer)
    finally:
        producer.close(timeout=5)
        watch.close()
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def newest_id(db_path: Path) -> int:
    """The last stored row's id (0 for no database yet): the watcher stamps only the rows after it."""
    if not db_path.exists():
        return 0
    connection = sqlite3.connect(db_path)
    try:
        return connection.execute("SELECT coalesce(max(id), 0) FROM stock_prices").fetchone()[0]
    finally:
        connection.close()


def send_at_rate(producer, topic: str, first: int, count: int, rate: float,
                 message: Callable[[int], tuple[bytes, bytes]] = quote_message) -> tuple[dict[Key, float], float]:
    """Send messages first..first+count-1 evenly at `rate`; their send times, and the rate achieved."""
    sent: dict[Key, float] = {}
    started = time.monotonic()
    for index in range(count):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        key, value = message(first + index)
        sent_at = time.time()
        producer.send(topic, key=key, value=value)
        sent[row_key(key, value)] = sent_at
    return sent, count / max(time.monotonic() - started, 1e-9)


def appended_at(servers: str, topic: str) -> dict[Key, float]:
    """When the broker appended each record of the topic (read back from its start after the run)."""
    reader = KafkaConsumer(bootstrap_servers=servers.split(","), enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, number) for number in reader.partitions_for_topic(topic) or ()]
        reader.assign(partitions)
        reader.seek_to_beginning(*partitions)
        ends = reader.end_offsets(partitions)
        stamps: dict[Key, float] = {}
        while any(reader.position(partition) < ends[partition] for partition in partitions):
            for records in reader.poll(timeout_ms=1000).values():
                for record in records:
                    stamps[row_key(record.key, record.value)] = record.timestamp / 1000
        return stamps
    finally:
        reader.close()


def written_at(db_path: Path, after_id: int = 0) -> dict[Key, float]:
    """When the consumer inserted each row after `after_id` (its `ingested_at`, SQLite's clock to the ms)."""
    connection = sqlite3.connect(db_path)
    try:
        rows = connection.execute("SELECT symbol, ts, CAST(strftime('%s', ingested_at) AS INTEGER) "
                                  "+ CAST(substr(ingested_at, 21, 3) AS INTEGER) / 1000.0 FROM stock_prices "
                                  "WHERE id > ?", (after_id,))
        return {(symbol, ts): at for symbol, ts, at in rows}
    finally:
        connection.close()


def tail_stages(sent: dict[Key, float], appended: dict[Key, float], written: dict[Key, float],
                seen: dict[Key, float]) -> dict[str, float]:
    """Where the slowest 1% of quotes spent their time: the mean of each stage, in ms."""
    complete = [key for key in sent if key in seen and key in appended and key in written]
    slowest = sorted(complete, key=lambda key: seen[key] - sent[key])[-max(1, len(complete) // 100):]
    marks = [(sent[key], appended[key], written[key], seen[key]) for key in slowest]
    return {stage: statistics.fmean((stamps[index + 1] - stamps[index]) * 1000 for stamps in marks)
            for index, stage in enumerate(STAGES)}


def measure_load(servers: str, workdir: Path, rate: int, seconds: float, warmup: float) -> Run:
    db_path = workdir / f"{fresh_name('latency')}.db"
    with running_consumer(servers, workdir, "latency", db_path=db_path) as pipeline:
        warm, total = int(rate * warmup), int(rate * seconds)
        send_at_rate(pipeline.producer, pipeline.topic, 0, warm, rate)
        sent, offered = send_at_rate(pipeline.producer, pipeline.topic, warm, total, rate)
        pipeline.producer.flush()
        pipeline.watch.wait_for_rows(1 + warm + total, 60)
    seen = pipeline.watch.seen
    latencies = [(seen[key] - at) * 1000 for key, at in sent.items() if key in seen]
    return Run(latencies, total, offered, tail_stages(sent, appended_at(servers, pipeline.topic), written_at(db_path),
                                                      seen))


@contextmanager
def busy_cores(count: int) -> Iterator[None]:
    """`count` processes that each keep one core busy (the other work a service's machine always has)."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        stop_all(hogs)


@contextmanager
def busy_disk(workdir: Path, mib: int) -> Iterator[list[int]]:
    """Another process writing files beside the database and flushing them to disk, round after round
    (what a package being unpacked, a backup or a build does to the disk). Yields a list that holds,
    once the block ends, the number of rounds the writer finished."""
    folder, rounds = workdir / "disk-load", workdir / "disk-load-rounds"
    writer = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--write-load", str(folder),
                               "--disk-load-mib", str(mib)])
    finished: list[int] = []
    try:
        yield finished
    finally:
        stop_all([writer])
        shutil.rmtree(folder, ignore_errors=True)
        finished.append(int(rounds.read_text()) if rounds.exists() else 0)


def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.kill()
        process.wait()


def write_load(folder: Path, mib: int) -> None:
    """Round after round: write `mib` files of 1 MiB (the same seeded bytes each round), flush every dirty
    page of the machine to disk (sync), remove them, and count the round in a file beside the folder."""
    chunk = random.Random(26).randbytes(1 << 20)
    rounds = folder.with_name(folder.name + "-rounds")
    done = 0
    while True:
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(mib):
            (folder / f"file-{index:04d}").write_bytes(chunk)
        os.sync()
        shutil.rmtree(folder)
        done += 1
        rounds.write_text(str(done))


def measure_runs(servers: str, workdir: Path, args: argparse.Namespace, label: str) -> list[Run]:
    """args.runs runs, each printed as it ends."""
    runs: list[Run] = []
    for number in range(1, args.runs + 1):
        run = measure_load(servers, workdir, args.rate, args.seconds, args.warmup)
        runs.append(run)
        lat = run.latencies
        stages = ", ".join(f"{stage} {ms:.1f}" for stage, ms in run.tail_stages.items())
        print(f"{label}run {number}: offered {run.offered:,.0f} msg/s for {args.seconds:g} s: {len(lat):,} of "
              f"{run.sent:,} rows committed; send -> committed row (ms): p50 {percentile(lat, 0.50):.1f}  "
              f"p95 {percentile(lat, 0.95):.1f}  p99 {percentile(lat, 0.99):.1f}  max {max(lat):.1f}; "
              f"slowest 1%: {stages}", flush=True)
    return runs


def summary(runs: list[Run], rate: int, label: str) -> str:
    p99s = [percentile(run.latencies, 0.99) for run in runs]
    return (f"{label}p99 over {len(runs)} run(s) at {rate:,} msg/s (ms): worst {max(p99s):.1f}, median "
            f"{statistics.median(p99s):.1f}, each {', '.join(f'{p:.1f}' for p in p99s)}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_idle(servers: str, workdir: Path, quotes: int, idle_seconds: float) -> tuple[list[float], float]:
    """Single quotes sent to an idle consumer at random moments (ms each), and its CPU share while idle."""
    rng = random.Random(14)
    sent: dict[Key, float] = {}
    with running_consumer(servers, workdir, "idle") as pipeline:
        time.sleep(1.0)
        cpu_before, wall_before = cpu_seconds(pipeline.consumer.pid), time.monotonic()
        time.sleep(idle_seconds)
        cpu_share = (cpu_seconds(pipeline.consumer.pid) - cpu_before) / (time.monotonic() - wall_before)
        for index in range(quotes):
            time.sleep(rng.uniform(0.3, 1.2))  # at a random point of the consumer's fetch cycle
            key, value = quote_message(index)
            sent[row_key(key, value)] = time.time()
            pipeline.producer.send(pipeline.topic, key=key, value=value)
            pipeline.producer.flush()
            pipeline.watch.wait_for_rows(2 + index, 30)
    seen = pipeline.watch.seen
    return [(seen[key] - at) * 1000 for key, at in sent.items() if key in seen], cpu_share


def idle_fetch_rate(servers: str, workdir: Path, seconds: float) -> tuple[float, float]:
    """Fetch requests per second of the project's consumer settings on an empty topic, and their mean wait.

    An idle consumer keeps one fetch in flight per broker, which the broker holds for the maximum
    wait before answering empty; the client's own fetch-latency-avg metric is that hold.
    """
    settings = bench_settings(servers, fresh_name("idle-fetch"), fresh_name("idle-fetch"), workdir / "unused.db")
    # The consumer.py processes above take KAFKA_FETCH_MAX_WAIT_MS from the environment: so does this one.
    settings = replace(settings, fetch_max_wait_ms=load_settings(environ=os.environ, env_file=None,
                                                                 overrides={"ALPHAVANTAGE_API_KEY": "unused"}
                                                                 ).fetch_max_wait_ms)
    ensure_topic(settings)
    client = create_consumer(settings)
    try:
        while not client.assignment():
            client.poll(timeout_ms=100)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            client.poll(timeout_ms=100)
        wait_ms = client.metrics()["consumer-fetch-manager-metrics"]["fetch-latency-avg"]
    finally:
        client.close(autocommit=False)
    return 1000 / wait_ms, wait_ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=1000, help="messages per second (default 1,000)")
    parser.add_argument("--seconds", type=float, default=30, help="how long each run measures (default 30)")
    parser.add_argument("--runs", type=int, default=5, help="runs, each with a fresh consumer (default 5)")
    parser.add_argument("--warmup", type=float, default=5, help="unmeasured seconds at the rate first (default 5)")
    parser.add_argument("--idle-quotes", type=int, default=20,
                        help="single quotes sent to an idle consumer, one at a time (default 20; 0: skip)")
    parser.add_argument("--busy-cores", type=int, default=0, metavar="N",
                        help="then the same runs again while N other processes each keep a core busy (default 0)")
    parser.add_argument("--busy-disk", action="store_true",
                        help="then the same runs again while another process writes files beside the database "
                             "and syncs the disk, round after round")
    parser.add_argument("--disk-load-mib", type=int, default=DISK_LOAD_MIB, metavar="MIB",
                        help=f"what --busy-disk writes a round, in files of 1 MiB (default {DISK_LOAD_MIB})")
    parser.add_argument("--watch", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--write-load", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--after-id", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.watch:
        watch_commits(args.watch, args.after_id)
        return 0
    if args.write_load:
        write_load(args.write_load, args.disk_load_mib)
        return 0

    loaded: list[Run] = []
    disk_loaded: list[Run] = []
    with broker() as servers, tempfile.TemporaryDirectory(prefix="stockmon-bench-") as workdir:
        runs = measure_runs(servers, Path(workdir), args, "")
        if args.busy_cores:
            with busy_cores(args.busy_cores):
                loaded = measure_runs(servers, Path(workdir), args, f"{args.busy_cores} busy core(s): ")
        if args.busy_disk:
            with busy_disk(Path(workdir), args.disk_load_mib) as disk_rounds:
                disk_loaded = measure_runs(servers, Path(workdir), args, "disk busy: ")
        if args.idle_quotes:
            idle, cpu_share = measure_idle(servers, Path(workdir), args.idle_quotes, idle_seconds=5)
            fetches_per_second, hold_ms = idle_fetch_rate(servers, Path(workdir), seconds=5)
    print(summary(runs, args.rate, ""))
    if loaded:
        print(summary(loaded, args.rate, f"with {args.busy_cores} busy core(s): "))
    if disk_loaded:
        print(summary(disk_loaded, args.rate, "with the disk busy: "))
        print(f"the disk writer finished {disk_rounds[0]:,} round(s) of {args.disk_load_mib:,} MiB (written, "
              "synced, removed)")
    if args.idle_quotes:
        print(f"a single quote to an idle consumer (ms): median {statistics.median(idle):.1f} of {len(idle)}, "
              f"max {max(idle):.1f}")
        print(f"an idle consumer: {fetches_per_second:.1f} fetch requests/s to its broker (each held "
              f"{hold_ms:.0f} ms), {cpu_share * 100:.1f}% of a core")
    lost = sum(run.sent - len(run.latencies) for run in runs + loaded + disk_loaded)
    if args.idle_quotes:
        lost += args.idle_quotes - len(idle)
    return 0 if not lost else 1


if __name__ == "__main__":
    sys.exit(main())
