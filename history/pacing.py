"""How the housekeeping writes share the database with the consumer's batches.

Measured at 1,000 msg/s during a purge of a million rows (bench/history_scale.py): a batch that held
the write lock 10 ms still cost the consumer's p99 over 100 ms, for two reasons, each answered here.

- SQLite's own wait for a lock sleeps in steps of up to 100 ms, and a purge that only pauses as long
  as it held the lock can take it back first. So each housekeeping transaction also holds the `turn`
  (a lock the consumer holds around each of its batches, in the same process): the consumer waits for
  one step at most and goes the moment it ends.
- Small transactions write many WAL pages (the same index and free-list pages each time), so the WAL
  reached the consumer's auto-checkpoint size within a second, and then the consumer's commits copied
  it back, 100 ms or more each. So the housekeeping connection never checkpoints on commit; it runs a
  PASSIVE checkpoint (which takes no write lock) after each step, which keeps the WAL small.

- The consumer's own work (the Kafka client's fetches, decoding) shares two cores and the GIL with the
  housekeeping thread. Writing half the time, the purge left the consumer's p99 at 822 ms; a quarter,
  414 ms; a tenth (SHARE), 43 ms, against 23 ms without a purge (1,000 msg/s, 750,000 rows purged).
  A purge of weeks then takes a while (about 5,000 rows/s): it is a one-off, and each later hour's
  purge deletes only an hour of rows.

- On a slow disk the checkpoint is the step's real cost: it writes the step's pages into the file, and
  the consumer's commit (an fsync of the WAL) waits behind those writes. With the disk capped at 3,000
  writes a second (bench/history_scale.py --disk-iops) and the pause counting the lock alone, the
  consumer's p99 was 678 ms during a purge; counting the checkpoint too, in the step's size and in the
  pause, with the purge in stored order (history/purge.py) and no fsync at the steps' commits, 67 ms
  (1M quotes, 1,000 msg/s). On this machine's own disk a checkpoint takes a millisecond or two.

Each step is sized to cost about TARGET_SECONDS, its checkpoint included: the next is scaled by how long
the last took.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

TARGET_SECONDS = 0.010
SHARE = 0.1  # of the time the housekeeping may write: after a step it waits nine times as long


class Pacer:
    """Runs write steps one at a time with the turn held, a checkpoint and a pause after each."""

    def __init__(self, connection: sqlite3.Connection, pause: Callable[[float], None] = time.sleep,
                 turn: AbstractContextManager[object] | None = None) -> None:
        self.connection = connection
        self.pause = pause
        self.turn = turn or nullcontext()
        self.longest = 0.0  # the longest any step held the write lock
        self.last = 0.0  # what the last step cost: its hold and its checkpoint
        connection.execute("PRAGMA wal_autocheckpoint = 0")
        # No fsync at each step's commit: a step lost to a power cut is done again by the next round (a purge
        # deletes again, a roll-up slice and its progress mark go together), and the consumer's next sync of
        # the WAL (ingest/durable_offsets.py) takes those steps with it. On a slow disk that fsync was most
        # of a step's hold.
        connection.execute("PRAGMA synchronous = NORMAL")

    @contextmanager
    def step(self, transaction: bool = True) -> Iterator[None]:
        """One write step (in its own IMMEDIATE transaction unless `transaction` is False)."""
        with self.turn:
            began = time.monotonic()
            if transaction:
                self.connection.execute("BEGIN IMMEDIATE")
            try:
                yield
                if transaction:
                    self.connection.execute("COMMIT")
            except BaseException:
                if self.connection.in_transaction:
                    self.connection.execute("ROLLBACK")
                raise
            held = time.monotonic() - began
        self.longest = max(self.longest, held)
        self.connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        # The checkpoint writes the step's pages into the file, where the consumer's commits wait behind them
        # on a slow disk: it is part of what the step costs, in its size and in the pause after it.
        self.last = time.monotonic() - began
        self.pause(self.last * (1 / SHARE - 1))

    def fit(self, size: int, least: int, most: int) -> int:
        """The next step's size: scaled to TARGET_SECONDS from the last (its checkpoint included), at most
        doubling."""
        fitted = int(size * TARGET_SECONDS / max(self.last, 1e-4))
        return min(most, size * 2, max(least, fitted))
