"""Reading a running script's listener the way Prometheus and a supervisor do: over real HTTP, the
metrics parsed by prometheus_client's own parser."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

LISTENING = re.compile(r"metrics at (http://\S+)/metrics")


def listener_url(log_path: Path, timeout: float = 60) -> str:
    """The address a script logged for its listener (port 0 picks a free one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = LISTENING.search(log_path.read_text()) if log_path.exists() else None
        if found:
            return found.group(1)
        time.sleep(0.1)
    raise AssertionError(f"no listener line in {log_path}:\n{log_path.read_text()}")


def get(url: str, token: str = "") -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class Scrape:
    """One scrape: `value(name, **labels)` for a sample, `families` by name, `text` as served."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {family.name: family for family in text_string_to_metric_families(text)}
        self.samples = {(sample.name, frozenset(sample.labels.items())): sample.value
                        for family in self.families.values() for sample in family.samples}

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def labelled(self, name: str, label: str) -> dict[str, float]:
        """{label value: sample value} of every sample of `name`."""
        return {dict(labels)[label]: value for (sample, labels), value in self.samples.items()
                if sample == name and label in dict(labels)}


def scrape(base_url: str, token: str = "") -> Scrape:
    status, text = get(f"{base_url}/metrics", token)
    assert status == 200, text
    return Scrape(text)


def health(base_url: str, path: str, token: str = "") -> tuple[int, dict[str, Any]]:
    status, text = get(f"{base_url}{path}", token)
    return status, json.loads(text)
