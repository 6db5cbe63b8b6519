"""Alert rules evaluated on each stored quote, with state that a restart recovers from the database.

Alerts are a pure function of each symbol's stored price series: a rule fires on the quote where its
condition becomes true, and not again until it has been false. Because the state is rebuilt from
the stored quotes, a restart or a redelivered batch neither loses nor repeats an alert.
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import db
from alerts.lookback import last_alert_times, recent_quotes
from alerts.rules import (
    AverageRule,
    GapRule,
    LevelRule,
    MoveRule,
    Rule,
    VolumeRule,
    longest_window,
    quotes_needed,
)
from common.timestamps import format_time
from market.days import quote_day
from quotesource.alphavantage import TIME_SERIES_DAILY
from streaming.messages import AlertRow, QuoteRow, future_limit

log = logging.getLogger("alerts")
# A move of exactly the threshold counts, whatever binary floating point makes of 102/100.
TOLERANCE = 1e-9


def seconds_of(ts: str) -> float:
    """A stored UTC time as seconds since the epoch."""
    return datetime.fromisoformat(ts).timestamp()


class WindowExtremes:
    """The lowest and highest price of the last `window` seconds, in O(1) amortised per quote.

    Two monotonic queues: the front of `lows` is the window's lowest price, of `highs` its highest.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self.lows: deque[tuple[float, str, float]] = deque()
        self.highs: deque[tuple[float, str, float]] = deque()

    def push(self, moment: float, ts: str, price: float) -> None:
        while self.lows and self.lows[-1][2] >= price:
            self.lows.pop()
        self.lows.append((moment, ts, price))
        while self.highs and self.highs[-1][2] <= price:
            self.highs.pop()
        self.highs.append((moment, ts, price))

    def extremes(self, moment: float) -> tuple[tuple[str, float], tuple[str, float]] | None:
        """((ts, low), (ts, high)) of the quotes at most `window` seconds before `moment`; None if none."""
        oldest = moment - self.window
        for queue in (self.lows, self.highs):
            while queue and queue[0][0] < oldest:
                queue.popleft()
        if not self.lows:
            return None
        return (self.lows[0][1], self.lows[0][2]), (self.highs[0][1], self.highs[0][2])


class SymbolState:
    """What the rules of one symbol remember between quotes."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules
        self.last: tuple[str, float] | None = None  # (ts, price) of the last quote evaluated
        self.last_day: str | None = None  # its trading day, when a gap rule needs it
        self.needs_day = any(isinstance(rule, GapRule) for rule in rules)
        # The last quotes' (ts, price), as many as the longest moving average needs (itself excluded).
        averaged = [rule.count for rule in rules if isinstance(rule, AverageRule)]
        self.prices: deque[tuple[str, float]] = deque(maxlen=max(averaged) - 1 if averaged else 0)
        self.seen = 0  # quotes evaluated so far (replayed ones included)
        volumes = [rule.count for rule in rules if isinstance(rule, VolumeRule)]
        self.volumes: deque[int] = deque(maxlen=max(volumes) if volumes else 0)  # the last quotes' volumes
        self.windows = {rule.window.total_seconds(): WindowExtremes(rule.window.total_seconds())
                        for rule in rules if isinstance(rule, MoveRule)}
        # Each rule with its text and its window's extremes (None for a level rule), looked up once.
        self.checks = [(rule, rule.text, self.windows.get(rule.window.total_seconds())
                        if isinstance(rule, MoveRule) else None) for rule in rules]
        self.holding: set[tuple[str, str]] = set()  # (rule text, direction) whose condition held last time
        # Rules with a cooldown: their period, and when each (rule text, direction) last fired (epoch s).
        self.cooldowns = {rule.text: rule.cooldown.total_seconds() for rule in rules if rule.cooldown}
        self.last_fired: dict[tuple[str, str], float] = {}

    def evaluate(self, symbol: str, ts: str, price: float, fired_at: str,
                 trading_day: str | None = None, volume: int = 0) -> list[AlertRow]:
        """The alerts this quote fires; it must be newer than the last one evaluated.

        A crossing within a rule's cooldown of its last alert (same direction) fires nothing; the
        condition still counts as holding, so only a later crossing fires once the cooldown is over."""
        moment = seconds_of(ts)
        day = quote_day(ts, trading_day).day if self.needs_day else None
        alerts: list[AlertRow] = []
        holding: set[tuple[str, str]] = set()
        for rule, text, window in self.checks:
            for direction, reference in self._conditions(rule, window, moment, price, day, volume):
                holding.add((text, direction))
                if reference is not None and (text, direction) not in self.holding:
                    if text in self.cooldowns:
                        last = self.last_fired.get((text, direction))
                        if last is not None and moment - last < self.cooldowns[text]:
                            continue
                        self.last_fired[text, direction] = moment
                    ref_ts, ref_price = reference
                    # A volume rule's move is the volume's excess over its average; any other's, the price's.
                    move = round(self._volume_excess(rule, volume) if isinstance(rule, VolumeRule)
                                 else (price - ref_price) / ref_price * 100, 4)
                    alerts.append(AlertRow(symbol, text, direction, price, ts, ref_price, ref_ts, move, fired_at))
        self.holding = holding
        for extremes in self.windows.values():
            extremes.push(moment, ts, price)
        if self.prices.maxlen:
            self.prices.append((ts, price))
        if self.volumes.maxlen:
            self.volumes.append(volume)
        self.seen += 1
        self.last, self.last_day = (ts, price), day
        return alerts

    def _conditions(self, rule: Rule, window: WindowExtremes | None, moment: float, price: float,
                    day: str | None, volume: int) -> list[tuple[str, tuple[str, float] | None]]:
        """The directions in which `rule` holds at this quote, each with its reference (ts, price).

        A level rule holds while the price is past its line; its reference is the quote before. The
        first quote of a symbol has none: it only tells which side of the line the price starts on.
        Likewise an average rule on the first quote that has its average: the reference is the average,
        stamped with the oldest quote in it. A gap rule holds on a day's first quote only, against the
        last quote before it. A volume rule holds while the volume is the multiple above its average;
        its reference is the quote before.
        """
        if isinstance(rule, LevelRule):
            return [("up" if rule.above else "down", self.last)] if rule.is_past(price) else []
        if isinstance(rule, AverageRule):
            return self._average_condition(rule, price)
        if isinstance(rule, GapRule):
            return self._gap_condition(rule, price, day)
        if isinstance(rule, VolumeRule):
            excess = self._volume_excess(rule, volume)
            held = excess is not None and 1 + excess / 100 >= rule.times - TOLERANCE
            return [("up", self.last)] if held else []
        assert window is not None
        found = window.extremes(moment)
        if found is None:
            return []
        (low_ts, low), (high_ts, high) = found
        held = []
        if rule.direction != "down" and (price - low) / low * 100 >= rule.percent - TOLERANCE:
            held.append(("up", (low_ts, low)))
        if rule.direction != "up" and (high - price) / high * 100 >= rule.percent - TOLERANCE:
            held.append(("down", (high_ts, high)))
        return held

    def _average_condition(self, rule: AverageRule, price: float) -> list[tuple[str, tuple[str, float] | None]]:
        if self.seen < rule.count - 1:
            return []  # not yet `count` quotes
        window = list(self.prices)[len(self.prices) - (rule.count - 1):]
        # fsum: exactly rounded whatever the order of the terms, so a restart's replay decides alike.
        average = math.fsum([price, *(earlier for _, earlier in window)]) / rule.count
        past = price > average if rule.above else price < average
        if not past:
            return []
        # The first quote with an average only tells which side of it the price starts on.
        reference = (window[0][0], round(average, 6)) if self.seen >= rule.count else None
        return [("up" if rule.above else "down", reference)]

    def _volume_excess(self, rule: VolumeRule, volume: int) -> float | None:
        """How far `volume` is above the average of the `count` volumes before it, in %; None without them."""
        if len(self.volumes) < rule.count:
            return None
        average = math.fsum(list(self.volumes)[len(self.volumes) - rule.count:]) / rule.count
        return (volume / average - 1) * 100 if average > 0 else None

    def _gap_condition(self, rule: GapRule, price: float,
                       day: str | None) -> list[tuple[str, tuple[str, float] | None]]:
        if self.last is None or self.last_day is None or day == self.last_day:
            return []
        close_ts, close = self.last
        gap = (price - close) / close * 100
        held = []
        if rule.direction != "down" and gap >= rule.percent - TOLERANCE:
            held.append(("up", (close_ts, close)))
        if rule.direction != "up" and -gap >= rule.percent - TOLERANCE:
            held.append(("down", (close_ts, close)))
        return held


class AlertEngine:
    """Evaluates the rules on quotes as they are stored; each symbol's state is loaded from the
    database the first time the symbol is seen (or after `forget`, when partitions move)."""

    def __init__(self, rules: tuple[Rule, ...], connection: sqlite3.Connection,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.rules = rules
        self.connection = connection
        self.clock = clock
        self.states: dict[str, SymbolState] = {}

    def forget(self) -> None:
        """Drop what is remembered; the next quote of each symbol reloads its state from the database."""
        self.states.clear()

    def evaluate(self, rows: Iterable[QuoteRow]) -> list[AlertRow]:
        """The alerts fired by the quotes not yet stored (older or repeated ones are skipped)."""
        if not self.rules:
            return []
        fired_at = format_time(self.clock())
        alerts: list[AlertRow] = []
        for row in rows:
            state = self.states.get(row.symbol) or self._load(row.symbol)
            if state.last is not None and row.ts <= state.last[0]:
                continue  # already stored (a redelivery), or older than what is: not a move now
            if state.rules:
                fired = state.evaluate(row.symbol, row.ts, row.price, fired_at, row.trading_day, row.volume)
                if row.source != TIME_SERIES_DAILY:  # history sets the scene; a crossing months ago is no news
                    alerts.extend(fired)
            else:
                state.last = (row.ts, row.price)
        return alerts

    def rules_holding_now(self) -> list[str]:
        """Lines for the level rules the latest stored price is already past: a user who just set
        `IBM>60` with IBM at 66 learns why nothing fires, and when something will."""
        levels = [rule for rule in self.rules if isinstance(rule, LevelRule)]
        latest = {summary.symbol: summary for summary in db.read_summaries(
            self.connection, sorted({rule.symbol for rule in levels}))}
        lines = []
        for rule in levels:
            summary = latest.get(rule.symbol)
            if summary and rule.is_past(summary.price):
                lines.append(f"{rule.text} holds now at {summary.price!r} (quote of {summary.ts}): it fires on "
                             "the next crossing")
        return lines

    def _load(self, symbol: str) -> SymbolState:
        """Replay the stored history the rules look back over, firing nothing, to rebuild the state."""
        state = SymbolState(tuple(rule for rule in self.rules if rule.applies_to(symbol)))
        if state.cooldowns:  # when each rule last fired: a restart does not reopen a cooldown
            for (text, direction), ts in last_alert_times(self.connection, symbol).items():
                if text in state.cooldowns:
                    state.last_fired[text, direction] = seconds_of(ts)
        lookback = longest_window(state.rules, symbol).total_seconds()
        # A quote stamped far in the future (stored before such quotes were refused) would make every
        # real quote after it look late and fire nothing: the replay stops at the plausible present.
        for ts, price, trading_day, volume in recent_quotes(self.connection, symbol, lookback,
                                                               quotes_needed(state.rules, symbol),
                                                               future_limit(self.clock())):
            state.evaluate(symbol, ts, price, "", trading_day, volume)
        self.states[symbol] = state
        return state
