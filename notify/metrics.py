"""The notification metrics: deliveries and failures per channel, and what each channel has still to get.

A channel is labelled by its digest (the key the database knows it by), never by its URL: URLs hold tokens.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class NotifyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.delivered = Counter("stockmon_notifications_delivered", "Alerts a notification channel accepted",
                                 ["channel"], registry=registry)
        self.failures = Counter("stockmon_notification_failures", "Failed sends to a notification channel "
                                "(retried with back-off)", ["channel"], registry=registry)
        self.backlog = Gauge("stockmon_notification_backlog", "Stored alerts a notification channel has not had yet",
                             ["channel"], registry=registry)

    def channels(self, keys: list[str]) -> None:
        """Every channel shows from the start, at zero."""
        for key in keys:
            self.delivered.labels(key)
            self.failures.labels(key)
            self.backlog.labels(key)
