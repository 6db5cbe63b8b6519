"""Which call goes next, and when: history first, then catch-up passes, then the paced round-robin.

    backfill   TIME_SERIES_DAILY once per symbol that needs history, at the limiter's pace
    catch-up   each symbol last called before the latest closing of the polling hours, once
    paced      the rotation, at the even pace, while the polling hours are open

The limiter still has the last word on every call; the plan only says what goes and how long it
has to wait for its turn. Its clock is the wall clock (calendars are about real time), passed in.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from market.hours import PollingHours
from quotesource.limiter import RateLimiter
from quotesource.pace import CATCH_UP_DELAY, catch_up_closing, needs_catch_up, next_paced_call
from quotesource.schedule import Rotation, Target

# With nothing due for a long time (a weekend), the loop still looks again this often.
LONGEST_WAIT = timedelta(hours=1)


class CallPlan:
    """The targets of a run and the order and pace in which they are called."""

    def __init__(self, targets: list[Target], backfill: list[Target], hours: PollingHours, limiter: RateLimiter,
                 last_called: MutableMapping[str, datetime], now: datetime, once: bool = False) -> None:
        self.hours = hours
        self.limiter = limiter
        self.last_called = last_called  # symbol -> start of its last answered call (kept in the state file)
        self.once = once
        self.count = len(targets)
        self.backfill = Rotation(backfill, once=True)
        # One pass (--once): every target while polling is open, else those the last closing left behind.
        if once and hours.window_at(now) is None:
            closing = catch_up_closing(hours, now)
            targets = [target for target in targets if self._behind(target, closing)]
        self.rotation = Rotation(targets, once=once)

    def _behind(self, target: Target, closing: datetime | None) -> bool:
        return any(needs_catch_up(self.last_called.get(symbol), closing) for symbol in target.symbols)

    def finished(self) -> bool:
        return self.backfill.finished() and self.rotation.finished()

    def _paced_due(self, now: datetime) -> datetime | None:
        last = self.limiter.last_started()
        return next_paced_call(self.hours, now, self.limiter.per_day, self.limiter.calls_today(now.timestamp()),
                               None if last is None else datetime.fromtimestamp(last, now.tzinfo), self.count)

    def wait(self, now: datetime) -> float:
        """Seconds until a target is due (0: one is); LONGEST_WAIT when none is, or all are in flight."""
        if self.backfill.has_waiting() or (self.once and self.rotation.has_waiting()):
            return 0.0
        if not self.rotation.has_waiting():
            return LONGEST_WAIT.total_seconds()
        closing = catch_up_closing(self.hours, now)  # None around the clock: no target can be behind
        if closing is not None and any(self._behind(target, closing) for target in self.rotation.waiting()):
            return 0.0
        due = self._paced_due(now)
        window = self.hours.window_at(now)
        candidates = [now + LONGEST_WAIT] + ([due] if due is not None else [])
        if window is not None and self.hours.calendar is not None:  # the catch-up pass after this window closes
            candidates.append(window.end + CATCH_UP_DELAY)
        return max(0.0, (min(candidates) - now).total_seconds())

    def take(self, now: datetime) -> Target | None:
        """The target due now, out of the queue until put back (call after wait() said 0)."""
        if self.backfill.has_waiting():
            return self.backfill.take()
        if self.once:
            return self.rotation.take()
        closing = catch_up_closing(self.hours, now)
        behind = None if closing is None else self.rotation.take(lambda target: self._behind(target, closing))
        return behind if behind is not None else self.rotation.take()

    def called(self, target: Target, started: datetime) -> None:
        """A call was answered (or given up for good): its symbols are up to date as of its start."""
        if target.function is None:
            for symbol in target.symbols:
                self.last_called[symbol] = started

    def put_back(self, target: Target, retry_first: bool = False) -> None:
        (self.backfill if target.function else self.rotation).put_back(target, retry_first)

    def drop(self, symbol: str) -> None:
        self.rotation.drop(symbol)
        self.backfill.drop(symbol)

    def closed_until(self, now: datetime) -> datetime | None:
        """When polling resumes, while the polling hours are closed (None while open, or for `always`)."""
        if self.hours.window_at(now) is not None:
            return None
        return self.hours.next_opening(now)


@dataclass
class ScheduleMemory:
    """What the plan needs across restarts: when each symbol was last called, which have their history."""

    last_called: dict[str, datetime] = field(default_factory=dict)
    backfilled: set[str] = field(default_factory=set)

    def snapshot(self) -> dict[str, object]:
        return {"last_called": {symbol: moment.timestamp() for symbol, moment in self.last_called.items()},
                "backfilled": sorted(self.backfilled)}

    def restore(self, snapshot: dict[str, object], now: datetime) -> list[str]:
        """Continue from a snapshot; a call time in the future counts as made now (its catch-up is not lost
        for long, and no symbol is called twice); return what was dropped."""
        last_called, backfilled = snapshot.get("last_called", {}), snapshot.get("backfilled", [])
        if not isinstance(last_called, dict) or not isinstance(backfilled, list):
            raise ValueError("malformed schedule snapshot")
        dropped: list[str] = []
        self.last_called = {}
        for symbol, stamp in last_called.items():
            try:
                if isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
                    raise TypeError
                self.last_called[symbol] = min(datetime.fromtimestamp(stamp, UTC), now)
            except (TypeError, ValueError, OverflowError, OSError):
                dropped.append(f"the last call time of {symbol} ({str(stamp)[:40]!r})")
        self.backfilled = {symbol for symbol in backfilled if isinstance(symbol, str)}
        return dropped
