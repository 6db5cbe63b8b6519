"""What the notification tests share: quotes that cross a rule, settings without Kafka, and a wait for
deliveries that says what happened when it times out."""

from __future__ import annotations

import json
import time
from pathlib import Path


def wait_for(condition, timeout: float = 30, what: object = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert condition(), what() if callable(what) else what


def pipeline_env_without_kafka(tmp_path: Path, **extra: str) -> dict[str, str]:
    from conftest import TEST_API_KEY, script_env
    return script_env(ALPHAVANTAGE_API_KEY=TEST_API_KEY, DB_PATH=str(tmp_path / "stocks.db"), **extra)


def quote_message(price: float, minute: int, symbol: str = "IBM") -> bytes:
    ts = f"2026-01-05T15:{minute:02d}:00.000Z"
    return json.dumps({"v": 1, "symbol": symbol, "ts": ts, "price": price, "open": price, "high": price, "low": price,
                       "volume": 1, "source": "TIME_SERIES_INTRADAY", "fetched_at": ts}).encode()
