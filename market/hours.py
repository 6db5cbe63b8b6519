"""Polling hours (POLL_HOURS): when the producer may call Alpha Vantage, as windows of UTC time.

    market    the regular session of each trading day (holidays and early closes included)
    extended  04:00-20:00 New York on trading days (after an early close, until 4 h after it)
    always    around the clock (crypto, other markets, testing)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from market.calendar import MARKET_ZONE, Session, TradingCalendar

POLL_MODES = ("market", "extended", "always")
EXTENDED_OPEN, EXTENDED_CLOSE = time(4, 0), time(20, 0)
# NYSE Arca's after-hours session ends 4 h after the close: 20:00 normally, 17:00 after a 13:00 early close.
AFTER_HOURS = timedelta(hours=4)
FOREVER = datetime.max.replace(tzinfo=UTC)
# Far longer than the market has been shut since 2000 (after 9/11: from Monday 10 to Monday 17 September 2001).
LONGEST_CLOSURE = timedelta(days=14)
NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    """One stretch of polling time, [start, end) in UTC."""

    start: datetime
    end: datetime


class PollingHours:
    """The polling windows of one mode, and the arithmetic of polling time across them."""

    def __init__(self, mode: str, calendar: TradingCalendar | None = None) -> None:
        if mode not in POLL_MODES:
            raise ValueError(f"unknown polling hours {mode!r}")
        self.mode = mode
        self.calendar = calendar if calendar is not None or mode == "always" else TradingCalendar.nyse()

    def _window(self, session: Session) -> Window:
        if self.mode == "market":
            return Window(session.open, session.close)
        start = datetime.combine(session.day, EXTENDED_OPEN, MARKET_ZONE).astimezone(UTC)
        end = datetime.combine(session.day, EXTENDED_CLOSE, MARKET_ZONE).astimezone(UTC)
        return Window(start, min(end, session.close + AFTER_HOURS))

    def windows(self, start: datetime, end: datetime) -> list[Window]:
        """The windows that overlap [start, end), whole (not cut to it), in time order."""
        if self.calendar is None:
            return [Window(NEVER, FOREVER)]
        # Extended hours start 5.5 h before the open: look a day either side, then keep the overlapping ones.
        sessions = self.calendar.sessions_between(start - timedelta(days=1), end + timedelta(days=1))
        return [window for window in map(self._window, sessions) if window.end > start and window.start < end]

    def window_at(self, moment: datetime) -> Window | None:
        """The window open at `moment`, if any."""
        return next((window for window in self.windows(moment, moment + timedelta(microseconds=1))
                     if window.start <= moment), None)

    def next_opening(self, moment: datetime) -> datetime | None:
        """When the next window after `moment` opens; None for `always` and beyond the calendar."""
        if self.calendar is None:
            return None
        return next((window.start for window in self.windows(moment, moment + LONGEST_CLOSURE)
                     if window.start > moment), None)

    def last_closing(self, moment: datetime) -> datetime | None:
        """When the latest window that ended at or before `moment` closed; None for `always`."""
        if self.calendar is None:
            return None
        return max((window.end for window in self.windows(moment - LONGEST_CLOSURE, moment) if window.end <= moment),
                   default=None)

    def open_seconds(self, start: datetime, end: datetime) -> float:
        """Seconds of polling time within [start, end)."""
        if end <= start:
            return 0.0
        return sum((min(window.end, end) - max(window.start, start)).total_seconds()
                   for window in self.windows(start, end))

    def advance(self, start: datetime, seconds: float, limit: datetime) -> datetime | None:
        """The moment `seconds` of polling time after `start`, skipping closed time; None if that is past `limit`."""
        left = seconds
        for window in self.windows(start, limit):
            begin = max(window.start, start)
            span = (min(window.end, limit) - begin).total_seconds()
            if left <= span:
                return begin + timedelta(seconds=left)
            left -= span
        return None

    def live_edge(self, moment: datetime) -> datetime:
        """The newest moment data can be about: now while polling is open, else the last closing."""
        if self.window_at(moment) is not None:
            return moment
        return self.last_closing(moment) or moment
