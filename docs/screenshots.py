"""Makes the README's pictures of the web page: docs/web-board.png (light) and docs/web-chart.png (dark).

A seeded random walk of eight symbols, one-minute bars over the last 6.5 hours up to now, stored as
the consumer stores them (alerts fired by the real engine on four rules), served by `monitor.py
--web` and photographed in Debian's Chromium. Run: .venv/bin/python docs/screenshots.py
"""

from __future__ import annotations

import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))

import db  # noqa: E402
from alerts.engine import AlertEngine  # noqa: E402
from alerts.rules import parse_rules  # noqa: E402
from common.timestamps import format_time  # noqa: E402
from streaming.messages import QuoteRow  # noqa: E402

STARTS = {"AAPL": 238.2, "AMZN": 214.9, "BRK.B": 468.1, "GOOG": 176.4, "IBM": 221.7, "MSFT": 431.5,
          "NVDA": 141.3, "TSLA": 352.8}
RULES = "2%/1h, NVDA>142.5, TSLA<349, IBM>ma20"
SEED = 20261203


def build(path: Path) -> None:
    rng = random.Random(SEED)
    connection = db.connect(path)
    engine = AlertEngine(parse_rules(RULES), connection)
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    prices = dict(STARTS)
    closes = {symbol: round(price * (1 + rng.gauss(0, 0.01)), 2) for symbol, price in STARTS.items()}
    for minute in range(390, -1, -1):
        ts = format_time(end - timedelta(minutes=minute))
        rows = []
        for symbol in STARTS:
            prices[symbol] = round(prices[symbol] * (1 + rng.gauss(0.00002, 0.0011)), 2)
            price = prices[symbol]
            change = round(price - closes[symbol], 2)
            rows.append(QuoteRow(symbol, ts, price, price, round(price * 1.0006, 2), round(price * 0.9994, 2),
                                 rng.randrange(20_000, 400_000), change, round(change / closes[symbol] * 100, 4),
                                 None, "GLOBAL_QUOTE", ts, "realtime"))
        db.save_batch(connection, rows, [], engine.evaluate(rows))
    connection.close()


def main() -> int:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "stocks.db"
        build(path)
        log_path = Path(workdir) / "web.log"
        with open(log_path, "wb") as log_file:
            server = subprocess.Popen([sys.executable, str(DOCS.parent / "monitor.py"), "--env-file", "/dev/null",
                                       "--web", "--db", str(path), "--listen", "127.0.0.1:0", "--alerts", "6"],
                                      stdout=log_file, stderr=subprocess.STDOUT, env={"POLL_HOURS": "always",
                                                                                      "PATH": "/usr/bin:/bin"})
        try:
            while not (found := re.search(r"web page at (http://\S+)/ ", log_path.read_text())):
                time.sleep(0.1)
            url = found.group(1)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1200, "height": 640}, color_scheme="light")
                page.goto(url)
                page.wait_for_selector("#board tbody tr")
                page.screenshot(path=str(DOCS / "web-board.png"))
                dark = browser.new_page(viewport={"width": 1200, "height": 760}, color_scheme="dark")
                dark.goto(url)
                dark.click("#board tr[data-symbol='NVDA']")
                dark.wait_for_selector("#chart-section[data-points]")
                dark.wait_for_timeout(500)
                dark.locator("#chart-section").screenshot(path=str(DOCS / "web-chart.png"))
                browser.close()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(10)
    print(f"wrote {DOCS / 'web-board.png'} and {DOCS / 'web-chart.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
