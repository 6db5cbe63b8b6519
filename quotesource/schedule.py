"""Which call goes next, and the calls in flight: targets round-robin, never one target twice at once."""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

R = TypeVar("R")


@dataclass(eq=False)
class Target:
    """What one call asks for: one symbol, or a chunk of up to 100 for bulk quotes."""

    symbols: list[str]
    function: str | None = None  # None: the configured function; TIME_SERIES_DAILY for a backfill call
    attempts: int = 0  # failed calls in a row (--once gives up after a few)

    @property
    def label(self) -> str:
        name = self.symbols[0] if len(self.symbols) == 1 \
            else f"{self.symbols[0]}..{self.symbols[-1]} ({len(self.symbols)} symbols)"
        return f"{name} history" if self.function else name


@dataclass
class Rotation:
    """The targets in round-robin order; a target being called is out of the queue until it is back."""

    targets: list[Target]
    once: bool = False  # one successful (or given-up) call per target, then done
    _queue: deque[Target] = field(init=False)
    _done: set[Target] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self._queue = deque(self.targets)

    def take(self, wanted: Callable[[Target], bool] | None = None) -> Target | None:
        """The next target to call (the first `wanted` one, if given), out of the queue until put back
        (None: all are in flight or done, or none is wanted)."""
        if wanted is None:
            return self._queue.popleft() if self._queue else None
        target = next((target for target in self._queue if wanted(target)), None)
        if target is not None:
            self._queue.remove(target)
        return target

    def waiting(self) -> list[Target]:
        """The targets waiting for their turn, in order."""
        return list(self._queue)

    def has_waiting(self) -> bool:
        """A target is waiting for its turn (not in flight, not done)."""
        return bool(self._queue)

    def put_back(self, target: Target, retry_first: bool = False) -> None:
        """A call has ended: the target waits for its next turn, or goes first when it must be retried."""
        if target not in self.targets:
            return  # dropped while in flight
        if retry_first:
            self._queue.appendleft(target)
        elif self.once:
            self._done.add(target)
        else:
            self._queue.append(target)

    def drop(self, symbol: str) -> None:
        """Take a symbol out of the rotation; a target left with none goes too."""
        for target in list(self.targets):
            if symbol in target.symbols:
                target.symbols.remove(symbol)
                if not target.symbols:
                    self.targets.remove(target)
                    if target in self._queue:
                        self._queue.remove(target)

    def finished(self) -> bool:
        """With `once`: every target had its call. Always: nothing left to poll."""
        if not self.targets:
            return True
        return self.once and all(target in self._done for target in self.targets)


@dataclass
class Finished(Generic[R]):
    """A call that came back: its target, the budget's record of it, when it ended, what it returned or raised."""

    target: Target
    token: object
    ended_at: float
    result: R | None
    error: BaseException | None


class CallPool(Generic[R]):
    """Runs calls on their own threads, at most `size` at once; the caller collects them one by one.

    Daemon threads: a call that is still waiting for its answer never holds up the process's exit.
    """

    def __init__(self, size: int, call: Callable[[Target], R], clock: Callable[[], float] = time.time) -> None:
        self.size = size
        self.call = call
        self.clock = clock  # the budget's clock: a call's end is measured where it ends, not when it is collected
        self.in_flight: set[Target] = set()
        self._finished: queue.SimpleQueue[Finished[R]] = queue.SimpleQueue()

    def has_room(self) -> bool:
        return len(self.in_flight) < self.size

    def start(self, target: Target, token: object) -> None:
        self.in_flight.add(target)
        threading.Thread(target=self._run, args=(target, token), daemon=True,
                         name=f"call {target.label}").start()

    def _run(self, target: Target, token: object) -> None:
        try:
            result = self.call(target)
        except BaseException as exc:  # handed to the caller, which knows what each kind means
            self._finished.put(Finished(target, token, self.clock(), None, exc))
        else:
            self._finished.put(Finished(target, token, self.clock(), result, None))

    def next_finished(self, timeout: float) -> Finished[R] | None:
        """The next call to come back, waiting up to `timeout` seconds for one."""
        try:
            finished = self._finished.get(timeout=max(0.0, timeout)) if timeout > 0 else self._finished.get_nowait()
        except queue.Empty:
            return None
        self.in_flight.discard(finished.target)
        return finished
