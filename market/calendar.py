"""NYSE trading sessions, with their holidays and early closes, as plain UTC datetimes.

The sessions come from exchange_calendars (its XNYS calendar is maintained against the exchange's
own holiday and early-close announcements), read once into a sorted list so that every question
after that is a bisection: no pandas in the poll loop or the monitor's refresh.
"""

from __future__ import annotations

import bisect
import functools
import importlib.metadata
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

MARKET_ZONE = ZoneInfo("America/New_York")
# Days outside the calendar's range (before FIRST_DAY, or years ahead) get the usual hours.
REGULAR_OPEN, REGULAR_CLOSE = time(9, 30), time(16, 0)
FIRST_DAY = date(2000, 1, 1)
YEARS_AHEAD = 2
# Beside the Kafka jars the scripts cache (git ignores it).
CACHE_DIR = Path(__file__).resolve().parent.parent / ".cache" / "calendar"


@dataclass(frozen=True)
class Session:
    """One trading day: its date in New York and when it opens and closes, in UTC."""

    day: date
    open: datetime
    close: datetime


def regular_session(day: date) -> Session:
    """The usual 09:30-16:00 New York session of `day`, whatever the calendar says."""
    return Session(day, datetime.combine(day, REGULAR_OPEN, MARKET_ZONE).astimezone(UTC),
                   datetime.combine(day, REGULAR_CLOSE, MARKET_ZONE).astimezone(UTC))


class TradingCalendar:
    """Sessions in time order; lookups by date or by moment."""

    def __init__(self, sessions: Sequence[Session]) -> None:
        self.sessions = list(sessions)
        self._days = [session.day for session in self.sessions]
        self._opens = [session.open for session in self.sessions]

    @classmethod
    def nyse(cls) -> TradingCalendar:
        return _nyse()

    def covers(self, day: date) -> bool:
        return bool(self._days) and self._days[0] <= day <= self._days[-1]

    def session_on(self, day: date) -> Session | None:
        """The session held on `day` (a New York date); None on weekends and holidays."""
        index = bisect.bisect_left(self._days, day)
        if index < len(self._days) and self._days[index] == day:
            return self.sessions[index]
        return None

    def close_of(self, day: date) -> datetime:
        """When `day`'s session closed (13:00 on early closes); 16:00 New York for a day the calendar lacks."""
        session = self.session_on(day)
        return session.close if session is not None else regular_session(day).close

    def last_session(self, moment: datetime) -> Session | None:
        """The latest session that opened at or before `moment` (it may still be open)."""
        index = bisect.bisect_right(self._opens, moment)
        return self.sessions[index - 1] if index else None

    def next_session(self, moment: datetime) -> Session | None:
        """The first session opening after `moment`; None beyond the calendar's range."""
        index = bisect.bisect_right(self._opens, moment)
        return self.sessions[index] if index < len(self.sessions) else None

    def session_at(self, moment: datetime) -> Session | None:
        """The session open at `moment`, if any."""
        session = self.last_session(moment)
        return session if session is not None and moment < session.close else None

    def sessions_between(self, start: datetime, end: datetime) -> list[Session]:
        """The sessions that overlap [start, end)."""
        first = bisect.bisect_right(self._opens, start)
        if first and self.sessions[first - 1].close > start:
            first -= 1
        last = bisect.bisect_left(self._opens, end)
        return self.sessions[first:last]


@functools.cache
def _nyse() -> TradingCalendar:
    """The XNYS calendar from 2000 to YEARS_AHEAD years from today, built once a day.

    Building it takes about a second (pandas and exchange_calendars); the monitor starts in a
    fraction of that, so the sessions are kept in CACHE_DIR, one file per day and library version.
    """
    path = CACHE_DIR / f"xnys-{importlib.metadata.version('exchange_calendars')}-{date.today().isoformat()}.json"
    try:
        rows = json.loads(path.read_text())
        return TradingCalendar([Session(date.fromordinal(day), datetime.fromtimestamp(opened, UTC),
                                        datetime.fromtimestamp(closed, UTC)) for day, opened, closed in rows])
    except (OSError, ValueError, TypeError, OverflowError):
        pass  # no cache yet (or a damaged one): build it
    calendar = _build_nyse()
    _save(path, [[session.day.toordinal(), int(session.open.timestamp()), int(session.close.timestamp())]
                 for session in calendar.sessions])
    return calendar


def _save(path: Path, rows: list[list[int]]) -> None:
    """Write the cache atomically and drop older ones; a read-only checkout simply goes without."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(rows, separators=(",", ":")))
        os.replace(temporary, path)
        for old in path.parent.glob("xnys-*.json"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError:
        pass


def _build_nyse() -> TradingCalendar:
    import exchange_calendars  # imported here: pandas costs half a second, only paid when the cache is cold

    end = date.today() + timedelta(days=365 * YEARS_AHEAD)
    with warnings.catch_warnings():  # exchange_calendars 4.13 uses a pandas API that pandas 3.1 deprecates
        warnings.simplefilter("ignore", DeprecationWarning)
        calendar = exchange_calendars.get_calendar("XNYS", start=FIRST_DAY.isoformat(), end=end.isoformat())
    return TradingCalendar([
        Session(day.date(), opened.to_pydatetime().replace(tzinfo=UTC), closed.to_pydatetime().replace(tzinfo=UTC))
        for day, opened, closed in zip(calendar.sessions, calendar.opens, calendar.closes, strict=True)])
