"""monitor.py against real SQLite files: the exact table and JSON, charts, and the live view in a pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from fcntl import ioctl
from pathlib import Path

import pytest

import db
from conftest import PROJECT_DIR, run_script, script_env
from streaming.messages import AlertRow, QuoteRow

AT = "2026-11-24T10:30:00-05:00"  # 15:30 UTC


def quote(symbol: str, ts: str, price: float, high: float, low: float, change: float | None = None,
          change_percent: float | None = None, day: str | None = None) -> QuoteRow:
    source = "GLOBAL_QUOTE" if day else "TIME_SERIES_INTRADAY"
    return QuoteRow(symbol, ts, price, price, high, low, 1000, change, change_percent, day, source, ts)


QUOTES = [
    quote("IBM", "2026-11-24T15:00:00.000Z", 121.74, 122.8, 121.06, 0.51, 0.4207, "2026-11-24"),
    quote("MSFT", "2026-11-23T20:55:00.000Z", 410.0, 410.5, 409.8),
    quote("MSFT", "2026-11-24T14:30:00.000Z", 405.0, 406.0, 404.2),
    quote("MSFT", "2026-11-24T14:35:00.000Z", 402.5, 405.1, 402.0),
    quote("MSFT", "2026-11-24T14:40:00.000Z", 399.1, 402.6, 398.75),
    quote("MSFT", "2026-11-24T15:45:00.000Z", 380.0, 380.0, 380.0),  # after --at: not shown
    quote("TSLA", "2026-11-24T15:20:00.000Z", 212.4, 212.9, 211.5),
]
ALERTS = [
    AlertRow("MSFT", "2%/15m", "down", 399.1, "2026-11-24T14:40:00.000Z", 405.0, "2026-11-24T14:30:00.000Z",
             -1.4568, "2026-11-24T14:40:01.250Z"),
    AlertRow("TSLA", "TSLA>200", "up", 212.4, "2026-11-24T15:20:00.000Z", 198.0, "2026-11-23T20:00:00.000Z",
             7.2727, "2026-11-24T15:20:00.900Z"),
]


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    path = tmp_path / "stocks.db"
    connection = db.connect(path)
    db.save_batch(connection, QUOTES, [], ALERTS)
    connection.close()
    return path


def monitor(*args: str, tz: str = "America/New_York", **settings: str) -> subprocess.CompletedProcess[str]:
    return run_script("monitor.py", *args, env=script_env(TZ=tz, **settings), timeout=60)


EXPECTED_TABLE = """\
stockmon  as of 2026-11-24 10:30:00 EST  {db}
market open, closes 16:00 EST

SYMBOL         LAST      CHANGE     CHG%     DAY LOW   DAY HIGH  TREND     AGE
IBM          121.74 ▲     +0.51   +0.42%      121.06     122.80  ▄         30m stale
MSFT         399.10 ▼    -10.90   -2.66%      398.75     406.00  █▅▃▁      50m stale
TSLA         212.40 =     +0.00   +0.00%*     211.50     212.90  ▄         10m
* change against the first quote of the day (no previous close stored)

Latest alerts
  11-24 10:20 EST  TSLA ▲ +7.27%  212.40 from 198.00  [TSLA>200]
  11-24 09:40 EST  MSFT ▼ -1.46%  399.10 from 405.00  [2%/15m]
"""


def test_once_prints_the_exact_table_as_plain_text_into_a_pipe(seeded):
    result = monitor("--once", "--at", AT, DB_PATH=str(seeded))
    assert result.returncode == 0, result.stderr
    assert result.stdout == EXPECTED_TABLE.format(db=seeded)
    assert "\x1b[" not in result.stdout
    assert result.stderr == ""


def test_times_are_shown_in_the_users_time_zone(seeded):
    result = monitor("--once", "--at", AT, "--db", str(seeded), tz="Europe/Berlin")
    assert result.stdout.splitlines()[:2] == [f"stockmon  as of 2026-11-24 16:30:00 CET  {seeded}",
                                               "market open, closes 16:00 EST"]
    assert "  11-24 15:40 CET  MSFT ▼ -1.46%" in result.stdout


def test_json_gives_scripts_the_same_figures(seeded):
    result = monitor("--json", "--at", AT, "--alerts", "1", DB_PATH=str(seeded))
    assert result.returncode == 0, result.stderr
    board = json.loads(result.stdout)
    assert board["as_of"] == "2026-11-24T15:30:00.000Z"
    assert board["database"] == str(seeded)
    assert board["market"] == {"open": True, "closes_at": "2026-11-24T21:00:00.000Z", "opens_at": None,
                               "text": "market open, closes 16:00 EST"}
    assert board["symbols"] == [
        {"symbol": "IBM", "price": 121.74, "ts": "2026-11-24T15:00:00.000Z", "change": 0.51,
         "change_percent": 0.4207, "reference": "previous close", "reference_price": 121.23, "day": "2026-11-24",
         "day_low": 121.06, "day_high": 122.8, "recent": [121.74], "data_time": "2026-11-24T15:00:00.000Z",
         "age_seconds": 1800.0, "stale": True, "volume": 1000, "entitlement": None},
        {"symbol": "MSFT", "price": 399.1, "ts": "2026-11-24T14:40:00.000Z", "change": -10.9,
         "change_percent": -2.6585, "reference": "previous close", "reference_price": 410.0, "day": "2026-11-24",
         "day_low": 398.75, "day_high": 406.0, "recent": [410.0, 405.0, 402.5, 399.1],
         "data_time": "2026-11-24T14:40:00.000Z", "age_seconds": 3000.0, "stale": True, "volume": 1000, "entitlement": None},
        {"symbol": "TSLA", "price": 212.4, "ts": "2026-11-24T15:20:00.000Z", "change": 0.0,
         "change_percent": 0.0, "reference": "first quote of the day", "reference_price": 212.4,
         "day": "2026-11-24", "day_low": 211.5, "day_high": 212.9, "recent": [212.4],
         "data_time": "2026-11-24T15:20:00.000Z", "age_seconds": 600.0, "stale": False, "volume": 1000, "entitlement": None},
    ]
    assert board["alerts"] == [ALERTS[1]._asdict()]


def test_once_sorted_and_filtered_says_what_the_table_holds(seeded):
    result = monitor("--once", "--at", AT, "--sort", "change", "--filter", "s", DB_PATH=str(seeded))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:7] == [
        "market open, closes 16:00 EST  2 of 3 symbols, by CHG% ↓, filter 's'",
        "",
        "SYMBOL         LAST      CHANGE     CHG%     DAY LOW   DAY HIGH  TREND     AGE",
        "TSLA         212.40 =     +0.00   +0.00%*     211.50     212.90  ▄         10m",
        "MSFT         399.10 ▼    -10.90   -2.66%      398.75     406.00  █▅▃▁      50m stale",
        "* change against the first quote of the day (no previous close stored)"]


def test_json_shows_the_chosen_symbols_in_the_chosen_order(seeded):
    result = monitor("--json", "--at", AT, "--symbols", "tsla,ibm,nvda", "--sort", "age", DB_PATH=str(seeded))
    assert [line["symbol"] for line in json.loads(result.stdout)["symbols"]] == ["IBM", "TSLA"]
    result = monitor("--json", "--at", AT, "--sort", "symbol", "--reverse", DB_PATH=str(seeded))
    assert [line["symbol"] for line in json.loads(result.stdout)["symbols"]] == ["TSLA", "MSFT", "IBM"]


def test_the_stale_mark_follows_stale_after(seeded):
    result = monitor("--json", "--at", AT, "--stale-after", "1h", DB_PATH=str(seeded))
    assert [line["stale"] for line in json.loads(result.stdout)["symbols"]] == [False, False, False]


def test_an_empty_or_missing_database_says_what_to_start(tmp_path):
    hint = "Start the pipeline with ./scripts/run, or consumer.py and producer.py in two terminals."
    missing = tmp_path / "nothing.db"
    result = monitor("--once", DB_PATH=str(missing))
    assert (result.returncode, result.stdout) == (0, f"stockmon\n\nNo database at {missing} yet.\n{hint}\n")
    assert not missing.exists()  # the monitor never creates the database

    empty = tmp_path / "empty.db"
    db.connect(empty).close()
    result = monitor("--once", "--at", AT, DB_PATH=str(empty))
    assert result.returncode == 0
    assert result.stdout == (f"stockmon  as of 2026-11-24 10:30:00 EST  {empty}\nmarket open, closes 16:00 EST\n\n"
                             f"No quotes in {empty} yet.\n"
                             f"{hint}\n")
    result = monitor("--json", "--at", AT, DB_PATH=str(empty))
    assert json.loads(result.stdout) == {
        "as_of": "2026-11-24T15:30:00.000Z", "database": str(empty), "symbols": [], "alerts": [],
        "market": {"open": True, "closes_at": "2026-11-24T21:00:00.000Z", "opens_at": None,
                   "text": "market open, closes 16:00 EST"}}
    assert result.stderr == f"monitor: no quotes in {empty} yet. {hint}\n"


def test_a_file_that_is_not_a_database_is_one_line_and_exit_3(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("these are not the quotes you are looking for\n" * 100)
    for mode in (["--once"], ["--json"], ["--chart", str(path.with_suffix(".png"))]):
        result = monitor(*mode, DB_PATH=str(path))
        assert (result.returncode, result.stderr) == (
            3, f"monitor: error: cannot read database {str(path)!r}: file is not a database\n"), mode


WRITER = """
import sys
import db
from streaming.messages import QuoteRow
connection = db.connect(sys.argv[1])
for second in range(100_000):
    ts = f"2026-11-24T14:{second // 3600 % 60:02d}:{second // 60 % 60:02d}.{second % 60:03d}Z"
    db.save_batch(connection, [QuoteRow("IBM", ts, 100 + second / 1000, 101.0, 101.0, 99.0, 1, None, None, None,
                                        "TIME_SERIES_INTRADAY", ts)], [], [])
"""


def test_the_board_reads_a_database_another_process_is_writing(tmp_path):
    path = tmp_path / "stocks.db"
    db.connect(path).close()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=PROJECT_DIR)
    try:
        stamps = []
        while len(stamps) < 5:
            result = monitor("--json", DB_PATH=str(path))
            assert result.returncode == 0, result.stderr
            symbols = json.loads(result.stdout)["symbols"]
            if symbols:
                stamps.append(symbols[0]["ts"])
            assert writer.poll() is None, "the writer stopped early"
    finally:
        writer.kill()
        writer.wait()
    assert stamps == sorted(stamps) and len(set(stamps)) > 1


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("size", ["1200x600", "801x333"])
def test_a_chart_is_a_valid_png_of_the_requested_size(seeded, tmp_path, size):
    from PIL import Image

    target = tmp_path / "prices.png"
    result = monitor("--chart", str(target), "--at", AT, "--since", "1d", "--size", size, DB_PATH=str(seeded))
    assert result.returncode == 0, result.stderr
    width, height = (int(n) for n in size.split("x"))
    assert png_size(target) == (width, height)
    with Image.open(target) as image:
        image.verify()
    assert "wrote " in result.stderr and "6 quote(s) of IBM, MSFT, TSLA, 2 alert(s)" in result.stderr


def test_a_chart_of_chosen_symbols_in_percent(seeded, tmp_path):
    target = tmp_path / "msft.png"
    result = monitor("--chart", str(target), "--at", AT, "--since", "2h", "--symbols", "msft,NOPE", "--relative",
                     DB_PATH=str(seeded))
    assert result.returncode == 0, result.stderr
    assert png_size(target) == (1200, 600)
    assert "no quotes for NOPE from 2026-11-24 08:30 to 2026-11-24 10:30 EST; it is left out" in result.stderr
    assert "3 quote(s) of MSFT, 1 alert(s)" in result.stderr


def test_a_chart_of_a_year_with_a_days_quotes_draws_every_quote(seeded, tmp_path):
    target = tmp_path / "year.png"
    result = monitor("--chart", str(target), "--at", AT, "--since", "52w", DB_PATH=str(seeded))
    assert result.returncode == 0, result.stderr
    assert png_size(target) == (1200, 600)
    assert "6 quote(s) of IBM, MSFT, TSLA, 2 alert(s)" in result.stderr


def test_a_chart_with_nothing_to_draw_is_one_line_and_exit_1(seeded, tmp_path):
    result = monitor("--chart", str(tmp_path / "x.png"), "--at", AT, "--since", "10m", "--symbols", "IBM",
                     DB_PATH=str(seeded))
    assert result.returncode == 1
    assert result.stderr == ("monitor: error: no quotes for IBM from 2026-11-24 10:20 to 2026-11-24 10:30 EST; "
                             "try a longer --since\n")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(("args", "line"), [
    (["--at", "yesterday"], "monitor: error: argument --at: 'yesterday' is not a time (ISO-8601, e.g. 2026-11-24T16:00)"),
    (["--since", "3x"], "monitor: error: argument --since: '3x' is not a duration (a number and s, m, h, d or w, "
                        "e.g. 15m)"),
    (["--size", "10x10"], "monitor: error: argument --size: '10x10' is not a size in pixels from 200x150 to "
                          "8000x8000 (e.g. 1200x600)"),
    (["--once", "--json"], "monitor: error: argument --json: not allowed with argument --once"),
    (["--interval", "0"], "monitor: error: --interval must be a positive number of seconds"),
    (["--once", "--symbols", "IBM,$X"], "monitor: error: --symbols: '$X' is not a valid symbol (letters, digits, "
                                       "'.' and '-', at most 20)"),
])
def test_bad_flags_exit_2_with_one_line(args, line):
    result = monitor(*args)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == line


class PseudoTerminal:
    """A terminal for the live view: the test reads what it draws and types on its keyboard."""

    def __init__(self, rows: int = 30, columns: int = 100) -> None:
        self.master, self.slave = pty.openpty()
        ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.screen = b""

    def start(self, *args: str, **settings: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, str(PROJECT_DIR / "monitor.py"), "--env-file", os.devnull, *args]
        env = script_env(TZ="America/New_York", **settings)
        for name in ("COLUMNS", "LINES"):  # set by some runners (pytest-xdist's workers: 80); the pty's size rules
            env.pop(name, None)
        return subprocess.Popen(command, stdin=self.slave, stdout=self.slave, stderr=self.slave, cwd=PROJECT_DIR,
                                env=env)

    def read_until(self, predicate, timeout: float = 20) -> bytes:
        deadline = time.monotonic() + timeout
        while not predicate(self.screen) and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                self.screen += os.read(self.master, 65536)
        assert predicate(self.screen), self.screen[-2000:]
        return self.screen

    def modes(self) -> list:
        return termios.tcgetattr(self.slave)

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def terminal():
    opened = PseudoTerminal()
    yield opened
    opened.close()


@pytest.mark.parametrize("leave", ["ctrl-c", "sigterm", "q"])
def test_the_live_view_refreshes_and_gives_the_terminal_back(seeded, terminal, leave):
    before = terminal.modes()
    process = terminal.start("--interval", "0.2", "--at", AT, DB_PATH=str(seeded))
    try:
        screen = terminal.read_until(lambda s: s.count(b"SYMBOL") >= 3)
        assert screen.startswith(b"\x1b[?1049h\x1b[?25l")  # alternate screen, cursor hidden
        assert "\x1b[32m     121.74 ▲\x1b[0m".encode() in screen  # rising in green
        assert "\x1b[31m     399.10 ▼\x1b[0m".encode() in screen  # falling in red
        assert b"\x1b[1;33m     30m\x1b[0m" in screen  # stale stands out
        assert b"every 0.2s, q quits" in screen
        assert not terminal.modes()[3] & termios.ICANON  # q works without Enter
        if leave == "ctrl-c":
            process.send_signal(signal.SIGINT)
        elif leave == "sigterm":
            process.send_signal(signal.SIGTERM)
        else:
            os.write(terminal.master, b"q")
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
    screen = terminal.read_until(lambda s: s.endswith(b"\x1b[?25h\x1b[?1049l"), timeout=5)
    assert b"Traceback" not in screen
    assert terminal.modes() == before


def test_the_live_view_waits_for_a_database_that_does_not_exist_yet(tmp_path, terminal):
    path = tmp_path / "later.db"
    process = terminal.start("--interval", "0.2", DB_PATH=str(path))
    try:
        terminal.read_until(lambda s: b"No database at " in s)  # the path may run past the pty's 100 columns
        connection = db.connect(path)
        terminal.read_until(lambda s: b"No quotes in" in s)
        db.save_batch(connection, QUOTES[:1], [], [])
        connection.close()
        terminal.read_until(lambda s: b"IBM " in s and b"121.74" in s)
        os.write(terminal.master, b"q")
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_hundreds_of_symbols_page_sort_and_filter_in_the_live_view(tmp_path, terminal):
    path = tmp_path / "many.db"
    connection = db.connect(path)
    db.save_batch(connection, [quote(f"S{index:03d}", "2026-11-24T15:00:00.000Z", 100 + index, 101 + index,
                                     99 + index, change=index - 60.0, day="2026-11-24") for index in range(120)], [])
    connection.close()
    before = terminal.modes()
    process = terminal.start("--interval", "30", "--at", AT, DB_PATH=str(path))
    try:
        def after(key: bytes, text: bytes) -> bytes:
            terminal.screen = b""
            os.write(terminal.master, key)
            return terminal.read_until(lambda s: text in s and s.endswith(b"\x1b[J"))

        screen = terminal.read_until(lambda s: b"rows 1-" in s)
        assert b"120 of 120 symbols, by symbol \xe2\x86\x91" in screen  # by symbol ↑
        page = int(screen.split(b"rows 1-")[1].split(b" ")[0])
        assert 15 <= page <= 20  # 30 rows less the title, the header and the alerts
        assert b"S000 " in screen and f"S{page - 1:03d} ".encode() in screen and f"S{page:03d} ".encode() not in screen
        screen = after(b"\x1b[6~", f"rows {page + 1}-{2 * page} of 120".encode())  # PgDn
        assert f"S{page:03d} ".encode() in screen and b"S000 " not in screen
        screen = after(b"j", f"rows {page + 2}-{2 * page + 1} of 120".encode())
        screen = after(b"G", f"rows {121 - page}-120 of 120".encode())
        assert b"S119 " in screen
        screen = after(b"s", b"by CHG% \xe2\x86\x93")  # the biggest gain first, from the top
        assert screen.index(b"S119 ") < screen.index(b"S118 ") and b"S000 " not in screen
        screen = after(b"/s11", b"filter: s11")
        assert b"10 of 120 symbols" in screen and b" of 120: " not in screen  # S110-S119 fit: no paging
        screen = after(b"\r", b"filter 's11'")
        screen = after(b"\x1b", b"120 of 120 symbols")
        os.write(terminal.master, b"q")
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
    terminal.read_until(lambda s: s.endswith(b"\x1b[?25h\x1b[?1049l"), timeout=5)
    assert b"Traceback" not in terminal.screen
    assert terminal.modes() == before


WEEKEND_QUOTES = [
    # Friday's closing quote, fetched after the 13:00 EST early close: the latest there is all weekend.
    QuoteRow("IBM", "2026-11-27T18:06:00.000Z", 121.74, 122.67, 122.8, 121.06, 1000, 0.51, 0.4207, "2026-11-27",
             "GLOBAL_QUOTE", "2026-11-27T18:06:00.000Z"),
    # Fetched 28 s before --at, but about Wednesday's session: stale, and as old as Wednesday's close.
    QuoteRow("MSFT", "2026-11-29T11:59:32.000Z", 410.0, 409.0, 411.0, 408.0, 1000, -0.66, -0.1607, "2026-11-25",
             "GLOBAL_QUOTE", "2026-11-29T11:59:32.000Z"),
    # Bars 20 and 5 minutes before Friday's close.
    quote("TSLA", "2026-11-27T17:40:00.000Z", 212.4, 212.9, 211.5),
    quote("AAPL", "2026-11-27T17:55:00.000Z", 190.0, 190.5, 189.5),
]


@pytest.fixture
def weekend(tmp_path: Path) -> Path:
    path = tmp_path / "weekend.db"
    connection = db.connect(path)
    db.save_batch(connection, WEEKEND_QUOTES, [], [])
    connection.close()
    return path


def ages(path: Path, at: str, **settings: str) -> tuple[dict, dict[str, tuple[str, float, bool]]]:
    result = monitor("--json", "--at", at, DB_PATH=str(path), **settings)
    assert result.returncode == 0, result.stderr
    board = json.loads(result.stdout)
    return board["market"], {line["symbol"]: (line["data_time"], line["age_seconds"], line["stale"])
                             for line in board["symbols"]}


def test_on_a_sunday_the_last_session_is_current_and_an_older_one_is_stale(weekend):
    market, lines = ages(weekend, "2026-11-29T12:00:00+00:00", POLL_HOURS="market")
    assert market == {"open": False, "closes_at": None, "opens_at": "2026-11-30T14:30:00.000Z",
                      "text": "market closed, opens Mon 09:30 EST"}
    assert lines == {
        "AAPL": ("2026-11-27T17:55:00.000Z", 151_500.0, False),
        "IBM": ("2026-11-27T18:00:00.000Z", 151_200.0, False),  # its session's close, not its fetch time
        "MSFT": ("2026-11-25T21:00:00.000Z", 313_200.0, True),
        "TSLA": ("2026-11-27T17:40:00.000Z", 152_400.0, True),  # 20 minutes before the close
    }
    table = monitor("--once", "--at", "2026-11-29T12:00:00+00:00", DB_PATH=str(weekend), POLL_HOURS="market").stdout
    assert table.splitlines()[1] == "market closed, opens Mon 09:30 EST"
    assert "MSFT         410.00 ▼     -0.66   -0.16%      408.00     411.00  ▄          3d stale" in table


def test_once_the_market_opens_the_weekend_quotes_are_all_stale(weekend):
    market, lines = ages(weekend, "2026-11-30T15:00:00+00:00", POLL_HOURS="market")
    assert market["text"] == "market open, closes 16:00 EST"
    assert all(stale for _, _, stale in lines.values())


def test_with_polling_around_the_clock_age_alone_decides(weekend):
    _, lines = ages(weekend, "2026-11-27T18:10:00+00:00", POLL_HOURS="always")  # MSFT's quote is not fetched yet
    assert {symbol: stale for symbol, (_, _, stale) in lines.items()} == {"AAPL": False, "IBM": False, "TSLA": True}
    _, lines = ages(weekend, "2026-11-29T12:00:00+00:00", POLL_HOURS="always")
    assert all(stale for _, _, stale in lines.values())
