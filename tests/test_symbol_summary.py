"""The symbol summary the monitor reads agrees with a brute-force reading of every stored quote, whatever
order, repetition and restarts the quotes arrive with; an old database is upgraded to it in place."""

from __future__ import annotations

import sqlite3
import tempfile
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

import db
from common.timestamps import format_time
from db import SymbolSummary
from market.days import END_OF_TIME
from streaming.messages import QuoteRow
from view.queries import summaries_until

NEW_YORK = ZoneInfo("America/New_York")
FIXTURES = Path(__file__).parent / "fixtures"
# Thursday 2026-11-19 00:00 New York to Tuesday 11-24 00:00: two trading days, a weekend and a Monday.
FIRST_MINUTE = datetime(2026, 11, 19, 5, 0, tzinfo=UTC)
MINUTES = 5 * 24 * 60
LABELS = [None, None, "2026-11-18", "2026-11-19", "2026-11-20", "2026-11-23", "2026-11-25"]
COLUMNS = "symbol, ts, price, open, high, low, volume, change, change_percent, trading_day, source, fetched_at"


def new_york_day(ts: str, trading_day: str | None) -> tuple[str, str]:
    """(day, its start as a stored time), computed directly: a label is believed once its day has begun."""
    moment = datetime.fromisoformat(ts)
    if trading_day is not None:
        start = datetime.combine(date.fromisoformat(trading_day), time(), NEW_YORK)
        if start <= moment:
            return trading_day, format_time(start)
    day = moment.astimezone(NEW_YORK).date()
    return day.isoformat(), format_time(datetime.combine(day, time(), NEW_YORK))


def brute_force(rows: list[QuoteRow], symbol: str, until: str) -> SymbolSummary | None:
    """The summary of `symbol` as of `until` from every stored row, by definition."""
    mine = sorted((row for row in rows if row.symbol == symbol and row.ts <= until), key=lambda row: row.ts)
    if not mine:
        return None
    latest = mine[-1]
    day, start = new_york_day(latest.ts, latest.trading_day)
    of_day = [row for row in mine if new_york_day(row.ts, row.trading_day)[0] == day]
    before = [row for row in mine if row.ts < start]
    close = (before[-1].ts, before[-1].price) if before else (None, None)
    return SymbolSummary(symbol, min(row.ts for row in rows if row.symbol == symbol), latest.ts, latest.price,
                         latest.change, latest.trading_day, day, start, of_day[0].ts, of_day[0].price,
                         max(row.high for row in of_day), min(row.low for row in of_day), *close)


def stored_rows(connection: sqlite3.Connection) -> list[QuoteRow]:
    return [QuoteRow(*row) for row in connection.execute(f"SELECT {COLUMNS} FROM stock_prices")]


def quote(symbol: str, minute: int, price: float, spread: float, trading_day: str | None,
          change: float | None) -> QuoteRow:
    ts = format_time(FIRST_MINUTE + timedelta(minutes=minute))
    return QuoteRow(symbol, ts, price, price, price + spread, price - spread, 100, change, None, trading_day,
                    "GLOBAL_QUOTE" if trading_day else "TIME_SERIES_INTRADAY", ts)


QUOTES = st.builds(quote, st.sampled_from(["IBM", "MSFT", "BRK.B"]), st.integers(0, MINUTES - 1),
                   st.floats(1, 500).map(lambda price: round(price, 2)), st.sampled_from([0.0, 0.5, 2.0]),
                   st.sampled_from(LABELS), st.sampled_from([None, None, 1.25, -3.5]))
# What happens between two batches: nothing, the same batch again (a redelivery), a restart.
EVENTS = st.lists(st.tuples(st.lists(QUOTES, min_size=1, max_size=12), st.sampled_from(["", "again", "restart"])),
                  min_size=1, max_size=8)


def assert_agrees(connection: sqlite3.Connection, moments: list[str]) -> None:
    rows = stored_rows(connection)
    symbols = sorted({row.symbol for row in rows})
    stored = {summary.symbol: summary for summary in db.read_summaries(connection, symbols)}
    assert stored == {symbol: brute_force(rows, symbol, END_OF_TIME) for symbol in symbols}
    for until in moments:  # the board as it was: what is stored when it is not newer, else indexed queries
        expected = [brute_force(rows, symbol, until) for symbol in symbols]
        assert summaries_until(connection, until) == [summary for summary in expected if summary is not None]


@given(EVENTS, st.lists(st.integers(0, MINUTES), max_size=4))
def test_the_summary_agrees_with_every_stored_quote_whatever_the_order_repeats_and_restarts(events, moments):
    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "stocks.db"
        connection = db.connect(path)
        for batch, then in events:
            db.save_batch(connection, batch, [])
            if then == "again":
                assert db.save_batch(connection, [row._replace(price=row.price + 1) for row in batch], []) == 0
            elif then == "restart":
                connection.close()
                connection = db.connect(path)
        assert_agrees(connection, [format_time(FIRST_MINUTE + timedelta(minutes=m)) for m in moments])
        connection.close()


def test_two_days_late_quotes_and_a_restart_give_the_board_a_trader_expects(tmp_path):
    path = tmp_path / "stocks.db"
    connection = db.connect(path)
    friday = [quote("IBM", 24 * 60 + 9 * 60 + minute, 100 + minute, 0.5, None, None) for minute in (31, 32, 33)]
    db.save_batch(connection, friday[::-1], [])  # in reverse: each but the first is late
    connection.close()
    connection = db.connect(path)
    monday = [quote("IBM", 4 * 24 * 60 + 9 * 60 + 31, 110.0, 1.0, None, None)]
    db.save_batch(connection, monday, [])
    late_monday = quote("IBM", 4 * 24 * 60 + 9 * 60 + 30, 90.0, 0.0, None, None)
    late_friday = quote("IBM", 24 * 60 + 15 * 60 + 59, 104.0, 0.0, None, None)
    db.save_batch(connection, [late_monday, late_friday], [])
    (summary,) = db.read_summaries(connection, ["IBM"])
    assert summary == SymbolSummary(
        "IBM", "2026-11-20T14:31:00.000Z", "2026-11-23T14:31:00.000Z", 110.0, None, None, "2026-11-23",
        "2026-11-23T05:00:00.000Z", "2026-11-23T14:30:00.000Z", 90.0, 111.0, 90.0, "2026-11-20T20:59:00.000Z", 104.0)
    assert_agrees(connection, ["2026-11-20T20:00:00.000Z", "2026-11-23T14:30:30.000Z"])


def test_a_database_of_the_previous_release_is_upgraded_with_its_summaries(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript((FIXTURES / "schema_v2.sql").read_text())
    rows = [quote(symbol, minute, 100 + minute / 100, 0.5, "2026-11-20" if minute % 2 else None, None)[:12]
            for symbol in ("IBM", "MSFT") for minute in range(0, MINUTES, 37)]
    old.executemany(f"INSERT INTO stock_prices ({COLUMNS}) VALUES ({', '.join('?' * 12)})", rows)
    old.commit()
    old.close()
    connection = db.connect(path)
    assert connection.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
    assert db.count_quotes(connection) == len(stored_rows(connection)) > 100
    assert_agrees(connection, ["2026-11-20T18:00:00.000Z"])
    db.save_batch(connection, [quote("IBM", MINUTES, 99.0, 0.0, None, None)], [])
    assert_agrees(connection, [])
