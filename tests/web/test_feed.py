"""The live board's feed on a real SQLite file: a commit is noticed without querying the quotes, the
board is built once per change whatever the number of streams, a reconnecting stream resumes by its
last event id, and a stream that reads too slowly is dropped instead of buffered."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import db
from view.queries import open_for_reading
from web.feed import QUEUE_EVENTS, BoardFeed


def count_rows(connection: sqlite3.Connection | None) -> dict:
    if connection is None:
        return {"rows": None}
    return {"rows": connection.execute("SELECT count(*) FROM stock_prices").fetchone()[0]}


def add_quote(path: Path, index: int) -> None:
    """One quote in one commit (db.connect would commit its set-up statements first: more than one change)."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("INSERT INTO stock_prices (symbol, ts, price, open, high, low, volume, source, fetched_at) "
                       "VALUES ('IBM', ?, 1, 1, 1, 1, 1, 'GLOBAL_QUOTE', '2026-12-03T15:00:00.000Z')",
                       (f"2026-12-03T15:00:{index:02d}.000Z",))
    connection.close()


def test_a_commit_makes_one_new_board_for_every_stream(tmp_path: Path) -> None:
    path = tmp_path / "stocks.db"
    db.connect(path).close()

    async def scenario() -> tuple[list[list[dict]], int, int]:
        feed = BoardFeed(path, count_rows, open_for_reading, check=0.02, refresh=3600)
        runner = asyncio.create_task(feed.run())
        streams = [feed.events() for _ in range(20)]
        firsts = [await anext(stream) for stream in streams]
        builds_before = feed.builds
        add_quote(path, 1)
        seconds = [await asyncio.wait_for(anext(stream), 5) for stream in streams]
        await asyncio.sleep(0.2)  # no commit: no new board
        builds_after = feed.builds
        runner.cancel()
        pairs = [[json.loads(event.data) for event in pair] for pair in zip(firsts, seconds, strict=True)]
        return pairs, builds_before, builds_after

    boards, before, after = asyncio.run(scenario())
    assert boards == [[{"rows": 0}, {"rows": 1}]] * 20
    assert after - before == 1  # built once for the 20 streams


def test_a_stream_resumes_from_its_last_event_id(tmp_path: Path) -> None:
    path = tmp_path / "stocks.db"
    db.connect(path).close()

    async def scenario() -> tuple[bool, str]:
        feed = BoardFeed(path, count_rows, open_for_reading, check=0.02, refresh=3600)
        runner = asyncio.create_task(feed.run())
        first = await anext(feed.events())
        # It has the newest board already: nothing until the next commit.
        resumed = feed.events(first.id)
        waiting = asyncio.ensure_future(anext(resumed))
        await asyncio.sleep(0.2)
        nothing_yet = not waiting.done()
        add_quote(path, 2)
        event = await asyncio.wait_for(waiting, 5)
        runner.cancel()
        return nothing_yet, event.data

    nothing_yet, data = asyncio.run(scenario())
    assert nothing_yet and json.loads(data) == {"rows": 1}
    # An id from another run of the server never matches: the stream gets the board at once.
    assert BoardFeed(path, count_rows, open_for_reading).started > 0


def test_a_stream_that_falls_behind_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "stocks.db"
    db.connect(path).close()

    async def scenario() -> tuple[int, list[int]]:
        feed = BoardFeed(path, count_rows, open_for_reading, check=3600, refresh=3600)
        feed.publish('{"rows": 0}')
        slow, fine = feed.events(), feed.events()
        await anext(slow)
        await anext(fine)
        got = []
        for number in range(QUEUE_EVENTS + 1):  # one more than a stream may have waiting
            feed.publish(json.dumps({"rows": number + 1}))
            got.append(json.loads((await anext(fine)).data)["rows"])
        left = [event async for event in slow]  # ends: it was dropped
        return len(feed.subscribers), [*got, len(left)]

    subscribers, got = asyncio.run(scenario())
    assert subscribers == 1  # only the stream that keeps up
    assert got[:-1] == list(range(1, QUEUE_EVENTS + 2))
    assert got[-1] == 0  # nothing more delivered to the dropped stream


def test_no_database_yet_is_a_board_too_and_it_appears_when_created(tmp_path: Path) -> None:
    path = tmp_path / "stocks.db"

    async def scenario() -> list[dict]:
        feed = BoardFeed(path, count_rows, open_for_reading, check=0.02, refresh=3600)
        runner = asyncio.create_task(feed.run())
        stream = feed.events()
        boards = [json.loads((await anext(stream)).data)]
        db.connect(path).close()  # what the consumer does on its first start
        add_quote(path, 3)
        while boards[-1] != {"rows": 1}:
            boards.append(json.loads((await asyncio.wait_for(anext(stream), 5)).data))
        runner.cancel()
        return boards

    boards = asyncio.run(scenario())
    assert boards[0] == {"rows": None} and boards[-1] == {"rows": 1}
