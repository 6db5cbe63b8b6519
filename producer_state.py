"""The producer's memory across restarts: the API calls it made and the quotes it published.

Without it a restart would reset the call budget (and overrun the API's limits) and publish the
last intraday bars again.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from publisher import NewQuoteFilter
from ratelimit import RateLimiter

log = logging.getLogger(__name__)


class StateError(RuntimeError):
    """The state file cannot be written."""


def load_state(path: Path, limiter: RateLimiter, seen: NewQuoteFilter) -> None:
    """Restore limiter and filter from `path`; a missing file is a first run, a damaged one is reported."""
    try:
        state = json.loads(path.read_text())
        limiter.restore(state["limiter"])
        seen.restore(state["published"])
    except FileNotFoundError:
        return
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable state file %s (%s): the call budget starts afresh", path, exc)


def save_state(path: Path, limiter: RateLimiter, seen: NewQuoteFilter) -> None:
    """Write the state atomically (a crash mid-write leaves the previous state intact)."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        temporary.write_text(json.dumps({"limiter": limiter.snapshot(), "published": seen.snapshot()}))
        os.replace(temporary, path)
    except OSError as exc:
        raise StateError(f"cannot write state file {str(path)!r}: {exc.strerror or exc}") from None
