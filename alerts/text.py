"""An alert in words: the one log line, and the title and body a person reads (at a glance, in their time zone);
several alerts in one summary, for quiet hours and digests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from alerts.rules import AverageRule, GapRule, LevelRule, MoveRule, VolumeRule, parse_rule, plain_number
from common.durations import format_duration
from streaming.messages import AlertRow

SUMMARY_MOVES = 3  # the biggest moves a summary names


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


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def summary_title(alerts: Sequence[AlertRow], why: str) -> str:
    """'stockmon: 3 alerts while quiet (22:00-07:00)', 'stockmon: 12 alerts in the digest at the close'."""
    return f"stockmon: {plural(len(alerts), 'alert')} {why}"


def summary_body(alerts: Sequence[AlertRow], zone: ZoneInfo | None = None) -> str:
    """Several alerts in one message: when, the biggest price moves, and per symbol how many, by which rules,
    and the last price (the symbols with most alerts first)."""
    by_symbol: dict[str, list[AlertRow]] = {}
    for alert in alerts:
        by_symbol.setdefault(alert.symbol, []).append(alert)
    times = sorted(alert.ts for alert in alerts)
    lines = [f"{plural(len(alerts), 'alert')} on {plural(len(by_symbol), 'symbol')}, {local(times[0], zone)} to "
             f"{local(times[-1], zone)}."]
    # A volume alert's move is the volume's, not the price's: it is not among the moves.
    moves = [max(moved, key=lambda alert: abs(alert.move_percent)) for moved in
             ([alert for alert in its if not isinstance(parse_rule(alert.rule), VolumeRule)]
              for its in by_symbol.values()) if moved]
    if moves:
        biggest = sorted(moves, key=lambda alert: (-abs(alert.move_percent), alert.symbol))[:SUMMARY_MOVES]
        lines.append("Biggest moves: " + ", ".join(f"{alert.symbol} {alert.move_percent:+.2f}%" for alert in biggest))
    for symbol, its in sorted(by_symbol.items(), key=lambda item: (-len(item[1]), item[0])):
        rules = ", ".join(dict.fromkeys(alert.rule for alert in its))
        last = max(its, key=lambda alert: alert.ts)
        lines.append(f"{symbol}: {plural(len(its), 'alert')} ({rules}), last {price(last.price)} at "
                     f"{local(last.ts, zone)}")
    return "\n".join(lines)
