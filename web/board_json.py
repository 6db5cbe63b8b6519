"""The board as the web page gets it: `monitor.py --json`'s figures, and beside each the text the
terminal board shows for it, made by the same functions (the page formats no number itself)."""

from __future__ import annotations

from typing import Any

from common.durations import format_age
from streaming.messages import AlertRow
from view.board import PREVIOUS_CLOSE, Board, SymbolLine, board_as_json
from view.board_text import arrow, direction, format_price, sparkline


def shown_line(line: SymbolLine) -> dict[str, Any]:
    marker = "" if line.reference == PREVIOUS_CLOSE else "*"
    return {
        "price": format_price(line.price),
        "arrow": arrow(line.change),
        "direction": direction(line.change),
        "change": format_price(line.change, line.reference_price, signed=True),
        "change_percent": f"{line.change_percent:+.2f}%{marker}",
        "day_low": format_price(line.day_low),
        "day_high": format_price(line.day_high),
        "volume": "" if line.volume is None else f"{line.volume:,}",
        "trend": sparkline(line.recent),
        "age": format_age(line.age_seconds),
        "entitlement": line.entitlement or "end of day",
    }


def shown_alert(alert: AlertRow) -> dict[str, Any]:
    up = 1 if alert.direction == "up" else -1
    return {"move": f"{alert.symbol} {arrow(up)} {alert.move_percent:+.2f}%", "direction": direction(up),
            "prices": f"{format_price(alert.price)} from {format_price(alert.reference_price)}"}


def web_board(board: Board) -> dict[str, Any]:
    data = board_as_json(board)
    for entry, line in zip(data["symbols"], board.lines, strict=True):
        entry["shown"] = shown_line(line)
    for entry, alert in zip(data["alerts"], board.alerts, strict=True):
        entry["shown"] = shown_alert(alert)
    return data
