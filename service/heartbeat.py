"""The main loop's heartbeat: each turn of a script's loop beats, and /healthz says how long ago it last did.

One per process, like the process itself: the loops that beat (the producer's poll loop, the
consumer's poll-and-store loop, a wait for Kafka or for a locked database) need not be handed anything.
"""

from __future__ import annotations

import time

_last_beat = time.monotonic()


def beat() -> None:
    global _last_beat
    _last_beat = time.monotonic()


def seconds_since_beat() -> float:
    return time.monotonic() - _last_beat
