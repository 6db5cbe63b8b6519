"""Calls leave at least the spacing apart where the API sees them: as their bytes go out.

The limiter (quotesource/limiter.py) decides on the producer's main thread when a call may start
and hands it to a thread of its own. That thread can run late (a busy main thread, the GIL), and
two calls the limiter spaced 20 ms apart then reached the server 2.7 ms apart. The gate is the last
step before a request is written: connected and ready, it waits until the previous request went
out at least the spacing earlier, and the time it went out is taken after its write, so no thread
can close the gap whatever the scheduler does.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

STANDARD_POOLS = {"http": HTTPConnectionPool, "https": HTTPSConnectionPool}


class SendGate:
    """Lets one request out at a time, each at least `interval` seconds after the previous one left."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = interval
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._last_sent = -math.inf

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the gate while writing one request."""
        with self._lock:
            wait = self._last_sent + self.interval - self.clock()
            if wait > 0:
                self.sleep(wait)
            try:
                yield
            finally:
                self._last_sent = self.clock()


class _GatedSend:
    """Mixed into urllib3's connection classes: the request's first bytes go out through the gate."""

    gate: SendGate

    def endheaders(self, message_body: Any = None, *, encode_chunked: bool = False) -> None:
        if self.sock is None:  # type: ignore[attr-defined]
            self.connect()  # type: ignore[attr-defined]  # a new connection's set-up is not the call's start
        with self.gate.turn():
            super().endheaders(message_body, encode_chunked=encode_chunked)  # type: ignore[misc]


def _gated_pools(gate: SendGate) -> dict[str, type[HTTPConnectionPool]]:
    pools: dict[str, type[HTTPConnectionPool]] = {}
    for scheme, pool in STANDARD_POOLS.items():
        connection = type(f"Gated{pool.ConnectionCls.__name__}", (_GatedSend, pool.ConnectionCls), {"gate": gate})
        pools[scheme] = type(f"Gated{pool.__name__}", (pool,), {"ConnectionCls": connection})
    return pools


class GatedAdapter(HTTPAdapter):
    """requests' adapter whose connections, direct or through an HTTP(S) proxy, write through the gate
    (through a SOCKS proxy they do not: only the limiter's spacing holds there)."""

    def __init__(self, gate: SendGate, **kwargs: Any) -> None:
        self._pools = _gated_pools(gate)
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        # An HTTP(S) proxy's manager uses urllib3's plain pools; a SOCKS proxy's its own, left as they are.
        if getattr(manager, "pool_classes_by_scheme", None) == STANDARD_POOLS:
            manager.pool_classes_by_scheme = self._pools
        return manager


def gated_session(gate: SendGate) -> requests.Session:
    """A requests session whose every request leaves through `gate`."""
    session = requests.Session()
    adapter = GatedAdapter(gate)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
