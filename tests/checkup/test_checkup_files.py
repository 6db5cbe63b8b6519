"""The doctor's file checks on real files: a database that is current, old, newer, corrupt or missing;
a state file that reads, is garbage or cannot be written."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import db
from checkup.finding import FAIL, OK, WARN
from checkup.storage_checks import database_checks, schema, state_file


def statuses(findings: list) -> dict[str, tuple[str, str]]:
    return {finding.what: (finding.status, finding.why) for finding in findings}


def test_a_current_database_passes_every_check(tmp_path: Path) -> None:
    path = tmp_path / "stocks.db"
    db.connect(path).close()
    found = statuses(database_checks(path))
    assert found["database schema"] == (OK, f"version {db.SCHEMA_VERSION}, current")
    assert found["database integrity"] == (OK, "PRAGMA quick_check: ok")
    assert found["database write"] == (OK, f"{path} takes a write")
    assert found["DB_PATH"][0] == OK and found["DB_PATH"][1].startswith(f"{path} opens (")
    assert found["disk"][0] in (OK, WARN) and "free on the disk of" in found["disk"][1]


def test_an_older_schema_is_a_warning_a_newer_one_fails() -> None:
    assert schema(db.SCHEMA_VERSION - 1).status == WARN
    assert schema(db.SCHEMA_VERSION - 1).why == (f"version {db.SCHEMA_VERSION - 1}; consumer.py upgrades it to "
                                                 f"{db.SCHEMA_VERSION} on start")
    newer = schema(db.SCHEMA_VERSION + 1)
    assert newer.status == FAIL and "written by a later release; upgrade stockmon" in newer.why


def test_a_corrupt_database_fails_the_integrity_check(tmp_path: Path) -> None:
    path = tmp_path / "stocks.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE t (x TEXT)")
    connection.executemany("INSERT INTO t VALUES (?)", [("x" * 200,)] * 2000)
    connection.commit()
    connection.close()
    data = bytearray(path.read_bytes())
    page = 4096
    data[3 * page:3 * page + 200] = os.urandom(200)  # a leaf page of t's b-tree, header included
    path.write_bytes(bytes(data))
    found = statuses(database_checks(path))
    assert found["database integrity"][0] == FAIL
    assert "move the file away and let consumer.py start a new one" in found["database integrity"][1]


def test_a_file_that_is_not_a_database_fails(tmp_path: Path) -> None:
    path = tmp_path / "stocks.db"
    path.write_text("symbol,price\nIBM,100\n" * 100)
    [finding] = database_checks(path)
    assert (finding.status, finding.why) == (FAIL, f"{path} cannot be read as an SQLite database: "
                                                   "file is not a database")


def test_a_missing_database_is_a_warning_unless_its_folder_cannot_take_it(tmp_path: Path) -> None:
    found = statuses(database_checks(tmp_path / "stocks.db"))
    assert found["DB_PATH"] == (WARN, f"{tmp_path / 'stocks.db'} does not exist yet; consumer.py creates it on start")
    [finding] = database_checks(tmp_path / "no-such-folder" / "stocks.db")
    assert finding.status == FAIL and "cannot be created" in finding.why


def test_state_file_reads_counts_held_quotes_and_tolerates_garbage(tmp_path: Path) -> None:
    path = tmp_path / "producer_state.json"
    assert (state_file(path).status, state_file(path).why) == (OK, f"{path} does not exist yet (a first run)")
    path.write_text(json.dumps({"limiter": {}, "published": {}, "held": ["a", "b"]}))
    assert (state_file(path).status, state_file(path).why) == (OK, f"{path} reads, 2 quote(s) held for Kafka")
    path.write_text("{not json")
    finding = state_file(path)
    assert finding.status == WARN and finding.why.startswith(f"{path} is unreadable (")
    assert finding.why.endswith("the producer starts its call budget afresh")


def test_a_state_file_that_cannot_be_written_fails(tmp_path: Path) -> None:
    path = tmp_path / "producer_state.json"
    path.mkdir()
    finding = state_file(path)
    assert (finding.status, finding.why) == (FAIL, f"{path} is a directory; the producer needs a file there")
