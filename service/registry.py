"""A metrics registry per process run, with prometheus_client's process, platform and GC metrics in it.

Not the library's global registry: tests and benchmarks build several pipelines in one process.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)


def new_registry() -> CollectorRegistry:
    # No *_created series beside each counter: they double what a scrape carries and nothing here reads them.
    disable_created_metrics()
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
