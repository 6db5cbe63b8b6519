"""The 1-minute and daily bars equal a from-scratch aggregation of the stored quotes, whatever order and
how many times the quotes arrive, and a database from before the bars is rolled up to the same."""

from __future__ import annotations

import sqlite3

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import db
from history.bars import UPSERT_DAY
from history.catchup import catch_up
from history.state import pending_catch_up
from reference_bars import (
    DAILY,
    INTRADAY,
    daily_bars,
    make_pre_bars_database,
    minute_bars,
    quote,
    stored_quotes,
    table_bars,
)

# Minutes around two New York midnights and a session (18:00-23:59 UTC on two days, and 00:00-05:59 UTC).
MINUTES = [f"2026-12-0{day}T{hour:02d}:{minute:02d}" for day in (1, 2) for hour in (4, 5, 14, 20, 21)
           for minute in (0, 1, 59)]
SOURCES = ["GLOBAL_QUOTE", "REALTIME_BULK_QUOTES", INTRADAY, DAILY]

quotes = st.builds(
    lambda symbol, minute, second, price, source, volume, spread, labelled: quote(
        symbol, f"{minute}:{second:02d}.000Z", price, source, volume, spread,
        "2026-11-30" if labelled and minute < "2026-12-01T05" else None),
    st.sampled_from(["IBM", "TSLA"]), st.sampled_from(MINUTES), st.integers(0, 59),
    st.floats(1, 500, allow_nan=False).map(lambda price: round(price, 2)), st.sampled_from(SOURCES),
    st.integers(0, 10_000_000), st.sampled_from([0.0, 0.5, 3.0]), st.booleans())


def store(connection: sqlite3.Connection, batches: list[list]) -> None:
    for batch in batches:
        db.save_batch(connection, batch, [])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=st.lists(quotes, min_size=1, max_size=60), data=st.data())
def test_bars_equal_a_from_scratch_aggregation_in_any_order_with_redeliveries(tmp_path_factory, stream, data):
    path = tmp_path_factory.mktemp("bars") / "stocks.db"
    connection = db.connect(path)
    # Redeliveries: some quotes come again, the same or changed (the first stored wins, as in the table).
    again = data.draw(st.lists(st.sampled_from(stream), max_size=20))
    changed = [row._replace(price=row.price + 1) for row in data.draw(st.lists(st.sampled_from(stream), max_size=5))]
    deliveries = data.draw(st.permutations(stream + again + changed))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(deliveries)), max_size=6)))
    batches = [deliveries[start:end] for start, end in zip([0, *cuts], [*cuts, len(deliveries)], strict=True)]
    store(connection, batches)
    rows = stored_quotes(connection)
    assert table_bars(connection) == (minute_bars(rows), daily_bars(rows))
    connection.close()


def test_a_day_with_a_session_close_takes_its_official_figures_whatever_came_first(tmp_path):
    connection = db.connect(tmp_path / "stocks.db")
    store(connection, [[quote("IBM", "2026-12-01T15:00:00.000Z", 120.0, volume=900)],
                       [quote("IBM", "2026-12-01T21:00:00.000Z", 125.0, DAILY, volume=5_000_000)],
                       [quote("IBM", "2026-12-01T20:59:00.000Z", 124.0, INTRADAY, volume=300)]])
    day = connection.execute("SELECT open, high, low, close, volume, day_volume, quotes, official_ts FROM bars_1d"
                             ).fetchone()
    assert day == (124.5, 126.0, 124.0, 125.0, 5_000_000, 900, 3, "2026-12-01T21:00:00.000Z")
    # The session close has no minute: two minute bars, from the other two quotes.
    assert connection.execute("SELECT count(*) FROM bars_1m").fetchone() == (2,)


def test_a_later_official_close_stored_before_an_earlier_one_keeps_its_figures(tmp_path):
    connection = db.connect(tmp_path / "stocks.db")
    early = quote("IBM", "2026-12-01T21:00:00.000Z", 125.0, DAILY, volume=5)
    late = quote("IBM", "2026-12-01T21:00:01.000Z", 126.0, DAILY, volume=6)
    store(connection, [[late], [early]])
    assert connection.execute("SELECT close, volume, official_ts FROM bars_1d").fetchone() == (
        126.0, 6, late.ts)
    assert "official_ts" in UPSERT_DAY


def test_a_database_from_before_the_bars_is_caught_up_in_slices_to_the_same_bars(tmp_path, monkeypatch):
    import history.catchup

    monkeypatch.setattr(history.catchup, "SLICE_IDS", 7)  # many slices: each quote is read once
    rows = [quote(symbol, f"2026-12-0{day}T{hour}:{minute:02d}:00.000Z", 100 + minute, source)
            for symbol in ("IBM", "TSLA") for day in (1, 2) for hour in (15, 20)
            for minute, source in ((0, "GLOBAL_QUOTE"), (1, INTRADAY), (30, "GLOBAL_QUOTE"))]
    rows.append(quote("IBM", "2026-12-01T21:00:00.000Z", 130, DAILY))
    path = tmp_path / "stocks.db"
    make_pre_bars_database(path, rows)
    connection = db.connect(path)
    assert connection.execute("PRAGMA user_version").fetchone() == (db.SCHEMA_VERSION,)
    assert pending_catch_up(connection) == (1, len(rows))
    # Quotes keep coming while the catch-up has not run: they are rolled up at once and merge with it.
    later = [quote("IBM", "2026-12-02T20:30:30.000Z", 99.0), quote("MSFT", "2026-12-02T20:31:00.000Z", 400.0)]
    store(connection, [later])
    stops = iter([True, True, False])  # stopped after two slices, as a consumer's shutdown would
    assert catch_up(connection, lambda: next(stops), lambda seconds: None) == 14
    assert pending_catch_up(connection) == (15, len(rows))
    assert catch_up(connection, lambda: True, lambda seconds: None) == len(rows) - 14
    assert pending_catch_up(connection) is None
    assert table_bars(connection) == (minute_bars(rows + later), daily_bars(rows + later))
    assert catch_up(connection) == 0  # done: nothing is read again
