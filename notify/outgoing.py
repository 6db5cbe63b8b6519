"""What a channel is sent for the alerts waiting for it: each alert on its own, one summary of those fired
in its quiet hours, or one digest; and how far each message moves the channel's place in the alerts.

Pure functions of the stored alerts, the channel and the routes, so what is sent follows from the
database alone (notify/schedule.py) and reads back the same after a restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from alerts.routes import Routes
from alerts.text import alert_body, alert_title, summary_body, summary_title
from market.calendar import TradingCalendar
from notify.channels import Channel
from streaming.messages import AlertRow

Waiting = Sequence[tuple[int, AlertRow]]  # (alert id, alert), oldest first


@dataclass(frozen=True)
class Message:
    """One send, and the alert id the channel's place moves to once it is accepted."""

    up_to: int
    alerts: tuple[AlertRow, ...] = ()  # none: only alerts routed elsewhere, nothing to send
    summary_of: str = ""  # why alerts go as one ("while quiet (22:00-07:00)"); empty: a single alert

    def title(self) -> str:
        return summary_title(self.alerts, self.summary_of) if self.summary_of else alert_title(self.alerts[0])

    def body(self, zone: ZoneInfo | None) -> str:
        return summary_body(self.alerts, zone) if self.summary_of else alert_body(self.alerts[0], zone)


def fired(alert: AlertRow) -> datetime:
    return datetime.fromisoformat(alert.fired_at)


def each_alert(channel: Channel, routes: Routes, waiting: Waiting) -> list[Message]:
    """Each alert the channel gets on its own, except a run fired in its quiet hours: one summary."""
    messages: list[Message] = []
    why = f"while quiet ({channel.quiet.text()})" if channel.quiet else ""
    for alert_id, alert in waiting:
        last = messages[-1] if messages else None
        wanted = routes.wants(channel.label, alert.rule)
        held = wanted and channel.quiet is not None and channel.quiet.holds(fired(alert))
        if last and last.summary_of and (held or not wanted):  # the summary runs on over alerts routed elsewhere
            messages[-1] = Message(alert_id, (*last.alerts, alert) if held else last.alerts, why)
        elif held:
            messages.append(Message(alert_id, (alert,), why))
        elif wanted:
            messages.append(Message(alert_id, (alert,)))
        elif last and not last.alerts:  # several routed elsewhere in a row: one move of the place
            messages[-1] = Message(alert_id)
        else:
            messages.append(Message(alert_id))
    return messages


def digest_due(channel: Channel, routes: Routes, waiting: Waiting, calendar: TradingCalendar) -> datetime | None:
    """When the digest of the oldest alert the channel gets goes out; None when it gets none of them."""
    assert channel.digest is not None
    oldest = next((alert for _, alert in waiting if routes.wants(channel.label, alert.rule)), None)
    return channel.digest.due(fired(oldest), calendar) if oldest else None


def digest(channel: Channel, routes: Routes, waiting: Waiting, due: datetime) -> Message:
    """The digest due at `due`: every alert the channel gets fired before it (and those routed elsewhere
    between them, which only move the place)."""
    assert channel.digest is not None
    taken: list[AlertRow] = []
    up_to = waiting[0][0] - 1
    for alert_id, alert in waiting:
        wanted = routes.wants(channel.label, alert.rule)
        if wanted and fired(alert) >= due:
            break
        up_to = alert_id
        if wanted:
            taken.append(alert)
    return Message(up_to, tuple(taken), f"in the digest {channel.digest.text()}")
