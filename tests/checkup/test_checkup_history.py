"""The doctor's report of what the database holds: rows per table, the oldest raw quote, the retention and
the next purge, on real files as the consumer leaves them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import db
from checkup.finding import OK, WARN
from checkup.storage_checks import database_checks
from history.purge import Purge
from history.retention import Retention
from reference_bars import make_pre_bars_database, quote

NOW = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
THIRTY_DAYS = Retention(quotes=timedelta(days=30))


def statuses(findings: list) -> dict[str, tuple[str, str]]:
    return {finding.what: (finding.status, finding.why) for finding in findings}


def filled(path: Path):
    connection = db.connect(path)
    rows = [quote(symbol, f"2026-12-0{day}T15:{minute:02d}:00.000Z", 100.0 + minute)
            for day in (1, 2, 3) for symbol in ("IBM", "MSFT") for minute in range(30)]
    db.save_batch(connection, rows, [])
    return connection


def test_rows_oldest_quote_and_a_database_that_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "stocks.db"
    filled(path).close()
    found = statuses(database_checks(path, now=NOW))
    assert found["database rows"][0] == OK
    assert found["database rows"][1].startswith("stock_prices 180, bars_1m 180, bars_1d 6, alerts 0, "
                                                "rejected_messages 0; 0.0 MB of ")
    assert found["oldest quote"] == (OK, "2026-12-01 15:00 UTC (3 days ago)")
    assert found["retention"] == (OK, "quotes forever, 1-minute bars forever, daily bars forever, alerts forever "
                                      "(RETAIN_* not set: everything is kept)")
    assert found["next purge"] == (OK, "none: nothing has a retention")


def test_the_next_purge_follows_the_last_one_or_the_consumers_next_start(tmp_path: Path) -> None:
    path = tmp_path / "stocks.db"
    connection = filled(path)
    never = statuses(database_checks(path, THIRTY_DAYS, NOW))
    assert never["retention"] == (OK, "quotes 30d, 1-minute bars forever, daily bars forever, alerts forever")
    assert never["next purge"] == (OK, "at consumer.py's next start (it has never purged this file)")
    Purge(connection, THIRTY_DAYS, NOW - timedelta(minutes=20), pause=lambda _: None).run()
    connection.close()
    recent = statuses(database_checks(path, THIRTY_DAYS, NOW))
    assert recent["next purge"] == (OK, "about 2026-12-04 15:40 UTC while consumer.py runs, else at its next start "
                                        "(the last at 2026-12-04 14:40 UTC)")
    late = statuses(database_checks(path, THIRTY_DAYS, NOW + timedelta(hours=2)))
    assert late["next purge"] == (OK, "at consumer.py's next start, or now if it runs (the last at 2026-12-04 14:40 "
                                      "UTC)")


def test_an_upgraded_database_says_it_is_still_rolling_up_and_not_yet_on_incremental_vacuum(tmp_path: Path) -> None:
    path = tmp_path / "stocks.db"
    make_pre_bars_database(path, [quote("IBM", f"2026-12-01T15:{minute:02d}:00.000Z", 100.0) for minute in range(9)])
    connection = db.connect(path)  # upgraded as the consumer would, before its housekeeping starts
    connection.execute("PRAGMA auto_vacuum = NONE")
    connection.execute("VACUUM")
    connection.close()
    found = statuses(database_checks(path, THIRTY_DAYS, NOW))
    assert found["retention"][0] == WARN
    assert "not on incremental vacuum yet: consumer.py converts it at its next start" in found["retention"][1]
    assert found["next purge"] == (OK, "at consumer.py's next start (it has never purged this file); quotes 1 to 9 "
                                       "are still being rolled up into bars, and no raw quote is purged before "
                                       "that ends")
