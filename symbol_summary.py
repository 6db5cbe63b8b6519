"""Each symbol's board line in one row, kept up to date as quotes are stored, so that the monitor reads
one row per symbol however many quotes the database holds.

The summary holds what the board shows of a symbol as of its newest quote: that quote, its trading
day's first quote, high and low, and the last price before that day began (the previous close when
the quote carries no change of its own). `fold` brings it up to date with newly stored quotes of the
symbol, in any order (late quotes included); when the newest quote starts another trading day it
answers None and the summary is recomputed from the quotes table by indexed queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from market.days import quote_day
from messages import QuoteRow


class SymbolSummary(NamedTuple):
    """A symbol's board line as of its newest quote (in the column order of the symbol_summary table)."""

    symbol: str
    earliest_ts: str  # the symbol's first quote: the board as of an earlier moment leaves it out
    ts: str  # the newest quote
    price: float
    change: float | None
    trading_day: str | None
    day: str  # the newest quote's trading day (market.days.quote_day)
    day_start: str
    first_ts: str  # the day's first quote
    first_price: float
    day_high: float
    day_low: float
    close_ts: str | None  # the last quote before the day began, if any
    close_price: float | None


def fold(summary: SymbolSummary, rows: Sequence[QuoteRow]) -> SymbolSummary | None:
    """The summary with `rows` (newly stored quotes of its symbol) taken in; None when the newest of them
    belongs to another trading day, whose quotes may already be stored: recompute from the table."""
    newest = max(rows, key=lambda row: row.ts)
    if newest.ts > summary.ts:
        if quote_day(newest.ts, newest.trading_day).day != summary.day:
            return None
        summary = summary._replace(ts=newest.ts, price=newest.price, change=newest.change,
                                   trading_day=newest.trading_day)
    earliest, first_ts, first_price = summary.earliest_ts, summary.first_ts, summary.first_price
    high, low, close_ts, close_price = summary.day_high, summary.day_low, summary.close_ts, summary.close_price
    for row in rows:
        earliest = min(earliest, row.ts)
        if row.ts < summary.day_start:  # before the day: a candidate for the previous close
            if close_ts is None or row.ts > close_ts:
                close_ts, close_price = row.ts, row.price
        elif quote_day(row.ts, row.trading_day).day == summary.day:
            high, low = max(high, row.high), min(low, row.low)
            if row.ts < first_ts:
                first_ts, first_price = row.ts, row.price
    return summary._replace(earliest_ts=earliest, first_ts=first_ts, first_price=first_price, day_high=high,
                            day_low=low, close_ts=close_ts, close_price=close_price)
