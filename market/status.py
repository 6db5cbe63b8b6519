"""Is the market open now, and until or from when: the monitor's header and the producer's closed-market line."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from market.calendar import MARKET_ZONE, TradingCalendar


@dataclass(frozen=True)
class MarketStatus:
    """The regular session's state at one moment: open until `closes_at`, or closed until `opens_at`."""

    open: bool
    closes_at: datetime | None
    opens_at: datetime | None

    def text(self) -> str:
        """'market open, closes 16:00 EST' or 'market closed, opens Mon 09:30 EST' (New York time)."""
        if self.open and self.closes_at is not None:
            return f"market open, closes {new_york(self.closes_at, '%H:%M %Z')}"
        if self.opens_at is not None:
            return f"market closed, opens {new_york(self.opens_at, '%a %H:%M %Z')}"
        return "market closed"


def new_york(moment: datetime, pattern: str) -> str:
    return moment.astimezone(MARKET_ZONE).strftime(pattern)


def market_status(calendar: TradingCalendar, moment: datetime) -> MarketStatus:
    session = calendar.session_at(moment)
    if session is not None:
        return MarketStatus(True, session.close, None)
    following = calendar.next_session(moment)
    return MarketStatus(False, None, following.open if following is not None else None)
