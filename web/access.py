"""Who may read the page and what a browser may do with it: the token, and the security headers.

Without a token (the default on 127.0.0.1) everyone on this machine may read. With one (needed on
any other address) a request carries it as `Authorization: Bearer <token>`, or once as `?token=`,
which sets an HttpOnly cookie and redirects to the same address without it, so the token does not
stay in the address bar, the history or a Referer.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "stockmon_token"
# No inline script or style, nothing from elsewhere, no framing: the page is its own files only.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
                           "frame-ancestors 'none'")
SECURITY_HEADERS = [(b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY")]


class Guard:
    """ASGI middleware: the token first (when there is one), the security headers on every answer."""

    def __init__(self, app: ASGIApp, token: str = "") -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        if self.token:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            if self._matches(query.get("token", "")):
                await self._set_cookie(scope, query, send_with_headers)
                return
            if not self._carried(scope):
                await _json(send_with_headers, 401, {"error": "a token is needed: Authorization: Bearer <token>, "
                                                              "or ?token=<token> once"})
                return
        await self.app(scope, receive, send_with_headers)

    def _matches(self, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def _carried(self, scope: Scope) -> bool:
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        bearer = headers.get("authorization", "")
        if bearer.startswith("Bearer ") and self._matches(bearer[len("Bearer "):]):
            return True
        cookies = SimpleCookie()
        try:
            cookies.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is no token, not a crash
            return False
        return COOKIE in cookies and self._matches(cookies[COOKIE].value)

    async def _set_cookie(self, scope: Scope, query: dict[str, str], send: Send) -> None:
        rest = urlencode({name: value for name, value in query.items() if name != "token"})
        location = scope.get("path", "/") + (f"?{rest}" if rest else "")
        cookie = f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
        await send({"type": "http.response.start", "status": 303,
                    "headers": [(b"location", location.encode()), (b"set-cookie", cookie.encode()),
                                (b"cache-control", b"no-store"), (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            (b"www-authenticate", b'Bearer realm="stockmon"'), (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": payload})
