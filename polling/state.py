"""The producer's memory across restarts: the API calls it made, what it published, what Kafka still owes.

Without it a restart would reset the call budget (and overrun the API's limits), publish the
last intraday bars again, and forget quotes fetched while Kafka was unreachable. The file is the
producer's alone: a lock beside it keeps a second producer from spending the same budget.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from polling.publisher import NewQuoteFilter
from quotesource.alphavantage import Quote
from quotesource.limiter import RateLimiter
from quotesource.plan import ScheduleMemory
from streaming.messages import InvalidMessage, decode_quote, encode_quote, quote_from_row

log = logging.getLogger("producer_state")  # the name its log lines carry


class StateError(RuntimeError):
    """The state file cannot be written, or another producer holds it."""


@contextlib.contextmanager
def state_lock(path: Path) -> Iterator[None]:
    """Hold an OS lock on `path`.lock while the producer runs; the OS releases it when the holder dies.

    Two producers on one state file would each believe they had the whole call budget.
    """
    lock_path = path.with_name(path.name + ".lock")
    try:
        handle = open(lock_path, "a+")  # noqa: SIM115 - held open for the whole run
    except OSError as exc:
        # The lock sits beside the state file: whatever stops it stops the state file too, so name that.
        raise StateError(f"cannot write state file {str(path)!r}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise StateError(f"another producer (pid {holder}) is using state file {str(path)!r}; "
                             "stop it first, or give this one its own PRODUCER_STATE_PATH") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


def load_state(path: Path, limiter: RateLimiter, seen: NewQuoteFilter,
               memory: ScheduleMemory | None = None) -> list[Quote]:
    """Restore limiter and filter from `path` and return the quotes still to deliver.

    A missing file is a first run. Each part that cannot be trusted is discarded on its own, with
    one warning naming the file and what went: the rest still keeps the producer within budget.
    """
    try:
        state = json.loads(path.read_text())
        if not isinstance(state, dict):
            raise ValueError(f"expected a JSON object, got {type(state).__name__}")
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable state file %s (%s): the call budget starts afresh", path, exc)
        return []
    discarded: list[str] = []
    try:
        discarded += limiter.restore(_part(state, "limiter"))
    except ValueError as exc:
        discarded.append(f"the call budget ({exc}), which starts afresh")
    try:
        discarded += seen.restore(_part(state, "published"))
    except ValueError as exc:
        discarded.append(f"the record of published quotes ({exc})")
    if memory is not None and "schedule" in state:  # absent in state files older than the schedule
        try:
            discarded += memory.restore(_part(state, "schedule"), datetime.fromtimestamp(limiter.clock(), UTC))
        except ValueError as exc:
            discarded.append(f"the call schedule ({exc}), so a catch-up pass may come early")
    held, unreadable = _held_quotes(state.get("held", []))
    if unreadable:
        discarded.append(f"{len(unreadable)} held quote(s) that are not valid ({unreadable[0]})")
    if discarded:
        log.warning("state file %s: discarded %s; carrying on within the call budget", path, "; ".join(discarded))
    return held


def _part(state: dict[str, Any], name: str) -> dict[str, Any]:
    part = state.get(name)
    if not isinstance(part, dict):
        raise ValueError(f"'{name}' is missing or not an object")
    return part


def _held_quotes(messages: object) -> tuple[list[Quote], list[str]]:
    """The held quotes that decode, and the reasons of those that do not."""
    if not isinstance(messages, list):
        return [], ["'held' is not a list"]
    quotes, reasons = [], []
    for message in messages:
        try:
            if not isinstance(message, str):
                raise InvalidMessage("not a string")
            quotes.append(quote_from_row(decode_quote(message.encode())))
        except (InvalidMessage, ValueError, OverflowError) as exc:
            reasons.append(str(exc))
    return quotes, reasons


def save_state(path: Path, limiter: RateLimiter, seen: NewQuoteFilter, held: list[Quote],
               memory: ScheduleMemory | None = None) -> None:
    """Write the state atomically (a crash mid-write leaves the previous state intact)."""
    state = {"limiter": limiter.snapshot(), "published": seen.snapshot(),
             "held": [encode_quote(quote).decode() for quote in held]}
    if memory is not None:
        state["schedule"] = memory.snapshot()
    temporary = path.with_name(path.name + ".tmp")
    try:
        temporary.write_text(json.dumps(state))
        os.replace(temporary, path)
    except OSError as exc:
        raise StateError(f"cannot write state file {str(path)!r}: {exc.strerror or exc}") from None
