"""The listener over real HTTP: /metrics parsed by prometheus_client's own parser, the health answers,
the token, unknown paths and methods, port 0, a taken port and IPv6 loopback."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from prometheus_client import Counter
from prometheus_client.parser import text_string_to_metric_families

from service.address import ListenAddress
from service.batch_histogram import BatchHistogram
from service.health import Check, Health
from service.heartbeat import beat
from service.listener import Listener, ListenerError
from service.registry import new_registry

TOKEN = "listener-token-0123456789"


def fetch(url: str, token: str = "", method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method,
                                     headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@contextmanager
def serving(checks: dict[str, Check] | None = None, token: str = "", host: str = "127.0.0.1",
            state: dict | None = None) -> Iterator[tuple[str, object]]:
    registry = new_registry()
    counter = Counter("stockmon_test_things", "Things counted by the test.", registry=registry)
    health = Health(lambda: dict(checks or {}), lambda: dict(state or {}))
    listener = Listener(ListenAddress(host, 0), registry, health, token)
    port = listener.start()
    try:
        yield ListenAddress(host, 0).url(port), (registry, counter)
    finally:
        listener.stop()


def test_metrics_parse_with_the_official_parser_and_carry_the_process_metrics() -> None:
    beat()
    with serving() as (url, (registry, counter)):
        counter.inc(3)
        BatchHistogram("stockmon_test_seconds", "Latency in the test.", [0.1, 1.0], registry).observe_many(
            [0.05, 0.1, 0.5, 2.0])
        status, headers, body = fetch(f"{url}/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=")
    families = {family.name: family for family in text_string_to_metric_families(body.decode())}
    [sample] = families["stockmon_test_things"].samples
    assert (sample.name, sample.value) == ("stockmon_test_things_total", 3.0)
    assert families["stockmon_test_things"].type == "counter"
    assert "process_cpu_seconds" in families and "python_info" in families
    buckets = {sample.labels.get("le"): sample.value for sample in families["stockmon_test_seconds"].samples
               if sample.name.endswith("_bucket")}
    assert buckets == {"0.1": 2.0, "1.0": 3.0, "+Inf": 4.0}  # le: a value on a bound counts in it
    counts = {sample.name: sample.value for sample in families["stockmon_test_seconds"].samples}
    assert counts["stockmon_test_seconds_count"] == 4 and counts["stockmon_test_seconds_sum"] == pytest.approx(2.65)
    assert not any(name.endswith("_created") for name in families)


def test_health_answers_json_with_a_reason_per_failed_check_and_the_state() -> None:
    beat()
    checks = {"kafka": Check(False, "Kafka is not reachable (127.0.0.1:1: Connection refused)"),
              "database": Check(True, "stocks.db takes a write")}
    with serving(checks, state={"polling_hours": "market closed"}) as (url, _):
        live_status, _, live = fetch(f"{url}/healthz")
        ready_status, headers, ready = fetch(f"{url}/readyz")
    assert live_status == 200 and json.loads(live)["status"] == "ok"
    assert json.loads(live)["checks"]["main_loop"]["ok"] is True
    assert ready_status == 503 and headers["Content-Type"] == "application/json"
    answer = json.loads(ready)
    assert answer["status"] == "unready"
    assert answer["checks"]["kafka"] == {"ok": False, "reason": "Kafka is not reachable (127.0.0.1:1: Connection refused)"}
    assert answer["checks"]["database"] == {"ok": True, "detail": "stocks.db takes a write"}
    assert answer["state"] == {"polling_hours": "market closed"}
    with serving({"database": Check(True, "fine")}) as (url, _):
        assert fetch(f"{url}/readyz")[0] == 200


def test_unknown_paths_and_methods_get_json_errors() -> None:
    with serving() as (url, _):
        status, _, body = fetch(f"{url}/admin")
        assert status == 404 and json.loads(body)["paths"] == ["/metrics", "/healthz", "/readyz"]
        status, headers, _ = fetch(f"{url}/metrics", method="POST")
        assert status == 405 and headers["Allow"] == "GET, HEAD"


def test_with_a_token_every_path_asks_for_it() -> None:
    with serving(token=TOKEN) as (url, _):
        for path in ("/metrics", "/healthz", "/readyz", "/nothing"):
            status, headers, body = fetch(f"{url}{path}")
            assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="stockmon"'
            assert TOKEN not in body.decode()
        assert fetch(f"{url}/metrics", token="wrong-token-0123456789")[0] == 401
        assert fetch(f"{url}/metrics", token=TOKEN)[0] == 200


def test_a_taken_port_is_a_listener_error_naming_the_address() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        listener = Listener(ListenAddress("127.0.0.1", port), new_registry(), Health(dict))
        with pytest.raises(ListenerError, match=rf"^cannot listen on 127.0.0.1:{port}: Address already in use$"):
            listener.start()


def test_ipv6_loopback_is_served() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback address on this machine")
    with serving(host="::1") as (url, _):
        assert url.startswith("http://[::1]:")
        assert fetch(f"{url}/metrics")[0] == 200
