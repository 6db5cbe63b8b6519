"""consumer.py --notify-test: a test message to every channel, so a user knows before the first alert."""

from __future__ import annotations

import socket

from common.cli import ExitCode, print_error
from notify.channels import ChannelError, check_channels, send


def notify_test(urls: tuple[str, ...]) -> int:
    """--notify-test: one message to each channel, a line each on stdout; exit 1 when any failed."""
    try:
        channels = check_channels(urls)
    except ChannelError as exc:
        print_error("consumer", f"NOTIFY_URLS: {exc}")
        return ExitCode.BAD_CONFIG
    if not channels:
        print_error("consumer", "NOTIFY_URLS is empty: no channel to test")
        return ExitCode.BAD_CONFIG
    failed = 0
    for channel in channels:
        sent = send(channel, "stockmon test", f"A test message from stockmon's consumer on {socket.gethostname()}: "
                                              "alerts will reach you here.")
        print(f"ok      {channel.name}" if sent.ok else f"FAILED  {channel.name}: {sent.reason}")
        failed += not sent.ok
    return ExitCode.FAILURE if failed else ExitCode.OK
