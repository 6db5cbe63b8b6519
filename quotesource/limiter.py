"""The API call budget: per minute (any 60 s window), per second (burst), per UTC day.

The limiter computes from the times of past calls rather than sleeping a fixed gap after each
call, so slow responses and back-offs never make it drift past the budget. The clock is
injectable so tests run it without sleeping.

Several calls may be in flight at once (premium keys): a call counts in the per-minute window
until it has *completed*, because the server may see a request any time before its answer
comes back. So no 60-second window at the server ever holds more than the budget, however
the network delays each request.
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
# With nothing to measure (the oldest call of the window still in flight) look again this soon.
IN_FLIGHT_RECHECK_SECONDS = 0.05
# Answers this slow are still within budget when several calls are in flight (see calls_in_flight).
SUSTAINED_LATENCY_SECONDS = 4.0
MAX_IN_FLIGHT = 32


def _utc_day(timestamp: float) -> int:
    return int(timestamp // 86400)


def calls_in_flight(per_minute: int) -> int:
    """How many calls may be in flight at once for a per-minute budget.

    Up to 60 a minute (the free tier and its 1-per-second burst limit) one at a time, each spaced
    from the previous one's answer, as the server counts. Above that, enough to keep the budget
    busy while each answer takes up to SUSTAINED_LATENCY_SECONDS (75/min: 5; 600/min and more: 32).
    """
    if per_minute <= WINDOW_SECONDS / BURST_INTERVAL_SECONDS:
        return 1
    return min(MAX_IN_FLIGHT, math.ceil(per_minute / WINDOW_SECONDS * SUSTAINED_LATENCY_SECONDS))


class Call:
    """One API call as the budget sees it: when it started and, once answered, when it ended."""

    __slots__ = ("ended", "started")

    def __init__(self, started: float, ended: float | None = None) -> None:
        self.started = started
        self.ended = ended


class RateLimiter:
    """Says how long to wait before the next call may go out, given the calls made so far."""

    def __init__(self, per_minute: int, per_day: int, clock: Callable[[], float] = time.time,
                 in_flight: int | None = None) -> None:
        self.per_minute = per_minute
        self.per_day = per_day  # 0: no daily limit (premium plans)
        # Premium keys allowing more than 60/min get their calls spread evenly instead.
        self.min_interval = min(BURST_INTERVAL_SECONDS, WINDOW_SECONDS / per_minute)
        self.max_in_flight = calls_in_flight(per_minute) if in_flight is None else in_flight
        # One call at a time: the next one is spaced from the previous answer (as the server measures
        # a burst). Several: from the previous start, or the answers' latency would eat the budget.
        self.space_from_answer = self.max_in_flight == 1
        self.clock = clock
        self._calls: deque[Call] = deque()  # the last `per_minute` calls, in the order they started
        self._settled = -math.inf  # the latest end among older calls
        self._day = -1
        self._day_count = 0
        self._refused_day = -1  # the UTC day on which the server said the daily allowance is spent

    def day_exhausted(self, now: float | None = None) -> bool:
        """True when today's (UTC) calls are all spent."""
        now = self.clock() if now is None else now
        if _utc_day(now) == self._refused_day:
            return True
        return self.per_day > 0 and _utc_day(now) == self._day and self._day_count >= self.per_day

    def delay(self, now: float | None = None) -> float:
        """Seconds to wait until a call is within every limit (0 when one may go now)."""
        now = self.clock() if now is None else now
        if self.day_exhausted(now):
            return seconds_until_next_utc_day(now)
        ready = now
        if self._calls:
            last = self._calls[-1]
            ready = max(ready, last.started + self.min_interval)
            if self.space_from_answer and last.ended is not None:
                ready = max(ready, last.ended + self.min_interval)
            if len(self._calls) >= self.per_minute:
                oldest = self._calls[0]
                if oldest.ended is None:  # still in flight: it counts until it is answered
                    return max(ready - now, IN_FLIGHT_RECHECK_SECONDS)
                ready = max(ready, max(oldest.ended, self._settled) + WINDOW_SECONDS)
        return max(0.0, ready - now)

    def record(self, now: float | None = None) -> Call:
        """Count one call starting at `now`; pass what it returns to finish() once it is answered."""
        now = self.clock() if now is None else now
        call = Call(now)
        self._calls.append(call)
        while len(self._calls) > self.per_minute:
            gone = self._calls.popleft()
            self._settled = max(self._settled, gone.ended if gone.ended is not None else now)
        day = _utc_day(now)
        if day != self._day:
            self._day, self._day_count = day, 0
        self._day_count += 1
        return call

    def finish(self, call: Call | None = None, now: float | None = None) -> None:
        """A call (by default the latest) has been answered or has failed: it stops counting at `now`."""
        now = self.clock() if now is None else now
        call = call if call is not None else (self._calls[-1] if self._calls else None)
        if call is not None:
            call.ended = max(call.started, now)

    def refund(self, now: float | None = None) -> None:
        """A call never reached the API (refused, DNS): it does not count against the day."""
        now = self.clock() if now is None else now
        if _utc_day(now) == self._day and self._day_count > 0:
            self._day_count -= 1

    def exhaust_day(self, now: float | None = None) -> None:
        """The server says today's budget is spent, whatever we counted."""
        now = self.clock() if now is None else now
        self._refused_day = _utc_day(now)

    def last_started(self) -> float | None:
        """When the latest call started (None: no call in the last window's record)."""
        return self._calls[-1].started if self._calls else None

    def calls_today(self, now: float | None = None) -> int:
        now = self.clock() if now is None else now
        return self._day_count if _utc_day(now) == self._day else 0

    def calls_left_in_minute(self, now: float | None = None) -> int:
        """Calls that may still start in the current 60 s window, counted as delay() counts them: a call
        counts until a minute after its own answer and every earlier call's, and while in flight."""
        now = self.clock() if now is None else now
        settled, counting = self._settled, 0
        for call in self._calls:
            settled = math.inf if call.ended is None else max(settled, call.ended)
            counting += settled + WINDOW_SECONDS > now
        return max(0, self.per_minute - counting)

    def calls_left_today(self, now: float | None = None) -> int | None:
        """Calls left in the UTC day (None: no daily limit)."""
        now = self.clock() if now is None else now
        if self.day_exhausted(now):
            return 0
        return None if not self.per_day else max(0, self.per_day - self.calls_today(now))

    def snapshot(self) -> dict[str, object]:
        """What a restarted producer needs to keep within budget (see restore).

        A call still in flight counts as made now: the budget stays safe across a restart.
        """
        now = self.clock()
        return {"recent": [call.ended if call.ended is not None else max(call.started, now) for call in self._calls],
                "day": self._day, "day_count": self._day_count, "refused_day": self._refused_day}

    def restore(self, snapshot: dict[str, object], now: float | None = None) -> list[str]:
        """Continue from a snapshot, so a restart does not reset the budget; return what could not be trusted.

        Times after `now` (a clock set back since) are counted as made now: the budget stays safe
        and the wait they cause is at most one window, never the hours of a wrong clock.
        """
        now = self.clock() if now is None else now
        recent, day, day_count = snapshot.get("recent", []), snapshot.get("day", -1), snapshot.get("day_count", 0)
        refused_day = snapshot.get("refused_day", -1)
        if not isinstance(recent, list) or type(day) is not int or type(day_count) is not int or day_count < 0 \
                or type(refused_day) is not int:
            raise ValueError("malformed rate limiter snapshot")
        recent = [_call_time(stamp) for stamp in recent]
        doubts = []
        future = [stamp for stamp in recent if stamp > now]
        if future:
            doubts.append(f"{len(future)} call time(s) in the future, counted as made now")
        self._calls.clear()
        self._settled = -math.inf
        for stamp in sorted(min(stamp, now) for stamp in recent)[-self.per_minute:]:
            self._calls.append(Call(stamp, stamp))
        if day > _utc_day(now):
            doubts.append("a day count dated in the future, counted as today's")
            day = _utc_day(now)
        self._day, self._day_count = day, day_count
        self._refused_day = min(refused_day, _utc_day(now))
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


def utc_day_end(moment: datetime) -> datetime:
    """The next midnight UTC after `moment`: when the daily budget starts again."""
    return (moment.astimezone(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


def seconds_until_next_utc_day(now: float) -> float:
    """Seconds from `now` to the next midnight UTC."""
    return utc_day_end(datetime.fromtimestamp(now, UTC)).timestamp() - now


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
