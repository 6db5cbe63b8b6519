"""The consumer's housekeeping thread: the roll-ups' catch-up, then a purge of what is past its retention
and the freed pages given back, at start and every hour, on a connection of its own.

Each step holds the write lock about 10 ms, with the consumer's turn, and then waits as long, so the
consumer's batches get through between them (history/pacing.py).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path

from common.durations import format_seconds
from history.catchup import catch_up
from history.purge import Purge
from history.retention import Retention
from history.vacuum import file_size, give_back_pages

log = logging.getLogger("consumer")

PURGE_EVERY_SECONDS = 3600.0


class Housekeeper:
    """Runs on its own thread from start() to stop()."""

    def __init__(self, path: Path, connect: Callable[[], sqlite3.Connection], retention: Retention,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), every: float = PURGE_EVERY_SECONDS,
                 turn: AbstractContextManager[object] | None = None) -> None:
        self.path = path
        self.connect = connect  # db.connect with a short busy timeout: the consumer's batches go first
        self.retention = retention
        self.turn = turn  # held by the consumer around each batch (history/pacing.py)
        self.clock = clock
        self.every = every
        self._stop = threading.Event()
        self._working = threading.Event()  # set while a round runs: the consumer is not idle then
        self._thread = threading.Thread(target=self._run, name="housekeeping", daemon=True)

    def start(self) -> None:
        self._working.set()  # the first round starts now, before the thread gets to it
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def working(self) -> bool:
        """True while a round (catch-up, purge, pages given back) is under way."""
        return self._working.is_set()

    def _pause(self, seconds: float) -> None:
        self._stop.wait(max(seconds, 0.001))

    def _going(self) -> bool:
        return not self._stop.is_set()

    def _run(self) -> None:
        connection = self.connect()
        try:
            while self._going():
                self._working.set()
                try:
                    self.once(connection)
                except sqlite3.Error as exc:  # a locked or full disk: the next round tries again
                    log.warning("housekeeping of %s failed (%s); trying again in %s", self.path, exc,
                                format_seconds(self.every))
                finally:
                    self._working.clear()
                self._stop.wait(self.every)
        finally:
            connection.close()

    def once(self, connection: sqlite3.Connection) -> None:
        """Catch up the roll-ups, then purge and give the pages back (when any retention is set)."""
        catch_up(connection, self._going, self._pause, self.turn)
        if not self.retention.any() or not self._going():
            return
        size_before = file_size(self.path)
        report = Purge(connection, self.retention, self.clock(), self._going, self._pause, turn=self.turn).run()
        if not report.total():
            log.debug("purge: nothing past its retention")
            return
        pages, longest_step = give_back_pages(connection, self._going, self._pause, turn=self.turn)
        log.info("purged %s in %s (longest write lock %.0f ms); returned %d free page(s): %s %.1f MB -> %.1f MB",
                 report.describe(), format_seconds(report.seconds), max(report.longest_lock, longest_step) * 1000,
                 pages, self.path, size_before / 1e6, file_size(self.path) / 1e6)

