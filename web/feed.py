"""The live board: notices the consumer's commits, builds the board once per change and fans it out.

`PRAGMA data_version` on one reading connection changes when another connection commits, so a
check every quarter second costs one statement, not a query of the quotes. Each board is an event
with a growing id; a browser that reconnects with `Last-Event-ID` gets the board only if it missed
one. Each subscriber has a short queue: one that reads too slowly is dropped (its browser reconnects
and gets the newest board), never buffered without bound.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("web")
CHECK_SECONDS = 0.25
# Ages and the market line move with the clock alone: a board is rebuilt at least this often.
REFRESH_SECONDS = 15.0
QUEUE_EVENTS = 4


@dataclass(frozen=True)
class BoardEvent:
    number: int
    id: str  # "<server start>.<number>": an id from an earlier run of the server never matches
    data: str  # the board as JSON


class Subscriber:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[BoardEvent] = asyncio.Queue(QUEUE_EVENTS)
        self.dropped = False


class BoardFeed:
    """`run()` in the server's loop; `events(last_id)` for each stream; `latest` for /api/board."""

    def __init__(self, path: Path, build: Callable[[sqlite3.Connection | None], dict[str, Any]],
                 connect: Callable[[Path], sqlite3.Connection], check: float = CHECK_SECONDS,
                 refresh: float = REFRESH_SECONDS) -> None:
        self.path = path
        self.build = build
        self.connect = connect
        self.check = check
        self.refresh = refresh
        self.latest: BoardEvent | None = None
        self.subscribers: set[Subscriber] = set()
        self.builds = 0
        self.started = int(time.time())
        self._connection: sqlite3.Connection | None = None
        self._version: int | None = None
        self._built_at = 0.0
        self._changed = asyncio.Event()

    def _data_version(self) -> int | None:
        """The database's commit counter as this connection sees it; None while there is no database."""
        if self._connection is None:
            if not self.path.exists():
                return None
            self._connection = self.connect(self.path)
        return self._connection.execute("PRAGMA data_version").fetchone()[0]

    def _step(self) -> str | None:
        """One check (on a worker thread): the new board's JSON if a commit came or it is due, else None."""
        opened = self._connection is not None
        version = self._data_version()
        reopened = not opened and self._connection is not None  # a new connection counts from its own start
        due = time.monotonic() - self._built_at >= self.refresh
        if self.latest is not None and version == self._version and not due and not reopened:
            return None
        data = json.dumps(self.build(self._connection), separators=(",", ":"))
        self._version = version
        self._built_at = time.monotonic()
        self.builds += 1
        return data

    async def run(self) -> None:
        while True:
            try:
                data = await asyncio.to_thread(self._step)
            except Exception as exc:  # a bad moment (a locked or replaced file) must not end the feed for good
                log.warning("cannot read %s: %s; trying again", self.path, exc)
                self._close()
                data = None
                await asyncio.sleep(1.0)
            if data is not None:
                self.publish(data)
            await asyncio.sleep(self.check)

    def publish(self, data: str) -> None:
        number = self.latest.number + 1 if self.latest else 1
        self.latest = BoardEvent(number, f"{self.started}.{number}", data)
        self._changed.set()
        self._changed = asyncio.Event()
        for subscriber in list(self.subscribers):
            try:
                subscriber.queue.put_nowait(self.latest)
            except asyncio.QueueFull:
                subscriber.dropped = True
                self.subscribers.discard(subscriber)
                log.info("dropped a live stream that fell %d boards behind", QUEUE_EVENTS)

    async def first_board(self) -> BoardEvent:
        while self.latest is None:
            await self._changed.wait()
        return self.latest

    async def events(self, last_id: str | None = None) -> AsyncIterator[BoardEvent]:
        """The newest board unless `last_id` already has it, then each new one until dropped."""
        subscriber = Subscriber()
        self.subscribers.add(subscriber)
        try:
            current = await self.first_board()
            if last_id != current.id:
                yield current
            while True:
                event = await subscriber.queue.get()
                if subscriber.dropped:
                    return
                if event.number > current.number:  # one queued while waiting for the first is no news
                    current = event
                    yield event
        finally:
            self.subscribers.discard(subscriber)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
