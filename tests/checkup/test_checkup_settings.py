"""The doctor's checks of the settings alone: names in .env, the demo key, the listener address,
notification URLs and the polling hours at a given moment."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

from checkup.finding import FAIL, OK, WARN, Finding
from checkup.settings_checks import api_key, env_file_names, metrics_listener, notify_urls, polling_hours
from config import load_settings


def settings(**values: str):
    return load_settings(environ={"ALPHAVANTAGE_API_KEY": "K" * 16, **values}, env_file=None)


def pair(finding: Finding) -> tuple[str, str]:
    return finding.status, finding.why


def test_every_name_in_env_that_is_not_a_setting_is_named(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    assert pair(env_file_names(env, {})) == (OK, "not there; settings come from the environment and the defaults")
    env.write_text("STOCK_SYMBOLS=IBM\n")
    assert pair(env_file_names(env, {"STOCK_SYMBOLS": "IBM"})) == (OK, "every name in it is a setting")
    names = {"STOCK_SYMBOL": "IBM", "kafka_topic": "x", "MY_OWN_THING": "1"}
    assert pair(env_file_names(env, names)) == (
        WARN, "not settings, ignored: STOCK_SYMBOL (did you mean STOCK_SYMBOLS?), kafka_topic (did you mean "
              "KAFKA_TOPIC?), MY_OWN_THING")


def test_the_demo_key_fails_for_symbols_other_than_ibm() -> None:
    assert pair(api_key(settings())) == (OK, "set (not the demo key)")
    assert pair(api_key(settings(ALPHAVANTAGE_API_KEY="demo"))) == (
        WARN, "the demo key: fine for IBM, get a free key for other symbols")
    assert pair(api_key(settings(ALPHAVANTAGE_API_KEY="demo", STOCK_SYMBOLS="IBM,AAPL,MSFT"))) == (
        FAIL, "the demo key serves IBM only, and STOCK_SYMBOLS asks for AAPL, MSFT; get a free key at alphavantage.co")


def test_a_metrics_address_in_use_is_a_warning() -> None:
    assert pair(metrics_listener(settings())) == (OK, "empty: no metrics or health listener")
    assert pair(metrics_listener(settings(METRICS_ADDRESS="0"))) == (
        OK, "127.0.0.1, a free port chosen at start (the log says which)")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        status, why = pair(metrics_listener(settings(METRICS_ADDRESS=str(port))))
    assert status == WARN and why.startswith(f"127.0.0.1:{port} cannot be bound now (Address already in use)")
    status, why = pair(metrics_listener(settings(METRICS_ADDRESS=str(port))))
    assert (status, why) == (OK, f"127.0.0.1:{port} is free; producer and consumer each need their own "
                                 "(--metrics-address)")


def test_each_notification_url_gets_a_line_without_its_secret() -> None:
    token = "abcdefghijklmnopqrstuvwxyz123456"
    found = notify_urls(settings(NOTIFY_URLS=f"json://127.0.0.1:8080/hook/{token} foo://nothing/{token}"))
    assert [pair(finding) for finding in found] == [
        (OK, 'json://127.0.0.1:8080/hook/*** parses; metrics call it channel="04da44a3a2bb684c" (consumer.py '
             '--notify-test sends a test message)'),
        (FAIL, "'foo://***/***' is not a notification URL apprise can use (e.g. json://host/path, "
               "mailto://user:password@host, tgram://token/chat, ntfy://topic)"),
    ]
    assert [finding.what for finding in found] == ["NOTIFY_URLS #1", "NOTIFY_URLS #2"]
    assert pair(notify_urls(settings())[0]) == (OK, "empty: alerts are stored and published, not sent")


def test_the_polling_hours_now_say_open_or_closed_and_the_next_open() -> None:
    saturday = datetime(2026, 12, 5, 15, 0, tzinfo=UTC)
    assert pair(polling_hours(settings(POLL_HOURS="market"), saturday)) == (
        OK, "market: market closed; next session opens Mon 2026-12-07 09:30 EST")
    thursday = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
    assert pair(polling_hours(settings(POLL_HOURS="market"), thursday)) == (
        OK, "market: open until Thu 2026-12-03 16:00 EST")
    assert pair(polling_hours(settings(POLL_HOURS="extended"), saturday)) == (
        OK, "extended: outside the extended hours; polling resumes Mon 2026-12-07 04:00 EST")
    assert pair(polling_hours(settings(POLL_HOURS="always"), saturday)) == (
        OK, "always: always open (POLL_HOURS=always)")
