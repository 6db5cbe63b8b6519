"""What /healthz and /readyz answer: alive (the main loop turns) and ready (what the process needs answers).

Each answer is JSON, {"status": ..., "checks": {name: {"ok": ..., "detail" or "reason": ...}}}, with
200 or 503. A state that is neither (the market closed, the day's calls spent) goes in "state": it is
what the process is meant to do then, not a fault.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service.heartbeat import seconds_since_beat

# The main loops turn at least every few seconds; one that has not for this long is stuck.
STALL_SECONDS = 60.0
PROBE_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class Check:
    ok: bool
    text: str  # what was found when ok, why not otherwise

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail" if self.ok else "reason": self.text}


def main_loop_check(stall_after: float = STALL_SECONDS) -> Check:
    age = seconds_since_beat()
    if age > stall_after:
        return Check(False, f"the main loop has not turned for {age:.0f} s (limit {stall_after:g} s)")
    return Check(True, f"turned {age:.1f} s ago")


def kafka_answers(servers: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> Check:
    """Whether any bootstrap server accepts a connection (the clients' own state is checked beside this)."""
    failures = []
    for server in servers.split(","):
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return Check(True, f"{server} accepts connections")
        except OSError as exc:
            failures.append(f"{server}: {exc.strerror or type(exc).__name__}")
    return Check(False, f"Kafka is not reachable ({'; '.join(failures)})")


class Health:
    """The answers of one process: `checks` gives its readiness checks by name, `state` its state in words."""

    def __init__(self, checks: Callable[[], dict[str, Check]],
                 state: Callable[[], dict[str, Any]] = dict, stall_after: float = STALL_SECONDS) -> None:
        self.checks = checks
        self.state = state
        self.stall_after = stall_after

    def live(self) -> tuple[int, dict[str, Any]]:
        loop = main_loop_check(self.stall_after)
        return (200 if loop.ok else 503), {"status": "ok" if loop.ok else "stalled",
                                           "checks": {"main_loop": loop.as_json()}}

    def ready(self) -> tuple[int, dict[str, Any]]:
        checks = {"main_loop": main_loop_check(self.stall_after), **self.checks()}
        ready = all(check.ok for check in checks.values())
        answer: dict[str, Any] = {"status": "ready" if ready else "unready",
                                  "checks": {name: check.as_json() for name, check in checks.items()}}
        state = self.state()
        if state:
            answer["state"] = state
        return (200 if ready else 503), answer
