"""One doctor line: a status, what was checked, and what was found or what is wrong."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from common.redact import redact

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass(frozen=True)
class Finding:
    status: str  # OK, WARN or FAIL
    what: str  # the thing checked: "kafka", "database", "NOTIFY_URLS #1"
    why: str  # what was found, or what is wrong and what to do

    def line(self, secrets: Iterable[str] = ()) -> str:
        """'ok    kafka: ...' with every secret masked (a reason may quote a URL or an API message)."""
        return redact(f"{self.status:<4}  {self.what}: {self.why}", secrets)


def ok(what: str, why: str) -> Finding:
    return Finding(OK, what, why)


def warn(what: str, why: str) -> Finding:
    return Finding(WARN, what, why)


def fail(what: str, why: str) -> Finding:
    return Finding(FAIL, what, why)


def failed(findings: Iterable[Finding]) -> bool:
    return any(finding.status == FAIL for finding in findings)
