"""./scripts/run as a user runs it: --help, and Ctrl-C in its terminal stopping producer, consumer, then broker."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import time

import pytest
import requests

from alphavantage_standin import recorded
from conftest import PROJECT_DIR, TEST_API_KEY, script_env
from scrape import scrape
from streaming.local_broker import can_bind, free_port
from test_faults import wait_until

pytestmark = pytest.mark.slow


def test_help_prints_usage_and_starts_nothing():
    result = subprocess.run(["bash", "scripts/run", "--help"], cwd=PROJECT_DIR, capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: ./scripts/run [-h]\n")
    assert result.stderr == ""
    wrong = subprocess.run(["bash", "scripts/run", "--once"], cwd=PROJECT_DIR, capture_output=True, text=True,
                           timeout=30, check=False)
    assert wrong.returncode == 2
    assert wrong.stderr.endswith("stockmon: error: unknown argument: --once\n")


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def free_port_pair() -> int:
    """A port P with P and P+1 free (free_port() looks below the kernel's range for outgoing connections:
    ./scripts/run binds both seconds later, and the consumer once found P+1 taken by then)."""
    return next(port for port in iter(free_port, None) if port < 65535 and can_bind(port + 1))


def test_ctrl_c_stops_producer_consumer_and_then_the_broker_it_started(standin, tmp_path):
    if not port_is_free(9092):
        pytest.fail("port 9092 is taken: ./scripts/run starts its own broker there")
    standin.script("GLOBAL_QUOTE", "IBM", recorded("global_quote_IBM.json"))
    db_path = tmp_path / "stocks.db"
    port = free_port_pair()
    env = script_env(ALPHAVANTAGE_API_KEY=TEST_API_KEY, ALPHAVANTAGE_BASE_URL=standin.url, DB_PATH=str(db_path),
                     PRODUCER_STATE_PATH=str(tmp_path / "state.json"), KAFKA_TOPIC=f"run-{os.getpid()}",
                     METRICS_ADDRESS=str(port))
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log_file:
        # Its own session and process group, like a terminal's foreground job.
        run = subprocess.Popen(["bash", "scripts/run"], cwd=PROJECT_DIR, env=env, stdout=log_file,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if db_path.exists():
                connection = sqlite3.connect(db_path)
                try:
                    if connection.execute("SELECT count(*) FROM stock_prices").fetchone()[0]:
                        break
                except sqlite3.OperationalError:
                    pass
                finally:
                    connection.close()
            assert run.poll() is None, log_path.read_text()
            time.sleep(0.5)
        else:
            pytest.fail(log_path.read_text())
        # The live page says where it is, and serves the same board.
        wait_until(lambda: "web page at http://127.0.0.1:8765/" in log_path.read_text(), 30, log_path.read_text())
        # The feed notices the commit within a quarter second of it: the first answer may come before.
        wait_until(lambda: [line["symbol"] for line in requests.get("http://127.0.0.1:8765/api/board",
                                                                     timeout=10).json()["symbols"]] == ["IBM"],
                   5, log_path.read_text())
        # One METRICS_ADDRESS: the producer listens on it, the consumer on the next port.
        assert scrape(f"http://127.0.0.1:{port}").value("stockmon_market_open") is not None
        wait_until(lambda: scrape(f"http://127.0.0.1:{port + 1}").value("stockmon_rows_stored_total") == 1, 30,
                   log_path.read_text())
        os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        pressed = time.monotonic()
        assert run.wait(60) == 130
        took = time.monotonic() - pressed
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    log = log_path.read_text()
    assert took < 20, log  # the consumer did not hang on a commit to a broker already gone
    assert "stopped; 1 new quote(s) stored in this run" in log
    assert "offset commit failed" not in log and "not reachable" not in log and "Traceback" not in log, log
    deadline = time.monotonic() + 30
    while not port_is_free(9092) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert port_is_free(9092)  # and the broker it started is gone
