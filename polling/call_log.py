"""The producer's INFO line about what its calls published: one per call while calls come now and then,
at most one a second under load (each call's own line is then at DEBUG).

At premium rates (hundreds of calls a minute) a line per call buried everything else in the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("producer")
LINE_INTERVAL_SECONDS = 1.0


class CallLog:
    """`said(...)` after each call, `flush()` at each turn of the poll loop and on the way out."""

    def __init__(self, interval: float = LINE_INTERVAL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._said_at = -interval
        self._since = 0.0
        self._calls = 0
        self._published = 0
        self._symbols: set[str] = set()

    def said(self, line: str, symbols: set[str], published: int, label: str) -> None:
        """One call's line: said at once after a quiet spell, else summed into the next summary."""
        if not log.isEnabledFor(logging.INFO):
            return
        extra = {"symbol": label, "count": published}
        if not self._calls and self.clock() - self._said_at >= self.interval:
            log.info("%s", line, extra=extra)
            self._said_at = self.clock()
            return
        log.debug("%s", line, extra=extra)
        if not self._calls:
            self._since = self.clock()
        self._calls += 1
        self._published += published
        self._symbols |= symbols
        self.flush()

    def flush(self, force: bool = False) -> None:
        now = self.clock()
        if not self._calls or (now - self._said_at < self.interval and not force):
            return
        log.info("published %d new quote(s) of %d symbol(s) in %d call(s) over %.1f s", self._published,
                 len(self._symbols), self._calls, now - self._since, extra={"count": self._published})
        self._said_at = now
        self._calls, self._published = 0, 0
        self._symbols = set()
