"""Export quotes or bars of a time range to CSV or Parquet, for pandas, Polars or DuckDB.

    python export.py quotes --since 2026-11-01 --until 2026-12-01 -o november.parquet
    python export.py 1d --symbols IBM,MSFT -o daily.csv
    python export.py 1m --since 5d -o - | head           # CSV on standard output

The range is [--since, --until): a date (UTC midnight), an ISO-8601 time with a zone, or for --since a
duration back from --until (30d, 12h). Daily bars are picked by their trading day's date. The file is
written next to its final name and renamed when complete, so a failed export leaves no half file.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import db
from common.cli import ExitCode, print_error, run_guarded
from common.durations import parse_duration
from common.timestamps import format_time, parse_moment
from config import ConfigError, Settings, parse_symbols, settings_from_args
from history.exporting import KINDS, Selection, select, write_csv, write_parquet
from history.series import ROW_NAMES
from history.state import pending_catch_up
from market.days import END_OF_TIME, START_OF_TIME
from view.queries import open_for_reading

log = logging.getLogger("export")
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


class ExportError(Exception):
    """One line for the user, and the exit code that goes with it."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="export", description=__doc__.split("\n\nThe range")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=KINDS, help="raw quotes, 1-minute bars or daily bars")
    parser.add_argument("-o", "--output", required=True, metavar="FILE",
                        help="where to write: FILE.csv, FILE.parquet, or - for CSV on standard output")
    parser.add_argument("--format", choices=("csv", "parquet"), help="the file's format (default: from its name)")
    parser.add_argument("--since", metavar="WHEN", help="from this time, or this long before --until (default: "
                                                        "the oldest row)")
    parser.add_argument("--until", metavar="WHEN", help="up to this time, not included (default: the newest row)")
    parser.add_argument("--symbols", metavar="LIST", help="only these symbols, comma-separated (default: all)")
    parser.add_argument("--db", dest="DB_PATH", metavar="PATH", help="SQLite database file (DB_PATH)")
    parser.add_argument("--log-level", dest="LOG_LEVEL", metavar="LEVEL", help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument("--env-file", metavar="PATH",
                        help="read settings from this file too (default .env, which may be missing; "
                             "a file named here must exist)")
    return parser


def parse_range(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[str, str]:
    """[since, until) as stored-time text; a bad value is parser.error (exit 2)."""
    until_moment: datetime | None = None
    since = START_OF_TIME
    try:
        if args.until:
            until_moment = parse_moment(args.until, "--until")
        if args.since:
            since = format_time(since_moment(args.since, until_moment or datetime.now(UTC)))
    except ValueError as exc:
        parser.error(str(exc))
    until = format_time(until_moment) if until_moment else END_OF_TIME
    if since >= until:
        parser.error("--since must be before --until")
    return since, until


def since_moment(text: str, until: datetime) -> datetime:
    """A duration back from `until` (30d), else a time or date; ValueError saying both forms."""
    try:
        return until - parse_duration(text)
    except ValueError:
        pass
    try:
        return parse_moment(text, "--since")
    except ValueError:
        raise ValueError(f"--since must be a duration such as 30d or an ISO-8601 time such as 2026-12-03T14:30:00Z, "
                         f"not {text.strip()[:40]!r}") from None


def output_format(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    if args.format:
        return args.format
    if args.output == "-":
        return "csv"
    found = FORMATS.get(Path(args.output).suffix.lower())
    if found is None:
        parser.error(f"cannot tell the format of {args.output!r} from its name: end it in .csv or .parquet, "
                     "or give --format")
    return found


def open_database(path: Path) -> sqlite3.Connection:
    """The database, read-only, if it has this release's tables; ExportError (exit 3) otherwise."""
    if not path.exists():
        raise ExportError(f"no database at {path}; start consumer.py to create it", ExitCode.STORAGE)
    try:
        connection = open_for_reading(path)
        version = connection.execute("PRAGMA user_version").fetchone()[0]
    except (db.DatabaseError, sqlite3.Error) as exc:
        raise ExportError(f"cannot read {path}: {exc}", ExitCode.STORAGE) from None
    if version != db.SCHEMA_VERSION:
        connection.close()
        older = "an older release; start consumer.py once to upgrade it" if version < db.SCHEMA_VERSION \
            else "a newer release of stockmon"
        raise ExportError(f"{path} is from {older} (schema {version}, this one reads {db.SCHEMA_VERSION})",
                          ExitCode.STORAGE)
    return connection


def export(settings: Settings, args: argparse.Namespace, selection: Selection, file_format: str) -> int:
    started = time.monotonic()
    connection = open_database(settings.db_path)
    with contextlib.closing(connection):
        if selection.kind.name != "quotes" and (pending := pending_catch_up(connection)):
            log.warning("the bars do not hold quotes %d to %d yet: the consumer is still rolling up the quotes "
                        "stored before the bars existed", *pending)
        connection.execute("BEGIN")  # one snapshot, however long the export takes
        chunks = select(connection, selection)
        if args.output == "-":
            try:
                written = write_csv(chunks, selection.kind, sys.stdout)
                sys.stdout.flush()
            except BrokenPipeError:  # `| head` has read what it wanted: stop quietly, as cat does
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                return ExitCode.OK
            target = "standard output"
        else:
            written = write_file(chunks, selection, file_format, Path(args.output))
            target = f"{args.output} ({os.path.getsize(args.output):,} bytes)"
    log.info("exported %d %s to %s in %.1f s", written, ROW_NAMES[selection.kind.name], target,
             time.monotonic() - started)
    return ExitCode.OK


def write_file(chunks, selection: Selection, file_format: str, path: Path) -> int:
    """Write next to `path` and rename when done; ExportError (exit 3) when the file cannot be written."""
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise ExportError(f"cannot write {str(path)!r}: {exc.strerror or exc}", ExitCode.STORAGE) from None
    try:
        if file_format == "csv":
            with os.fdopen(handle, "w", newline="", encoding="utf-8") as out:
                written = write_csv(chunks, selection.kind, out)
        else:
            os.close(handle)
            written = write_parquet(chunks, selection.kind, temporary)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise ExportError(f"cannot write {str(path)!r}: {exc.strerror or exc}", ExitCode.STORAGE) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return written


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    since, until = parse_range(parser, args)
    file_format = output_format(parser, args)
    symbols: tuple[str, ...] = ()
    if args.symbols:
        try:
            symbols = parse_symbols(args.symbols)
        except ConfigError as exc:
            parser.error(f"--symbols: {str(exc).split(': ', 1)[1]}")
    settings = settings_from_args("export", args)
    if settings is None:
        return ExitCode.BAD_CONFIG
    selection = Selection(KINDS[args.kind], since, until, symbols)

    def body() -> int:
        try:
            return export(settings, args, selection, file_format)
        except ExportError as exc:
            print_error("export", str(exc))
            return exc.code

    return run_guarded("export", settings.secrets, body)


if __name__ == "__main__":
    sys.exit(main())
