"""Charts readable at every scale: tick labels that read on their own, an axis spanning the period asked for."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from view.chart import ChartRequest, draw_chart, local_naive

START = datetime(2026, 11, 24, 14, 30, tzinfo=UTC)
# A label is a time, a time with seconds, a day, a month or a year: never a bare "30" or "24".
READABLE = re.compile(r"\d\d:\d\d|\d\d:\d\d:\d\d|[A-Z][a-z]{2} \d\d|[A-Z][a-z]{2}|\d{4}")


def history(span: timedelta, points: int) -> dict[str, list[tuple[str, float]]]:
    step = span / (points - 1)
    return {"IBM": [((START + step * index).isoformat(), 120 + index % 7) for index in range(points)]}


def tick_labels(since: datetime, until: datetime, data: dict[str, list[tuple[str, float]]]) -> tuple[list[str], object]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = draw_chart(ChartRequest(Path("unused.png"), 1200, 600, False, "IBM", since, until), data, [])
    FigureCanvasAgg(figure).draw()
    axes = figure.axes[0]
    return [label.get_text() for label in axes.get_xticklabels() if label.get_text()], axes


@pytest.mark.parametrize(("span", "since"), [
    (timedelta(minutes=3), timedelta(minutes=4)),    # a few minutes: once "23:44, 30, 23:45, 30"
    (timedelta(hours=5), timedelta(hours=6)),
    (timedelta(hours=20), timedelta(days=1)),
    (timedelta(days=6), timedelta(weeks=1)),
    (timedelta(days=85), timedelta(days=90)),        # months of daily closes
    (timedelta(days=700), timedelta(days=730)),
])
def test_tick_labels_read_naturally_from_minutes_to_years(span, since):
    until = START + span
    labels, axes = tick_labels(until - since, until, history(span, 200))
    assert len(labels) >= 3
    assert all(READABLE.fullmatch(label) for label in labels), labels
    assert axes.xaxis.get_major_formatter().get_offset() == ""  # no date left in a corner


def test_the_axis_spans_the_period_asked_for_not_just_the_quotes_in_it():
    until = START + timedelta(hours=6)
    since = until - timedelta(days=1)
    _, axes = tick_labels(since, until, history(timedelta(minutes=10), 11))  # ten minutes of quotes in a day
    left, right = axes.get_xlim()
    from matplotlib.dates import num2date

    assert num2date(left).replace(tzinfo=None) == local_naive(since)
    assert num2date(right).replace(tzinfo=None) == local_naive(until)
    assert axes.get_xlabel().endswith(f", {local_naive(since).date()} to {local_naive(until).date()}")
