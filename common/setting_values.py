"""Reading one setting's text into a value, or a ConfigError that names the setting and says what is wrong."""

from __future__ import annotations

import re

MAX_FETCH_WAIT_MS = 10_000


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names the setting."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting


def whole_number(name: str, text: str, minimum: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ConfigError(name, f"{text!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {value}" if minimum else
                          f"must be 0 or more, got {value}")
    return value


def positive_number(name: str, text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ConfigError(name, f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise ConfigError(name, f"must be a positive number of seconds, got {text.strip()}")
    return value


def choice(name: str, text: str, choices: tuple[str, ...], *, upper: bool = False) -> str:
    value = text.strip().upper() if upper else text.strip()
    if value not in choices:
        allowed = ", ".join(choice or "empty" for choice in choices)
        raise ConfigError(name, f"{text!r} is not one of {allowed}")
    return value


def non_empty(name: str, text: str) -> str:
    value = text.strip()
    if not value:
        raise ConfigError(name, "must not be empty")
    return value


def base_url(text: str) -> str:
    value = non_empty("ALPHAVANTAGE_BASE_URL", text)
    if not re.match(r"https?://[^/\s]+", value):
        raise ConfigError("ALPHAVANTAGE_BASE_URL", f"{value!r} is not an http(s) URL")
    return value


def bootstrap_servers(text: str) -> str:
    """A comma-separated host:port list ([v6:addr]:port too), each port 1-65535, spaces dropped."""
    name = "KAFKA_BOOTSTRAP_SERVERS"
    servers = [server.strip() for server in non_empty(name, text).split(",")]
    for server in servers:
        match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})", server)
        if not match:
            raise ConfigError(name, f"{server!r} is not host:port")
        if not 1 <= int(match.group(2)) <= 65535:
            raise ConfigError(name, f"{server!r}: port {match.group(2)} is not between 1 and 65535")
    return ",".join(servers)


def fetch_max_wait_ms(text: str) -> int:
    """At most 10 s: kafka-python needs the hold to be shorter than its request timeout."""
    value = whole_number("KAFKA_FETCH_MAX_WAIT_MS", text, 1)
    if value > MAX_FETCH_WAIT_MS:
        raise ConfigError("KAFKA_FETCH_MAX_WAIT_MS", f"must be at most {MAX_FETCH_WAIT_MS}, got {value}")
    return value


def topic_name(name: str, text: str) -> str:
    value = non_empty(name, text)
    # Kafka's own rule for topic names.
    if not re.fullmatch(r"[A-Za-z0-9._\-]{1,249}", value):
        raise ConfigError(name, f"{value!r} is not a valid topic name (letters, digits, '.', '_', '-')")
    return value


