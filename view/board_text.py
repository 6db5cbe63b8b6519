"""The board as text: a table a trader reads at a glance, in colour on a terminal and plain elsewhere.

Lines are built as (text, style) segments so that colour never changes the layout: plain output is
the same characters without the escape codes, and cutting a line to the terminal's width counts
only what is visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from common.durations import format_age
from streaming.messages import AlertRow
from view.board import PREVIOUS_CLOSE, Board, SymbolLine

Segment = tuple[str, str]  # (text, SGR style: "" for none, "32" green, "1;33" bold yellow, ...)
Line = list[Segment]

SPARKS = "▁▂▃▄▅▆▇█"
UP, DOWN, SAME = "32", "31", "2"
STALE = "1;33"
HEADER = "1"
START_HINT = "Start the pipeline with ./scripts/run, or consumer.py and producer.py in two terminals."


def sparkline(prices: tuple[float, ...] | list[float]) -> str:
    """One block per price, its height the price's place between the lowest and the highest."""
    if not prices:
        return ""
    low, high = min(prices), max(prices)
    if high == low:
        return SPARKS[3] * len(prices)
    return "".join(SPARKS[round((price - low) / (high - low) * (len(SPARKS) - 1))] for price in prices)


def format_price(price: float, like: float | None = None, signed: bool = False) -> str:
    """Two decimals with thousands separators (as many as for `like`, when given); four for prices
    under 1 (penny stocks); with `signed`, a + or - always."""
    decimals = 2 if abs(like if like is not None else price) >= 1 else 4
    return f"{price + 0.0:{'+' if signed else ''},.{decimals}f}"  # + 0.0: no "-0.00" for a change of -0.0


def local_time(stored: str | datetime, pattern: str = "%Y-%m-%d %H:%M:%S %Z") -> str:
    """A stored UTC time in the user's local time zone (the system's, or TZ)."""
    moment = datetime.fromisoformat(stored) if isinstance(stored, str) else stored
    return moment.astimezone().strftime(pattern)


def direction(change: float) -> str:
    """up, down or same: what a change's colour and arrow say (the web page shows it the same way)."""
    return {UP: "up", DOWN: "down"}.get(_direction_style(change)[1], "same")


def arrow(change: float) -> str:
    return _direction_style(change)[0]


def _direction_style(change: float) -> tuple[str, str]:
    if change > 0:
        return "▲", UP
    if change < 0:
        return "▼", DOWN
    return "=", SAME


def board_lines(board: Board, hint: str = "", rows: Sequence[SymbolLine] | None = None, status: str = "",
                more: str = "") -> list[Line]:
    """Header, table and latest alerts, or a friendly line saying what to start when there is nothing.

    `rows`: the symbol lines to show (default all of them); `status` follows the market's state (which
    symbols, in what order); `more` is a line under the table (which rows of how many)."""
    rows = board.lines if rows is None else rows
    # What matters first: a long database path is what gets cut on a narrow terminal.
    title = f"stockmon  as of {local_time(board.as_of)}"
    lines: list[Line] = [[(title, HEADER), (f"  {hint}" if hint else "", SAME), (f"  {board.database}", "")]]
    # A line of its own: on an 80-column terminal the title line has no room left for it.
    state = "  ".join(part for part in (board.market.text() if board.market else "", status) if part)
    if state:
        lines.append([(state, "")])
    lines.append([])
    if not board.lines:
        return [*lines, [(f"No quotes in {board.database} yet.", "")], [(START_HINT, "")]]
    # Column widths from every symbol, not the page: paging does not shift the columns.
    width = max(6, *(len(line.symbol) for line in board.lines))
    spark_width = max(5, *(len(line.recent) for line in board.lines))
    lines.append([(f"{'SYMBOL':<{width}}  {'LAST':>11}   {'CHANGE':>9} {'CHG%':>8}  {'DAY LOW':>10} "
                   f"{'DAY HIGH':>10}  {'TREND':<{spark_width}}  {'AGE':>6}", HEADER)])
    for line in rows:
        lines.append(_symbol_row(line, width, spark_width))
    if not rows:
        lines.append([("  no symbol matches", SAME)])
    if more:
        lines.append([(more, SAME)])
    if any(line.reference != PREVIOUS_CLOSE for line in rows):
        lines.append([("* change against the first quote of the day (no previous close stored)", SAME)])
    lines += [[], [("Latest alerts", HEADER)]]
    if not board.alerts:
        lines.append([("  none yet (rules are set in ALERT_RULES)", SAME)])
    lines += [_alert_row(alert) for alert in board.alerts]
    return lines


def symbol_texts(line: SymbolLine) -> dict[str, str]:
    """Each of a symbol's figures as the board writes it (the web page shows these same texts)."""
    return {
        "price": format_price(line.price),
        "arrow": arrow(line.change),
        "direction": direction(line.change),
        "change": format_price(line.change, line.reference_price, signed=True),
        "change_percent": f"{line.change_percent:+.2f}%",
        "reference_marker": "" if line.reference == PREVIOUS_CLOSE else "*",  # the footnote's star
        "day_low": format_price(line.day_low),
        "day_high": format_price(line.day_high),
        "trend": sparkline(line.recent),
        "age": format_age(line.age_seconds),
    }


def alert_texts(alert: AlertRow) -> dict[str, str]:
    """An alert's move and prices as the board writes them."""
    up = 1 if alert.direction == "up" else -1
    return {"move": f"{alert.symbol} {arrow(up)} {alert.move_percent:+.2f}%", "direction": direction(up),
            "prices": f"{format_price(alert.price)} from {format_price(alert.reference_price)}"}


def _symbol_row(line: SymbolLine, width: int, spark_width: int) -> Line:
    style = _direction_style(line.change)[1]
    text = symbol_texts(line)
    return [
        (f"{line.symbol:<{width}}  ", HEADER),
        (f"{text['price']:>11} {text['arrow']}", style),
        (f" {text['change']:>9}", style),
        (f" {text['change_percent']:>8}{text['reference_marker'] or ' '}", style),
        (f" {text['day_low']:>10} {text['day_high']:>10}  ", ""),
        (f"{text['trend']:<{spark_width}}", style),
        (f"  {text['age']:>6}", STALE if line.stale else ""),
        (" stale", STALE) if line.stale else ("", ""),
    ]


def _alert_row(alert: AlertRow) -> Line:
    style = _direction_style(1 if alert.direction == "up" else -1)[1]
    text = alert_texts(alert)
    return [
        (f"  {local_time(alert.ts, '%m-%d %H:%M %Z')}  ", ""),
        (text["move"], style),
        (f"  {text['prices']}  ", ""),
        (f"[{alert.rule}]", SAME),
    ]


def message_lines(title: str, *text: str) -> list[Line]:
    """A screen that only says something (no database yet, say)."""
    return [[(title, HEADER)], []] + [[(line, "")] for line in text]


def fit(line: Line, width: int) -> Line:
    """The line cut to `width` visible characters."""
    kept: Line = []
    left = width
    for text, style in line:
        if left <= 0:
            break
        kept.append((text[:left], style))
        left -= len(text[:left])
    return kept


def as_plain(lines: list[Line]) -> str:
    return "".join("".join(text for text, _ in line).rstrip() + "\n" for line in lines)


def as_ansi(lines: list[Line]) -> str:
    def paint(text: str, style: str) -> str:
        return f"\x1b[{style}m{text}\x1b[0m" if style and text else text

    return "".join("".join(paint(text, style) for text, style in line) + "\n" for line in lines)
