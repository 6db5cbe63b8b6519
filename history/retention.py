"""How long each kind of row is kept (RETAIN_* settings), read into one frozen value.

Raw quotes age into 1-minute bars, those into daily bars; so each kind is kept at least as long as
the finer one before it, and raw quotes at least a day and as long as the longest alert window (the
alert engine replays that much after a restart).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from itertools import pairwise

from common.durations import format_duration
from common.setting_values import ConfigError

FOREVER = ("", "forever", "keep")
UNITS = {"h": 3600, "d": 86400, "w": 604800, "y": 365 * 86400}
RETENTION_PATTERN = re.compile(r"(\d+)([hdwy])")
SHORTEST = timedelta(days=1)


@dataclass(frozen=True)
class Retention:
    """None: kept forever (the default)."""

    quotes: timedelta | None = None
    minute_bars: timedelta | None = None
    daily_bars: timedelta | None = None
    alerts: timedelta | None = None

    def any(self) -> bool:
        return any(span is not None for span in (self.quotes, self.minute_bars, self.daily_bars, self.alerts))


def describe(span: timedelta | None) -> str:
    """A retention as the settings write it: `30d`, `1y`, `forever`."""
    if span is None:
        return "forever"
    seconds = span.total_seconds()
    if seconds % UNITS["y"] == 0:
        return f"{int(seconds // UNITS['y'])}y"
    return format_duration(span)


def parse_retention(name: str, text: str) -> timedelta | None:
    """`30d`, `12w`, `1y`, `36h` (at least a day) or forever/empty."""
    value = text.strip().lower()
    if value in FOREVER:
        return None
    match = RETENTION_PATTERN.fullmatch(value)
    if not match:
        raise ConfigError(name, f"{text.strip()!r} is not a retention: a whole number of h, d, w or y (e.g. 30d, "
                                "1y), or forever")
    span = timedelta(seconds=int(match[1]) * UNITS[match[2]])
    if span < SHORTEST:
        raise ConfigError(name, f"{value} is shorter than a day; the board and the alerts need today's quotes")
    return span


def _shorter(a: timedelta | None, b: timedelta | None) -> bool:
    """Whether a retention `a` is shorter than `b` (None: forever)."""
    if a is None:
        return False
    return b is None or a < b


def read_retention(values: dict[str, str], longest_alert_window: timedelta) -> Retention:
    """The RETAIN_* settings, checked against each other; ConfigError naming the one at fault."""
    retention = Retention(*(parse_retention(name, values[name]) for name in
                            ("RETAIN_QUOTES", "RETAIN_MINUTE_BARS", "RETAIN_DAILY_BARS", "RETAIN_ALERTS")))
    order = [("RETAIN_QUOTES", retention.quotes), ("RETAIN_MINUTE_BARS", retention.minute_bars),
             ("RETAIN_DAILY_BARS", retention.daily_bars)]
    for (finer, finer_span), (coarser, coarser_span) in pairwise(order):
        if _shorter(coarser_span, finer_span):
            raise ConfigError(coarser, f"{describe(coarser_span)} is shorter than {finer} ({describe(finer_span)}); "
                                       "coarser data must be kept at least as long")
    if retention.quotes is not None and retention.quotes < longest_alert_window:
        raise ConfigError("RETAIN_QUOTES", f"{describe(retention.quotes)} is shorter than the longest ALERT_RULES "
                                           f"window ({format_duration(longest_alert_window)})")
    return retention
