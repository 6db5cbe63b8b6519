"""SIGHUP makes the consumer read its alert rules again, without a restart and without losing its place.

The rules come from the same places as at start (flags, environment, settings file), so an edit of
the settings file takes effect on `kill -HUP`. A set that cannot be read keeps the rules in force,
with one ERROR line saying why. The new rules take over from the next batch: each symbol's state is
rebuilt from the database, so a rule that already held does not fire on the switch.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable

from alert_outbox import AlertOutbox
from alert_rules import Rule
from cli import read_settings
from config import ConfigError, Settings

log = logging.getLogger("consumer")


def rules_text(rules: tuple[Rule, ...]) -> str:
    return ", ".join(rule.text for rule in rules) or "none"


class RuleReloader:
    """Install with `install()`; call `reload_if_asked()` between batches (the signal handler only flags)."""

    def __init__(self, args: argparse.Namespace, store: object,
                 open_outbox: Callable[[Settings], AlertOutbox | None],
                 announce: Callable[[Settings], None]) -> None:
        self.args = args
        self.store = store  # consumer.QuoteStore: its engine and outbox
        self.open_outbox = open_outbox
        self.announce = announce
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
        except ConfigError as exc:
            log.error("SIGHUP: the settings cannot be read, the alert rules in force are kept (%s): %s",
                      rules_text(engine.rules), exc)
            return
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
