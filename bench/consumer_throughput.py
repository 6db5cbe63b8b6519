"""Consumer throughput: the project's consumer against the raw client ceiling and two baselines.

Produces N messages in the project's format over several symbols to a fresh topic, then measures,
each in its own process and fresh consumer group, from consumer creation until done:
  (a) raw      a bare kafka-python consumer that only polls the messages (the ceiling; measured
               before and after (b), the faster run kept)
  (b) project  consumer.py's own loop storing them into a fresh SQLite file (until the last commit)
  (p) plain    the baseline a stream framework's SQLite sink gives (Quix Streams' BatchingSink): a
               plain poll, `json.loads` and one `executemany` per batch into the same table, nothing
               checked; run alternately with (b), --alternations times each, the medians compared
  (b') alerts  the same with four alert rules (ALERT_RULES) evaluated on every quote
  (b") metrics the same with the Prometheus metrics counted (METRICS_ADDRESS set) and the registry
               scraped every second from another thread; run alternately with (b), three times each,
               the median of each kept; the time spent inside the counting calls is also measured
               directly, since runs differ by more than the 3% the counting may cost
  (c) naive    one INSERT and one commit per message into a default SQLite file
  (g) group    with --group-members K: K copies of (b) in one consumer group, storing into one
               database (as two consumers of one database do), from their start until the last
               row is committed; would more consumers catch up faster?

    python bench/consumer_throughput.py                      # N = 200,000
    python bench/consumer_throughput.py --messages 1000000 --skip-naive
    python bench/consumer_throughput.py --skip-naive --skip-alerts --skip-metrics --group-members 2 3
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness import (
    bench_settings,
    broker_and_pid,
    current_rss_mib,
    fresh_name,
    peak_rss_mib,
    process_cpu_seconds,
    quote_message,
)
from prometheus_client import CollectorRegistry, generate_latest

import consumer as project_consumer
import db
from alerts.engine import AlertEngine
from alerts.rules import parse_rules
from ingest.metrics import ConsumerMetrics
from ingest.store import QuoteStore
from service.registry import new_registry
from streaming.kafka_client import create_consumer, ensure_topic
from streaming.messages import QuoteRow


def run_raw(settings, count: int) -> dict[str, float]:
    client = create_consumer(settings)
    cpu_started = time.process_time()  # this process's CPU, every thread (kafka-python's too)
    started = time.perf_counter()
    seen = 0
    while seen < count:
        for records in client.poll(timeout_ms=500).values():
            seen += len(records)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    client.close(autocommit=False)
    return {"messages": seen, "seconds": elapsed, "cpu_seconds": cpu}


def run_project(settings, count: int, rules: str = "", counted: bool = False) -> dict[str, float]:
    connection = db.connect(settings.db_path)
    client = create_consumer(settings)
    engine = AlertEngine(parse_rules(rules), connection) if rules else None
    registry = new_registry() if counted else None
    metrics = ConsumerMetrics(registry, settings.db_path) if registry else None
    counting = Stopwatch()
    if metrics:  # the time spent counting, measured directly: the wall-clock ratio alone is noisier than 3%
        metrics.batch = counting.around(metrics.batch)  # type: ignore[method-assign]
        metrics.turn = counting.around(metrics.turn)  # type: ignore[method-assign]
    store = QuoteStore(connection, engine, metrics=metrics)
    durable = project_consumer.store_behind_the_disk(connection, settings.db_path)
    scraper = Scraper(registry) if registry else None
    cpu_started = time.process_time()  # this process's CPU, every thread (kafka-python's too)
    started = time.perf_counter()
    stored = 0
    milestones: list[float] = []
    while stored < count:
        if metrics:
            metrics.turn(client, store.outbox)  # as consumer.py does between batches
        stored += project_consumer.poll_and_store(client, store, durable)[1]
        while len(milestones) < 10 * stored // count:
            milestones.append(round(current_rss_mib(), 1))
    project_consumer.commit_offsets(client, durable.finish())
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    if scraper:
        scraper.stop()
    client.close(autocommit=False)
    rows = connection.execute("SELECT count(*) FROM stock_prices").fetchone()[0]
    alerts = connection.execute("SELECT count(*) FROM alerts").fetchone()[0]
    connection.close()
    return {"messages": rows, "seconds": elapsed, "cpu_seconds": cpu, "rss_mib_at_each_tenth": milestones,
            "alerts": alerts, "counting_seconds": counting.seconds, "scrapes": scraper.scrapes if scraper else 0,
            "scrape_seconds": scraper.seconds if scraper else 0.0}


class Stopwatch:
    """Adds up the time spent inside the functions it wraps."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def around(self, function):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
        return timed


class Scraper:
    """What a Prometheus server does, but every second rather than every 15: renders the whole registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.stopped = threading.Event()
        self.scrapes = 0
        self.seconds = 0.0
        self.thread = threading.Thread(target=self._run, args=(registry,), daemon=True)
        self.thread.start()

    def _run(self, registry: CollectorRegistry) -> None:
        while not self.stopped.wait(1.0):
            started = time.perf_counter()
            generate_latest(registry)
            self.seconds += time.perf_counter() - started
            self.scrapes += 1

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


BENCH_RULES = "2%/15m, 1%/1h, IBM>105, MSFT<101"


def run_alerts(settings, count: int) -> dict[str, float]:
    return run_project(settings, count, BENCH_RULES)


def run_naive(settings, count: int) -> dict[str, float]:
    connection = sqlite3.connect(settings.db_path)  # the defaults: rollback journal, synchronous=FULL
    connection.execute("CREATE TABLE quotes (symbol TEXT, ts TEXT, price REAL, open REAL, high REAL, low REAL, "
                       "volume INTEGER, source TEXT, fetched_at TEXT, UNIQUE (symbol, ts))")
    client = create_consumer(settings)
    cpu_started = time.process_time()  # this process's CPU, every thread (kafka-python's too)
    started = time.perf_counter()
    stored = 0
    while stored < count:
        for records in client.poll(timeout_ms=500).values():
            for record in records:
                if stored == count:
                    break
                m = json.loads(record.value)
                connection.execute("INSERT OR IGNORE INTO quotes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                   (m["symbol"], m["ts"], m["price"], m["open"], m["high"], m["low"], m["volume"],
                                    m["source"], m["fetched_at"]))
                connection.commit()
                stored += 1
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    client.close(autocommit=False)
    connection.close()
    return {"messages": stored, "seconds": elapsed, "cpu_seconds": cpu}


QUOTE_FIELDS = QuoteRow._fields  # the message's fields in db.INSERT_QUOTE's column order


def run_plain(settings, count: int) -> dict[str, float]:
    """What a stream framework's SQLite sink does (Quix Streams' BatchingSink): per poll, `json.loads`
    each value, one `executemany` into the same table in one transaction, then the offsets. Nothing is
    validated, no summary or bar is kept. Same file settings (WAL, synchronous=FULL) and client settings
    as ours, so only the per-message work differs."""
    connection = db.connect(settings.db_path)
    client = create_consumer(settings)
    cpu_started = time.process_time()  # this process's CPU, every thread (kafka-python's too)
    started = time.perf_counter()
    seen = 0
    while seen < count:
        rows = [tuple(message.get(field) for field in QUOTE_FIELDS)
                for records in client.poll(timeout_ms=500).values()
                for message in map(json.loads, (record.value for record in records))]
        if not rows:
            continue
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(db.INSERT_QUOTE, rows)
        connection.execute("COMMIT")
        project_consumer.commit_offsets(client, None, wait=False)
        seen += len(rows)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    client.close(autocommit=False)
    rows = connection.execute("SELECT count(*) FROM stock_prices").fetchone()[0]
    connection.close()
    return {"messages": rows, "seconds": elapsed, "cpu_seconds": cpu}


def run_metrics(settings, count: int) -> dict[str, float]:
    return run_project(settings, count, counted=True)


def run_member(settings, count: int) -> dict[str, float]:
    """One of several (b) loops in one group and one database: says it is ready, waits for the word to
    start, then stores until the database holds `count` rows (ids run 1..N in a fresh file)."""
    print("ready", flush=True)
    sys.stdin.readline()
    cpu_started, started = time.process_time(), time.perf_counter()
    connection = db.connect(settings.db_path)
    client = create_consumer(settings)
    store = QuoteStore(connection)
    durable = project_consumer.store_behind_the_disk(connection, settings.db_path)
    stored, last_commit = 0, None
    while (connection.execute("SELECT max(id) FROM stock_prices").fetchone()[0] or 0) < count:
        new = project_consumer.poll_and_store(client, store, durable)[1]
        if new:
            stored, last_commit = stored + new, time.time()
    project_consumer.commit_offsets(client, durable.finish())
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    client.close(autocommit=False)
    connection.close()
    return {"messages": stored, "seconds": elapsed, "cpu_seconds": cpu, "last_commit": last_commit}


ROLES = {"raw": run_raw, "project": run_project, "plain": run_plain, "metrics": run_metrics, "alerts": run_alerts,
         "naive": run_naive, "member": run_member}


def run_role(args: argparse.Namespace) -> None:
    settings = bench_settings(args.servers, args.topic, args.group or fresh_name(args.role), Path(args.db))
    result = ROLES[args.role](settings, args.count)
    result |= {"role": args.role, "rate": result["messages"] / result["seconds"], "peak_rss_mib": peak_rss_mib()}
    print(json.dumps(result))


def produce(servers: str, topic: str, count: int) -> float:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=servers, linger_ms=20, batch_size=512 * 1024,
                             compression_type=None)
    started = time.perf_counter()
    for index in range(count):
        key, value = quote_message(index)
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()
    return time.perf_counter() - started


BROKER_PID: int | None = None  # the local broker's, when this run started it


def role_command(role: str, servers: str, topic: str, count: int, database: Path) -> list[str]:
    """This script, run as one contender."""
    return [sys.executable, __file__, "--role", role, "--servers", servers, "--topic", topic, "--count", str(count),
            "--db", str(database)]


def measure(role: str, servers: str, topic: str, count: int, workdir: Path) -> dict:
    """One contender in its own process, into a database of its own (a second run into the same file
    would find every row stored already); with the broker's CPU over that process's whole run."""
    database = next(path for path in (workdir / f"{role}-{run}.db" for run in range(1, 100)) if not path.exists())
    command = role_command(role, servers, topic, count, database)
    broker_before = process_cpu_seconds(BROKER_PID)
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    result["broker_cpu_seconds"] = process_cpu_seconds(BROKER_PID) - broker_before
    return result


def measure_group(members: int, servers: str, topic: str, count: int, workdir: Path) -> dict:
    """(g): `members` copies of (b) started together in one group, storing into one database; timed from
    the word to start until the last row's commit, with their CPU added up and the broker's over the run."""
    database = workdir / f"group-{members}-{fresh_name('db')}.db"
    db.connect(database).close()  # the schema made once, not raced for by every member
    command = [*role_command("member", servers, topic, count, database), "--group", fresh_name("group")]
    processes = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                 for _ in range(members)]
    for process in processes:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    broker_before = process_cpu_seconds(BROKER_PID)
    started = time.time()
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    outcomes = []
    for process in processes:
        output = process.communicate()[0]
        if process.returncode:
            raise subprocess.CalledProcessError(process.returncode, command, output)
        outcomes.append(json.loads(output.strip().splitlines()[-1]))
    connection = sqlite3.connect(database)
    rows = connection.execute("SELECT count(*) FROM stock_prices").fetchone()[0]
    connection.close()
    seconds = max(outcome["last_commit"] for outcome in outcomes if outcome["last_commit"]) - started
    return {"messages": rows, "seconds": seconds, "rate": rows / seconds,
            "cpu_seconds": sum(outcome["cpu_seconds"] for outcome in outcomes),
            "broker_cpu_seconds": process_cpu_seconds(BROKER_PID) - broker_before,
            "peak_rss_mib": max(outcome["peak_rss_mib"] for outcome in outcomes),
            "stored_by_each": [outcome["messages"] for outcome in outcomes]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000, help="messages produced (default 200,000)")
    parser.add_argument("--naive-messages", type=int, default=20_000,
                        help="messages the naive baseline stores (default 20,000: at one commit each it is slow)")
    parser.add_argument("--skip-naive", action="store_true", help="leave out the naive baseline")
    parser.add_argument("--skip-alerts", action="store_true", help="leave out the run with alert rules")
    parser.add_argument("--skip-metrics", action="store_true", help="leave out the runs with metrics counted")
    parser.add_argument("--alternations", type=int, default=3,
                        help="rounds of (b), (p) and (b\"), alternately, the median of each kept (default 3)")
    parser.add_argument("--group-members", type=int, nargs="*", default=[], metavar="K",
                        help="also run (g) with K consumers in one group and one database, for each K given")
    parser.add_argument("--role", choices=ROLES, help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    parser.add_argument("--servers", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role:
        run_role(args)
        return 0

    global BROKER_PID
    with broker_and_pid() as (servers, BROKER_PID), tempfile.TemporaryDirectory(prefix="stockmon-bench-") as workdir:
        topic = fresh_name("throughput")
        ensure_topic(bench_settings(servers, topic, "unused", Path(workdir) / "unused.db"))
        seconds = produce(servers, topic, args.messages)
        print(f"produced {args.messages:,} messages over {len(set(quote_message(i)[0] for i in range(16)))} "
              f"symbols in {seconds:.1f} s")
        # The raw ceiling is measured before and after ours and the faster run kept: the first run
        # can be slowed by the broker still settling the freshly produced log.
        raw_before = measure("raw", servers, topic, args.messages, Path(workdir))
        ours, baseline, counted = [], [], []
        for _ in range(args.alternations):
            ours.append(measure("project", servers, topic, args.messages, Path(workdir)))
            baseline.append(measure("plain", servers, topic, args.messages, Path(workdir)))
            if not args.skip_metrics:
                counted.append(measure("metrics", servers, topic, args.messages, Path(workdir)))
        raw_after = measure("raw", servers, topic, args.messages, Path(workdir))
        print(f"raw runs: {raw_before['rate']:,.0f} msg/s before, {raw_after['rate']:,.0f} msg/s after; "
              "the faster is the ceiling")
        print("stockmon / plain baseline, alternately: " + ", ".join(
            f"{mine['rate']:,.0f} / {theirs['rate']:,.0f}" for mine, theirs in zip(ours, baseline, strict=True))
            + " msg/s")
        fastest = lambda runs: max(runs, key=lambda result: result["rate"])  # noqa: E731
        median = lambda runs: sorted(runs, key=lambda result: result["rate"])[len(runs) // 2]  # noqa: E731
        results = {"raw": fastest([raw_before, raw_after]), "project": median(ours), "plain": median(baseline)}
        if counted:
            print("with and without metrics, alternately: " + ", ".join(
                f"{off['rate']:,.0f} / {on['rate']:,.0f}" for off, on in zip(ours, counted, strict=True)) + " msg/s")
            results["metrics"] = median(counted)
            pairs = sorted(on["rate"] / off["rate"] for off, on in zip(ours, counted, strict=True))
            results["metrics"]["pair_ratio"] = pairs[len(pairs) // 2]
        if not args.skip_alerts:
            results["alerts"] = measure("alerts", servers, topic, args.messages, Path(workdir))
        for members in args.group_members:
            results[f"group{members}"] = measure_group(members, servers, topic, args.messages, Path(workdir))
        if not args.skip_naive:
            results["naive"] = measure("naive", servers, topic, min(args.naive_messages, args.messages),
                                       Path(workdir))
    labels = {"raw": "(a) raw kafka-python poll", "project": "(b) stockmon consumer",
              "plain": "(p) plain poll+executemany",
              "metrics": '(b") with metrics counted',
              "alerts": "(b') with 4 alert rules", "naive": "(c) naive, commit per row"}
    labels |= {f"group{members}": f"(g) {members} in one group" for members in args.group_members}
    for role, result in results.items():
        print(f"{labels[role]:<28} {result['messages']:>9,} msgs {result['seconds']:>8.2f} s "
              f"{result['rate']:>10,.0f} msg/s   peak RSS {result['peak_rss_mib']:.0f} MiB")
    print(f"stockmon consumer RSS at each tenth of the run (MiB): {results['project']['rss_mib_at_each_tenth']}")
    print("CPU per message (us), the contender's process while timed (all its threads) + the broker over that "
          "process's whole run:")
    cores = os.cpu_count() or 1
    for role, result in results.items():
        own, served = result["cpu_seconds"] / result["messages"] * 1e6, result["broker_cpu_seconds"] / result[
            "messages"] * 1e6
        print(f"  {labels[role]:<28} {own:6.1f} + {served:5.1f} = {own + served:6.1f} us; at most "
              f"{cores * 1e6 / (own + served):,.0f} msg/s on {cores} cores if it could use them all")
    print(f"ratio b/a (stored vs raw fetch): {results['project']['rate'] / results['raw']['rate']:.2f}"
          "   (goal: at least 0.6)")
    pairs = [mine["rate"] / theirs["rate"] for mine, theirs in zip(ours, baseline, strict=True)]
    print(f"ratio b/p (stockmon vs the plain baseline, medians): "
          f"{results['project']['rate'] / results['plain']['rate']:.2f}; round by round: "
          f"{', '.join(f'{pair:.2f}' for pair in pairs)}   (goal: at least 1.5, never below 1.1)")
    if "metrics" in results:
        counted = results["metrics"]
        print(f'ratio b"/b (metrics on vs off, medians, scraped every second): '
              f'{counted["rate"] / results["project"]["rate"]:.3f}')
        print(f'median of the {args.alternations} run-by-run ratios (each run with metrics against the run without '
              f'just before it): {counted["pair_ratio"]:.3f}')
        print(f"time spent counting in the metrics run: {counted['counting_seconds'] * 1000:.0f} ms of "
              f"{counted['seconds']:.2f} s ({counted['counting_seconds'] / counted['seconds']:.2%}); "
              f"{counted['scrapes']} scrape(s) took {counted['scrape_seconds'] * 1000:.0f} ms "
              f"({counted['scrape_seconds'] / counted['seconds']:.2%}) on their own thread")
    if "alerts" in results:
        print(f"ratio b'/b (alert rules {BENCH_RULES!r}, {results['alerts']['alerts']:,} alerts fired): "
              f"{results['alerts']['rate'] / results['project']['rate']:.2f}")
    for members in args.group_members:
        group = results[f"group{members}"]
        print(f"ratio g/b ({members} consumers in one group and one database vs one consumer): "
              f"{group['rate'] / results['project']['rate']:.2f}; rows stored by each: "
              f"{', '.join(f'{stored:,}' for stored in group['stored_by_each'])}")
    if "naive" in results:
        print(f"ratio b/c (stored vs naive):     {results['project']['rate'] / results['naive']['rate']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
