"""The producer's memory across restarts: the API calls it made, what it published, what Kafka still owes.

Without it a restart would reset the call budget (and overrun the API's limits), publish the
last intraday bars again, and forget quotes fetched while Kafka was unreachable.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from alphavantage import Quote
from messages import InvalidMessage, decode_quote, encode_quote, quote_from_row
from publisher import NewQuoteFilter
from ratelimit import RateLimiter

log = logging.getLogger(__name__)


class StateError(RuntimeError):
    """The state file cannot be written."""


def load_state(path: Path, limiter: RateLimiter, seen: NewQuoteFilter) -> list[Quote]:
    """Restore limiter and filter from `path` and return the quotes still to deliver.

    A missing file is a first run; a damaged one is reported and ignored.
    """
    try:
        state = json.loads(path.read_text())
        limiter.restore(state["limiter"])
        seen.restore(state["published"])
        return [quote_from_row(decode_quote(message.encode())) for message in state.get("held", [])]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError, AttributeError, InvalidMessage) as exc:
        log.warning("ignoring unreadable state file %s (%s): the call budget starts afresh", path, exc)
        return []


def save_state(path: Path, limiter: RateLimiter, seen: NewQuoteFilter, held: list[Quote]) -> None:
    """Write the state atomically (a crash mid-write leaves the previous state intact)."""
    state = {"limiter": limiter.snapshot(), "published": seen.snapshot(),
             "held": [encode_quote(quote).decode() for quote in held]}
    temporary = path.with_name(path.name + ".tmp")
    try:
        temporary.write_text(json.dumps(state))
        os.replace(temporary, path)
    except OSError as exc:
        raise StateError(f"cannot write state file {str(path)!r}: {exc.strerror or exc}") from None
