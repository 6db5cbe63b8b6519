"""What both scripts share at the top level: exit codes, one-line errors, stop signals, settings."""

from __future__ import annotations

import argparse
import enum
import logging
import signal
import sys
import threading
from collections.abc import Callable

from config import ConfigError, Settings, load_settings, overrides_from
from redact import configure_logging, redact


class ExitCode(enum.IntEnum):
    OK = 0
    FAILURE = 1
    BAD_CONFIG = 2
    STORAGE = 3  # the database or the producer's state file cannot be used
    INTERRUPTED = 130


def print_error(prog: str, message: str) -> None:
    """The one line a user sees for an expected failure."""
    print(f"{prog}: error: {message}", file=sys.stderr)


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGINT (Ctrl-C) and SIGTERM both ask for a clean stop: finish the current step, then exit 0."""

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)


def read_settings(args: argparse.Namespace) -> Settings:
    """Settings from the flags, the environment and the settings file (--env-file, default .env); ConfigError."""
    return load_settings(overrides_from(args), env_file=args.env_file or ".env",
                         env_file_required=args.env_file is not None)


def settings_from_args(prog: str, args: argparse.Namespace) -> Settings | None:
    """Load settings and configure logging; print the problem and return None when they are bad."""
    try:
        settings = read_settings(args)
    except ConfigError as exc:
        print_error(prog, str(exc))
        return None
    configure_logging(settings.log_level, settings.secrets)
    for notice in settings.notices:
        logging.getLogger(prog).warning("%s", notice)
    return settings


def run_guarded(prog: str, settings: Settings, body: Callable[[], int]) -> int:
    """Run a script's body; an unexpected exception becomes one line (the traceback only at DEBUG)."""
    try:
        return body()
    except Exception as exc:
        logging.getLogger(prog).debug("unexpected failure", exc_info=True)
        detail = redact(f"{type(exc).__name__}: {exc}".splitlines()[0], settings.secrets)
        print_error(prog, f"unexpected {detail} (LOG_LEVEL=DEBUG shows the traceback)")
        return ExitCode.FAILURE
