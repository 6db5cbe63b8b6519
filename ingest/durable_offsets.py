"""Kafka offsets are committed only for rows on disk, and the disk is waited for beside the storing, not in it.

The consumer's commits return once a batch is in SQLite's WAL (synchronous=NORMAL): readers see the
rows at once. This thread then fsyncs the WAL, and hands back for committing to Kafka only the offsets
of batches written before that fsync began. A power cut can still undo the last batches, but Kafka was
never told about them, so they are fetched and stored again: nothing is lost, as with an fsync in
every commit. What changes is who waits for a slow fsync. Another process flushing its writes (a
package unpacked, a backup, `sync`) can hold an fsync for hundreds of milliseconds; measured with
bench/e2e_latency.py --busy-disk, each quote waited behind it while it was in the commit, and only the
offsets do now. For the same reason this thread also copies the WAL back into the database (a
checkpoint, which syncs both files), every CHECKPOINT_SECONDS, instead of the commit that crosses
SQLite's page count.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata

import db

log = logging.getLogger("consumer")

Offsets = dict[TopicPartition, OffsetAndMetadata]
SLOW_SYNC_SECONDS = 1.0  # an fsync longer than this is logged: the offsets (not the quotes) waited that long
CHECKPOINT_SECONDS = 5.0  # the WAL holds about this long of writes (a few MB at 1,000 quotes a second)


def next_offsets(records: Iterable[ConsumerRecord]) -> Offsets:
    """The offset to commit for each partition of a stored batch: one past its last record. A poll's
    records come in offset order within each partition; the per-record step is one dict store."""
    last = {(record.topic, record.partition): record.offset for record in records}
    return {TopicPartition(topic, partition): OffsetAndMetadata(offset + 1, "", -1)
            for (topic, partition), offset in last.items()}


def fsync_file(path: Path) -> None:
    """Wait until what was written to `path` is on disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class WalSyncFailed(db.DatabaseError):
    """The WAL could not be synced: what was stored since may not be on disk (an fsync that failed once
    cannot be retried safely, as the kernel may have dropped the pages), so no offset is committed."""


class DurableOffsets:
    """Offsets of stored batches, handed back once the WAL they were written to is on disk."""

    def __init__(self, database: str | Path, sync: Callable[[Path], None] = fsync_file,
                 clock: Callable[[], float] = time.monotonic, checkpoint_every: float | None = None) -> None:
        """`checkpoint_every`: seconds between this thread's checkpoints (None: it runs none, and the
        connections' own setting decides; db.commit_without_fsync turns the consumer's off)."""
        self.database = database
        self.wal = Path(f"{database}-wal")
        self._sync = sync
        self._clock = clock
        self._checkpoint_every = checkpoint_every
        self._last_checkpoint = clock()
        self._checkpointer: sqlite3.Connection | None = None  # this thread's own, opened at the first checkpoint
        self._changed = threading.Condition()
        self._written: Offsets = {}  # stored, not yet known to be on disk
        self._durable: Offsets = {}  # on disk, not yet taken for a commit
        self._stopping = False
        self._failed: WalSyncFailed | None = None
        self._thread = threading.Thread(target=self._run, name="wal-sync", daemon=True)

    def start(self) -> DurableOffsets:
        self._thread.start()
        return self

    def written(self, offsets: Offsets) -> None:
        """Call once the batch with these offsets is committed to SQLite."""
        with self._changed:
            self._written.update(offsets)
            self._changed.notify()

    def take(self) -> Offsets:
        """The offsets on disk since the last take (empty when none are). Raises WalSyncFailed."""
        with self._changed:
            if self._failed is not None:
                raise self._failed
            taken, self._durable = self._durable, {}
        return taken

    def stop(self) -> None:
        """Stop the thread once its sync in progress ends (what it has not synced stays uncommitted)."""
        with self._changed:
            self._stopping = True
            self._changed.notify()
        if self._thread.is_alive():
            self._thread.join()

    def finish(self) -> Offsets:
        """Stop the thread, sync what is left in this one and take every offset not taken yet (on the way
        out). Raises WalSyncFailed."""
        self.stop()
        if self._written and self._failed is None:
            self._sync_pending()
        return self.take()

    def _run(self) -> None:
        try:
            while True:
                with self._changed:
                    self._changed.wait_for(lambda: self._written or self._stopping)
                    if self._stopping:
                        return
                if not self._sync_pending():
                    return
                if self._checkpoint_due():
                    self._checkpoint()
        finally:
            if self._checkpointer is not None:
                self._checkpointer.close()

    def _checkpoint_due(self) -> bool:
        every = self._checkpoint_every
        return every is not None and self._clock() - self._last_checkpoint >= every

    def _checkpoint(self) -> None:
        """Copy what the WAL holds back into the database (PASSIVE: without waiting for readers or the writer).
        One that cannot run now (another connection checkpoints) is left to the next round."""
        self._last_checkpoint = self._clock()
        try:
            if self._checkpointer is None:
                self._checkpointer = sqlite3.connect(self.database, isolation_level=None, timeout=0)
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            log.debug("checkpoint of %s not done this round: %s", self.database, exc)

    def _sync_pending(self) -> bool:
        """Sync the WAL and move what was written before the sync began to the durable offsets."""
        with self._changed:
            # Only batches committed before the fsync begins are sure to be in it.
            pending, self._written = self._written, {}
        started = self._clock()
        try:
            self._sync(self.wal)
        except OSError as exc:
            with self._changed:
                self._failed = WalSyncFailed(f"cannot sync {self.wal}: {exc.strerror or exc}; the batches "
                                             "stored since the last sync come again at the next start")
            return False
        took = self._clock() - started
        if took >= SLOW_SYNC_SECONDS:
            log.info("the database's disk took %.1f s to sync; the quotes were stored meanwhile, their Kafka "
                     "offsets waited", took)
        with self._changed:
            self._durable.update(pending)
        return True
