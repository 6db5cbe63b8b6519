"""What every script shares at the top level: exit codes, one-line errors, stop signals, a guarded body."""

from __future__ import annotations

import enum
import faulthandler
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable

from common.logformat import JsonFormatter
from common.redact import redact


class ExitCode(enum.IntEnum):
    OK = 0
    FAILURE = 1
    BAD_CONFIG = 2
    STORAGE = 3  # the database or the producer's state file cannot be used
    INTERRUPTED = 130


def print_error(prog: str, message: str) -> None:
    """The one line a user sees for an expected failure; under LOG_FORMAT=json a JSON line like the rest
    (a log shipper reading the stream would otherwise get one line it cannot parse)."""
    if any(isinstance(handler.formatter, JsonFormatter) for handler in logging.getLogger().handlers):
        logging.getLogger(prog).error("error: %s", message)
        return
    print(f"{prog}: error: {message}", file=sys.stderr)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGINT (Ctrl-C) and SIGTERM both ask for a clean stop: finish the current step, then exit 0.

    The stop is also set from a thread that reads the signal's number from a wakeup pipe, which
    CPython's own C handler writes at once. A Python-level handler runs only when the main thread
    next checks for pending signals, and in two CI runs a producer did not stop 10 and 15 s after a
    SIGTERM (in the one that printed its stacks, the main thread was in its poll loop, stop never set).

    SIGUSR1 writes every thread's stack to stderr (the log) and carries on: what a script that seems
    stuck is doing, without stopping it. Only files, lines and function names, never a value."""

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    for signum in STOP_SIGNALS:
        signal.signal(signum, request_stop)
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    threading.Thread(target=_stop_on_wakeup, args=(read_end, stop), name="stop-signals", daemon=True).start()
    faulthandler.register(signal.SIGUSR1, all_threads=True)


def _stop_on_wakeup(read_end: int, stop: threading.Event) -> None:
    """Set `stop` as soon as a stop signal's number arrives on the wakeup pipe (other signals pass)."""
    while True:
        received = os.read(read_end, 64)
        if not received:
            return
        if any(signum in received for signum in STOP_SIGNALS):
            stop.set()


def run_guarded(prog: str, secrets: Iterable[str], body: Callable[[], int]) -> int:
    """Run a script's body; an unexpected exception becomes one line (the traceback only at DEBUG)."""
    try:
        return body()
    except Exception as exc:
        logging.getLogger(prog).debug("unexpected failure", exc_info=True)
        detail = redact(f"{type(exc).__name__}: {exc}".splitlines()[0], secrets)
        print_error(prog, f"unexpected {detail} (LOG_LEVEL=DEBUG shows the traceback)")
        return ExitCode.FAILURE
