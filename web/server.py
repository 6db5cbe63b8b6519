"""monitor.py --web: bind the address (loopback unless told otherwise, a token on any other), then serve."""

from __future__ import annotations

import argparse
import logging
import socket
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import uvicorn

from common.cli import ExitCode, print_error
from common.setting_values import ConfigError
from config import Settings
from market.calendar import TradingCalendar
from market.status import market_status
from service.address import ListenAddress, check_token, parse_listen_address
from view.board import Board, build_board
from view.queries import open_for_reading
from web.app import create_app
from web.board_json import web_board
from web.feed import BoardFeed

log = logging.getLogger("web")
DEFAULT_LISTEN = "127.0.0.1:8765"


def board_builder(settings: Settings, args: argparse.Namespace):
    """The board's JSON (`monitor.py --json`'s figures and their text), arranged by --sort and --filter."""

    def build(connection: sqlite3.Connection | None) -> dict[str, Any]:
        as_of = datetime.now(UTC)
        if connection is None:
            board = Board(as_of, str(settings.db_path), (), (), market_status(TradingCalendar.nyse(), as_of))
        else:
            board = build_board(connection, str(settings.db_path), as_of, args.stale_after, alert_count=args.alerts,
                                hours=args.hours)
        return web_board(replace(board, lines=tuple(args.view.arrange(board.lines))))

    return build


def bind(address: ListenAddress) -> socket.socket:
    """The listening socket, bound here so that a taken port is one clear line before anything starts."""
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address.host, address.port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError("--listen", f"cannot listen on {address.host_port()}: "
                                      f"{exc.strerror or type(exc).__name__}") from None
    sock.set_inheritable(True)
    return sock


def serve_web(settings: Settings, args: argparse.Namespace) -> int:
    try:
        address = parse_listen_address("--listen", args.listen)
        if address is None:
            raise ConfigError("--listen", "is empty; give host:port, e.g. 127.0.0.1:8765")
        token = check_token(address, settings.web_token, "--listen", "WEB_TOKEN")
        sock = bind(address)
    except ConfigError as exc:
        print_error("monitor", str(exc))
        return ExitCode.BAD_CONFIG
    feed = BoardFeed(settings.db_path, board_builder(settings, args), open_for_reading)
    app = create_app(feed, settings.db_path, token)
    port = sock.getsockname()[1]
    guarded = ", token required" if token else ""
    log.info("web page at %s/ (JSON at %s/api/board) for %s%s", address.url(port), address.url(port),
             settings.db_path, guarded)
    # log_config=None: uvicorn's lines go through the monitor's own logging (LOG_FORMAT, secrets masked).
    config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])
    return ExitCode.OK
