"""While quotes flow, a fetch for quiet partitions is held a few milliseconds, not KAFKA_FETCH_MAX_WAIT_MS.

kafka-python keeps one fetch in flight per broker and leaves out of it the partitions whose records
it still holds, so now and then a fetch names only quiet partitions; the broker holds it for the
fetch's maximum wait, and quotes arriving meanwhile on the busy partitions wait behind it. Traced in
bench/e2e_latency.py at 1,000 msg/s on a topic with one quiet partition: polls of 60, 109 and 142 ms
(one, two and three holds of 50 ms) that returned five records appended before they began.

A short hold costs an empty answer every few milliseconds while such a fetch is out. It is worth it
only while quotes come fast, at least BUSY_RATE a second (a 50 ms hold then delays five or more):
a slower feed, or an idle consumer, keeps the configured hold and asks its broker
1000/KAFKA_FETCH_MAX_WAIT_MS times a second as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, MutableMapping

from kafka import KafkaConsumer

log = logging.getLogger(__name__)

BUSY_FETCH_WAIT_MS = 5
BUSY_RATE = 100.0  # records a second, measured over each BUSY_FOR_SECONDS
BUSY_FOR_SECONDS = 1.0


class FetchWait:
    """Sets the hold of each fetch kafka-python builds next: short while records flow, the configured one when idle."""

    def __init__(self, consumer: KafkaConsumer, busy_ms: int = BUSY_FETCH_WAIT_MS, busy_rate: float = BUSY_RATE,
                 busy_for: float = BUSY_FOR_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_ms = int(consumer.config["fetch_max_wait_ms"])
        self.busy_ms = min(busy_ms, self.idle_ms)
        self.busy_rate = busy_rate
        self.busy_for = busy_for
        self.clock = clock
        self._last_records = -float("inf")
        self._window_start = clock()
        self._window_records = 0
        self._rate = 0.0  # records a second over the last whole window
        # kafka-python 3.0.12 reads its fetcher's config each time it builds a fetch request (on its IO
        # thread); tests/test_fetch_latency.py fails if a later version stops doing so.
        fetcher = getattr(consumer, "_fetcher", None)
        self._config: MutableMapping[str, object] | None = getattr(fetcher, "config", None)
        if self._config is None or "fetch_max_wait_ms" not in self._config:
            log.debug("this kafka-python has no fetcher config to adjust; every fetch is held up to %d ms",
                      self.idle_ms)
            self._config = None

    @property
    def current_ms(self) -> int:
        return int(self._config["fetch_max_wait_ms"]) if self._config is not None else self.idle_ms  # type: ignore[call-overload]

    def after_poll(self, records: int) -> None:
        """Call after each poll with the number of records it returned."""
        if self._config is None:
            return
        now = self.clock()
        if records:
            self._last_records = now
            self._window_records += records
        if now - self._window_start >= self.busy_for:
            self._rate = self._window_records / (now - self._window_start)
            self._window_start, self._window_records = now, 0
        busy = now - self._last_records < self.busy_for and self._rate >= self.busy_rate
        wanted = self.busy_ms if busy else self.idle_ms
        if self._config["fetch_max_wait_ms"] != wanted:
            self._config["fetch_max_wait_ms"] = wanted
