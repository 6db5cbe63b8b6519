"""What the producer's /readyz checks: Kafka answers and takes the quotes, the state file can be written.

The polling hours and the day's budget are said as its state: closed or spent is the plan, not a fault.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from market.hours import PollingHours
from market.status import new_york
from polling.poller import closed_line
from polling.publisher import QuotePublisher
from quotesource.limiter import RateLimiter
from service.health import Check, Health, kafka_answers


def writable_file(path: Path) -> Check:
    """The file can be written: it exists and is writable, or its folder lets it be created."""
    if path.exists():
        if path.is_dir() or not os.access(path, os.W_OK):
            return Check(False, f"{path} is not writable")
        return Check(True, f"{path} is writable")
    folder = path.parent if str(path.parent) else Path(".")
    if not os.access(folder, os.W_OK | os.X_OK):
        return Check(False, f"{path} cannot be created: {folder} is not writable")
    return Check(True, f"{path} can be created")


def polling_hours_now(hours: PollingHours, now: datetime) -> str:
    """'open until Thu 2026-12-03 16:00 EST', 'market closed; next session opens ...' or 'always open'."""
    window = hours.window_at(now)
    if window is None:
        return closed_line(hours.mode, hours.next_opening(now))
    if hours.mode == "always":
        return "always open (POLL_HOURS=always)"
    return f"open until {new_york(window.end, '%a %Y-%m-%d %H:%M %Z')}"


def producer_health(servers: str, state_path: Path, limiter: RateLimiter, hours: PollingHours,
                    publisher: Callable[[], QuotePublisher | None]) -> Health:
    def kafka() -> Check:
        answer = kafka_answers(servers)
        current = publisher()
        if answer.ok and current is not None and current.in_outage:
            return Check(False, f"Kafka at {servers} has not acknowledged {len(current.held)} quote(s); "
                                "they are held and sent again")
        if answer.ok and current is None:
            return Check(False, f"connecting to Kafka at {servers}")
        return answer

    def checks() -> dict[str, Check]:
        return {"kafka": kafka(), "state_file": writable_file(state_path)}

    def state() -> dict[str, Any]:
        left = limiter.calls_left_today()
        budget = "no daily limit" if left is None and limiter.per_day == 0 else \
            "spent until the next UTC day" if left == 0 else f"{left} of {limiter.per_day} call(s) left today"
        return {"polling_hours": polling_hours_now(hours, datetime.fromtimestamp(limiter.clock(), UTC)),
                "daily_budget": budget}

    return Health(checks, state)
