"""Short durations both ways: `15m`, `1h`, `2d` in alert rules and --since, and ages on screen."""

from __future__ import annotations

import re
from datetime import timedelta

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION_PATTERN = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `1h`, `1.5h`, `2d`, `1w` -> timedelta; ValueError with the reason otherwise."""
    match = DURATION_PATTERN.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text.strip()!r} is not a duration (a number and s, m, h, d or w, e.g. 15m)")
    seconds = float(match[1]) * UNITS[match[2]]
    if seconds <= 0:
        raise ValueError(f"{text.strip()!r} is not a positive duration")
    return timedelta(seconds=seconds)


def format_seconds(seconds: float) -> str:
    """A span in words for log lines: 0.8 -> '0.8 s', 975 -> '16.2 min', 23400 -> '6.5 h'."""
    if seconds >= 5400:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 90:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.3g} s"


def format_duration(span: timedelta) -> str:
    """The compact form parse_duration reads, in the largest whole unit (`15m`, `1h`, `90s`)."""
    seconds = span.total_seconds()
    for unit in ("w", "d", "h", "m"):
        if seconds >= UNITS[unit] and seconds % UNITS[unit] == 0:
            return f"{int(seconds // UNITS[unit])}{unit}"
    return f"{seconds:g}s"


def format_age(seconds: float) -> str:
    """How old something is, in one short token: `8s`, `4m`, `2h05m`, `3d`."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours}h{minutes:02d}m"
    return f"{seconds // 86400}d"
