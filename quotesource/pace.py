"""The even pace: the calls left today spread over the polling time left today, and the catch-up pass.

Pure functions of the polling hours, a moment and the calls made, so that a whole session can be
played on a fake clock. The budget day is the UTC day, as the limiter counts it. The per-minute
and per-second limits are the limiter's: the pace only ever asks for a later start.

A catch-up pass calls each symbol once, CATCH_UP_DELAY after each closing of the polling hours
(and at start-up when the last pass predates the last closing), so the closing prices are stored
even when the paced calls fell earlier. The calls it needs are set aside before pacing the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from market.hours import PollingHours
from quotesource.limiter import utc_day_end

# The closing auction's prints reach quote feeds in the minutes after 16:00: ask a little later.
CATCH_UP_DELAY = timedelta(minutes=5)
# Budget days searched ahead for the next paced call (a long weekend spans four).
DAYS_AHEAD = 10


def catch_up_closing(hours: PollingHours, now: datetime) -> datetime | None:
    """The closing whose catch-up pass is due by `now` (the last one at least CATCH_UP_DELAY ago)."""
    return hours.last_closing(now - CATCH_UP_DELAY)


def needs_catch_up(last_called: datetime | None, closing: datetime | None) -> bool:
    """A symbol last called before the closing (or never) is called once more after it."""
    return closing is not None and (last_called is None or last_called < closing)


def catch_up_reserve(hours: PollingHours, now: datetime, targets: int, calls_left: int) -> int:
    """Calls set aside for the catch-up passes still to come this budget day: one per target and
    closing, and all that is left when that is less (the closing prices matter most)."""
    if hours.calendar is None:
        return 0
    day_end = utc_day_end(now)
    closings = sum(1 for window in hours.windows(now, day_end)
                   if window.end > now and window.end + CATCH_UP_DELAY < day_end)
    return min(max(calls_left, 0), closings * targets)


@dataclass(frozen=True)
class PacePlan:
    """The pace of one budget day from `start`: `calls` paced calls over `polling_seconds`, `reserve` kept."""

    start: datetime
    polling_seconds: float
    calls: int
    reserve: int

    @property
    def interval(self) -> float | None:
        """Seconds between paced calls (None: no paced call is left)."""
        return self.polling_seconds / self.calls if self.calls > 0 else None


def pace_plan(hours: PollingHours, now: datetime, per_day: int, calls_today: int, targets: int) -> PacePlan:
    """How the rest of today's calls are spread: over the polling time from `now` to midnight UTC."""
    day_end = utc_day_end(now)
    calls_left = max(per_day - calls_today, 0)
    reserve = catch_up_reserve(hours, now, targets, calls_left)
    return PacePlan(now, hours.open_seconds(now, day_end), calls_left - reserve, reserve)


def next_paced_call(hours: PollingHours, now: datetime, per_day: int, calls_today: int,
                    last_call: datetime | None, targets: int) -> datetime | None:
    """When the next paced call may start (`now` or later); None when none will within DAYS_AHEAD.

    The first call of a budget day goes at the first polling moment. After a call at L with C paced
    calls left, the next one goes P/(C+1) of polling time after L, P being the polling time from L
    to midnight: the day's calls end one interval before the close, where the catch-up pass goes.
    With no daily limit (per_day 0) only the polling hours and the limiter pace.
    """
    for _ in range(DAYS_AHEAD):
        day_end = utc_day_end(now)
        if per_day == 0:
            due: datetime | None = now if hours.window_at(now) else hours.next_opening(now)
            return due
        day_start = day_end - timedelta(days=1)
        paced_left = per_day - calls_today - catch_up_reserve(hours, now, targets, per_day - calls_today)
        if paced_left > 0:
            if last_call is None or last_call < day_start:
                due = hours.advance(now, 0.0, day_end)  # now if polling is open, else its next opening today
            else:
                spread = hours.open_seconds(last_call, day_end) / (paced_left + 1)
                found = hours.advance(last_call, spread, day_end)
                # Overdue (a restart, a long back-off): now, if polling is open, else its next opening today.
                due = found if found is not None and found >= now else hours.advance(now, 0.0, day_end)
            if due is not None:
                return due
        now, calls_today, last_call = day_end, 0, None
    return None
