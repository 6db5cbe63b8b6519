"""Months of data: roll-ups, the purge and the charts on a generated database of 10M quotes.

Builds, from a fixed seed, a database as the release before the bars left it: 10,000,000 snapshot
quotes of 500 symbols over 60 weekdays (2026-08-03 to 2026-10-23, each session 14:30-21:00 UTC),
no bars, no incremental vacuum (333 quotes a symbol and session: 9,990,000). Then, in one run:

  1. the roll-up from scratch (history/catchup.py, what the consumer's first start does), and the
     one-off conversion to incremental vacuum;
  2. a 1-year chart of every symbol read from daily bars against the same from raw quotes;
  3. the real consumer.py on that file, 1,000 msg/s sent to it, its send -> committed-row latency
     (the e2e_latency harness) without a purge; then restarted with a RETAIN_QUOTES that leaves the
     last 10 days, so that its housekeeping purges the first 50 while the same load runs: the purge's
     rows/s and longest write lock (its own log line), the file's size before and after, and the
     latency during the purge against without.

    python bench/history_scale.py                     # 10M quotes, about an hour on 2 cores
    python bench/history_scale.py --quotes 1000000    # a quicker look

    # Prepare once and keep it (DIR/stocks.db, and the consumer's log beside it), then measure the purge
    # on copies, as often as needed:
    python bench/history_scale.py --workdir DIR --prepare-only
    cp DIR/stocks.db DIR/run.db && python bench/history_scale.py --database DIR/run.db
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from e2e_latency import appended_at, newest_id, running_consumer, send_at_rate, tail_stages, written_at
from harness import broker, percentile
from slow_disk import SlowDiskError, slow_disk

import db
from history.catchup import catch_up
from history.series import DAILY_BARS, MINUTE_BARS, quote_points, read_series
from history.vacuum import convert_to_incremental, file_size
from quotesource.alphavantage import GLOBAL_QUOTE, Quote
from reference_bars import make_pre_bars_database
from streaming.messages import encode_quote

FIRST_DAY = date(2026, 8, 3)
SESSION_OPEN, SESSION_SECONDS = timedelta(hours=14, minutes=30), 6.5 * 3600
INSERT = ("INSERT INTO stock_prices (symbol, ts, price, open, high, low, volume, change, change_percent, "
          "trading_day, source, fetched_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'GLOBAL_QUOTE', ?)")
PURGED = re.compile(r"purged (?P<rows>\d+) stock_prices.* in (?P<took>[\d.]+) (?P<unit>s|min|h) \(longest write lock "
                    r"(?P<lock>\d+) ms\); returned (?P<pages>\d+) free page\(s\): .* (?P<before>[\d.]+) MB -> "
                    r"(?P<after>[\d.]+) MB")


def weekdays(first: date, count: int) -> list[date]:
    days, day = [], first
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day += timedelta(days=1)
    return days


def generate(path: Path, quotes: int, symbols: int, days: list[date]) -> int:
    """Snapshot quotes as GLOBAL_QUOTE brings them: a random walk per symbol, the day's open, high and low,
    its running volume; written straight into a database of the release before the bars."""
    make_pre_bars_database(path, [])
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA auto_vacuum = NONE")  # as older releases created it
    connection.execute("VACUUM")
    rng = random.Random(20261204)
    names = [f"S{index:03d}" for index in range(symbols)]
    price = {name: rng.uniform(20, 500) for name in names}
    per_day = max(1, round(quotes / (symbols * len(days))))
    step = SESSION_SECONDS / per_day
    written = 0
    for day in days:
        opening = datetime.combine(day, datetime.min.time(), UTC) + SESSION_OPEN
        stamps = [format_ms(opening + timedelta(seconds=index * step)) for index in range(per_day)]
        previous_close = dict(price)
        day_open = dict(price)
        high, low, volume = dict(price), dict(price), dict.fromkeys(names, 0)
        rows = []
        for ts in stamps:
            for name in names:
                moved = price[name] * math.exp(rng.gauss(0, 0.0015))
                price[name] = moved
                high[name], low[name] = max(high[name], moved), min(low[name], moved)
                volume[name] += rng.randrange(100, 5000)
                change = moved - previous_close[name]
                rows.append((name, ts, round(moved, 4), round(day_open[name], 4), round(high[name], 4),
                             round(low[name], 4), volume[name], round(change, 4),
                             round(100 * change / previous_close[name], 4), day.isoformat(), ts))
        connection.execute("BEGIN")
        connection.executemany(INSERT, rows)
        connection.execute("COMMIT")
        written += len(rows)
    connection.close()
    return written


def format_ms(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def count(connection: sqlite3.Connection, table: str) -> int:
    return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def chart_reads(connection: sqlite3.Connection, since: str, until: str) -> tuple[float, float, int, str]:
    """Seconds to read a 1-year chart of every symbol from the bars (as the web page does), and from raw
    quotes down-sampled in SQL (as it did before the bars), the raw rows the latter covered, and the bars
    read (daily ones, unless --days is a month or less: a span counts from the symbol's first data)."""
    symbols = [row[0] for row in connection.execute("SELECT DISTINCT symbol FROM bars_1d ORDER BY symbol")]
    sources = set()
    started = time.perf_counter()
    for symbol in symbols:
        series = read_series(connection, symbol, since, until, 1000)
        assert series.source in (DAILY_BARS, MINUTE_BARS) and series.points
        sources.add(series.source)
    from_bars = time.perf_counter() - started
    started = time.perf_counter()
    for symbol in symbols:
        assert quote_points(connection, symbol, since, until, 1000)[0]
    from_raw = time.perf_counter() - started
    return from_bars, from_raw, count(connection, "stock_prices"), " and ".join(sorted(sources))


class LiveFeed:
    """Quotes for the consumer while it runs: 8 symbols not in the generated data, stamped 10 ms apart from
    a day before the run (in the past, as the consumer wants, and newer than any retention)."""

    def __init__(self) -> None:
        self.start = datetime.now(UTC) - timedelta(days=1)
        self.run = "".join(random.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(3))  # new keys each run
        self.next = 0

    def message(self, index: int) -> tuple[bytes, bytes]:
        symbol = f"LIVE{self.run}{index % 8}"
        quote = Quote(symbol=symbol, ts=self.start + timedelta(milliseconds=10 * index), price=100.0 + index % 50,
                      open=100.0, high=150.0, low=99.0, volume=1000 + index, source=GLOBAL_QUOTE,
                      trading_day=None, fetched_at=self.start + timedelta(milliseconds=10 * index))
        return symbol.encode(), encode_quote(quote)

    def take(self) -> tuple[bytes, bytes]:
        self.next += 1
        return self.message(self.next - 1)

    def send(self, pipeline, rate: int, keep_going, most_seconds: float) -> dict:
        """Send at `rate` a second at a time while `keep_going()`, for at most `most_seconds`; the send times."""
        sent: dict = {}
        started = time.monotonic()
        while keep_going() and time.monotonic() - started < most_seconds:
            more, _ = send_at_rate(pipeline.producer, pipeline.topic, self.next, rate, rate, self.message)
            self.next += rate
            sent |= more
        pipeline.producer.flush()
        return sent


def latencies(pipeline, sent: dict) -> list[float]:
    """Each sent quote's send -> committed-row time (ms), once the watcher has seen them all (or 2 min)."""
    pipeline.watch.wait_for_rows(len(pipeline.watch.seen) + len(set(sent) - set(pipeline.watch.seen)), 120)
    seen = pipeline.watch.seen
    return [(seen[key] - at) * 1000 for key, at in sent.items() if key in seen]


def stages(servers: str, pipeline, path: Path, after_id: int, sent: dict) -> str:
    """Where the slowest 1% of `sent` spent their time (bench/e2e_latency.py's stages)."""
    spent = tail_stages(sent, appended_at(servers, pipeline.topic), written_at(path, after_id), pipeline.watch.seen)
    return "slowest 1%: " + ", ".join(f"{stage} {ms:.1f}" for stage, ms in spent.items())


def summary(values: list[float], sent: int) -> str:
    return (f"{len(values):,} of {sent:,} rows committed; p50 {percentile(values, 0.5):.1f}  p99 "
            f"{percentile(values, 0.99):.1f}  max {max(values):.1f} ms")


def seconds_of(took: str, unit: str) -> float:
    return float(took) * {"s": 1, "min": 60, "h": 3600}[unit]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quotes", type=int, default=10_000_000, help="quotes to generate (default 10,000,000)")
    parser.add_argument("--symbols", type=int, default=500, help="symbols (default 500)")
    parser.add_argument("--days", type=int, default=60, help="weekdays of quotes (default 60)")
    parser.add_argument("--keep-days", type=int, default=10, help="the last days the purge keeps (default 10)")
    parser.add_argument("--rate", type=int, default=1000, help="messages per second to the consumer (default 1,000)")
    parser.add_argument("--seconds", type=float, default=30, help="the latency run without a purge (default 30)")
    parser.add_argument("--workdir", type=Path,
                        help="keep the database and the consumer's log in this folder (default: a temporary "
                             "folder, removed at the end)")
    parser.add_argument("--prepare-only", action="store_true",
                        help="stop after steps 1 and 2, leaving --workdir/stocks.db for --database")
    parser.add_argument("--purge-minutes", type=float, default=60,
                        help="measure at most this long of the purge (default 60)")
    parser.add_argument("--disk-iops", type=int,
                        help="cap the consumer's disk at this many reads and writes a second, in both latency "
                             "phases (a slower disk; needs root and cgroup v1 blkio: bench/slow_disk.py)")
    parser.add_argument("--cold", action="store_true",
                        help="drop the database's pages from the page cache before each latency phase (a database "
                             "larger than memory, whose oldest rows are on disk only)")
    parser.add_argument("--database", type=Path,
                        help="a database an earlier run prepared and left, rolled up (steps 1 and 2 skipped)")
    args = parser.parse_args(argv)

    days = weekdays(FIRST_DAY, args.days)
    if args.database:
        return measure_purge(args.database, args, days)
    if args.prepare_only and not args.workdir:
        parser.error("--prepare-only needs --workdir, where the prepared database stays")
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stockmon-history-")))
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / "stocks.db"
        if path.exists():
            parser.error(f"{path} exists; remove it, or measure it with --database")
        prepare(path, args, days)
        if args.prepare_only:
            print(f"prepared {path}; measure the purge on a copy with --database", flush=True)
            return 0
        return measure_purge(path, args, days)


def prepare(path: Path, args: argparse.Namespace, days: list[date]) -> None:
    """Generate, roll up, convert, and time the 1-year chart both ways."""
    started = time.perf_counter()
    quotes = generate(path, args.quotes, args.symbols, days)
    print(f"generated {quotes:,} quotes of {args.symbols} symbols over {len(days)} weekdays ({days[0]} to "
          f"{days[-1]}) in {time.perf_counter() - started:.0f} s: {file_size(path) / 1e6:,.0f} MB", flush=True)
    connection = db.connect(path)  # the upgrade records the ids to roll up, as at the consumer's start
    started = time.perf_counter()
    rolled = catch_up(connection, pause=lambda _: None)
    took = time.perf_counter() - started
    print(f"roll-up from scratch: {rolled:,} quotes -> {count(connection, 'bars_1m'):,} 1-minute and "
          f"{count(connection, 'bars_1d'):,} daily bars in {took:.1f} s ({rolled / took:,.0f} quotes/s without "
          "pauses; the consumer's housekeeping writes a tenth of the time)", flush=True)
    converted = convert_to_incremental(connection, path)
    print(f"conversion to incremental vacuum (once, at the first start after the upgrade): {converted:.1f} s; "
          f"file {file_size(path) / 1e6:,.0f} MB", flush=True)
    until = format_ms(datetime.combine(days[-1], datetime.min.time(), UTC) + timedelta(days=1))
    since = format_ms(datetime.fromisoformat(until) - timedelta(days=365))
    from_bars, from_raw, raw_rows, bars = chart_reads(connection, since, until)
    print(f"1-year chart of all {args.symbols} symbols (1,000 points each): from {bars} bars {from_bars * 1000:.0f} "
          f"ms, from {raw_rows:,} raw quotes {from_raw * 1000:,.0f} ms: {from_raw / from_bars:,.0f}x faster",
          flush=True)
    connection.close()


def settle(path: Path, cold: bool) -> None:
    """Write out what is still to be written (a copy or the preparation just made: left to the kernel, the
    consumer's first fsyncs wait for gigabytes of it), and with `cold` drop the file from the page cache."""
    os.sync()
    if cold:
        for part in (path, Path(f"{path}-wal")):
            if part.exists():
                descriptor = os.open(part, os.O_RDONLY)
                try:
                    os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(descriptor)


def measure_purge(path: Path, args: argparse.Namespace, days: list[date]) -> int:
    """The consumer's latency at the rate without a purge, then while its housekeeping purges all but the
    last --keep-days (or for --purge-minutes of it), on a capped disk with --disk-iops."""
    keep_from = datetime.combine(days[-args.keep_days], datetime.min.time(), UTC)
    feed = LiveFeed()
    with contextlib.ExitStack() as stack:
        try:
            tasks = stack.enter_context(slow_disk(path, args.disk_iops)) if args.disk_iops else None
        except SlowDiskError as exc:
            print(f"history_scale: error: --disk-iops: {exc}", file=sys.stderr)
            return 2
        if tasks:
            print(f"the consumer's disk is capped at {args.disk_iops:,} reads and {args.disk_iops:,} writes a second",
                  flush=True)
        return measure_latencies(path, args, days, keep_from, feed, tasks)


def measure_latencies(path: Path, args: argparse.Namespace, days: list[date], keep_from: datetime, feed: LiveFeed,
                      tasks: Path | None) -> int:
    """The two latency phases, and the purge's figures from the consumer's log."""
    workdir = path.parent
    with broker() as servers:
        log_path = workdir / f"consumer-{feed.run}.log"
        print(f"the purging consumer's log: {log_path}", flush=True)
        after_id = newest_id(path)
        settle(path, args.cold)
        with running_consumer(servers, workdir, "history", db_path=path, first_message=feed.take(),
                              cgroup_tasks=tasks) as pipeline:
            latencies(pipeline, feed.send(pipeline, args.rate, lambda: True, 5))  # warm-up, unmeasured
            sent = feed.send(pipeline, args.rate, lambda: True, args.seconds)
            quiet = latencies(pipeline, sent)
        print(f"ingest at {args.rate:,} msg/s, no purge: {summary(quiet, len(sent))}; "
              f"{stages(servers, pipeline, path, after_id, sent)}", flush=True)

        hours = math.ceil((datetime.now(UTC) - keep_from).total_seconds() / 3600)
        size_before = file_size(path)
        after_id = newest_id(path)
        settle(path, args.cold)
        with running_consumer(servers, workdir, "history-purge", db_path=path,
                              settings_env={"RETAIN_QUOTES": f"{hours}h", "LOG_LEVEL": "INFO"},
                              log_path=log_path, first_message=feed.take(), cgroup_tasks=tasks) as pipeline:
            # Warmed up as without the purge: a new topic's first seconds cost the sender, not the consumer.
            latencies(pipeline, feed.send(pipeline, args.rate, lambda: True, 5))
            sent = feed.send(pipeline, args.rate, lambda: not PURGED.search(log_path.read_text()),
                             args.purge_minutes * 60)
            during = latencies(pipeline, sent)
        if not during:
            print("history_scale: error: the purge ended within the 5 s warm-up; generate more --quotes",
                  file=sys.stderr)
            return 1
        during_stages = stages(servers, pipeline, path, after_id, sent)
        # A purge stopped by the consumer's stop logs what it did too.
        done = PURGED.search(log_path.read_text())
        if not done:
            print(f"history_scale: error: no purge line in {log_path}", file=sys.stderr)
            return 1
    purged, purge_seconds = int(done["rows"]), seconds_of(done["took"], done["unit"])
    whole = "" if purge_seconds < args.purge_minutes * 60 else f" (the first {args.purge_minutes:g} min of it)"
    print(f"purge of {len(days) - args.keep_days} days (RETAIN_QUOTES={hours}h) by the running consumer{whole}: "
          f"{purged:,} raw quotes in {purge_seconds:.0f} s ({purged / purge_seconds:,.0f} rows/s, pauses "
          f"included), longest write lock {done['lock']} ms; file {size_before / 1e6:,.0f} MB -> "
          f"{file_size(path) / 1e6:,.0f} MB ({int(done['pages']):,} pages returned)", flush=True)
    print(f"ingest at {args.rate:,} msg/s during the purge: {summary(during, len(sent))}; {during_stages}", flush=True)
    print(f"p99 during the purge / without: {percentile(during, 0.99) / percentile(quiet, 0.99):.2f}; "
          f"median {statistics.median(during):.1f} / {statistics.median(quiet):.1f} ms", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
