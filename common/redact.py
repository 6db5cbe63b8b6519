"""Keeping secrets (the API key, SASL password) out of every log line and message."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from common.logformat import formatter

MASK = "***"
# Alpha Vantage's public key, printed in its own docs and notices: masking it would only garble them.
PUBLIC_KEYS = frozenset({"demo"})


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with each secret replaced by a mask (short ones only as whole words, not inside others)."""
    for secret in secrets:
        if not secret or secret in PUBLIC_KEYS:
            continue
        if len(secret) >= 8:
            text = text.replace(secret, MASK)
        else:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", MASK, text)
    return text


class RedactingFilter(logging.Filter):
    """Masks secrets in every record a handler emits, including third-party ones (urllib3 logs URLs)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [secret for secret in secrets if secret and secret not in PUBLIC_KEYS]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.msg = redact(message, self.secrets)
            record.args = None
            if record.exc_text:
                record.exc_text = redact(record.exc_text, self.secrets)
        return True


def configure_logging(level: str, secrets: Iterable[str] = (), log_format: str = "text") -> None:
    """One format (text or json) to stderr for the whole process; kafka-python's own chatter only at DEBUG."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python logs every refused reconnect; our code reports broker trouble in one line itself.
    noisy_level = logging.DEBUG if level == "DEBUG" else logging.CRITICAL
    logging.getLogger("kafka").setLevel(noisy_level)


def add_secrets(secrets: Iterable[str]) -> None:
    """Mask these too from now on (settings read again: new notification URLs)."""
    for handler in logging.getLogger().handlers:
        for found in handler.filters:
            if isinstance(found, RedactingFilter):
                found.secrets += [secret for secret in secrets if secret and secret not in PUBLIC_KEYS]
