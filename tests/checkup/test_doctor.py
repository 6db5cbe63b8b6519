"""doctor.py as a user runs it: a good .env after a real pipeline run, a broken one, an unreadable setting.

Every line is asserted as printed (figures that depend on the machine, such as free disk space, by pattern)
and no output carries a secret.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from kafka import KafkaProducer

from alphavantage_standin import AlphaVantageStandIn, recorded
from conftest import PROJECT_DIR, TEST_API_KEY, Broker, run_script, script_env
from notify.channels import Channel
from streaming.local_broker import free_port

NOTIFY_TOKEN = "hooktoken0123456789abcdef"
SASL_PASSWORD = "doctor-pw-5Rk8Tz1"


def write_env(path: Path, **settings: str) -> Path:
    path.write_text("".join(f"{name}={value}\n" for name, value in settings.items()))
    return path


def run_doctor(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """doctor.py with only the settings in `env_file` (and POLL_HOURS=always, so the lines hold at any hour)."""
    return subprocess.run([sys.executable, str(PROJECT_DIR / "doctor.py"), "--env-file", str(env_file), *args],
                          env=script_env(), capture_output=True, text=True, timeout=60, cwd=env_file.parent,
                          check=False)


def assert_lines(output: str, expected: list[str]) -> None:
    """Each line equal to its expected text, or matching it where it starts with 're:'."""
    lines = output.splitlines()
    assert len(lines) == len(expected), output
    for line, wanted in zip(lines, expected, strict=True):
        if wanted.startswith("re:"):
            assert re.fullmatch(wanted[3:], line), (line, wanted)
        else:
            assert line == wanted


@pytest.mark.slow
def test_a_good_configuration_after_a_run_passes_and_shows_the_lag(kafka_broker: Broker, topic: str,
                                                                    standin: AlphaVantageStandIn,
                                                                    tmp_path: Path) -> None:
    standin.script("GLOBAL_QUOTE", "IBM", recorded("global_quote_IBM.json"))
    standin.script("GLOBAL_QUOTE", "MSFT", recorded("global_quote_MSFT.json"))
    hook_port = free_port()
    hook_url = f"json://127.0.0.1:{hook_port}/hook/{NOTIFY_TOKEN}"
    env_file = write_env(
        tmp_path / ".env", ALPHAVANTAGE_API_KEY=TEST_API_KEY, ALPHAVANTAGE_BASE_URL=standin.url,
        STOCK_SYMBOLS="IBM,MSFT", KAFKA_BOOTSTRAP_SERVERS=kafka_broker.bootstrap_servers, KAFKA_TOPIC=topic,
        KAFKA_ALERTS_TOPIC=f"{topic}-alerts", KAFKA_GROUP_ID=f"{topic}-group", DB_PATH="stocks.db",
        PRODUCER_STATE_PATH="producer_state.json", POLL_HOURS="always", BACKFILL="off",
        NOTIFY_URLS=hook_url, ALERT_RULES="IBM>500")
    for script, args in (("producer.py", ["--once"]), ("consumer.py", ["--idle-exit", "3"])):
        ran = subprocess.run([sys.executable, str(PROJECT_DIR / script), "--env-file", str(env_file), *args],
                             env=script_env(), capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)
        assert ran.returncode == 0, ran.stderr[-3000:]

    checked = run_doctor(env_file, "--call-api")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stderr == ""
    servers = re.escape(kafka_broker.bootstrap_servers)
    assert_lines(checked.stdout, [
        f"ok    {env_file}: every name in it is a setting",
        "ok    settings: every setting parses",
        "ok    ALPHAVANTAGE_API_KEY: set (not the demo key)",
        "ok    METRICS_ADDRESS: empty: no metrics or health listener",
        f"ok    NOTIFY_URLS #1: json://127.0.0.1:{hook_port}/hook/*** parses; metrics call it "
        f'channel="{Channel(hook_url).key}" (consumer.py --notify-test sends a test message)',
        "ok    POLL_HOURS: always: always open (POLL_HOURS=always)",
        rf"re:ok    kafka: {servers} answered in \d+ ms \(PLAINTEXT\)",
        f"ok    KAFKA_TOPIC: topic {topic} has 3 partition(s)",
        f"ok    KAFKA_ALERTS_TOPIC: topic {topic}-alerts has 3 partition(s)",
        f"ok    KAFKA_GROUP_ID: group {topic}-group is 0 message(s) behind on {topic} (partition 0: 0, "
        "partition 1: 0, partition 2: 0)",
        r"re:ok    DB_PATH: stocks\.db opens \(\d+ kB\)",
        f"ok    database schema: version {__import__('db').SCHEMA_VERSION}, current",
        "ok    database integrity: PRAGMA quick_check: ok",
        r"re:ok    database rows: stock_prices [1-9]\d*, bars_1m [1-9]\d*, bars_1d [1-9]\d*, alerts \d+, "
        r"rejected_messages 0; \d+\.\d MB of \d+\.\d MB is free pages",
        r"re:ok    oldest quote: 20\d\d-\d\d-\d\d \d\d:\d\d UTC \(\d+ (days|h|min) ago\)",
        "ok    retention: quotes forever, 1-minute bars forever, daily bars forever, alerts forever (RETAIN_* not "
        "set: everything is kept)",
        "ok    next purge: none: nothing has a retention",
        f"ok    notify backlog: json://127.0.0.1:{hook_port}/hook/*** has had every alert its rules give it",
        "ok    database write: stocks.db takes a write",
        r"re:(ok  |warn)  disk: (only )?\d+\.\d GB free on the disk of \.",
        "ok    PRODUCER_STATE_PATH: producer_state.json reads",
        "ok    Alpha Vantage: GLOBAL_QUOTE IBM: answered, not throttled; IBM 121.74 (trading day 2020-05-08); "
        "entitlement none (end-of-day data)",
    ])
    assert TEST_API_KEY not in checked.stdout and NOTIFY_TOKEN not in checked.stdout

    # Messages the consumer has not read yet show as the group's lag, on the partition they went to.
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    for _ in range(3):
        producer.send(topic, b"{}", partition=1)
    producer.flush()
    producer.close()
    behind = run_doctor(env_file)
    assert f"ok    KAFKA_GROUP_ID: group {topic}-group is 3 message(s) behind on {topic} (partition 0: 0, " \
           "partition 1: 3, partition 2: 0)" in behind.stdout.splitlines()
    assert "Alpha Vantage" not in behind.stdout  # no API call unless asked
    assert len(standin.requests) == 3  # producer's two, the doctor's one with --call-api


@pytest.mark.slow
def test_a_broken_configuration_fails_with_a_line_per_problem(tmp_path: Path) -> None:
    (tmp_path / "stocks.db").write_text("symbol,price\nIBM,100\n" * 100)
    (tmp_path / "state").mkdir()
    dead_broker = f"127.0.0.1:{free_port()}"
    env_file = write_env(
        tmp_path / ".env", ALPHAVANTAGE_API_KEY="demo", STOCK_SYMBOLS="IBM,AAPL", STOCK_SYMBOL="MSFT",
        KAFKA_BOOTSTRAP_SERVERS=dead_broker, KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_MECHANISM="PLAIN",
        KAFKA_SASL_USERNAME="stockmon", KAFKA_SASL_PASSWORD=SASL_PASSWORD, DB_PATH="stocks.db",
        PRODUCER_STATE_PATH="state", NOTIFY_URLS=f'"json://127.0.0.1:9/hook/{NOTIFY_TOKEN} nope://x/{NOTIFY_TOKEN}"')
    checked = run_doctor(env_file)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert_lines(checked.stdout, [
        f"warn  {env_file}: not settings, ignored: STOCK_SYMBOL (did you mean STOCK_SYMBOLS?)",
        "ok    settings: every setting parses",
        "FAIL  ALPHAVANTAGE_API_KEY: the demo key serves IBM only, and STOCK_SYMBOLS asks for AAPL; get a free "
        "key at alphavantage.co",
        "ok    METRICS_ADDRESS: empty: no metrics or health listener",
        "ok    NOTIFY_URLS #1: json://127.0.0.1:9/hook/*** parses; metrics call it "
        f'channel="{Channel(f"json://127.0.0.1:9/hook/{NOTIFY_TOKEN}").key}" (consumer.py --notify-test sends a '
        "test message)",
        "FAIL  NOTIFY_URLS #2: 'nope://***/***' is not a notification URL apprise can use (e.g. json://host/path, "
        "mailto://user:password@host, tgram://token/chat, ntfy://topic)",
        "ok    POLL_HOURS: always: always open (POLL_HOURS=always)",
        f"FAIL  kafka: Kafka is not reachable at {dead_broker} (KafkaConnectionError: 111 ECONNREFUSED); checked "
        "within 10 s with KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT",
        "FAIL  DB_PATH: stocks.db cannot be read as an SQLite database: file is not a database",
        "FAIL  PRODUCER_STATE_PATH: state is a directory; the producer needs a file there",
    ])
    assert checked.stderr == ""
    assert SASL_PASSWORD not in checked.stdout and NOTIFY_TOKEN not in checked.stdout


def test_an_unreadable_setting_exits_2_naming_it_without_its_secret(tmp_path: Path) -> None:
    env_file = write_env(tmp_path / ".env", ALPHAVANTAGE_API_KEY=TEST_API_KEY, REQUESTS_PER_MINUTE="fast")
    checked = run_doctor(env_file)
    assert (checked.returncode, checked.stderr) == (2, "")
    assert checked.stdout.splitlines() == [
        f"ok    {env_file}: every name in it is a setting",
        "FAIL  settings: REQUESTS_PER_MINUTE: 'fast' is not a whole number",
    ]
    # A problem that quotes a URL never shows the token inside it.
    env_file = write_env(tmp_path / ".env", ALPHAVANTAGE_API_KEY=TEST_API_KEY, NOTIFY_URLS=f"hook/{NOTIFY_TOKEN}")
    checked = run_doctor(env_file)
    assert checked.returncode == 2
    assert NOTIFY_TOKEN not in checked.stdout and "FAIL  settings: NOTIFY_URLS: " in checked.stdout
    missing = run_doctor(tmp_path / "missing.env")
    assert (missing.returncode, missing.stdout) == (2, f"FAIL  settings: --env-file: '{tmp_path / 'missing.env'}' "
                                                       "does not exist\n")


def test_doctor_help_names_the_api_flag() -> None:
    helped = run_script("doctor.py", "--help", env=script_env())
    assert helped.returncode == 0 and "--call-api" in helped.stdout
