"""Query parameters of the JSON API, validated like a settings file: a clear 400 for anything else."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from common.symbols import SYMBOL_PATTERN
from common.timestamps import parse_moment

MAX_POINTS = 5000
MAX_ALERTS = 500
RANGES = {"1d": timedelta(days=1), "5d": timedelta(days=5), "1m": timedelta(days=31), "1y": timedelta(days=366),
          "all": timedelta(days=366 * 100)}


class BadParameter(ValueError):
    """The text says which parameter and what it must be."""


def symbol(query: Mapping[str, str]) -> str:
    value = query.get("symbol", "").strip().upper()
    if not value:
        raise BadParameter("symbol is required, e.g. symbol=IBM")
    if not SYMBOL_PATTERN.fullmatch(value):
        raise BadParameter("symbol must be letters, digits, '.' and '-', at most 20")
    return value


def moment(query: Mapping[str, str], name: str, default: datetime) -> datetime:
    """ISO-8601 with a time zone (2026-12-03T14:30:00Z, 2026-12-03T09:30-05:00) or a date (UTC midnight)."""
    text = query.get(name)
    if text is None or not text.strip():
        return default
    try:
        return parse_moment(text, name)
    except ValueError as exc:
        raise BadParameter(str(exc)) from None


def count(query: Mapping[str, str], name: str, default: int, most: int) -> int:
    text = query.get(name)
    if text is None or not text.strip():
        return default
    if not text.strip().isdigit() or not 1 <= int(text.strip()) <= most:
        raise BadParameter(f"{name} must be a whole number from 1 to {most}")
    return int(text.strip())


@dataclass(frozen=True)
class Span:
    since: datetime
    until: datetime


def span(query: Mapping[str, str], now: datetime) -> Span:
    """since/until, or range=1d|5d|1m|1y|all back from until (default: until now, the last day)."""
    until = moment(query, "until", now)
    named = query.get("range")
    if named is not None and query.get("since"):
        raise BadParameter("give range or since, not both")
    if named is not None:
        if named not in RANGES:
            raise BadParameter(f"range must be one of {', '.join(RANGES)}")
        since = max(until - RANGES[named], datetime(1970, 1, 1, tzinfo=UTC))
    else:
        since = moment(query, "since", until - RANGES["1d"])
    if since >= until:
        raise BadParameter("since must be before until")
    return Span(since, until)
