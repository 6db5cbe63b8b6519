"""Starting a script's listener from its settings, and the line that says where it is."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry

from service.address import ListenAddress
from service.health import Health
from service.listener import Listener

log = logging.getLogger("service")


def start_listener(address: ListenAddress | None, token: str, registry: CollectorRegistry | None,
                   health: Health) -> Listener | None:
    """Serve /metrics, /healthz and /readyz (None when METRICS_ADDRESS is empty: then there is no registry
    either); ListenerError if it cannot."""
    if address is None or registry is None:
        return None
    listener = Listener(address, registry, health, token)
    port = listener.start()
    chosen = " (port 0: a free port was chosen)" if address.port == 0 else ""
    guarded = ", bearer token required" if token else ""
    log.info("metrics at %s/metrics, health at /healthz and /readyz%s%s", address.url(port), chosen, guarded)
    return listener
