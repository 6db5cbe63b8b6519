"""The API call budget: per minute (any 60 s window), per second (burst), per UTC day.

The limiter computes from the times of past calls rather than sleeping a fixed gap after each
call, so slow responses and back-offs never make it drift past the budget. The clock is
injectable so tests run it without sleeping.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

WINDOW_SECONDS = 60.0
# Alpha Vantage's burst limit for free keys: 1 request per second.
BURST_INTERVAL_SECONDS = 1.0


def _utc_day(timestamp: float) -> int:
    return int(timestamp // 86400)


class RateLimiter:
    """Says how long to wait before the next call may go out, given the calls made so far."""

    def __init__(self, per_minute: int, per_day: int, clock: Callable[[], float] = time.time) -> None:
        self.per_minute = per_minute
        self.per_day = per_day
        # Premium keys allowing more than 60/min get their calls spread evenly instead.
        self.min_interval = min(BURST_INTERVAL_SECONDS, WINDOW_SECONDS / per_minute)
        self.clock = clock
        self._recent: deque[float] = deque(maxlen=per_minute)
        self._day = -1
        self._day_count = 0

    def day_exhausted(self, now: float | None = None) -> bool:
        """True when today's (UTC) calls are all spent."""
        now = self.clock() if now is None else now
        return _utc_day(now) == self._day and self._day_count >= self.per_day

    def delay(self, now: float | None = None) -> float:
        """Seconds to wait until a call is within every limit (0 when one may go now)."""
        now = self.clock() if now is None else now
        if self.day_exhausted(now):
            return seconds_until_next_utc_day(now)
        ready = now
        if self._recent:
            ready = max(ready, self._recent[-1] + self.min_interval)
            if len(self._recent) == self.per_minute:
                ready = max(ready, self._recent[0] + WINDOW_SECONDS)
        return max(0.0, ready - now)

    def record(self, now: float | None = None) -> None:
        """Count one call made at `now`."""
        now = self.clock() if now is None else now
        self._recent.append(now)
        day = _utc_day(now)
        if day != self._day:
            self._day, self._day_count = day, 0
        self._day_count += 1

    def finish(self, now: float | None = None) -> None:
        """The last call has just completed: measure the next gap from here.

        The server sees a request when it arrives, and a first request that paid for a new
        connection arrives later than it started; spacing from completion keeps the gaps the
        server measures at least as long as ours.
        """
        now = self.clock() if now is None else now
        if self._recent and now > self._recent[-1]:
            self._recent[-1] = now

    def refund(self, now: float | None = None) -> None:
        """The last call never reached the API (refused, DNS): it does not count against the day."""
        now = self.clock() if now is None else now
        if _utc_day(now) == self._day and self._day_count > 0:
            self._day_count -= 1

    def exhaust_day(self, now: float | None = None) -> None:
        """The server says today's budget is spent, whatever we counted."""
        now = self.clock() if now is None else now
        self._day, self._day_count = _utc_day(now), self.per_day

    def calls_today(self, now: float | None = None) -> int:
        now = self.clock() if now is None else now
        return self._day_count if _utc_day(now) == self._day else 0

    def snapshot(self) -> dict[str, object]:
        """What a restarted producer needs to keep within budget (see restore)."""
        return {"recent": list(self._recent), "day": self._day, "day_count": self._day_count}

    def restore(self, snapshot: dict[str, object], now: float | None = None) -> list[str]:
        """Continue from a snapshot, so a restart does not reset the budget; return what could not be trusted.

        Times after `now` (a clock set back since) are counted as made now: the budget stays safe
        and the wait they cause is at most one window, never the hours of a wrong clock.
        """
        now = self.clock() if now is None else now
        recent, day, day_count = snapshot.get("recent", []), snapshot.get("day", -1), snapshot.get("day_count", 0)
        if not isinstance(recent, list) or type(day) is not int or type(day_count) is not int or day_count < 0:
            raise ValueError("malformed rate limiter snapshot")
        recent = [_call_time(stamp) for stamp in recent]
        doubts = []
        future = [stamp for stamp in recent if stamp > now]
        if future:
            doubts.append(f"{len(future)} call time(s) in the future, counted as made now")
        self._recent.clear()
        self._recent.extend(sorted(min(stamp, now) for stamp in recent)[-self.per_minute:])
        if day > _utc_day(now):
            doubts.append("a day count dated in the future, counted as today's")
            day = _utc_day(now)
        self._day, self._day_count = day, day_count
        return doubts

def _call_time(stamp: object) -> float:
    """A recorded call time as a finite float; ValueError for anything else (a bool, text, 1e400)."""
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
        raise ValueError(f"malformed call time {str(stamp)[:40]!r}")
    try:
        value = float(stamp)
    except OverflowError:
        raise ValueError("a call time out of range") from None
    if not math.isfinite(value):
        raise ValueError(f"malformed call time {value}")
    return value


def seconds_until_next_utc_day(now: float) -> float:
    """Seconds from `now` to the next midnight UTC."""
    current = datetime.fromtimestamp(now, UTC)
    midnight = (current + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.timestamp() - now


class Backoff:
    """Exponential back-off with a cap: initial, 2x initial, 4x ... maximum; reset after a success."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self._failures = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * (2 ** min(self._failures, 30)))
        self._failures += 1
        return delay

    def reset(self) -> None:
        self._failures = 0
