"""Shared by the benchmarks: a broker, project-format messages, settings, and memory readings."""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
# The project's modules, and tests/ for the Alpha Vantage stand-in.
for folder in (PROJECT_DIR / "tests", PROJECT_DIR):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from config import Settings, load_settings  # noqa: E402
from quotesource.alphavantage import TIME_SERIES_INTRADAY, Quote  # noqa: E402
from streaming.local_broker import LocalKafka  # noqa: E402
from streaming.messages import encode_quote  # noqa: E402

SYMBOLS = ("IBM", "MSFT", "AAPL", "GOOG", "AMZN", "NVDA", "BRK.B", "TSCO.LON")
EPOCH = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


@contextlib.contextmanager
def broker() -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS if set, else a local broker started for this run."""
    with broker_and_pid() as (servers, _):
        yield servers


@contextlib.contextmanager
def broker_and_pid() -> Iterator[tuple[str, int | None]]:
    """As broker(), with the local broker's process id (None for a broker of the user's): its CPU is
    read from /proc to tell what serving a contender cost."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured, None
        return
    with LocalKafka(heap="1g") as local:
        yield local.bootstrap_servers, local.process.pid if local.process else None


def process_cpu_seconds(pid: int | None) -> float:
    """User and system CPU a process (all its threads) has used so far; 0 when there is no such process."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime and stime, fields 14 and 15


def fresh_name(kind: str) -> str:
    return f"bench-{kind}-{uuid.uuid4().hex[:8]}"


def quote_message(index: int, sent_at: datetime | None = None) -> tuple[bytes, bytes]:
    """Message number `index` in the project's format: (key, value), one bar per symbol and minute."""
    symbol = SYMBOLS[index % len(SYMBOLS)]
    minute = index // len(SYMBOLS)
    price = 100.0 + (index % 997) / 100
    quote = Quote(symbol=symbol, ts=EPOCH + timedelta(minutes=minute), price=price, open=price - 0.05,
                  high=price + 0.1, low=price - 0.1, volume=1000 + index % 5000, source=TIME_SERIES_INTRADAY,
                  fetched_at=sent_at or EPOCH + timedelta(minutes=minute, seconds=30))
    return symbol.encode(), encode_quote(quote)


def bench_settings(bootstrap_servers: str, topic: str, group_id: str, db_path: Path) -> Settings:
    """The project's Settings for a benchmark run, ignoring any .env file."""
    return load_settings({"KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers, "KAFKA_TOPIC": topic,
                          "KAFKA_GROUP_ID": group_id, "DB_PATH": str(db_path), "LOG_LEVEL": "WARNING"},
                         environ={}, env_file=None)


def peak_rss_mib() -> float:
    """This process's peak resident memory so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], fraction: float) -> float:
    """The value `fraction` of the way up the sorted values (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
