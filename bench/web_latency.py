"""The live page at scale: from a commit of new quotes to the board event arriving, with 1 and with 100
open streams, the server's CPU with 100 idle streams, and the time to a first board and a 1-year chart
in Chromium.

Builds the database as bench/monitor_scale.py does (its seed, one-minute bars of N symbols, written
by db.save_batch as the consumer writes), starts `monitor.py --web` on it, then:

- opens 1, then 100 event streams (plain HTTP clients on one asyncio loop, as many browsers would)
  and commits one new quote a second for a marker symbol, its price the round's number: each
  stream's arrival of that board, minus the commit, is one latency; p50 and p99 over all rounds
  and streams, the detection timer (0.25 s) included;
- the server's CPU (user + system, /proc) over 20 s with 100 idle streams open and no commit;
- in Debian's Chromium (Playwright): from navigation to the first board row, and from a click on
  a symbol with the 1-year range to its drawn chart.

    python bench/web_latency.py                          # 10,000,000 quotes, 500 symbols: about 9 minutes
    python bench/web_latency.py --rows 200000 --symbols 50 --rounds 5 --idle-seconds 3   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from harness import PROJECT_DIR, percentile
from monitor_scale import build, symbols

import db
from common.timestamps import format_time
from streaming.messages import QuoteRow

MARKER = "ZZBENCH"
SERVING = re.compile(r"web page at (http://\S+)/ ")


def start_web(db_path: Path, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "POLL_HOURS": "always"}
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen([sys.executable, str(PROJECT_DIR / "monitor.py"), "--env-file", os.devnull, "--web",
                                    "--db", str(db_path), "--listen", "127.0.0.1:0"], env=env, stdout=log_file,
                                   stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not (found := SERVING.search(log_path.read_text())):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"monitor.py --web did not start:\n{log_path.read_text()}")
        time.sleep(0.1)
    return process, found.group(1)


def commit_marker(connection: sqlite3.Connection, number: int) -> float:
    """One new quote of the marker symbol, its price the round's number; the moment its commit returned."""
    ts = format_time(datetime.now(UTC))
    db.save_batch(connection, [QuoteRow(MARKER, ts, float(number), 1, 1, 1, 1, None, None, None, "GLOBAL_QUOTE", ts)],
                  [])
    return time.time()


async def stream(url: str, arrivals: dict[int, list[float]], ready: asyncio.Event, opened: list[int]) -> None:
    """Read the event stream; note when each board with a new marker price arrived."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port), limit=64 * 1024 * 1024)
    writer.write(f"GET /api/events HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    pattern = re.compile(rf'"symbol":"{MARKER}","price":(\d+)\.0'.encode())
    opened.append(1)
    seen = -1
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            if line.startswith(b"data:"):
                ready.set()
                found = pattern.search(line)
                if found and int(found.group(1)) != seen:
                    seen = int(found.group(1))
                    arrivals.setdefault(seen, []).append(time.time())
    finally:
        writer.close()


async def measure_latency(url: str, db_path: Path, clients: int, rounds: int) -> list[float]:
    arrivals: dict[int, list[float]] = {}
    ready, opened = asyncio.Event(), []
    tasks = [asyncio.create_task(stream(url, arrivals, ready, opened)) for _ in range(clients)]
    await asyncio.wait_for(ready.wait(), 60)
    await asyncio.sleep(2)  # every stream has had its first board
    connection = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)  # one writer thread at a time
    base = int(time.time())  # a price no earlier run used
    commits: dict[int, float] = {}
    for round_number in range(rounds):
        number = base + round_number
        commits[number] = await asyncio.to_thread(commit_marker, connection, number)
        await asyncio.sleep(1.0)
    await asyncio.sleep(2)
    connection.close()
    for task in tasks:
        task.cancel()
    latencies = [arrived - commits[number] for number, moments in arrivals.items() if number in commits
                 for arrived in moments]
    expected = clients * rounds
    if len(latencies) < expected:
        print(f"  note: {expected - len(latencies)} of {expected} arrivals missing (a stream was dropped?)")
    return latencies


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def idle_cpu(url: str, pid: int, clients: int, seconds: float) -> float:
    arrivals: dict[int, list[float]] = {}
    ready, opened = asyncio.Event(), []
    tasks = [asyncio.create_task(stream(url, arrivals, ready, opened)) for _ in range(clients)]
    await asyncio.wait_for(ready.wait(), 60)
    await asyncio.sleep(2)
    before, started = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    used = cpu_seconds(pid) - before
    elapsed = time.monotonic() - started
    for task in tasks:
        task.cancel()
    return used / elapsed


def first_paint(url: str, symbol: str) -> tuple[float, float]:
    """Seconds from navigation to the first board row, and from a click on `symbol` (1-year range) to its chart."""
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        raise SystemExit("Chromium is needed for the first-paint figures: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        started = time.perf_counter()
        page.goto(url)
        page.wait_for_selector("#board tbody tr", timeout=60_000)
        board = time.perf_counter() - started
        page.click(f"#board tr[data-symbol='{symbol}']")
        page.wait_for_selector("#chart-section[data-points]", timeout=60_000)
        started = time.perf_counter()
        page.evaluate("document.querySelector('#chart-section').removeAttribute('data-points')")
        page.click("#ranges button[data-range='1y']")
        page.wait_for_selector("#chart-section[data-points]", timeout=60_000)
        chart = time.perf_counter() - started
        points = page.get_attribute("#chart-section", "data-points")
        browser.close()
    print(f"  the 1-year chart of {symbol}: {points} points drawn")
    return board, chart


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000, help="quotes stored (default 10,000,000)")
    parser.add_argument("--symbols", type=int, default=500, help="symbols (default 500)")
    parser.add_argument("--rounds", type=int, default=20, help="commits measured per client count (default 20)")
    parser.add_argument("--clients", type=int, default=100, help="streams in the crowded run (default 100)")
    parser.add_argument("--idle-seconds", type=float, default=20.0, help="how long idle CPU is measured (default 20)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="stockmon-web-bench-") as workdir:
        db_path = Path(workdir) / "stocks.db"
        names = symbols(args.symbols)
        seconds = build(db_path, names, args.rows)
        stored = sqlite3.connect(db_path).execute("SELECT count(*) FROM stock_prices").fetchone()[0]
        print(f"built {stored:,} quotes of {len(names)} symbols in {seconds:.0f} s")
        process, url = start_web(db_path, Path(workdir) / "web.log")
        try:
            for clients in (1, args.clients):
                latencies = asyncio.run(measure_latency(url, db_path, clients, args.rounds))
                print(f"commit to event, {clients:>3} stream(s): p50 {statistics.median(latencies) * 1000:.0f} ms, "
                      f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms "
                      f"({len(latencies)} arrivals)")
            share = asyncio.run(idle_cpu(url, process.pid, args.clients, args.idle_seconds))
            print(f"server CPU with {args.clients} idle streams: {share:.1%} of one core "
                  f"(over {args.idle_seconds:g} s, no commit)")
            board, chart = first_paint(url, names[0])
            print(f"first board row in Chromium: {board * 1000:.0f} ms; 1-year chart drawn: {chart * 1000:.0f} ms")
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
