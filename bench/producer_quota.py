"""How much of the per-minute API budget the producer uses when each answer takes a while.

Runs the real producer.py against a local Alpha Vantage stand-in that answers every call after
250 ms (about the real API's latency) and a real broker, and counts the calls where they arrive:
at the stand-in. Side by side in one run:

- 50 symbols of GLOBAL_QUOTE at each REQUESTS_PER_MINUTE given (default 75, 600 and 1,200): calls
  per minute against the budget, and the most calls in any 60-second window; the baseline is the
  same at 600/min with REQUESTS_IN_FLIGHT=1 (each call waits for the previous answer, as before);
- REALTIME_BULK_QUOTES for 500 symbols at 75/min: the longest any symbol waited between two
  refreshes, and the producer's CPU time per call.

    python bench/producer_quota.py                       # 60 s per run, about 4 minutes
    python bench/producer_quota.py --seconds 10 --rates 600
"""

from __future__ import annotations

import argparse
import bisect
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import PROJECT_DIR, broker, fresh_name

from alphavantage_standin import AlphaVantageStandIn, changing_global_quotes

LATENCY_SECONDS = 0.25


def most_in_any_window(times: list[float], width: float = 60.0) -> int:
    times = sorted(times)
    return max((bisect.bisect_left(times, start + width) - index for index, start in enumerate(times)), default=0)


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user + system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_producer(servers: str, standin: AlphaVantageStandIn, workdir: Path, seconds: float,
                 **settings: str) -> tuple[list[tuple[float, list[str]]], float, float]:
    """Run producer.py for `seconds` after its first call; return the calls (arrival, symbols), the
    measured span and the producer's CPU seconds over that span (start-up left out)."""
    topic = fresh_name("quota")
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": servers, "KAFKA_TOPIC": topic, "ALPHAVANTAGE_BASE_URL": standin.url,
           "ALPHAVANTAGE_API_KEY": "BENCHKEY12345678", "REQUESTS_PER_DAY": "0", "LOG_LEVEL": "WARNING",
           "POLL_HOURS": "always", "BACKFILL": "off",  # the quota at any hour, quotes only
           "PRODUCER_STATE_PATH": str(workdir / f"{topic}.json"), **settings}
    before = len(standin.requests)
    producer = subprocess.Popen([sys.executable, str(PROJECT_DIR / "producer.py"), "--env-file", os.devnull],
                                env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(standin.requests) == before:
            if time.monotonic() > deadline or producer.poll() is not None:
                raise SystemExit("the producer made no call within 60 s")
            time.sleep(0.01)
        cpu_before = cpu_seconds(producer.pid)
        time.sleep(seconds)
        cpu = cpu_seconds(producer.pid) - cpu_before
        producer.send_signal(signal.SIGTERM)
        producer.wait(30)
    finally:
        if producer.poll() is None:
            producer.kill()
    calls = [(moment, request["symbol"].split(","))
             for request, moment in zip(standin.requests[before:], standin.request_times[before:], strict=True)]
    first = calls[0][0]
    return [call for call in calls if call[0] < first + seconds], seconds, cpu


def longest_wait(calls: list[tuple[float, list[str]]], symbols: list[str], start: float) -> float:
    """The longest time any symbol went without a refresh (from the run's first call)."""
    seen: dict[str, float] = dict.fromkeys(symbols, start)
    longest = 0.0
    for moment, asked in calls:
        for symbol in asked:
            longest = max(longest, moment - seen[symbol])
            seen[symbol] = moment
    return longest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each run (default 60)")
    parser.add_argument("--rates", default="75,600,1200", help="REQUESTS_PER_MINUTE values (default 75,600,1200)")
    parser.add_argument("--bulk-symbols", type=int, default=500, help="symbols in the bulk run (default 500)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the one-call-at-a-time baseline")
    args = parser.parse_args(argv)
    symbols = [f"S{index:03d}" for index in range(50)]
    with broker() as servers, AlphaVantageStandIn() as standin, tempfile.TemporaryDirectory() as workdir:
        standin.delay = LATENCY_SECONDS
        for symbol in symbols:
            standin.script("GLOBAL_QUOTE", symbol, *changing_global_quotes(2000))
        print(f"stand-in answers after {LATENCY_SECONDS * 1000:.0f} ms; {args.seconds:g} s per run")
        print(f"{'REQUESTS_PER_MINUTE':>20} {'calls/min':>10} {'of budget':>10} {'max in 60 s':>12} {'CPU/call':>9}")
        runs = [(int(text), "auto") for text in args.rates.split(",")]
        if not args.no_baseline:
            runs.insert(0, (600, "1"))
        used: dict[tuple[int, str], float] = {}
        for rate, in_flight in runs:
            calls, span, cpu = run_producer(servers, standin, Path(workdir), args.seconds, REQUESTS_IN_FLIGHT=in_flight,
                                            STOCK_SYMBOLS=",".join(symbols), REQUESTS_PER_MINUTE=str(rate))
            per_minute = len(calls) * 60 / span
            used[rate, in_flight] = per_minute
            label = f"{rate}" + (" (1 in flight)" if in_flight == "1" else "")
            print(f"{label:>20} {per_minute:>10,.0f} {per_minute / rate:>10.1%} "
                  f"{most_in_any_window([moment for moment, _ in calls]):>12,} {cpu / len(calls) * 1000:>7.2f}ms")
        if (600, "1") in used and (600, "auto") in used:
            print(f"ratio calls at 600/min, in flight vs one at a time: {used[600, 'auto'] / used[600, '1']:.2f}")
        bulk = [f"B{index:03d}" for index in range(args.bulk_symbols)]
        calls, span, cpu = run_producer(servers, standin, Path(workdir), args.seconds, STOCK_SYMBOLS=",".join(bulk),
                                        ALPHAVANTAGE_FUNCTION="REALTIME_BULK_QUOTES", REQUESTS_PER_MINUTE="75")
        wait = longest_wait(calls, bulk, calls[0][0])
        print(f"REALTIME_BULK_QUOTES, {len(bulk)} symbols at 75/min: {len(calls)} calls in {span:g} s, "
              f"longest wait between two refreshes of a symbol {wait:.2f} s, "
              f"producer CPU {cpu / len(calls) * 1000:.2f} ms per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
