"""The stored-time form of every timestamp: UTC ISO-8601 with milliseconds and Z, so text order is time order."""

from __future__ import annotations

import re
from datetime import UTC, datetime

# What format_time writes; a time already in this form is stored as it is (no re-formatting).
CANONICAL_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def format_time(moment: datetime) -> str:
    """UTC ISO-8601 with milliseconds and Z; the year always has four digits, so text order is time order.

    Raises OverflowError when the UTC time falls outside years 1-9999.
    """
    utc = moment.astimezone(UTC)
    return (f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}."
            f"{utc.microsecond // 1000:03d}Z")


def parse_moment(text: str, name: str) -> datetime:
    """ISO-8601 with a time zone (2026-12-03T14:30:00Z, 2026-12-03T09:30-05:00) or a date (UTC midnight);
    ValueError naming `name` otherwise."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise ValueError(f"{name} must be an ISO-8601 time such as 2026-12-03T14:30:00Z") from None
    if parsed.tzinfo is None:
        if len(text.strip()) > 10:
            raise ValueError(f"{name} needs a time zone (Z or +HH:MM): {text.strip()[:40]!r}")
        parsed = parsed.replace(tzinfo=UTC)
    try:
        format_time(parsed)
    except OverflowError:
        raise ValueError(f"{name} is out of range") from None
    return parsed
