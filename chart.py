"""A PNG chart of price history: one line per symbol, alert points marked, times in local time.

matplotlib's object API (Figure, no pyplot) draws off-screen: no display or GUI toolkit needed,
and nothing global is changed for the rest of the process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from messages import AlertRow

# matplotlib says at INFO when it builds its font cache (first run only): not news for our users.
logging.getLogger("matplotlib").setLevel(logging.WARNING)

DPI = 100


@dataclass(frozen=True)
class ChartRequest:
    path: Path
    width: int
    height: int
    relative: bool  # % change since each symbol's first quote, for symbols of very different prices
    title: str


def local_naive(stored: str) -> datetime:
    """A stored UTC time as local wall-clock time; converted one by one, so DST changes are right."""
    return datetime.fromisoformat(stored).astimezone().replace(tzinfo=None)


def zone_names(stamps: list[str]) -> str:
    names = sorted({datetime.fromisoformat(ts).astimezone().strftime("%Z") for ts in stamps})
    return "/".join(names)


def write_chart(request: ChartRequest, history: dict[str, list[tuple[str, float]]],
                alerts: list[AlertRow]) -> None:
    """Draw and save the chart; OSError when the file cannot be written."""
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
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes.set_xlabel(f"local time ({zone_names(stamps)})")
    axes.set_ylabel("% change since the first quote shown" if request.relative else "price")
    axes.margins(x=0.04, y=0.15)  # room for the alert labels above and below the lines
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    axes.set_title(request.title)
    figure.savefig(request.path, format="png", dpi=DPI)
