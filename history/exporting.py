"""Quotes or bars of a time range, written to CSV or Parquet for pandas, Polars or DuckDB.

The rows are read in one read transaction (a consistent snapshot while the consumer writes) and
written a chunk at a time, so an export of millions of rows needs little memory. CSV keeps the
stored text (UTC ISO-8601 times); Parquet gets typed columns: times as UTC timestamps in
milliseconds, trading days as dates, prices as doubles, volumes as 64-bit integers.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

CHUNK_ROWS = 50_000


@dataclass(frozen=True)
class Kind:
    """What can be exported: a table, the column its range is on, and its columns with their types."""

    name: str
    table: str
    key: str  # the time (or trading day) column the range and order are on, after `symbol`
    columns: tuple[tuple[str, str], ...]  # (name, type): time, date, float, int or text

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]


BAR_COLUMNS = (("open", "float"), ("high", "float"), ("low", "float"), ("close", "float"), ("volume", "int"),
               ("day_volume", "int"), ("quotes", "int"), ("first_ts", "time"), ("last_ts", "time"))
KINDS = {
    "quotes": Kind("quotes", "stock_prices", "ts", (
        ("symbol", "text"), ("ts", "time"), ("price", "float"), ("open", "float"), ("high", "float"),
        ("low", "float"), ("volume", "int"), ("change", "float"), ("change_percent", "float"),
        ("trading_day", "date"), ("source", "text"), ("fetched_at", "time"), ("ingested_at", "time"),
        ("entitlement", "text"), ("previous_close", "float"), ("extended_hours_quote", "float"),
        ("extended_hours_change", "float"), ("extended_hours_change_percent", "float"))),
    "1m": Kind("1m", "bars_1m", "start", (("symbol", "text"), ("start", "time"), *BAR_COLUMNS)),
    "1d": Kind("1d", "bars_1d", "day", (("symbol", "text"), ("day", "date"), *BAR_COLUMNS,
                                        ("official_ts", "time"))),
}


@dataclass(frozen=True)
class Selection:
    """Rows of `kind` with key in [since, until) (stored-time text; daily bars compare their day with the
    dates of since and until), of `symbols` (empty: all)."""

    kind: Kind
    since: str
    until: str
    symbols: Sequence[str] = ()


def select(connection: sqlite3.Connection, selection: Selection) -> Iterator[list[tuple]]:
    """The selected rows in chunks, ordered by symbol and time (the tables' keys, so no sort)."""
    kind = selection.kind
    since, until = (selection.since[:10], selection.until[:10]) if kind.key == "day" else (selection.since,
                                                                                          selection.until)
    where = [f"{kind.key} >= ?", f"{kind.key} < ?"]
    parameters: list[Any] = [since, until]
    if selection.symbols:
        where.append(f"symbol IN ({', '.join('?' * len(selection.symbols))})")
        parameters += selection.symbols
    cursor = connection.execute(f"SELECT {', '.join(kind.names)} FROM {kind.table} WHERE {' AND '.join(where)} "
                                f"ORDER BY symbol, {kind.key}", parameters)
    while chunk := cursor.fetchmany(CHUNK_ROWS):
        yield chunk


def write_csv(chunks: Iterator[list[tuple]], kind: Kind, out: IO[str]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(kind.names)
    written = 0
    for chunk in chunks:
        writer.writerows(chunk)
        written += len(chunk)
    return written


def arrow_schema(kind: Kind) -> Any:
    import pyarrow as pa

    types = {"time": pa.timestamp("ms", tz="UTC"), "date": pa.date32(), "float": pa.float64(), "int": pa.int64(),
             "text": pa.string()}
    return pa.schema([(name, types[kind_of]) for name, kind_of in kind.columns])


def write_parquet(chunks: Iterator[list[tuple]], kind: Kind, path: str) -> int:
    """Typed columns; the stored times (UTC ISO-8601 text) are cast by Arrow, dates from 'YYYY-MM-DD'."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema(kind)
    written = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for chunk in chunks:
            columns = list(zip(*chunk, strict=True))
            arrays = [pa.array(column, type=pa.string()).cast(field.type) if kind_of in ("time", "date")
                      else pa.array(column, type=field.type)
                      for column, field, (_, kind_of) in zip(columns, schema, kind.columns, strict=True)]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            written += len(chunk)
        if not written:
            writer.write_table(schema.empty_table())
    return written
