"""Giving freed pages back to the disk: incremental vacuum, a few megabytes per short transaction.

A database made by this release has auto_vacuum=INCREMENTAL from the start (db.connect). One made
before is converted once, by a full VACUUM at the consumer's start (it rewrites the file, so it says
so and how long it took). After that a purge's freed pages are returned with `PRAGMA
incremental_vacuum(N)` in steps, and the WAL checkpoint shrinks the file.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from history.pacing import Pacer

log = logging.getLogger("consumer")

INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL
STEP_PAGES = 2000  # the most a step returns (8 MB of 4 kB pages); each returns what fits in pacing.TARGET_SECONDS
FIRST_STEP_PAGES = 200


def file_size(path: Path) -> int:
    """The database file and its WAL, in bytes."""
    return sum(part.stat().st_size for part in (path, Path(f"{path}-wal")) if part.exists())


def convert_to_incremental(connection: sqlite3.Connection, path: Path) -> float | None:
    """Switch an older database to incremental vacuum with one VACUUM; the seconds it took, or None when it
    already was."""
    if connection.execute("PRAGMA auto_vacuum").fetchone()[0] == INCREMENTAL:
        return None
    size = file_size(path)
    log.info("converting %s (%.1f MB) to incremental vacuum, once: a full VACUUM rewrites the file and "
             "needs as much free disk; quotes wait in Kafka meanwhile", path, size / 1e6)
    started = time.monotonic()
    connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
    connection.execute("VACUUM")
    # In WAL mode the rewritten file goes through the WAL: copy it back and give the WAL's disk back too.
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    took = time.monotonic() - started
    log.info("converted %s to incremental vacuum in %.1f s (%.1f MB now)", path, took, file_size(path) / 1e6)
    return took


def free_pages(connection: sqlite3.Connection) -> int:
    return connection.execute("PRAGMA freelist_count").fetchone()[0]


def give_back_pages(connection: sqlite3.Connection, keep_going: Callable[[], bool] = lambda: True,
                    pause: Callable[[float], None] = time.sleep, step_pages: int = STEP_PAGES,
                    turn: AbstractContextManager[object] | None = None) -> tuple[int, float]:
    """Return the free pages to the file system a step at a time (history/pacing.py); (pages returned,
    longest step in s)."""
    pacer = Pacer(connection, pause, turn)
    returned = 0
    pages = min(step_pages, FIRST_STEP_PAGES)
    while keep_going() and (free := free_pages(connection)):
        asked = min(free, pages)
        with pacer.step(transaction=False):
            # The pragma frees one page per step of its statement, and execute() steps it once: executescript
            # runs it to the end (outside any transaction, as here).
            connection.executescript(f"PRAGMA incremental_vacuum({asked})")
        gone = free - free_pages(connection)
        returned += gone
        if gone <= 0:  # nothing more will go (never seen): stop rather than spin
            break
        if gone == pages:
            pages = pacer.fit(pages, 10, step_pages)
    # The truncation reaches the file when the WAL is copied back; PASSIVE never waits for a writer.
    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    return returned, pacer.longest
