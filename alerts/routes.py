"""Which notification channels a rule's alerts go to: `TSLA:5%/1h -> phone team` in ALERT_RULES.

After the arrow come channel names (the `name=` of NOTIFY_URLS), separated by spaces. A rule
without an arrow goes to every channel, as before names existed; a channel without a name gets only
those rules. Routes are kept by the rule's canonical text, the text stored with each alert, so the
delivery thread routes an alert from the database alone, also one stored before a restart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from alerts.rules import RULE_SEPARATORS, Rule, RuleError, parse_rules

ARROW = "->"
CHANNEL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
NAME_SYNTAX = "a letter, then letters, digits, '_' or '-', at most 32"


@dataclass(frozen=True)
class Routes:
    """Rule text -> the names of the channels its alerts go to; a rule not in it goes everywhere."""

    by_rule: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def wants(self, channel_name: str | None, rule_text: str) -> bool:
        """Whether an alert of this rule goes to the channel of this name (None: an unnamed channel)."""
        names = self.by_rule.get(rule_text)
        return names is None or channel_name in names

    def skipped_by(self, channel_name: str | None) -> list[str]:
        """The rules whose alerts this channel does not get."""
        return sorted(rule for rule, names in self.by_rule.items() if channel_name not in names)

    def describe(self, rule: Rule) -> str:
        """`TSLA:5%/1h -> phone team`, or the rule alone when it goes to every channel."""
        names = self.by_rule.get(rule.text)
        return _route_text(rule.text, names) if names else rule.text

    def text(self) -> str:
        """Every route, as ALERT_RULES writes it."""
        return ", ".join(_route_text(rule, names) for rule, names in self.by_rule.items())


def _route_text(rule: str, names: frozenset[str]) -> str:
    return f"{rule} {ARROW} {' '.join(sorted(names))}"


def parse_routed_rules(text: str) -> tuple[tuple[Rule, ...], Routes]:
    """ALERT_RULES: rules separated by commas, each optionally ending in `-> name name ...`.
    The same rule routed twice goes to the names of both; RuleError names the part that is wrong."""
    rules: list[Rule] = []
    routes: dict[str, set[str]] = {}
    for part in RULE_SEPARATORS.split(text):
        written, arrow, targets = part.partition(ARROW)
        found = parse_rules(written)
        if not found:
            if arrow:
                raise RuleError(f"{part.strip()!r}: no rule before {ARROW}")
            continue
        [rule] = found
        if rule not in rules:
            rules.append(rule)
        if arrow:
            routes.setdefault(rule.text, set()).update(_channel_names(part.strip(), targets.split()))
    return tuple(rules), Routes({rule: frozenset(names) for rule, names in routes.items()})


def _channel_names(part: str, names: list[str]) -> list[str]:
    if not names:
        raise RuleError(f"{part!r}: no channel name after {ARROW} (names from NOTIFY_URLS, e.g. -> phone team)")
    for name in names:
        if not CHANNEL_NAME.fullmatch(name):
            raise RuleError(f"{part!r}: {name!r} is not a channel name ({NAME_SYNTAX})")
    return names


def unknown_names(routes: Routes, known: Iterable[str | None]) -> str | None:
    """The first rule naming a channel NOTIFY_URLS does not have, as a one-line reason; None when all are known."""
    known_names = {name for name in known if name}
    for rule, names in routes.by_rule.items():
        missing = sorted(names - known_names)
        if missing:
            return f"{_route_text(rule, names)}: {no_channel_named(missing, known_names)}"
    return None


def no_channel_named(missing: Iterable[str], known: Iterable[str]) -> str:
    """The reason a setting names channels NOTIFY_URLS does not have, with the names it has."""
    have = ", ".join(sorted(known)) or "none: name one as name=URL"
    return f"no channel named {', '.join(sorted(missing))} in NOTIFY_URLS (named ones: {have})"
