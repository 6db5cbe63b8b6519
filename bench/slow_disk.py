"""A slower disk for one process: a cgroup (v1 blkio) that caps its reads and writes per second.

A cloud volume or a busy server's disk answers in milliseconds where this machine's answers an
fsync in a fraction of one; the purge's pace was measured on both. The cap applies to what the
process itself asks of the disk: reads that miss the page cache and the writes its fsyncs force
out (the WAL checkpoints'), which is where SQLite waits. Needs root and the cgroup v1 blkio
controller (/sys/fs/cgroup/blkio); elsewhere it says so in one line.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BLKIO = Path("/sys/fs/cgroup/blkio")


class SlowDiskError(Exception):
    """The cap cannot be set up here (not root, no cgroup v1 blkio)."""


def device_of(path: Path) -> str:
    """The `major:minor` of the whole disk holding `path` (a partition's parent disk, as blkio wants)."""
    number = os.stat(path).st_dev
    major, minor = os.major(number), os.minor(number)
    block = Path(f"/sys/dev/block/{major}:{minor}")
    if (block / "partition").exists():  # throttling is set on the disk, not the partition
        major, minor = (block.resolve().parent / "dev").read_text().strip().split(":")
    return f"{major}:{minor}"


@contextmanager
def slow_disk(path: Path, iops: int) -> Iterator[Path]:
    """A cgroup whose processes get at most `iops` reads and `iops` writes a second on `path`'s disk;
    yields its tasks file (write a pid there, e.g. from a child's preexec_fn)."""
    if not (BLKIO / "blkio.throttle.write_iops_device").exists():
        raise SlowDiskError(f"no cgroup v1 blkio controller at {BLKIO}")
    group = BLKIO / f"stockmon-bench-{uuid.uuid4().hex[:8]}"
    try:
        group.mkdir()
    except OSError as exc:
        raise SlowDiskError(f"cannot make a blkio cgroup ({exc.strerror}); run as root") from exc
    try:
        try:
            device = device_of(path)
            for kind in ("read", "write"):
                (group / f"blkio.throttle.{kind}_iops_device").write_text(f"{device} {iops}\n")
        except OSError as exc:
            raise SlowDiskError(f"cannot cap the disk of {path} ({exc.strerror})") from exc
        yield group / "cgroup.procs"
    finally:
        for pid in (group / "cgroup.procs").read_text().split():  # leftovers go back to the root group
            (BLKIO / "cgroup.procs").write_text(pid)
        group.rmdir()


def join(tasks: Path) -> None:
    """Put the calling process into the cgroup whose tasks file is `tasks` (a preexec_fn)."""
    tasks.write_text(str(os.getpid()))
