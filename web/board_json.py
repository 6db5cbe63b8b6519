"""The board as the web page gets it: `monitor.py --json`'s figures, and beside each the text the
terminal board shows for it, made by the same functions (the page formats no number itself)."""

from __future__ import annotations

from typing import Any

from view.board import Board, SymbolLine, board_as_json
from view.board_text import alert_texts, symbol_texts


def shown_line(line: SymbolLine) -> dict[str, Any]:
    text = symbol_texts(line)
    return {**text, "change_percent": text["change_percent"] + text["reference_marker"],
            "volume": "" if line.volume is None else f"{line.volume:,}",
            "entitlement": line.entitlement or "end of day"}


def web_board(board: Board) -> dict[str, Any]:
    data = board_as_json(board)
    for entry, line in zip(data["symbols"], board.lines, strict=True):
        entry["shown"] = shown_line(line)
    for entry, alert in zip(data["alerts"], board.alerts, strict=True):
        entry["shown"] = alert_texts(alert)
    return data
