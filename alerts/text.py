"""An alert in words: the one log line, and the title and body a person reads (at a glance, in their time zone)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from alerts.rules import AverageRule, GapRule, LevelRule, MoveRule, VolumeRule, parse_rule, plain_number
from common.durations import format_duration
from streaming.messages import AlertRow


def price(value: float) -> str:
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.4f}"


def local(ts: str, zone: ZoneInfo | None) -> str:
    """'10:02 EST', or with the date when that is not today in that zone."""
    moment = datetime.fromisoformat(ts).astimezone(zone)
    return moment.strftime("%H:%M %Z") if moment.date() == datetime.now(zone).date() else moment.strftime(
        "%Y-%m-%d %H:%M %Z")


def alert_title(alert: AlertRow) -> str:
    """'IBM crossed above 150', 'TSLA up 5.20% in 1h', ..."""
    rule = parse_rule(alert.rule)
    if isinstance(rule, LevelRule):
        return f"{alert.symbol} crossed {'above' if rule.above else 'below'} {plain_number(rule.level)}"
    if isinstance(rule, AverageRule):
        return f"{alert.symbol} crossed {'above' if rule.above else 'below'} its {rule.count}-quote average"
    if isinstance(rule, GapRule):
        return f"{alert.symbol} gapped {alert.direction} {alert.move_percent:+.2f}% at the open"
    if isinstance(rule, VolumeRule):
        return f"{alert.symbol} volume {1 + alert.move_percent / 100:.1f}x its {rule.count}-quote average"
    assert isinstance(rule, MoveRule)
    return f"{alert.symbol} {alert.direction} {alert.move_percent:+.2f}% within {format_duration(rule.window)}"


def alert_body(alert: AlertRow, zone: ZoneInfo | None = None) -> str:
    """'IBM crossed above 150: 150.75 (+0.84% from 149.50) at 10:02 EST [rule IBM>150]'."""
    reference = {"up": "low", "down": "high"}[alert.direction]
    rule = parse_rule(alert.rule)
    if isinstance(rule, MoveRule):
        since = f"from the window's {reference} {price(alert.reference_price)}"
    elif isinstance(rule, VolumeRule):
        since = f"previous quote {price(alert.reference_price)}"
    elif isinstance(rule, AverageRule):
        since = f"from the average {price(alert.reference_price)}"
    elif isinstance(rule, GapRule):
        since = f"from the previous close {price(alert.reference_price)}"
    else:
        since = f"from {price(alert.reference_price)}"
    move = "" if isinstance(rule, VolumeRule) else f"{alert.move_percent:+.2f}% "
    return (f"{alert_title(alert)}: {price(alert.price)} ({move}{since}) at {local(alert.ts, zone)} "
            f"[rule {alert.rule}]")


def describe_alert(alert: AlertRow) -> str:
    """The alert as one log line."""
    rule = parse_rule(alert.rule)
    if isinstance(rule, LevelRule):
        side = "above" if rule.above else "below"
        return (f"{alert.symbol} crossed {side} {plain_number(rule.level)}: {alert.price!r} at "
                f"{alert.ts} (previous quote {alert.reference_price!r} at {alert.reference_ts}) [rule {alert.rule}]")
    if isinstance(rule, AverageRule):
        side = "above" if rule.above else "below"
        return (f"{alert.symbol} crossed {side} its {rule.count}-quote average {alert.reference_price!r}: "
                f"{alert.price!r} at {alert.ts} ({alert.move_percent:+.2f}%) [rule {alert.rule}]")
    if isinstance(rule, VolumeRule):
        return (f"{alert.symbol} volume {1 + alert.move_percent / 100:.2f}x its {rule.count}-quote average: "
                f"{alert.price!r} at {alert.ts} (previous quote {alert.reference_price!r} at {alert.reference_ts}) "
                f"[rule {alert.rule}]")
    if isinstance(rule, GapRule):
        return (f"{alert.symbol} gapped {alert.direction} {alert.move_percent:+.2f}% at the open: {alert.price!r} at "
                f"{alert.ts}, from the previous close {alert.reference_price!r} at {alert.reference_ts} "
                f"[rule {alert.rule}]")
    extreme = "low" if alert.direction == "up" else "high"
    return (f"{alert.symbol} {alert.direction} {alert.move_percent:+.2f}%: {alert.price!r} at {alert.ts}, from the "
            f"window's {extreme} {alert.reference_price!r} at {alert.reference_ts} [rule {alert.rule}]")
