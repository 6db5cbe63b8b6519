"""consumer.py --notify-test [NAME]: a test message to every channel (or one), so a user knows before the
first alert."""

from __future__ import annotations

import socket

from common.cli import ExitCode, print_error
from notify.channels import Channel, ChannelError, check_channels, send


def notify_test(configured: tuple[Channel, ...], name: str | None = None) -> int:
    """--notify-test [NAME]: one message to each channel (or the one named), a line each on stdout; exit 1
    when any failed."""
    if name is not None:
        configured = tuple(channel for channel in configured if channel.label == name)
        if not configured:
            print_error("consumer", f"--notify-test: no channel named {name!r} in NOTIFY_URLS (name one as "
                                    f"{name}=URL)")
            return ExitCode.BAD_CONFIG
    try:
        channels = check_channels(configured)
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
