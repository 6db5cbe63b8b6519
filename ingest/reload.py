"""SIGHUP makes the consumer read its alert rules and notification URLs again, without a restart.

They come from the same places as at start (flags, environment, settings file), so an edit of the
settings file takes effect on `kill -HUP`. A set that cannot be read keeps the rules and channels in
force, with one ERROR line saying why. New rules take over from the next batch: each symbol's state
is rebuilt from the database, so a rule that already held does not fire on the switch. New channels
start with the next alert; a channel kept keeps its place. Changed routes (ALERT_RULES' ->) apply
to every alert not yet delivered, those stored before the signal included.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable

from alerts.outbox import AlertOutbox
from alerts.routes import Routes
from alerts.rules import Rule
from common.redact import add_secrets
from config import ConfigError, Settings, read_settings
from notify.channels import Channel, ChannelError, check_channels

log = logging.getLogger("consumer")


def rules_text(rules: tuple[Rule, ...]) -> str:
    return ", ".join(rule.text for rule in rules) or "none"


class RuleReloader:
    """Install with `install()`; call `reload_if_asked()` between batches (the signal handler only flags)."""

    def __init__(self, args: argparse.Namespace, store: object,
                 open_outbox: Callable[[Settings], AlertOutbox | None],
                 announce: Callable[[Settings], None], channels: tuple[Channel, ...] = (),
                 routes: Routes | None = None,
                 switch_channels: Callable[[tuple[Channel, ...], Routes], None] = lambda channels, routes: None,
                 ) -> None:
        self.args = args
        self.store = store  # ingest.store.QuoteStore: its engine and outbox
        self.open_outbox = open_outbox
        self.announce = announce
        self.channels = channels
        self.routes = routes or Routes()
        self.switch_channels = switch_channels
        self.requested = threading.Event()

    def install(self) -> None:
        signal.signal(signal.SIGHUP, lambda signum, frame: self.requested.set())

    def reload_if_asked(self) -> None:
        if not self.requested.is_set():
            return
        self.requested.clear()
        engine = self.store.engine
        try:
            settings = read_settings(self.args)
            if settings.notify_channels != self.channels:
                check_channels(settings.notify_channels)
        except (ConfigError, ChannelError) as exc:
            reason = f"NOTIFY_URLS: {exc}" if isinstance(exc, ChannelError) else exc
            log.error("SIGHUP: the settings cannot be read, so the alert rules (%s) and notification channels in "
                      "force are kept: %s", rules_text(engine.rules), reason)
            return
        if settings.notify_channels != self.channels or settings.alert_routes != self.routes:
            add_secrets(settings.secrets)
            log.info("SIGHUP: notifications now go to %s%s",
                     ", ".join(channel.name for channel in settings.notify_channels) or "none",
                     f"; routes: {settings.alert_routes.text()}" if settings.alert_routes.by_rule else "")
            self.channels, self.routes = settings.notify_channels, settings.alert_routes
            self.switch_channels(self.channels, self.routes)
        if settings.alert_rules == engine.rules:
            log.info("SIGHUP: alert rules unchanged: %s", rules_text(engine.rules))
            return
        log.info("SIGHUP: alert rules now %s (were %s)", rules_text(settings.alert_rules), rules_text(engine.rules))
        engine.rules = settings.alert_rules
        engine.forget()
        if settings.alert_rules and self.store.outbox is None:
            self.store.outbox = self.open_outbox(settings)
        self.announce(settings)
        for line in engine.rules_holding_now():
            log.info("alert rule %s", line)
