"""Doctor checks that need only the settings: names in .env, the demo key, the listener, notification
URLs and the polling hours now."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from checkup.finding import Finding, fail, ok, warn
from config import DEFAULTS, Settings, guess_setting
from market.hours import PollingHours
from notify.channels import Channel, ChannelError, check_channels
from polling.readiness import polling_hours_now

# Alpha Vantage's demo key answers for IBM only (its documentation's examples); anything else is refused.
DEMO_KEY, DEMO_SYMBOLS = "demo", frozenset({"IBM"})


def env_file_names(env_file: Path, names: Iterable[str]) -> Finding:
    """Every name in the settings file that is not a setting: ignored by the scripts, so likely a mistake."""
    if not env_file.exists():
        return ok(str(env_file), "not there; settings come from the environment and the defaults")
    unknown = [name for name in names if name not in DEFAULTS]
    if not unknown:
        return ok(str(env_file), "every name in it is a setting")
    described = []
    for name in unknown:
        match = guess_setting(name)
        described.append(f"{name} (did you mean {match}?)" if match else name)
    return warn(str(env_file), f"not settings, ignored: {', '.join(described)}")


def api_key(settings: Settings) -> Finding:
    others = [symbol for symbol in settings.symbols if symbol not in DEMO_SYMBOLS]
    if settings.api_key != DEMO_KEY:
        return ok("ALPHAVANTAGE_API_KEY", "set (not the demo key)")
    if others:
        return fail("ALPHAVANTAGE_API_KEY", f"the demo key serves IBM only, and STOCK_SYMBOLS asks for "
                                            f"{', '.join(others[:5])}{' ...' if len(others) > 5 else ''}; "
                                            "get a free key at alphavantage.co")
    return warn("ALPHAVANTAGE_API_KEY", "the demo key: fine for IBM, get a free key for other symbols")


def metrics_listener(settings: Settings) -> Finding:
    """Whether the address can be bound now (a running script holds it; both scripts cannot share one)."""
    address = settings.metrics_address
    if address is None:
        return ok("METRICS_ADDRESS", "empty: no metrics or health listener")
    if address.port == 0:
        return ok("METRICS_ADDRESS", f"{address.host}, a free port chosen at start (the log says which)")
    where = address.host_port()
    try:
        with socket.socket(address.family, socket.SOCK_STREAM) as probe:
            probe.bind((address.host, address.port))
    except OSError as exc:
        return warn("METRICS_ADDRESS", f"{where} cannot be bound now ({exc.strerror or exc}): a running "
                                       "script may hold it; producer and consumer each need their own "
                                       "(--metrics-address)")
    return ok("METRICS_ADDRESS", f"{where} is free; producer and consumer each need their own (--metrics-address)")


def notify_urls(settings: Settings) -> list[Finding]:
    if not settings.notify_channels:
        return [ok("NOTIFY_URLS", "empty: alerts are stored and published, not sent")]
    findings = []
    for number, configured in enumerate(settings.notify_channels, 1):
        what = f"NOTIFY_URLS #{number}"
        try:
            [channel] = check_channels((configured,))
        except ChannelError as exc:
            findings.append(fail(what, str(exc)))
            continue
        findings.append(ok(what, f"{channel.name} parses; metrics call it channel=\"{channel.key}\" "
                                 "(consumer.py --notify-test sends a test message)"))
        if settings.alert_routes.by_rule:
            findings.append(_routed_to(what, channel, settings))
        timing = [f"quiet {channel.quiet.text()} (what comes then goes as one summary after)"] if channel.quiet else []
        timing += [f"one digest {channel.digest.text()} instead of each alert"] if channel.digest else []
        if timing:
            findings.append(ok(what, f"{channel.name}: {'; '.join(timing)}"))
    return findings


def _routed_to(what: str, channel: Channel, settings: Settings) -> Finding:
    """Which rules' alerts a channel gets, once some rule routes with ->; a warning when none does."""
    rules = [rule.text for rule in settings.alert_rules if settings.alert_routes.wants(channel.label, rule.text)]
    if not rules:
        return warn(what, f"{channel.name} gets no alert: every rule in ALERT_RULES routes elsewhere with ->")
    return ok(what, f"{channel.name} gets the alerts of {', '.join(rules)}")


def polling_hours(settings: Settings, now: datetime) -> Finding:
    hours = PollingHours(settings.poll_hours)
    return ok("POLL_HOURS", f"{settings.poll_hours}: {polling_hours_now(hours, now)}")
