"""Alert rules in their compact written form (`2%/15m`, `TSLA:5%/1h`, `AAPL>200`, `IBM<150`).

A move rule watches the percentage move within a time window, for every symbol or one; a level
rule watches one symbol's price cross a line. Either may end in `cooldown PERIOD` (`IBM>150
cooldown 30m`): it then fires at most once per period and direction, so a price flapping around a
line pages nobody twenty times. Each rule has one canonical text, stored with every alert it fires,
so the same rule written two ways (`tsla:5%/60m`) is still the same rule.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import cached_property

from common.durations import format_duration, parse_duration
from common.symbols import SYMBOL_PATTERN

AVERAGE_PATTERN = re.compile(r"(?P<symbol>[^<>]*)(?P<op>[<>])ma(?P<count>.+)", re.IGNORECASE)
VOLUME_PATTERN = re.compile(r"(?:(?P<symbol>[^:]+):)?vol(?P<times>[^x]+)x/(?P<count>.+)", re.IGNORECASE)
GAP_PATTERN = re.compile(r"(?:(?P<symbol>[^:]+):)?gap(?P<sign>[+-]?)(?P<percent>[^%]+)%", re.IGNORECASE)
MAX_AVERAGE_COUNT = 1000
MOVE_PATTERN = re.compile(r"(?:(?P<symbol>[^:]+):)?(?P<sign>[+-]?)(?P<percent>[^%]+)%/(?P<window>.+)")
LEVEL_PATTERN = re.compile(r"(?P<symbol>[^<>]+)(?P<op>[<>])(?P<level>.+)")
RULE_SEPARATORS = re.compile(r"[,;]")
# After the spaces are taken out: "IBM>150cooldown30m". A symbol never holds "cooldown" followed by a digit.
COOLDOWN_PATTERN = re.compile(r"(?P<rule>.+?)cooldown(?P<period>\d.*)", re.IGNORECASE)
SYNTAX = ("expected PERCENT%/WINDOW (2%/15m), SYMBOL:PERCENT%/WINDOW (TSLA:5%/1h), "
          "SYMBOL>PRICE (AAPL>200) or SYMBOL<PRICE (IBM<150), SYMBOL>maN or <maN (IBM>ma20), "
          "gapPERCENT% (gap2%, TSLA:gap+3%), volTIMESx/COUNT (vol3x/20, IBM:vol5x/30), "
          "each optionally ending in cooldown PERIOD")


class RuleError(ValueError):
    """A rule that cannot be read; the text says which one and why."""



def plain_number(number: float) -> str:
    """A number as written, without the rounding of :g (164.0625 stays 164.0625, 1234567 is not 1.23457e+06)."""
    text = repr(float(number))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class MoveRule:
    """Fires when a price has moved at least `percent` away from the window's low (up) or high (down)."""

    percent: float
    window: timedelta
    symbol: str | None = None  # None: every symbol
    direction: str = "both"  # "up", "down" or "both"
    cooldown: timedelta | None = None  # at most one alert per cooldown and direction

    @cached_property  # read for every quote the rule is checked on
    def text(self) -> str:
        sign = {"up": "+", "down": "-", "both": ""}[self.direction]
        prefix = f"{self.symbol}:" if self.symbol else ""
        return f"{prefix}{sign}{plain_number(self.percent)}%/{format_duration(self.window)}{_cooldown_text(self)}"

    def applies_to(self, symbol: str) -> bool:
        return self.symbol is None or self.symbol == symbol


@dataclass(frozen=True)
class LevelRule:
    """Fires when a symbol's price goes from at-or-below to above `level` (or the other way for `<`)."""

    symbol: str
    level: float
    above: bool
    cooldown: timedelta | None = None

    @cached_property
    def text(self) -> str:
        return f"{self.symbol}{'>' if self.above else '<'}{plain_number(self.level)}{_cooldown_text(self)}"

    def is_past(self, price: float) -> bool:
        """The price is beyond the line, on the rule's side."""
        return price > self.level if self.above else price < self.level

    def applies_to(self, symbol: str) -> bool:
        return self.symbol == symbol


@dataclass(frozen=True)
class AverageRule:
    """Fires when a price goes from at-or-below its average over the last `count` quotes (itself included)
    to above it (or the other way for `<`)."""

    count: int
    above: bool
    symbol: str | None = None  # None: every symbol
    cooldown: timedelta | None = None

    @cached_property
    def text(self) -> str:
        return f"{self.symbol or ''}{'>' if self.above else '<'}ma{self.count}{_cooldown_text(self)}"

    def applies_to(self, symbol: str) -> bool:
        return self.symbol is None or self.symbol == symbol


@dataclass(frozen=True)
class GapRule:
    """Fires on a trading day's first quote when it is at least `percent` away from the last quote before
    the day (the previous close): a gap at the open."""

    percent: float
    symbol: str | None = None
    direction: str = "both"
    cooldown: timedelta | None = None

    @cached_property
    def text(self) -> str:
        sign = {"up": "+", "down": "-", "both": ""}[self.direction]
        prefix = f"{self.symbol}:" if self.symbol else ""
        return f"{prefix}gap{sign}{plain_number(self.percent)}%{_cooldown_text(self)}"

    def applies_to(self, symbol: str) -> bool:
        return self.symbol is None or self.symbol == symbol


@dataclass(frozen=True)
class VolumeRule:
    """Fires when a quote's volume is at least `times` the average volume of the `count` quotes before it."""

    times: float
    count: int
    symbol: str | None = None
    cooldown: timedelta | None = None

    @cached_property
    def text(self) -> str:
        prefix = f"{self.symbol}:" if self.symbol else ""
        return f"{prefix}vol{plain_number(self.times)}x/{self.count}{_cooldown_text(self)}"

    def applies_to(self, symbol: str) -> bool:
        return self.symbol is None or self.symbol == symbol


Rule = MoveRule | LevelRule | AverageRule | GapRule | VolumeRule
# Each kind by one word: the label of the alerts-fired metric.
RULE_KINDS = {MoveRule: "move", LevelRule: "level", AverageRule: "average", GapRule: "gap", VolumeRule: "volume"}


def rule_kind(rule: Rule) -> str:
    return RULE_KINDS[type(rule)]


def _cooldown_text(rule: Rule) -> str:
    return f" cooldown {format_duration(rule.cooldown)}" if rule.cooldown else ""


def parse_rules(text: str) -> tuple[Rule, ...]:
    """Rules separated by commas (or semicolons), spaces ignored; repeats dropped, order kept."""
    rules: list[Rule] = []
    for part in RULE_SEPARATORS.split(text):
        written = "".join(part.split())
        if not written:
            continue
        try:
            rule = parse_rule(written)
        except RuleError as exc:
            if sum(_is_rule(word) for word in part.split()) > 1:  # "2%/15m TSLA:5%/1h": a comma meant?
                raise RuleError(f"{exc} (separate rules with commas)") from None
            raise
        if rule not in rules:
            rules.append(rule)
    return tuple(rules)


def parse_rule(written: str) -> Rule:
    """One rule from its written form (spaces taken out); RuleError naming the rule and the problem otherwise."""
    written = "".join(written.split())
    cooled = COOLDOWN_PATTERN.fullmatch(written)
    if cooled:
        try:
            cooldown = parse_duration(cooled["period"])
        except ValueError as exc:
            raise RuleError(f"{written!r}: cooldown {exc}") from None
        return replace(_parse_plain_rule(cooled["rule"], written), cooldown=cooldown)
    return _parse_plain_rule(written, written)


def _parse_plain_rule(rule: str, written: str) -> Rule:
    average = AVERAGE_PATTERN.fullmatch(rule)
    if average:
        symbol = _symbol(written, average["symbol"]) if average["symbol"] else None
        count = _count(written, average["count"], 2, "average's quote count")
        return AverageRule(count, above=average["op"] == ">", symbol=symbol)
    volume = VOLUME_PATTERN.fullmatch(rule)
    if volume:
        symbol = _symbol(written, volume["symbol"]) if volume["symbol"] is not None else None
        return VolumeRule(_positive(written, volume["times"], "volume multiple"),
                          _count(written, volume["count"], 1, "quote count of the volume average"), symbol)
    gap = GAP_PATTERN.fullmatch(rule)
    if gap:
        symbol = _symbol(written, gap["symbol"]) if gap["symbol"] is not None else None
        return GapRule(_positive(written, gap["percent"], "percentage"), symbol,
                       {"+": "up", "-": "down", "": "both"}[gap["sign"]])
    move = MOVE_PATTERN.fullmatch(rule)
    if move:
        symbol = _symbol(written, move["symbol"]) if move["symbol"] is not None else None
        percent = _positive(written, move["percent"], "percentage")
        try:
            window = parse_duration(move["window"])
        except ValueError as exc:
            raise RuleError(f"{written!r}: window {exc}") from None
        direction = {"+": "up", "-": "down", "": "both"}[move["sign"]]
        return MoveRule(percent, window, symbol, direction)
    level = LEVEL_PATTERN.fullmatch(rule)
    if level:
        return LevelRule(_symbol(written, level["symbol"]), _positive(written, level["level"], "price"),
                         above=level["op"] == ">")
    raise RuleError(f"{written!r} is not a rule: {SYNTAX}")


def _count(written: str, raw: str, least: int, what: str) -> int:
    if not raw.isdigit() or not least <= int(raw) <= MAX_AVERAGE_COUNT:
        raise RuleError(f"{written!r}: the {what} must be a whole number from {least} to {MAX_AVERAGE_COUNT}, "
                        f"got {raw}")
    return int(raw)


def _is_rule(written: str) -> bool:
    try:
        parse_rule(written)
    except RuleError:
        return False
    return True


def _symbol(written: str, raw: str) -> str:
    symbol = raw.upper()
    if not SYMBOL_PATTERN.fullmatch(symbol):
        raise RuleError(f"{written!r}: {raw!r} is not a valid symbol (letters, digits, '.' and '-', at most 20)")
    return symbol


def _positive(written: str, raw: str, what: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise RuleError(f"{written!r}: {raw!r} is not a {what}") from None
    if not value > 0 or not math.isfinite(value):
        raise RuleError(f"{written!r}: the {what} must be a positive number, got {raw}")
    return value


def quotes_needed(rules: tuple[Rule, ...], symbol: str) -> int:
    """How many of the last quotes the rules that apply to `symbol` look back over (at least the last one)."""
    counts = [rule.count for rule in rules if isinstance(rule, AverageRule) and rule.applies_to(symbol)]
    counts += [rule.count + 1 for rule in rules if isinstance(rule, VolumeRule) and rule.applies_to(symbol)]
    return max(counts, default=1)


def longest_window(rules: tuple[Rule, ...], symbol: str) -> timedelta:
    """How much history the move rules that apply to `symbol` look back over (zero when none)."""
    windows = [rule.window for rule in rules if isinstance(rule, MoveRule) and rule.applies_to(symbol)]
    return max(windows, default=timedelta(0))
