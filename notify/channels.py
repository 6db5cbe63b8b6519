"""Notification channels: NOTIFY_URLS in apprise's URL syntax, shown without their secrets, and one send.

apprise speaks to Telegram, Discord, Slack, e-mail, ntfy, JSON webhooks and many more from one URL
each. It answers a send with True or False and says why in its log; that reason tells a channel
that is down (retry, warn once) from one that refuses us (a bad token: an ERROR to fix).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

from common.redact import redact

# The service refused the request (4xx): credentials, a chat or channel that does not exist.
REJECTED = re.compile(r"error=4\d\d|\b(?:401|403|404)\b|unauthori[sz]ed|forbidden|invalid (?:token|api|key)",
                      re.IGNORECASE)


class ChannelError(ValueError):
    """A URL apprise cannot use; the text names it without its secrets."""


def split_urls(text: str) -> tuple[str, ...]:
    """NOTIFY_URLS: URLs separated by spaces or new lines (commas belong to some URLs, e.g. mailto's to=)."""
    return tuple(dict.fromkeys(text.split()))


def url_secrets(url: str) -> list[str]:
    """The parts of a URL that may be credentials: user and password, a host that is not a host name
    (Telegram's bot token, Discord's webhook id) and every long path segment (tokens, keys)."""
    try:
        parts = urlsplit(url)
        found = [parts.username or "", parts.password or ""]
    except ValueError:  # not even a URL (an unclosed IPv6 bracket): all of it may be a secret
        return [url]
    host = parts.netloc.rpartition("@")[2]
    if "." not in host:
        found.append(host)
    found += [segment for segment in parts.path.split("/") if len(segment) >= 8]
    found += [value for value in re.split(r"[&=]", parts.query) if len(value) >= 16]
    return [secret for secret in found if secret]


def shown(url: str) -> str:
    """The URL as logs show it: its scheme and host, secrets masked."""
    return redact(url.split("?", 1)[0], url_secrets(url))


@dataclass(frozen=True)
class Channel:
    """One notification URL, known by a digest of it (the database never holds the URL itself)."""

    url: str

    @property
    def name(self) -> str:
        return shown(self.url)

    @property
    def key(self) -> str:
        return hashlib.sha256(self.url.encode()).hexdigest()[:16]


class Sent(NamedTuple):
    ok: bool
    rejected: bool  # the service refused us: not a passing outage
    reason: str


def check_channels(urls: tuple[str, ...]) -> tuple[Channel, ...]:
    """The channels, each URL checked by apprise; ChannelError naming the first it cannot use."""
    import apprise  # imported only where notifications are configured: it loads a plugin per service

    for url in urls:
        if apprise.Apprise.instantiate(url) is None:
            raise ChannelError(f"{shown(url)!r} is not a notification URL apprise can use (e.g. json://host/path, "
                               "mailto://user:password@host, tgram://token/chat, ntfy://topic)")
    return tuple(Channel(url) for url in urls)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _apprise_messages() -> Iterator[_Capture]:
    """apprise's warnings during one send, kept for the reason and never logged as they are (some name
    the URL); its own logger stays quiet."""
    logger = logging.getLogger("apprise")
    capture = _Capture()
    logger.addHandler(capture)
    logger.propagate = False
    try:
        yield capture
    finally:
        logger.removeHandler(capture)


def send(channel: Channel, title: str, body: str) -> Sent:
    """Deliver one message; never raises for the channel's own failures."""
    import apprise

    with _apprise_messages() as capture:
        try:
            plugin = apprise.Apprise.instantiate(channel.url)
            ok = bool(plugin and plugin.notify(body=body, title=title))
        except Exception as exc:  # a plugin's own bug must not stop delivery to the others
            capture.messages.append(f"{type(exc).__name__}: {exc}")
            ok = False
    reason = redact(" ".join(capture.messages) or "the service did not accept it", url_secrets(channel.url))
    return Sent(ok, not ok and bool(REJECTED.search(reason)), reason)
