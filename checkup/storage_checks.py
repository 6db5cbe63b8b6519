"""Doctor checks of the files: the database (opens, schema, integrity, what it holds, takes a write, disk
space) and the producer's state file."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import db
from alerts.routes import Routes
from checkup.backlog_checks import backlog_checks
from checkup.finding import Finding, fail, ok, warn
from checkup.history_checks import history_checks
from history.retention import Retention
from ingest.readiness import database_writable
from notify.channels import Channel
from polling.readiness import writable_file

# At premium rates the database grows by about 0.5 GB a trading day: below 1 GiB free it fills within days.
LOW_DISK_BYTES = 1 << 30
KEEP_EVERYTHING = Retention()


def database_checks(path: Path, retention: Retention = KEEP_EVERYTHING, now: datetime | None = None,
                    channels: tuple[Channel, ...] = (), routes: Routes | None = None) -> list[Finding]:
    """The file's checks, then (at the current schema) what it holds, when the consumer next purges and
    what each notification channel has still to get."""
    if not path.exists():
        creatable = writable_file(path)
        if not creatable.ok:
            return [fail("DB_PATH", creatable.text)]
        return [warn("DB_PATH", f"{path} does not exist yet; consumer.py creates it on start"), free_disk(path)]
    if path.is_dir():
        return [fail("DB_PATH", f"{path} is a directory, not a database file")]
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
    except sqlite3.Error as exc:
        return [fail("DB_PATH", f"{path} cannot be opened: {exc}")]
    try:
        try:
            version = connection.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            return [fail("DB_PATH", f"{path} cannot be read as an SQLite database: {exc}")]
        findings = [ok("DB_PATH", f"{path} opens ({file_size(path.stat().st_size)})"), schema(version),
                    integrity(connection)]
        if version == db.SCHEMA_VERSION:
            now = now or datetime.now(UTC)
            findings += history_checks(connection, retention, now)
            findings += backlog_checks(connection, channels, routes or Routes(), now)
    finally:
        connection.close()
    writable = database_writable(path)
    findings.append(ok("database write", writable.text) if writable.ok else fail("database write", writable.text))
    findings.append(free_disk(path))
    return findings


def file_size(size: int) -> str:
    return f"{size / 1e3:.0f} kB" if size < 1e6 else f"{size / 1e6:.1f} MB" if size < 1e9 else f"{size / 1e9:.2f} GB"


def integrity(connection: sqlite3.Connection) -> Finding:
    """PRAGMA quick_check: the pages and records are sound (not the indexes' agreement, which is slow to check)."""
    try:
        problems = [row[0] for row in connection.execute("PRAGMA quick_check")]
    except sqlite3.Error as exc:
        problems = [str(exc)]
    if problems == ["ok"]:
        return ok("database integrity", "PRAGMA quick_check: ok")
    return fail("database integrity", f"PRAGMA quick_check: {'; '.join(problems[:3])}; restore a copy, or move the "
                                      "file away and let consumer.py start a new one")


def schema(version: int) -> Finding:
    if version == db.SCHEMA_VERSION:
        return ok("database schema", f"version {version}, current")
    if version > db.SCHEMA_VERSION:
        return fail("database schema", f"version {version} is newer than this stockmon's {db.SCHEMA_VERSION}: "
                                       "it was written by a later release; upgrade stockmon")
    return warn("database schema", f"version {version}; consumer.py upgrades it to {db.SCHEMA_VERSION} on start")


def free_disk(path: Path) -> Finding:
    folder = path.parent if str(path.parent) else Path(".")
    free = shutil.disk_usage(folder).free
    text = f"{free / 1e9:.1f} GB free on the disk of {folder}"
    return ok("disk", text) if free >= LOW_DISK_BYTES else warn("disk", f"only {text}")


def state_file(path: Path) -> Finding:
    """Reads as the producer's JSON state (a part it cannot use is dropped on start, with a warning)."""
    what = "PRODUCER_STATE_PATH"
    if not path.exists():
        creatable = writable_file(path)
        return ok(what, f"{path} does not exist yet (a first run)") if creatable.ok else fail(what, creatable.text)
    if path.is_dir():
        return fail(what, f"{path} is a directory; the producer needs a file there")
    try:
        state = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return warn(what, f"{path} is unreadable ({reason}); the producer starts its call budget afresh")
    if not isinstance(state, dict):
        return warn(what, f"{path} is not a JSON object; the producer starts its call budget afresh")
    writable = writable_file(path)
    if not writable.ok:
        return fail(what, writable.text)
    held = state.get("held")
    held_text = f", {len(held)} quote(s) held for Kafka" if isinstance(held, list) and held else ""
    return ok(what, f"{path} reads{held_text}")
