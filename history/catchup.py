"""Rolling up the quotes a database held before it had bars, a slice of ids at a time.

Quotes stored since are rolled up as they are stored (history/bars.py), so only the ids up to the
newest quote at the upgrade are left, and they never change: each slice is read outside any
transaction, folded in Python, and written with its progress mark in one short transaction. A crash
resumes at the mark; no slice is read twice.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from history.bars import UPSERT_DAY, UPSERT_MINUTE, bars_of
from history.pacing import Pacer
from history.state import CATCH_UP_END_ID, CATCH_UP_NEXT_ID, pending_catch_up, write_state
from streaming.messages import QuoteRow

log = logging.getLogger("consumer")

SLICE_IDS = 5000  # the most quotes a transaction rolls up; each takes what fits in pacing.TARGET_SECONDS
FIRST_SLICE_IDS = 500
ROW_COLUMNS = "symbol, ts, price, open, high, low, volume, change, change_percent, trading_day, source, fetched_at"


def catch_up_slice(connection: sqlite3.Connection, first: int, last: int, pacer: Pacer | None = None) -> int:
    """Roll up the quotes with ids first..last and mark them done; return how many there were."""
    rows = [QuoteRow(*row) for row in connection.execute(
        f"SELECT {ROW_COLUMNS} FROM stock_prices WHERE id >= ? AND id <= ?", (first, last))]
    minutes, days = bars_of(rows)
    with (pacer or Pacer(connection, pause=lambda _: None)).step():
        connection.executemany(UPSERT_MINUTE, minutes)
        connection.executemany(UPSERT_DAY, days)
        write_state(connection, CATCH_UP_NEXT_ID, last + 1)
    return len(rows)


def finish_catch_up(connection: sqlite3.Connection) -> None:
    connection.execute("BEGIN IMMEDIATE")
    write_state(connection, CATCH_UP_NEXT_ID, None)
    write_state(connection, CATCH_UP_END_ID, None)
    connection.execute("COMMIT")


def catch_up(connection: sqlite3.Connection, keep_going: Callable[[], bool] = lambda: True,
             pause: Callable[[float], None] = time.sleep, turn: AbstractContextManager[object] | None = None) -> int:
    """Roll up every quote stored before the bars existed, unless `keep_going` says stop; return the number
    rolled up. The slices are paced like the purge (history/pacing.py), so the consumer's batches get
    through between them."""
    pending = pending_catch_up(connection)
    if pending is None:
        return 0
    first, end = pending
    started = time.monotonic()
    done = 0
    pacer = Pacer(connection, pause, turn)
    ids = min(SLICE_IDS, FIRST_SLICE_IDS)
    log.info("rolling up the quotes stored before the bars existed (ids %d to %d) into 1-minute and daily bars",
             first, end)
    while first <= end:
        if not keep_going():
            log.info("roll-up stopped at id %d of %d; it carries on at the next start", first, end)
            return done
        done += catch_up_slice(connection, first, min(first + ids - 1, end), pacer)
        first += ids
        ids = pacer.fit(ids, 50, SLICE_IDS)
    finish_catch_up(connection)
    log.info("rolled up %d stored quote(s) into bars in %.1f s", done, time.monotonic() - started)
    return done
