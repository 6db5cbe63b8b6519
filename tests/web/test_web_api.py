"""monitor.py --web as a user runs it, read with a real HTTP client: the JSON API on a real SQLite file,
every parameter validated, long ranges down-sampled, the token rules, the security headers."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

import db
from common.timestamps import format_time
from conftest import PROJECT_DIR, script_env
from streaming.messages import QuoteRow
from web_process import web

TOKEN = "web-token-0123456789abcdef"


def minute_quotes(db_path: Path, symbol: str, start: datetime, count: int) -> None:
    """`count` one-minute bars stored as the consumer stores them (summaries included)."""
    connection = db.connect(db_path)
    rows = [QuoteRow(symbol, format_time(start + timedelta(minutes=index)), 100 + index % 7, 100, 110, 90, index,
                     None, None, None, "TIME_SERIES_INTRADAY", format_time(start)) for index in range(count)]
    db.save_batch(connection, rows, [])
    connection.close()


@pytest.fixture
def quotes_db(tmp_path: Path) -> Path:
    path = tmp_path / "stocks.db"
    minute_quotes(path, "IBM", datetime(2026, 12, 1, 14, 30, tzinfo=UTC), 3000)
    return path


def test_quotes_are_down_sampled_to_the_points_asked_for(quotes_db: Path, tmp_path: Path) -> None:
    with web(quotes_db, tmp_path / "web.log") as url:
        query = {"symbol": "ibm", "since": "2026-12-01T14:30:00Z", "until": "2026-12-04T00:00:00Z"}
        whole = requests.get(f"{url}/api/quotes", params={**query, "points": "5000"}, timeout=10).json()
        default = requests.get(f"{url}/api/quotes", params=query, timeout=10).json()
        sampled = requests.get(f"{url}/api/quotes", params={**query, "points": "100"}, timeout=10).json()
    # Over two days, a point a minute: the 1-minute bars, each the minute's bar (its own high and low).
    assert whole["symbol"] == "IBM" and whole["source"] == "1m" and not whole["downsampled"]
    assert len(whole["points"]) == 3000
    assert default["downsampled"] and len(default["points"]) <= 1000  # 1000 at most unless asked
    assert whole["fields"] == ["ts", "price", "high", "low", "volume"]
    # One point per slice of the range asked for: the slices after the newest quote are empty.
    assert sampled["downsampled"] and 80 <= len(sampled["points"]) <= 100
    everything = requests_all(quotes_db)
    assert sampled["points"][-1][:2] == list(everything[-1][:2])  # a slice's last quote: the newest is kept
    assert sum(point[4] for point in sampled["points"]) == sum(row[2] for row in everything)  # volume summed
    assert max(point[2] for point in sampled["points"]) == max(row[3] for row in everything) == 110
    assert min(point[3] for point in sampled["points"]) == min(row[4] for row in everything) == 90


def test_a_day_reads_raw_quotes_and_a_year_of_three_days_reads_minute_bars(quotes_db: Path, tmp_path: Path) -> None:
    with web(quotes_db, tmp_path / "web.log") as url:
        day = requests.get(f"{url}/api/quotes", params={
            "symbol": "IBM", "since": "2026-12-02T00:00:00Z", "until": "2026-12-03T00:00:00Z"}, timeout=10).json()
        year = requests.get(f"{url}/api/quotes", params={
            "symbol": "IBM", "range": "1y", "until": "2026-12-04T00:00:00Z", "points": "5000"}, timeout=10).json()
    assert day["source"] == "quotes" and len(day["points"]) == 1000 and day["downsampled"]
    # A year asked for, two days and a bit held: the span the symbol has data in picks the 1-minute bars.
    assert year["source"] == "1m" and not year["downsampled"] and len(year["points"]) == 3000
    everything = requests_all(quotes_db)
    assert year["points"][-1][:2] == list(everything[-1][:2])
    assert sum(point[4] for point in year["points"]) == sum(row[2] for row in everything)


def requests_all(path: Path) -> list[tuple]:
    connection = sqlite3.connect(path)
    rows = connection.execute("SELECT ts, price, volume, high, low FROM stock_prices ORDER BY ts").fetchall()
    connection.close()
    return rows


@pytest.mark.parametrize(("path", "params", "error"), [
    ("/api/quotes", {}, "symbol is required, e.g. symbol=IBM"),
    ("/api/quotes", {"symbol": "<img src=x onerror=alert(1)>"}, "symbol must be letters, digits, '.' and '-', at most 20"),
    ("/api/quotes", {"symbol": "IBM", "since": "yesterday"}, "since must be an ISO-8601 time such as 2026-12-03T14:30:00Z"),
    ("/api/quotes", {"symbol": "IBM", "since": "2026-12-01T10:00:00"}, "since needs a time zone (Z or +HH:MM): '2026-12-01T10:00:00'"),
    ("/api/quotes", {"symbol": "IBM", "since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "since must be before until"),
    ("/api/quotes", {"symbol": "IBM", "range": "2h"}, "range must be one of 1d, 5d, 1m, 1y, all"),
    ("/api/quotes", {"symbol": "IBM", "range": "1d", "since": "2026-12-01"}, "give range or since, not both"),
    ("/api/quotes", {"symbol": "IBM", "points": "0"}, "points must be a whole number from 1 to 5000"),
    ("/api/quotes", {"symbol": "IBM", "points": "1e9"}, "points must be a whole number from 1 to 5000"),
    ("/api/alerts", {"limit": "-1"}, "limit must be a whole number from 1 to 500"),
    ("/api/alerts", {"since": "9999-99-99"}, "since must be an ISO-8601 time such as 2026-12-03T14:30:00Z"),
])
def test_every_parameter_is_validated_with_a_clear_400(quotes_db: Path, tmp_path: Path, path: str, params: dict,
                                                      error: str) -> None:
    with web(quotes_db, tmp_path / "web.log") as url:
        answer = requests.get(f"{url}{path}", params=params, timeout=10)
    assert (answer.status_code, answer.json()) == (400, {"error": error})


def test_answers_carry_a_strict_content_security_policy_and_unknown_paths_are_json(quotes_db: Path,
                                                                                  tmp_path: Path) -> None:
    with web(quotes_db, tmp_path / "web.log") as url:
        board = requests.get(f"{url}/api/board", timeout=10)
        missing = requests.get(f"{url}/admin", timeout=10)
        health = requests.get(f"{url}/api/health", timeout=10).json()
    assert board.status_code == 200 and [line["symbol"] for line in board.json()["symbols"]] == ["IBM"]
    policy = board.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert board.headers["X-Content-Type-Options"] == "nosniff"
    assert missing.status_code == 404 and missing.json()["error"] == "not found"
    assert health["status"] == "ok" and health["board"]


def test_another_address_needs_the_token_as_a_bearer_header_or_once_in_the_url(quotes_db: Path,
                                                                               tmp_path: Path) -> None:
    refused = subprocess.run([sys.executable, str(PROJECT_DIR / "monitor.py"), "--env-file", "/dev/null", "--web",
                              "--db", str(quotes_db), "--listen", "0.0.0.0:0"], env=script_env(),
                             capture_output=True, text=True, timeout=30, check=False)
    assert (refused.returncode, refused.stderr) == (
        2, "monitor: error: WEB_TOKEN: must be set when --listen is 0.0.0.0, which other machines can reach "
           "(or bind 127.0.0.1)\n")
    with web(quotes_db, tmp_path / "web.log", WEB_TOKEN=TOKEN) as url:
        bare = requests.get(f"{url}/api/board", timeout=10)
        bearer = requests.get(f"{url}/api/board", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        wrong = requests.get(f"{url}/api/board", headers={"Authorization": "Bearer not-the-token-at-all"}, timeout=10)
        session = requests.Session()
        once = session.get(f"{url}/api/board?token={TOKEN}", timeout=10, allow_redirects=False)
        after = session.get(f"{url}/api/board", timeout=10)
    assert bare.status_code == 401 and TOKEN not in bare.text
    assert bearer.status_code == 200 and wrong.status_code == 401
    assert once.status_code == 303 and once.headers["Location"] == "/api/board"
    assert "HttpOnly" in once.headers["Set-Cookie"] and "SameSite=Strict" in once.headers["Set-Cookie"]
    assert after.status_code == 200
    assert TOKEN not in (tmp_path / "web.log").read_text()


def test_a_taken_port_exits_2_naming_the_flag(quotes_db: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        taken = subprocess.run([sys.executable, str(PROJECT_DIR / "monitor.py"), "--env-file", "/dev/null", "--web",
                                "--db", str(quotes_db), "--listen", f"127.0.0.1:{port}"], env=script_env(),
                               capture_output=True, text=True, timeout=30, check=False)
    assert (taken.returncode, taken.stderr) == (
        2, f"monitor: error: --listen: cannot listen on 127.0.0.1:{port}: Address already in use\n")
