"""When a named channel takes its alerts: quiet hours (`phone=22:00-07:00`) and digests (`mail=close`).

Both are decided from the stored alerts' times and the clock alone, never from state in memory, so a
restart neither drops what was held nor sends a digest twice: an alert fired in a quiet window waits
(and goes out with the others of that window in one summary when it ends); a digest channel's
alerts wait until the first digest time after the oldest of them (every N minutes on the clock, or
the close of the NYSE session), then go out as one message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from common.durations import format_duration, parse_duration
from market.calendar import TradingCalendar

QUIET_PATTERN = re.compile(r"(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})(?:@(?P<zone>.+))?")
SHORTEST_DIGEST = timedelta(minutes=1)
LONGEST_DIGEST = timedelta(days=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class QuietHours:
    """A daily window, in a time zone (None: the machine's), in which a channel gets nothing."""

    start: time
    end: time
    zone: ZoneInfo | None = None

    def holds(self, moment: datetime) -> bool:
        at = moment.astimezone(self.zone).time()
        if self.start < self.end:
            return self.start <= at < self.end
        return at >= self.start or at < self.end  # over midnight: 22:00-07:00

    def ends_after(self, moment: datetime) -> datetime:
        """The first end of the window after `moment`."""
        local = moment.astimezone(self.zone)
        end = datetime.combine(local.date(), self.end, local.tzinfo)
        while end <= local:
            end = datetime.combine(end.date() + timedelta(days=1), self.end, local.tzinfo)
        return end.astimezone(UTC)

    def text(self) -> str:
        zone = f" {self.zone.key}" if self.zone else ""
        return f"{self.start:%H:%M}-{self.end:%H:%M}{zone}"


@dataclass(frozen=True)
class Digest:
    """One message every `every` (on the clock: :00, :30 for 30m), or at each session's close when None."""

    every: timedelta | None = None

    def due(self, oldest: datetime, calendar: TradingCalendar) -> datetime:
        """When the digest holding an alert fired at `oldest` goes out."""
        if self.every is not None:
            periods = (oldest - EPOCH) // self.every
            return EPOCH + (periods + 1) * self.every
        session = calendar.last_session(oldest)
        if session is not None and oldest < session.close:
            return session.close
        upcoming = calendar.next_session(oldest)
        return upcoming.close if upcoming else oldest + timedelta(days=1)

    def text(self) -> str:
        return f"every {format_duration(self.every)}" if self.every else "at the close"


def parse_quiet_hours(text: str) -> QuietHours:
    """`22:00-07:00` or `22:00-07:00@Europe/Berlin`; ValueError saying why otherwise."""
    match = QUIET_PATTERN.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a quiet time (HH:MM-HH:MM, optionally @Zone, e.g. "
                         "22:00-07:00@Europe/Berlin)")
    start, end = _clock_time(match["start"]), _clock_time(match["end"])
    if start == end:
        raise ValueError(f"{text!r} starts and ends at the same time")
    zone = None
    if match["zone"]:
        try:
            zone = ZoneInfo(match["zone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{text!r}: {match['zone']!r} is not a time zone (e.g. America/New_York)") from None
    return QuietHours(start, end, zone)


def parse_digest(text: str) -> Digest:
    """`close` or a duration from 1m to 1d (`30m`, `4h`); ValueError saying why otherwise."""
    if text.strip().lower() == "close":
        return Digest()
    try:
        every = parse_duration(text)
    except ValueError as exc:
        raise ValueError(f"{exc}, or close") from None
    if not SHORTEST_DIGEST <= every <= LONGEST_DIGEST or (LONGEST_DIGEST % every):
        raise ValueError(f"{text!r}: a digest goes every 1m to 1d, a whole number of times a day (30m, 4h)")
    return Digest(every)


def _clock_time(text: str) -> time:
    hours, minutes = (int(part) for part in text.split(":"))
    if hours > 23 or minutes > 59:
        raise ValueError(f"{text!r} is not a time of day (00:00 to 23:59)")
    return time(hours, minutes)


def per_channel(text: str, setting: str) -> dict[str, str]:
    """`name=value name=value` (NOTIFY_QUIET_HOURS, NOTIFY_DIGEST): each value by channel name; ValueError
    for a token without a name or a name given twice."""
    found: dict[str, str] = {}
    for token in text.split():
        name, equals, value = token.partition("=")
        if not equals or not name or not value:
            raise ValueError(f"{token!r} is not name=value (the name of a channel in NOTIFY_URLS)")
        if name in found:
            raise ValueError(f"{name!r} is given twice in {setting}")
        found[name] = value
    return found
