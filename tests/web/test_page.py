"""The web page in a real headless Chromium (Debian's, driven by Playwright): the board, sorting and
filtering, a quote and an alert from the real pipeline arriving live, the chart with its alert markers,
the disconnected state and the recovery, markup in stored text staying text, and the token."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

import db
from alphavantage_standin import AlphaVantageStandIn, changing_global_quotes
from common.timestamps import format_time
from conftest import Broker, pipeline_env, run_script, running, start_script
from streaming.local_broker import free_port
from streaming.messages import AlertRow, QuoteRow
from web_process import web

pytestmark = pytest.mark.slow
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "Chromium is needed: apt-get install chromium (./scripts/test installs it as root)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    # The one error a page may log: the 401 the token test asks for on purpose.
    opened.on("console", lambda message: errors.append(message.text)
              if message.type == "error" and "401 (Unauthorized)" not in message.text else None)
    yield opened
    context.close()
    assert errors == []  # no script error, no Content-Security-Policy violation


def quote(symbol: str, minutes_ago: float, price: float, change: float | None = None) -> QuoteRow:
    ts = format_time(NOW - timedelta(minutes=minutes_ago))
    percent = None if change is None else round(change / (price - change) * 100, 4)
    return QuoteRow(symbol, ts, price, price, price + 1, price - 1, 1000, change, percent, None, "GLOBAL_QUOTE", ts)


def store(path: Path, rows: list[QuoteRow], alerts: list[AlertRow] = ()) -> None:
    connection = db.connect(path)
    db.save_batch(connection, rows, [], list(alerts))
    connection.close()


def symbols_shown(page: Page) -> list[str]:
    return page.locator("#board tbody tr").evaluate_all("rows => rows.map(row => row.dataset.symbol)")


def test_the_board_shows_the_stored_symbols_and_sorts_and_filters(page: Page, tmp_path: Path) -> None:
    db_path = tmp_path / "stocks.db"
    store(db_path, [quote("IBM", 5, 121.74, 0.51), quote("MSFT", 4, 399.10, -10.90), quote("TSLA", 3, 212.40, 7.0)])
    with web(db_path, tmp_path / "web.log") as url:
        page.goto(url)
        expect(page.locator("#connection")).to_have_text("live")
        assert symbols_shown(page) == ["IBM", "MSFT", "TSLA"]
        ibm = page.locator("#board tr[data-symbol=IBM] td")
        assert ibm.all_text_contents()[:4] == ["IBM", "121.74 ▲", "+0.51", "+0.42%"]  # as the terminal shows it
        assert page.locator("#board tr[data-symbol=MSFT] td").nth(2).text_content() == "-10.90"
        page.click("th[data-key=change_percent]")
        assert symbols_shown(page) == ["MSFT", "IBM", "TSLA"]
        page.click("th[data-key=change_percent]")
        assert symbols_shown(page) == ["TSLA", "IBM", "MSFT"]
        assert page.get_attribute("th[data-key=change_percent]", "aria-sort") == "descending"
        page.fill("#filter", "s")
        assert symbols_shown(page) == ["TSLA", "MSFT"]
        page.fill("#filter", "I*")
        assert symbols_shown(page) == ["IBM"]
        page.fill("#filter", "zzz")
        expect(page.locator("#empty")).to_have_text("No symbol matches the filter.")


def test_a_quote_and_an_alert_from_the_real_pipeline_appear_without_a_reload(
        page: Page, kafka_broker: Broker, topic: str, standin: AlphaVantageStandIn, tmp_path: Path) -> None:
    standin.script("GLOBAL_QUOTE", "IBM", *changing_global_quotes(5))  # 121.74, then 121.75, ...
    db_path = tmp_path / "stocks.db"
    env = pipeline_env(kafka_broker, topic, standin, db_path, STOCK_SYMBOLS="IBM", ALERT_RULES="IBM>121.745",
                       KAFKA_ALERTS_TOPIC=f"{topic}-alerts")
    assert run_script("producer.py", "--once", env=env).returncode == 0
    with running(start_script("consumer.py", env=env, log_path=tmp_path / "consumer.log")), \
            web(db_path, tmp_path / "web.log") as url:
        page.goto(url)
        expect(page.locator("#board tr[data-symbol=IBM] td").nth(1)).to_have_text("121.74 ▲", timeout=30_000)
        expect(page.locator("#alerts li")).to_have_text(["none yet (rules are set in ALERT_RULES)"])
        assert run_script("producer.py", "--once", env=env).returncode == 0
        expect(page.locator("#board tr[data-symbol=IBM] td").nth(1)).to_have_text("121.75 ▲", timeout=30_000)
        alert = page.locator("#alerts li").first
        expect(alert).to_contain_text("IBM ▲", timeout=30_000)
        expect(alert.locator(".rule")).to_have_text("[IBM>121.745]")
        assert "new" in (alert.get_attribute("class") or "")  # it came while the page was open


def test_the_chart_draws_the_symbol_with_its_alert_markers(page: Page, tmp_path: Path) -> None:
    db_path = tmp_path / "stocks.db"
    rows = [quote("IBM", 300 - minute, 120 + (minute % 17) / 10) for minute in range(300)]
    fired = AlertRow("IBM", "IBM>121.5", "up", 121.6, rows[200].ts, 121.4, rows[199].ts, 0.16, rows[200].ts)
    store(db_path, rows, [fired])
    with web(db_path, tmp_path / "web.log") as url:
        page.goto(url)
        page.click("#board tr[data-symbol=IBM]")
        section = page.locator("#chart-section")
        expect(section).to_have_attribute("data-markers", "1")
        assert int(section.get_attribute("data-points")) == 300
        assert page.locator("#chart canvas").count() >= 2  # the price pane and the time axis at least
        expect(page.locator("#chart-title")).to_have_text("IBM")
        page.click("#ranges button[data-range=all]")
        expect(page.locator("#ranges button[data-range=all]")).to_have_attribute("aria-pressed", "true")
        expect(section).to_have_attribute("data-points", "300")


def test_the_page_says_disconnected_when_the_server_stops_and_recovers_by_itself(page: Page,
                                                                                 tmp_path: Path) -> None:
    db_path = tmp_path / "stocks.db"
    store(db_path, [quote("IBM", 1, 121.74, 0.51)])
    port = free_port()
    with web(db_path, tmp_path / "web.log", listen=f"127.0.0.1:{port}") as url:
        page.goto(url)
        expect(page.locator("#connection")).to_have_text("live")
    expect(page.locator("#connection")).to_have_text("disconnected, reconnecting", timeout=15_000)
    store(db_path, [quote("MSFT", 0.5, 399.10, -10.90)])
    with web(db_path, tmp_path / "web2.log", listen=f"127.0.0.1:{port}"):
        expect(page.locator("#connection")).to_have_text("live", timeout=20_000)
        expect(page.locator("#board tr[data-symbol=MSFT]")).to_have_count(1)


def test_markup_in_stored_text_is_shown_as_text(page: Page, tmp_path: Path) -> None:
    db_path = tmp_path / "stocks.db"
    hostile = '<img src=x onerror="window.injected=1">'
    store(db_path, [quote("IBM", 1, 121.74, 0.51)],
          [AlertRow("IBM", hostile, "up", 121.74, format_time(NOW), 121.0, format_time(NOW), 0.6, format_time(NOW))])
    connection = db.connect(db_path)  # a database written by anything: a symbol that is markup
    connection.execute("INSERT INTO symbol_summary SELECT ?, earliest_ts, ts, price, change, trading_day, day, "
                       "day_start, first_ts, first_price, day_high, day_low, close_ts, close_price "
                       "FROM symbol_summary WHERE symbol = 'IBM'", (hostile,))
    connection.close()
    with web(db_path, tmp_path / "web.log") as url:
        page.goto(url)
        expect(page.locator("#alerts .rule")).to_have_text(f"[{hostile}]")
        expect(page.locator("#board tbody tr")).to_have_count(2)
        assert hostile in page.locator("#board tbody").text_content()
        assert page.locator("main img").count() == 0
        assert page.evaluate("window.injected") is None


def test_another_address_needs_the_token_which_a_link_gives_once(page: Page, tmp_path: Path) -> None:
    db_path = tmp_path / "stocks.db"
    store(db_path, [quote("IBM", 1, 121.74, 0.51)])
    token = "page-token-0123456789abcdef"
    address = outward_address()
    with web(db_path, tmp_path / "web.log", listen=f"{address}:0", WEB_TOKEN=token) as url:
        refused = page.goto(url)
        assert refused is not None and refused.status == 401
        assert token not in page.content()
        page.goto(f"{url}/?token={token}")
        assert page.url == f"{url}/"  # the token left the address bar
        expect(page.locator("#connection")).to_have_text("live")
        assert symbols_shown(page) == ["IBM"]


def outward_address() -> str:
    """An address of this machine other than loopback (the one its default route leaves by), else 0.0.0.0."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent, the kernel only picks a route
            return probe.getsockname()[0]
        except OSError:
            return "0.0.0.0"
