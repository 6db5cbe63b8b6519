"""Small named values the history work keeps in the database (table history_state): how far the
roll-ups' catch-up has come and when the last purge ran."""

from __future__ import annotations

import sqlite3

CATCH_UP_NEXT_ID = "catch_up_next_id"  # quotes with ids from here to catch_up_end_id are not rolled up yet
CATCH_UP_END_ID = "catch_up_end_id"  # the newest quote stored before the roll-ups existed
LAST_PURGE_AT = "last_purge_at"


def read_state(connection: sqlite3.Connection, name: str) -> str | None:
    row = connection.execute("SELECT value FROM history_state WHERE name = ?", (name,)).fetchone()
    return row[0] if row else None


def write_state(connection: sqlite3.Connection, name: str, value: str | int | None) -> None:
    """Set (or, with None, forget) a value; inside the caller's transaction when there is one."""
    if value is None:
        connection.execute("DELETE FROM history_state WHERE name = ?", (name,))
    else:
        connection.execute("INSERT OR REPLACE INTO history_state (name, value) VALUES (?, ?)", (name, str(value)))


def pending_catch_up(connection: sqlite3.Connection) -> tuple[int, int] | None:
    """(next id, last id) of the stored quotes not rolled up yet; None when every quote is in its bars."""
    end = read_state(connection, CATCH_UP_END_ID)
    if end is None:
        return None
    start = read_state(connection, CATCH_UP_NEXT_ID)
    return int(start or 0), int(end)
