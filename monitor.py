"""Watch the market move: a live table from the database the consumer writes, and charts.

    python monitor.py                          # live table, refreshed every 2 s; q or Ctrl-C quits
    python monitor.py --once                   # print the table once (plain text into a pipe)
    python monitor.py --json                   # the same figures as JSON, for scripts
    python monitor.py --sort change --filter 'A*'   # biggest gainers first, symbols starting with A
    python monitor.py --chart prices.png --since 1d --symbols IBM,MSFT
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import db
from common.cli import ExitCode, print_error, run_guarded
from common.durations import parse_duration
from common.timestamps import format_time
from config import ConfigError, Settings, parse_symbols, settings_epilog, settings_from_args
from history.series import ROW_NAMES, Series
from market.calendar import TradingCalendar
from market.hours import PollingHours
from market.status import market_status
from view.board import Board, board_as_json, build_board
from view.board_text import START_HINT, Line, as_ansi, as_plain, board_lines, local_time, message_lines
from view.queries import alerts_between, closes, has_table, open_for_reading, price_history, symbols_until
from view.selection import KEYS_HINT, SORTS, View, split_keys

log = logging.getLogger("monitor")


def parse_moment(text: str) -> datetime:
    """ISO-8601; without an offset it is local time."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time (ISO-8601, e.g. 2026-11-24T16:00)") from None
    return moment.astimezone(UTC)


def parse_span(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()) or not (200 <= int(width) <= 8000 and 150 <= int(height) <= 8000):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size in pixels from 200x150 to 8000x8000 (e.g. 1200x600)")
    return int(width), int(height)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitor", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Watch prices move: a live table from the database consumer.py writes, or a chart.",
        epilog=settings_epilog())
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="print the table once and exit")
    mode.add_argument("--json", action="store_true", help="print the table's figures as JSON and exit")
    mode.add_argument("--chart", type=Path, metavar="FILE.png", help="write a PNG chart of the price history")
    mode.add_argument("--web", action="store_true",
                      help="serve the board over HTTP: a JSON API and a live stream of boards (docs/monitor.md)")
    parser.add_argument("--listen", default="127.0.0.1:8765", metavar="HOST:PORT",
                        help="with --web: where to listen (default 127.0.0.1:8765; any other address needs "
                             "WEB_TOKEN)")
    parser.add_argument("--db", dest="DB_PATH", metavar="PATH", help="SQLite database file (DB_PATH)")
    parser.add_argument("--interval", type=float, default=2.0, metavar="SECONDS",
                        help="seconds between refreshes of the live table (default 2)")
    parser.add_argument("--stale-after", type=parse_span, default=timedelta(minutes=15), metavar="DURATION",
                        help="mark a quote older than this as stale (default 15m)")
    parser.add_argument("--alerts", type=int, default=5, metavar="N", help="latest alerts shown (default 5)")
    parser.add_argument("--at", type=parse_moment, metavar="TIME",
                        help="show the board as it was at TIME (ISO-8601, local time unless it has an offset)")
    parser.add_argument("--symbols", metavar="LIST", help="symbols to show or chart, comma-separated (default: all)")
    table = parser.add_argument_group("table (live: s sorts, r reverses, / filters, arrows and PgUp/PgDn page)")
    table.add_argument("--sort", choices=SORTS, default="symbol",
                       help="order of the table: symbol (A-Z), change (biggest %% gain first) or age (oldest first)")
    table.add_argument("--reverse", action="store_true", help="the other way round")
    table.add_argument("--filter", default="", metavar="PATTERN",
                       help="only symbols containing PATTERN (any case), or matching it when it has * ? or [")
    chart = parser.add_argument_group("chart")
    chart.add_argument("--since", type=parse_span, default=timedelta(days=1), metavar="DURATION",
                       help="period to chart, back from now or --at: 90m, 6h, 1d, 2w (default 1d)")
    chart.add_argument("--size", type=parse_size, default=(1200, 600), metavar="WxH",
                       help="image size in pixels (default 1200x600)")
    chart.add_argument("--relative", action="store_true",
                       help="plot the %% change since each symbol's first quote instead of the price")
    parser.add_argument("--log-level", dest="LOG_LEVEL", metavar="LEVEL", help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument("--env-file", metavar="PATH",
                        help="read settings from this file too (default .env, which may be missing; "
                             "a file named here must exist)")
    return parser


def no_database_lines(path: Path) -> list[Line]:
    return message_lines("stockmon", f"No database at {path} yet.", START_HINT)


def read_board(path: Path, args: argparse.Namespace) -> Board | None:
    """The board now (or at --at); None when the database does not exist yet."""
    if not path.exists():
        return None
    connection = open_for_reading(path)
    try:
        as_of = args.at or datetime.now(UTC)
        return build_board(connection, str(path), as_of, args.stale_after, alert_count=args.alerts, hours=args.hours)
    except sqlite3.Error as exc:
        raise db.DatabaseError(f"cannot read database {str(path)!r}: {exc}") from None
    finally:
        connection.close()


def print_once(path: Path, args: argparse.Namespace) -> int:
    board = read_board(path, args)
    view = args.view
    if args.json:
        as_of = args.at or datetime.now(UTC)
        board = board or Board(as_of, str(path), (), (), market_status(TradingCalendar.nyse(), as_of))
        print(json.dumps(board_as_json(replace(board, lines=tuple(view.arrange(board.lines)))), indent=2))
        if not board.lines:
            print(f"monitor: no quotes in {path} yet. {START_HINT}", file=sys.stderr)
        return ExitCode.OK
    if board:
        rows = view.arrange(board.lines)
        # Say what the table holds when a flag chose it; the plain table stays as it always was.
        status = view.describe(len(rows), len(board.lines)) if view != View() else ""
        lines = board_lines(board, rows=rows, status=status)
    else:
        lines = no_database_lines(path)
    sys.stdout.write(as_ansi(lines) if sys.stdout.isatty() else as_plain(lines))
    return ExitCode.OK


def watch_live(path: Path, args: argparse.Namespace) -> int:
    """Redraw until q, Ctrl-C or SIGTERM. A database that is missing or briefly unreadable is shown,
    not fatal: the consumer may be starting."""
    from view.terminal import LiveScreen

    hint = f"every {args.interval:g}s, q quits, {KEYS_HINT}"
    view, page_rows = args.view, 1
    try:
        with LiveScreen() as screen:
            while True:
                try:
                    board = read_board(path, args)
                    if board:
                        view, page_rows, lines = live_lines(board, view, hint, screen.rows)
                    else:
                        lines = no_database_lines(path)
                except db.DatabaseError as exc:
                    lines = message_lines(f"stockmon  {local_time(datetime.now(UTC))}", str(exc),
                                          "Retrying at the next refresh.")
                screen.draw(lines)
                typed = screen.wait(args.interval)
                if typed == b"":  # the terminal was closed
                    return ExitCode.OK
                for key in split_keys(typed or b""):
                    if key in ("q", "Q") and view.typing is None:
                        return ExitCode.OK
                    view = view.on_key(key, page_rows)
    except KeyboardInterrupt:
        return ExitCode.OK


def live_lines(board: Board, view: View, hint: str, screen_rows: int) -> tuple[View, int, list[Line]]:
    """The screen for `view`: as many symbol rows as the terminal has room for after the rest of the board
    (one line kept for its last, cut line); returns the view with its offset kept in range and the page's rows."""
    arranged = view.arrange(board.lines)
    status = view.describe(len(arranged), len(board.lines))
    # The board without symbol rows, with a "rows ... of ..." line, and its "no symbol matches" line
    # standing in for the footnote a page may need.
    around = len(board_lines(board, hint, rows=[], status=status, more="-"))
    page_rows = max(1, screen_rows - 1 - around)
    view, rows = view.page(arranged, page_rows)
    more = ""
    if len(arranged) > page_rows:
        more = (f"rows {view.offset + 1}-{view.offset + len(rows)} of {len(arranged)}: "
                "↑↓ or j/k, PgUp/PgDn or b/space, g/G ends")
    return view, page_rows, board_lines(board, hint, rows=rows, status=status, more=more)


def point_counts(series: dict[str, Series]) -> str:
    """'6 quote(s)', or '1,950 1-minute bar(s), 5 daily bar(s)' when a long span read bars."""
    counts = {source: sum(len(found.points) for found in series.values() if found.source == source)
              for source in ROW_NAMES}
    return ", ".join(f"{count:,} {ROW_NAMES[source]}" for source, count in counts.items() if count)


def chart_history(path: Path, args: argparse.Namespace) -> int:
    """Write the --chart PNG; exit 1 with one line when there is nothing to draw."""
    from view.chart import ChartRequest, write_chart

    until = args.at or datetime.now(UTC)
    since = until - args.since
    if not path.exists():
        print_error("monitor", f"no database at {path} yet. {START_HINT}")
        return ExitCode.FAILURE
    connection = open_for_reading(path)
    try:
        wanted = list(parse_symbols(args.symbols)) if args.symbols else None
        series: dict[str, Series] = {}
        alerts = []
        if has_table(connection, "stock_prices"):  # else: a database the consumer has not set up yet
            symbols = wanted or symbols_until(connection, format_time(until))
            series = price_history(connection, symbols, format_time(since), format_time(until))
            alerts = alerts_between(connection, list(series), format_time(since), format_time(until))
    finally:
        connection.close()
    history = closes(series)
    period = f"{local_time(since, '%Y-%m-%d %H:%M')} to {local_time(until, '%Y-%m-%d %H:%M %Z')}"
    if not history:
        which = ", ".join(wanted) if wanted else "any symbol"
        print_error("monitor", f"no quotes for {which} from {period}; try a longer --since")
        return ExitCode.FAILURE
    for symbol in wanted or ():
        if symbol not in history:
            log.warning("no quotes for %s from %s; it is left out", symbol, period)
    request = ChartRequest(args.chart, *args.size, args.relative, f"{', '.join(history)}: {period}", since, until)
    try:
        write_chart(request, history, alerts)
    except OSError as exc:
        print_error("monitor", f"cannot write {str(args.chart)!r}: {exc.strerror or exc}")
        return ExitCode.FAILURE
    log.info("wrote %s (%dx%d): %s of %s, %d alert(s), %s", args.chart, *args.size, point_counts(series),
             ", ".join(history), len(alerts), period)
    return ExitCode.OK


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        if args.chart:
            return chart_history(settings.db_path, args)
        if args.web:
            from web.server import serve_web  # the web stack loads only for --web

            return serve_web(settings, args)
        if args.once or args.json or not sys.stdout.isatty():
            return print_once(settings.db_path, args)
        return watch_live(settings.db_path, args)
    except db.DatabaseError as exc:
        print_error("monitor", str(exc))
        return ExitCode.STORAGE
    except sqlite3.Error as exc:  # whichever reader met it: the same line and status everywhere
        print_error("monitor", f"cannot read database {str(settings.db_path)!r}: {exc}")
        return ExitCode.STORAGE


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error("--interval must be a positive number of seconds")
    if args.alerts < 0:
        parser.error("--alerts must be 0 or more")
    settings = settings_from_args("monitor", args)
    if settings is None:
        return ExitCode.BAD_CONFIG
    args.hours = PollingHours(settings.poll_hours)
    symbols = None
    if args.symbols:
        try:
            symbols = parse_symbols(args.symbols)
        except ConfigError as exc:
            print_error("monitor", f"--symbols: {str(exc).split(': ', 1)[1]}")
            return ExitCode.BAD_CONFIG
    args.view = View.from_flags(args.sort, args.reverse, args.filter.strip(), symbols)
    return run_guarded("monitor", settings.secrets, lambda: run(settings, args))


if __name__ == "__main__":
    sys.exit(main())
