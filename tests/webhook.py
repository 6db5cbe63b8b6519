"""Real local servers for notification tests: an HTTP server taking apprise's JSON posts (json://),
answering 401 under /refuse, that stops and starts on one port to play a channel that goes down;
and an SMTP server's mailbox (aiosmtpd) for mailto://."""

from __future__ import annotations

import json
import threading
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from streaming.local_broker import free_port


class Webhook:
    """An HTTP server taking apprise's JSON posts; /refuse answers 401. Stops and starts on one port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[str, dict]] = []
        self.server: ThreadingHTTPServer | None = None
        self.hold_after: int | None = None  # requests after this many wait for `gate`
        self.gate = threading.Event()

    def start(self) -> None:
        received = self.received
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if webhook.hold_after is not None and len(received) >= webhook.hold_after:
                    webhook.gate.wait(30)
                refused = self.path.startswith("/refuse")
                if not refused:
                    received.append((self.path, body))
                self.send_response(401 if refused else 200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"


class Mailbox:
    """aiosmtpd's handler: every message the SMTP server takes, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=email_policy))
        return "250 OK"
