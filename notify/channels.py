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
from dataclasses import dataclass, field, replace
from typing import NamedTuple
from urllib.parse import urlsplit

from alerts.routes import CHANNEL_NAME, no_channel_named
from common.redact import redact
from common.setting_values import ConfigError
from notify.schedule import Digest, QuietHours, parse_digest, parse_quiet_hours, per_channel

# The service refused the request (4xx): credentials, a chat or channel that does not exist.
REJECTED = re.compile(r"error=4\d\d|\b(?:401|403|404)\b|unauthori[sz]ed|forbidden|invalid (?:token|api|key)",
                      re.IGNORECASE)


# `phone=ntfy://topic`: a channel name before the URL's scheme.
NAMED_URL = re.compile(rf"(?P<name>{CHANNEL_NAME.pattern})=(?P<url>[A-Za-z][A-Za-z0-9+.-]*://.*)")


class ChannelError(ValueError):
    """A URL apprise cannot use; the text names it without its secrets."""


def split_urls(text: str) -> tuple[str, ...]:
    """NOTIFY_URLS: URLs separated by spaces or new lines (commas belong to some URLs, e.g. mailto's to=)."""
    return tuple(dict.fromkeys(text.split()))


def parse_channels(text: str) -> tuple[Channel, ...]:
    """NOTIFY_URLS: `URL` or `name=URL` separated by spaces; ChannelError for a token that is not a URL
    or a name given twice (the text shows no secret)."""
    channels: list[Channel] = []
    for token in split_urls(text):
        named = NAMED_URL.fullmatch(token)
        label, url = (named["name"], named["url"]) if named else (None, token)
        if "://" not in url:
            raise ChannelError(f"{shown(url)!r} is not a URL (scheme://..., e.g. json://host/path, or "
                               "name=URL for a channel rules route to); separate URLs with spaces")
        if label and any(channel.label == label for channel in channels):
            raise ChannelError(f"the channel name {label!r} is given twice; each name=URL needs its own name")
        same = next((channel for channel in channels if channel.url == url), None)
        if same is None:
            channels.append(Channel(url, label))
        elif same.label != label:
            raise ChannelError(f"{shown(url)!r} is given twice, as {same.label or 'unnamed'} and "
                               f"{label or 'unnamed'}; give it once, with one name")
    return tuple(channels)


def with_schedules(channels: tuple[Channel, ...], quiet_hours: str, digests: str) -> tuple[Channel, ...]:
    """The channels with the quiet hours (NOTIFY_QUIET_HOURS) and digests (NOTIFY_DIGEST) their names are given;
    ConfigError naming the setting otherwise."""
    names = {channel.label for channel in channels if channel.label}
    for setting, text, parse, attribute in (("NOTIFY_QUIET_HOURS", quiet_hours, parse_quiet_hours, "quiet"),
                                            ("NOTIFY_DIGEST", digests, parse_digest, "digest")):
        try:
            given = {name: parse(value) for name, value in per_channel(text, setting).items()}
        except ValueError as exc:
            raise ConfigError(setting, str(exc)) from None
        if set(given) - names:
            raise ConfigError(setting, no_channel_named(set(given) - names, names))
        channels = tuple(replace(channel, **{attribute: given[channel.label]}) if channel.label in given else channel
                         for channel in channels)
    return channels


def url_secrets(url: str) -> list[str]:
    """The parts of a URL that may be credentials: user and password, a host that is not a host name
    (Telegram's bot token, Discord's webhook id) and every long path segment (tokens, keys). A
    `name=` before the URL is not part of it."""
    named = NAMED_URL.fullmatch(url)
    url = named["url"] if named else url
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
    """One notification URL, known by a digest of it (the database never holds the URL itself), and
    the name rules route to (`phone=ntfy://...`), if it has one."""

    url: str = field(repr=False)
    label: str | None = None
    quiet: QuietHours | None = None  # NOTIFY_QUIET_HOURS: nothing in this window, a summary after it
    digest: Digest | None = None  # NOTIFY_DIGEST: one summary per period instead of each alert

    @property
    def name(self) -> str:
        """How logs and --notify-test show it: `phone (ntfy://...)`, secrets masked."""
        return f"{self.label} ({shown(self.url)})" if self.label else shown(self.url)

    @property
    def key(self) -> str:
        return hashlib.sha256(self.url.encode()).hexdigest()[:16]


class Sent(NamedTuple):
    ok: bool
    rejected: bool  # the service refused us: not a passing outage
    reason: str


def check_channels(channels: tuple[Channel, ...]) -> tuple[Channel, ...]:
    """The channels, each URL checked by apprise; ChannelError naming the first it cannot use."""
    import apprise  # imported only where notifications are configured: it loads a plugin per service

    for channel in channels:
        if apprise.Apprise.instantiate(channel.url) is None:
            raise ChannelError(f"{channel.name!r} is not a notification URL apprise can use (e.g. json://host/path, "
                               "mailto://user:password@host, tgram://token/chat, ntfy://topic)")
    return channels


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
            # Through an Apprise object: it turns our plain text into what the service takes (an e-mail's
            # HTML part kept the lines of a summary as one paragraph, and '<' of IBM<150 as markup).
            bundle = apprise.Apprise()
            ok = bool(plugin and bundle.add(plugin) and bundle.notify(body=body, title=title,
                                                                       body_format=apprise.NotifyFormat.TEXT))
        except Exception as exc:  # a plugin's own bug must not stop delivery to the others
            capture.messages.append(f"{type(exc).__name__}: {exc}")
            ok = False
    reason = redact(" ".join(capture.messages) or "the service did not accept it", url_secrets(channel.url))
    return Sent(ok, not ok and bool(REJECTED.search(reason)), reason)
