"""export.py as a user runs it: quotes and bars of a range to CSV or Parquet, read back with pyarrow to
the same rows; every bad argument or unusable file is one line and its exit code."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

import db
from conftest import run_script, script_env
from history.exporting import KINDS
from reference_bars import make_pre_bars_database, quote

DAYS = ("2026-12-01", "2026-12-02", "2026-12-03")


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    """Three symbols, a quote every 30 s of three sessions, and a backfilled close for each day."""
    path = tmp_path_factory.mktemp("export") / "stocks.db"
    connection = db.connect(path)
    rows = []
    for day in DAYS:
        start = datetime.fromisoformat(f"{day}T14:30:00+00:00")
        for symbol, base in (("IBM", 230.0), ("MSFT", 480.0), ("TSLA", 350.0)):
            for step in range(780):
                moment = start + timedelta(seconds=30 * step)
                rows.append(quote(symbol, moment.strftime("%Y-%m-%dT%H:%M:%S.000Z"), base + (step % 41) / 8,
                                  volume=500 * (step + 1), trading_day=day))
            rows.append(quote(symbol, f"{day}T21:00:00.000Z", base + 1, "TIME_SERIES_DAILY", volume=390_000,
                              trading_day=day))
    db.save_batch(connection, rows, [])
    connection.close()
    return path


def export(database, *args):
    return run_script("export.py", *args, env=script_env(DB_PATH=str(database), LOG_LEVEL="INFO"))


def stored(database, kind: str, where: str = "1 = 1", parameters=()) -> list[tuple]:
    spec = KINDS[kind]
    connection = sqlite3.connect(database)
    rows = connection.execute(f"SELECT {', '.join(spec.names)} FROM {spec.table} WHERE {where} "
                              f"ORDER BY symbol, {spec.key}", parameters).fetchall()
    connection.close()
    return rows


def as_stored(table: pa.Table) -> list[tuple]:
    """A table read back, its typed columns turned into the stored text again."""
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        values = column.to_pylist()
        if pa.types.is_timestamp(field.type):
            values = [None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.") +
                      f"{value.microsecond // 1000:03d}Z" for value in values]
        elif pa.types.is_date(field.type):
            values = [None if value is None else value.isoformat() for value in values]
        columns.append(values)
    return list(zip(*columns, strict=True))


def test_quotes_of_a_range_to_parquet_read_back_to_the_same_rows(database, tmp_path):
    target = tmp_path / "december.parquet"
    result = export(database, "quotes", "--since", "2026-12-02", "--until", "2026-12-03", "-o", str(target))
    assert result.returncode == 0, result.stderr
    expected = stored(database, "quotes", "ts >= '2026-12-02' AND ts < '2026-12-03'")
    table = pq.read_table(target)
    assert table.num_rows == len(expected) == 3 * 781
    assert table.schema.field("ts").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("trading_day").type == pa.date32()
    assert table.schema.field("volume").type == pa.int64() and table.schema.field("price").type == pa.float64()
    assert as_stored(table) == expected
    assert f"exported {len(expected)} quote(s) to {target}" in result.stderr
    assert [name for name in os.listdir(tmp_path)] == ["december.parquet"]  # no temporary file left


def test_minute_bars_of_chosen_symbols_to_csv_read_back_to_the_same_rows(database, tmp_path):
    target = tmp_path / "minutes.csv"
    result = export(database, "1m", "--symbols", "tsla,ibm", "--since", "2026-12-03T15:00:00Z",
                    "--until", "2026-12-03T16:00:00-00:00", "-o", str(target))
    assert result.returncode == 0, result.stderr
    expected = stored(database, "1m", "symbol IN ('IBM', 'TSLA') AND start >= ? AND start < ?",
                      ("2026-12-03T15:00:00.000Z", "2026-12-03T16:00:00.000Z"))
    assert len(expected) == 2 * 60
    # Read as text, the stored form (pyarrow would otherwise guess the types).
    table = pa_csv.read_csv(target, convert_options=pa_csv.ConvertOptions(
        column_types={name: pa.string() for name in KINDS["1m"].names}, strings_can_be_null=True))
    assert table.column_names == KINDS["1m"].names
    assert [tuple(None if value is None else value for value in row) for row in zip(
        *[column.to_pylist() for column in table.columns], strict=True)] == [
        tuple(None if value is None else str(value) for value in row) for row in expected]


def test_daily_bars_take_the_official_close_and_a_duration_counts_back_from_until(database, tmp_path):
    target = tmp_path / "daily.parquet"
    result = export(database, "1d", "--since", "2d", "--until", "2026-12-04", "-o", str(target))
    assert result.returncode == 0, result.stderr
    table = pq.read_table(target)
    assert as_stored(table) == stored(database, "1d", "day >= '2026-12-02'")
    assert table.column("official_ts").to_pylist()[0] == datetime(2026, 12, 2, 21, 0, tzinfo=UTC)
    assert table.column("volume").to_pylist() == [390_000] * 6


def test_csv_on_standard_output_and_an_empty_range_is_an_empty_file(database, tmp_path):
    result = export(database, "1d", "--symbols", "IBM", "-o", "-")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == ",".join(KINDS["1d"].names) and len(lines) == 4
    empty = tmp_path / "none.parquet"
    assert export(database, "quotes", "--until", "2020-01-01", "-o", str(empty)).returncode == 0
    table = pq.read_table(empty)
    assert table.num_rows == 0 and table.column_names == KINDS["quotes"].names


@pytest.mark.parametrize(("args", "words"), [
    (["quotes", "--since", "yesterday", "-o", "x.csv"],
     "--since must be a duration such as 30d or an ISO-8601 time such as 2026-12-03T14:30:00Z, not 'yesterday'"),
    (["quotes", "--until", "2026-12-03T10:00:00", "-o", "x.csv"], "--until needs a time zone"),
    (["quotes", "--since", "2026-12-03", "--until", "2026-12-02", "-o", "x.csv"], "--since must be before --until"),
    (["quotes", "-o", "x.xlsx"], "cannot tell the format of 'x.xlsx' from its name"),
    (["quotes", "--symbols", "IBM,<b>", "-o", "x.csv"], "--symbols: '<b>' is not a valid symbol"),
    (["5m", "-o", "x.csv"], "invalid choice: '5m'"),
])
def test_a_bad_argument_is_one_line_and_exit_2(database, args, words):
    result = export(database, *args)
    assert result.returncode == 2 and words in result.stderr.splitlines()[-1], result.stderr


def test_an_unusable_file_is_one_line_and_exit_3(database, tmp_path):
    missing_dir = export(database, "quotes", "-o", str(tmp_path / "no" / "such" / "x.parquet"))
    assert missing_dir.returncode == 3
    assert missing_dir.stderr.strip() == (f"export: error: cannot write '{tmp_path / 'no' / 'such' / 'x.parquet'}': "
                                          "No such file or directory")
    no_database = run_script("export.py", "quotes", "-o", str(tmp_path / "x.csv"),
                             env=script_env(DB_PATH=str(tmp_path / "absent.db")))
    assert no_database.returncode == 3 and "no database at" in no_database.stderr
    old = tmp_path / "old.db"
    make_pre_bars_database(old, [quote("IBM", "2026-12-01T15:00:00.000Z", 100.0)])
    older = run_script("export.py", "1d", "-o", str(tmp_path / "x.csv"), env=script_env(DB_PATH=str(old)))
    assert older.returncode == 3
    assert "is from an older release; start consumer.py once to upgrade it (schema 4" in older.stderr
    assert not (tmp_path / "x.csv").exists()
