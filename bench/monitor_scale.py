"""The read side at scale: the monitor's board, a chart, the consumer's writes and the alert rebuild on big databases.

Builds two databases reproducibly (the same seed, the project's own schema and db.save_batch, 2,000
rows a transaction as the consumer writes them): one-minute bars of N symbols over as many
sessions as the rows need, ending 2026-11-24 16:00 New York, in a large and a small size. Then,
side by side in one run:

- the board (what monitor.py --once, --json and each live refresh read) at the last bar: median
  of several builds on each database, and the ratio large/small (its cost should follow the
  symbols shown, not the rows stored);
- --chart --since 1d of 10 symbols on the large database, matplotlib included;
- the consumer's storing of 100,000 new messages (QuoteStore.store, 2,000 a batch, four alert
  rules; each symbol's walk going on from its last stored price) into the large database against
  an empty one, in rounds side by side (each a new stretch of time; the empty one made anew);
- the alert engine's rebuild on a consumer's start: the first quote of each symbol, four rules.

    python bench/monitor_scale.py                                   # 10,000,000 and 1,000,000 rows, 500 symbols:
                                                                    # about 11 minutes, 7 of them building
    python bench/monitor_scale.py --rows 200000 --small-rows 20000 --symbols 50   # a quick look
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import db
from alerts.engine import AlertEngine
from alerts.rules import parse_rules
from common.timestamps import format_time
from ingest.store import QuoteStore
from market.calendar import TradingCalendar
from market.hours import PollingHours
from streaming.messages import QuoteRow, encode_quote, quote_from_row
from view.board import build_board
from view.chart import ChartRequest, write_chart
from view.queries import alerts_between, closes, open_for_reading, price_history, summaries_until

END = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)  # 16:00 New York, a Tuesday
RULES = "2%/15m, 5%/1h, S000>150, S001<50"
BATCH = 2_000
SEED = 20261124


def symbols(count: int) -> list[str]:
    return [f"S{index:03d}" for index in range(count)]


def minutes_back(count: int) -> list[datetime]:
    """The last `count` session minutes up to END (bars stamped at each minute's end), oldest first."""
    calendar = TradingCalendar.nyse()
    stamps: list[datetime] = []
    for session in reversed(calendar.sessions_between(END - timedelta(days=3650), END + timedelta(seconds=1))):
        minute = session.close
        while minute > session.open and len(stamps) < count:
            stamps.append(minute)
            minute -= timedelta(minutes=1)
        if len(stamps) >= count:
            break
    return stamps[::-1]


def bars(names: list[str], rows: int, seed: int) -> Iterator[list[QuoteRow]]:
    """Batches of one-minute bars, a random walk per symbol, minute by minute across all symbols."""
    rng = random.Random(seed)
    prices = {name: rng.uniform(20, 400) for name in names}
    batch: list[QuoteRow] = []
    for stamp in minutes_back(rows // len(names)):
        ts = format_time(stamp)
        for name in names:
            price = max(0.01, round(prices[name] * (1 + rng.gauss(0, 0.001)), 4))
            prices[name] = price
            batch.append(QuoteRow(name, ts, price, price, round(price * 1.001, 4), round(price * 0.999, 4),
                                  rng.randrange(100, 10_000), None, None, None, "TIME_SERIES_INTRADAY", ts))
            if len(batch) == BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def build(path: Path, names: list[str], rows: int) -> float:
    """The database at `path`, written as the consumer writes; returns the seconds it took."""
    started = time.perf_counter()
    connection = db.connect(path)
    for batch in bars(names, rows, SEED):
        db.save_batch(connection, batch, [])
    connection.close()
    return time.perf_counter() - started


def board_seconds(path: Path, repeat: int) -> tuple[float, int]:
    """Median seconds to build the board at END, and the symbols on it."""
    hours = PollingHours("always")
    times, shown = [], 0
    for _ in range(repeat):
        connection = open_for_reading(path)
        started = time.perf_counter()
        board = build_board(connection, str(path), END, timedelta(minutes=15), hours=hours)
        times.append(time.perf_counter() - started)
        shown = len(board.lines)
        connection.close()
    return statistics.median(times), shown


def chart_seconds(path: Path, names: list[str], workdir: Path) -> float:
    """--chart --since 1d of 10 symbols: the queries and the drawing, as monitor.py does them."""
    started = time.perf_counter()
    connection = open_for_reading(path)
    since = END - timedelta(days=1)
    history = closes(price_history(connection, names[:10], format_time(since), format_time(END)))
    alerts = alerts_between(connection, list(history), format_time(since), format_time(END))
    connection.close()
    write_chart(ChartRequest(workdir / "chart.png", 1200, 600, False, "bench", since, END), history, alerts)
    return time.perf_counter() - started


def new_messages(path: Path, names: list[str], count: int, first_minute: int) -> list[SimpleNamespace]:
    """`count` Kafka records of one-minute bars from `first_minute` after END on, each symbol's walk going
    on from its last stored price: the stream the consumer would see next, the same for both databases."""
    connection = open_for_reading(path)
    prices = {summary.symbol: summary.price for summary in summaries_until(connection, db.END_OF_TIME)}
    connection.close()
    rng = random.Random(SEED + first_minute)
    records = []
    for index in range(count):
        name = names[index % len(names)]
        ts = format_time(END + timedelta(minutes=first_minute + index // len(names)))
        price = prices[name] = max(0.01, round(prices[name] * (1 + rng.gauss(0, 0.001)), 4))
        row = QuoteRow(name, ts, price, price, price, price, 100, None, None, None, "TIME_SERIES_INTRADAY", ts)
        records.append(SimpleNamespace(topic="bench", partition=0, offset=index, key=name.encode(),
                                       value=encode_quote(quote_from_row(row))))
    return records


def store_rate(path: Path, records: list[SimpleNamespace]) -> float:
    """Messages a second QuoteStore.store takes in 2,000-message batches, four rules on (the engine's
    state rebuild for each symbol included, as after a consumer's start)."""
    os.sync()  # the disk is not still writing back what came before (a build, a copy)
    connection = db.connect(path)
    store = QuoteStore(connection, AlertEngine(parse_rules(RULES), connection, clock=lambda: END + timedelta(days=1)),
                       clock=lambda: END + timedelta(days=1))
    started = time.perf_counter()
    for first in range(0, len(records), BATCH):
        store.store(records[first:first + BATCH])
    connection.close()  # its last checkpoint included: what the WAL deferred is paid here
    return len(records) / (time.perf_counter() - started)


def rebuild_seconds(path: Path, names: list[str]) -> float:
    """The alert engine's state rebuild on start: one new quote of each symbol, four rules."""
    connection = db.connect(path)
    engine = AlertEngine(parse_rules(RULES), connection, clock=lambda: END + timedelta(days=2))
    ts = format_time(END + timedelta(days=1, hours=1))
    rows = [QuoteRow(name, ts, 100.0, 100.0, 100.0, 100.0, 1, None, None, None, "TIME_SERIES_INTRADAY", ts)
            for name in names]
    started = time.perf_counter()
    engine.evaluate(rows)
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows in the large database")
    parser.add_argument("--small-rows", type=int, default=1_000_000, help="rows in the small database")
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5, help="board builds per database (median)")
    parser.add_argument("--messages", type=int, default=100_000, help="messages stored for the write figure, a round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the write figure (median)")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # the alerts the store's quotes fire are not what is measured
    names = symbols(args.symbols)
    with tempfile.TemporaryDirectory(prefix="stockmon-scale-") as workdir:
        work = Path(workdir)
        large, small, empty = work / "large.db", work / "small.db", work / "empty.db"
        built = build(large, names, args.rows)
        print(f"built {args.rows:,} rows over {args.symbols} symbols in {built:.1f} s "
              f"({args.rows / built:,.0f} rows/s)")
        build(small, names, args.small_rows)
        db.connect(empty).close()
        large_board, shown = board_seconds(large, args.repeat)
        small_board, _ = board_seconds(small, args.repeat)
        print(f"board ({shown} symbols): {large_board * 1000:,.0f} ms on {args.rows:,} rows, "
              f"{small_board * 1000:,.0f} ms on {args.small_rows:,}; ratio {large_board / small_board:.2f} "
              "(target: at most 100 ms, ratio about 1)")
        print(f"chart --since 1d of 10 symbols: {chart_seconds(large, names, work):.2f} s (target: at most 2 s)")
        # Rounds side by side: a shared disk's fsync times wander from one minute to the next.
        into_large, into_empty = [], []
        for round_number in range(args.rounds):
            records = new_messages(large, names, args.messages, 1 + round_number * (args.messages // len(names) + 1))
            into_large.append(store_rate(large, records))
            for leftover in work.glob("empty.db*"):
                leftover.unlink()
            into_empty.append(store_rate(empty, records))
        large_rate, empty_rate = statistics.median(into_large), statistics.median(into_empty)
        rounds = ", ".join(f"{a:,.0f}/{b:,.0f}" for a, b in zip(into_large, into_empty, strict=True))
        print(f"consumer store (median of {args.rounds} rounds of {args.messages:,} messages): {large_rate:,.0f} "
              f"msg/s into the large database, {empty_rate:,.0f} into an empty one; ratio "
              f"{large_rate / empty_rate:.2f} (target: at least 0.8); rounds large/empty: {rounds}")
        print(f"alert rebuild on start, {args.symbols} symbols, 4 rules: {rebuild_seconds(large, names):.2f} s "
              "(target: at most 1 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
