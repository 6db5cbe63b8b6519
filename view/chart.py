"""A PNG chart of price history: one line per symbol, alert points marked, times in local time.

matplotlib's object API (Figure, no pyplot) draws off-screen: no display or GUI toolkit needed,
and nothing global is changed for the rest of the process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from streaming.messages import AlertRow

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# matplotlib says at INFO when it builds its font cache (first run only): not news for our users.
logging.getLogger("matplotlib").setLevel(logging.WARNING)

DPI = 100
# Tick labels per level (years, months, days, hours, minutes, seconds) that read on their own: no bare
# "30" for half a minute, no date in a corner. The first tick of a larger unit says which it is.
TICK_FORMATS = ["%Y", "%b", "%b %d", "%H:%M", "%H:%M", "%H:%M:%S"]
ZERO_FORMATS = ["", "%Y", "%b", "%b %d", "%H:%M", "%H:%M"]


@dataclass(frozen=True)
class ChartRequest:
    path: Path
    width: int
    height: int
    relative: bool  # % change since each symbol's first quote, for symbols of very different prices
    title: str
    since: datetime  # the period asked for: the axis spans it, whatever part of it has quotes
    until: datetime


def local_naive(stored: str | datetime) -> datetime:
    """A stored UTC time as local wall-clock time; converted one by one, so DST changes are right."""
    moment = datetime.fromisoformat(stored) if isinstance(stored, str) else stored
    return moment.astimezone().replace(tzinfo=None)


def zone_names(stamps: list[str]) -> str:
    names = sorted({datetime.fromisoformat(ts).astimezone().strftime("%Z") for ts in stamps})
    return "/".join(names)


def write_chart(request: ChartRequest, history: dict[str, list[tuple[str, float]]],
                alerts: list[AlertRow]) -> None:
    """Draw and save the chart; OSError when the file cannot be written."""
    draw_chart(request, history, alerts).savefig(request.path, format="png", dpi=DPI)


def period_label(since: datetime, until: datetime) -> str:
    """The days the axis covers, in local time: '2026-11-24' or '2026-11-23 to 2026-11-24'."""
    first, last = local_naive(since).date(), local_naive(until).date()
    return first.isoformat() if first == last else f"{first.isoformat()} to {last.isoformat()}"


def draw_chart(request: ChartRequest, history: dict[str, list[tuple[str, float]]],
               alerts: list[AlertRow]) -> Figure:
    """The chart as a matplotlib Figure, not yet saved."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    figure = Figure(figsize=(request.width / DPI, request.height / DPI), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    stamps: list[str] = []
    for symbol, points in history.items():
        base = points[0][1]

        def value(price: float, base: float = base) -> float:
            return (price / base - 1) * 100 if request.relative else price

        times = [local_naive(ts) for ts, _ in points]
        (line,) = axes.plot(times, [value(price) for _, price in points], label=symbol, linewidth=1.4,
                            marker="o" if len(points) == 1 else None)
        stamps += [ts for ts, _ in points]
        mine = [alert for alert in alerts if alert.symbol == symbol]
        for direction, marker in (("up", "^"), ("down", "v")):
            marked = [alert for alert in mine if alert.direction == direction]
            if marked:
                axes.scatter([local_naive(alert.ts) for alert in marked], [value(alert.price) for alert in marked],
                             marker=marker, s=90, color=line.get_color(), edgecolors="black", linewidths=0.8,
                             zorder=3, label=f"{symbol} alert ({direction})")
        labels: dict[tuple[str, str, float], list[str]] = {}  # one label per point, however many rules
        for alert in mine:
            labels.setdefault((alert.ts, alert.direction, alert.price), []).append(alert.rule)
        for (ts, direction, price), rules in labels.items():
            axes.annotate(", ".join(rules), (local_naive(ts), value(price)), textcoords="offset points",
                          xytext=(0, 10 if direction == "up" else -16), ha="center", fontsize=8)
    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator, formats=TICK_FORMATS, zero_formats=ZERO_FORMATS,
                                                        show_offset=False))
    axes.set_xlabel(f"local time ({zone_names(stamps)}), {period_label(request.since, request.until)}")
    axes.set_ylabel("% change since the first quote shown" if request.relative else "price")
    axes.margins(y=0.15)  # room for the alert labels above and below the lines
    axes.set_xlim(local_naive(request.since), local_naive(request.until))
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    axes.set_title(request.title)
    return figure
