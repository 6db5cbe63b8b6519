"""The consumer's INFO line about what it stored: one per batch while quotes come now and then, at
most one a second under load.

At 5,000 quotes a second the consumer stores about a hundred batches a second; a line for each,
naming every symbol's move, flooded the log and spent the consumer's time on text. Under load the
batches of each second are summed into one line, whose moves are those since the line before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from streaming.messages import QuoteRow

log = logging.getLogger("consumer")
LINE_INTERVAL_SECONDS = 1.0


class PriceBoard:
    """The last price logged per symbol, to show what moved since."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def moves(self, rows: list[QuoteRow]) -> str:
        latest: dict[str, QuoteRow] = {}
        for row in rows:
            if row.symbol not in latest or row.ts >= latest[row.symbol].ts:
                latest[row.symbol] = row
        parts = []
        for symbol in sorted(latest):
            price = latest[symbol].price
            before = self.last.get(symbol)
            move = f" ({(price - before) / before * 100:+.2f}%)" if before else ""
            parts.append(f"{symbol} {price!r}{move}")  # as stored: no rounding, no exponent
            self.last[symbol] = price
        return ", ".join(parts)


class StoredLog:
    """Call `stored` after each batch and `flush` between polls; says what was stored, at most every
    `interval` seconds (a batch after a quiet spell is said at once)."""

    def __init__(self, interval: float = LINE_INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.board = PriceBoard()
        self._said_at = -interval
        self._count = 0
        self._since = 0.0
        self._rows: list[list[QuoteRow]] = []  # the batches not yet said

    def stored(self, count: int, rows: list[QuoteRow]) -> None:
        if not count or not log.isEnabledFor(logging.INFO):
            return
        if not self._rows:
            self._since = self.clock()
        self._count += count
        self._rows.append(rows)
        self.flush()

    def flush(self, force: bool = False) -> None:
        """Say what is pending if the last line is at least `interval` old (or now, on the way out)."""
        now = self.clock()
        if not self._rows or (now - self._said_at < self.interval and not force):
            return
        moves = self.board.moves([row for rows in self._rows for row in rows])
        if len(self._rows) == 1:
            log.info("stored %d new quote(s): %s", self._count, moves, extra={"count": self._count})
        else:
            log.info("stored %d new quote(s) in %d batches over %.1f s: %s", self._count, len(self._rows),
                     now - self._since, moves, extra={"count": self._count})
        self._said_at = now
        self._count = 0
        self._rows.clear()
