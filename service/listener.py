"""The HTTP listener of a running script: /metrics for Prometheus, /healthz and /readyz for supervisors.

prometheus_client's WSGI app answers /metrics; the standard library's WSGI server carries it on
threads of its own, so a scrape never waits for the pipeline, nor the pipeline for a scrape.
With a token (needed on any address but loopback), every path asks for `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from service.address import ListenAddress
from service.health import Health

log = logging.getLogger("service")
REQUEST_TIMEOUT_SECONDS = 10.0

StartResponse = Callable[..., Any]


class ListenerError(Exception):
    """The address cannot be listened on (taken, not this machine's); the text says which and why."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    """Access lines at DEBUG, not on stderr; a client that sends nothing is dropped after a while."""

    timeout = REQUEST_TIMEOUT_SECONDS

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def _json(start_response: StartResponse, status: int, body: dict[str, Any],
          extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    payload = json.dumps(body, indent=1).encode() + b"\n"
    reason = {200: "OK", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
              503: "Service Unavailable"}[status]
    start_response(f"{status} {reason}", [("Content-Type", "application/json"),
                                          ("Content-Length", str(len(payload))),
                                          ("Cache-Control", "no-store"), *(extra or [])])
    return [payload]


def make_app(registry: CollectorRegistry, health: Health, token: str = "") -> Callable[..., Iterable[bytes]]:
    """The WSGI app: the three paths, GET or HEAD only, the token checked before anything else."""
    metrics = make_wsgi_app(registry, disable_compression=False)
    expected = f"Bearer {token}".encode()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if token and not hmac.compare_digest(environ.get("HTTP_AUTHORIZATION", "").encode(), expected):
            return _json(start_response, 401, {"status": "unauthorized", "reason": "a bearer token is needed"},
                         [("WWW-Authenticate", 'Bearer realm="stockmon"')])
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _json(start_response, 405, {"status": "method not allowed"}, [("Allow", "GET, HEAD")])
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/healthz":
            return _json(start_response, *health.live())
        if path == "/readyz":
            return _json(start_response, *health.ready())
        return _json(start_response, 404, {"status": "not found", "paths": ["/metrics", "/healthz", "/readyz"]})

    return app


class Listener:
    """`start()` binds and serves in the background; `stop()` at the end."""

    def __init__(self, address: ListenAddress, registry: CollectorRegistry, health: Health, token: str = "") -> None:
        self.address = address
        self.app = make_app(registry, health, token)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        """Bind and serve; return the port (the one chosen when the address asked for port 0)."""
        server_class = _ThreadingServer6 if self.address.family == socket.AF_INET6 else _ThreadingServer
        try:
            self._server = make_server(self.address.host, self.address.port, self.app,
                                       server_class=server_class, handler_class=_QuietHandler)
        except OSError as exc:
            raise ListenerError(f"cannot listen on {self.address.host_port()}: "
                                f"{exc.strerror or type(exc).__name__}") from None
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-listener", daemon=True)
        self._thread.start()
        return self.port

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
