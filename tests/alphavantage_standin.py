"""A local HTTP stand-in for Alpha Vantage that serves recorded payloads (tests never call the real API)."""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

FIXTURES = Path(__file__).parent / "fixtures" / "alphavantage"
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux's number, for Pythons that do not name it


def kernel_arrival(connection: socket.socket) -> float | None:
    """When the next request's first bytes reached this machine, as the kernel stamped them (None: no
    stamp). Peeked, not read: the request is parsed as usual. A time taken in the handler would also
    count how long the test process took to schedule its thread."""
    try:
        _, ancillary, _, _ = connection.recvmsg(1, socket.CMSG_SPACE(16), socket.MSG_PEEK)
    except OSError:
        return None
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            return seconds + nanoseconds / 1e9
    return None


def fixture(name: str) -> bytes:
    """A recorded payload, byte for byte."""
    return (FIXTURES / name).read_bytes()


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status, body, content type, and a delay before it is sent."""

    body: bytes
    status: int = 200
    content_type: str = "application/json"
    delay: float = 0.0


def recorded(name: str, **kwargs: object) -> Answer:
    return Answer(fixture(name), **kwargs)  # type: ignore[arg-type]


def changing_global_quotes(count: int) -> list[Answer]:
    """IBM's recorded quote with the price moved a cent per answer, so every poll brings a new quote."""
    body = fixture("global_quote_IBM.json")
    return [Answer(body.replace(b'"121.7400"', f'"{121.74 + index / 100:.4f}"'.encode())) for index in range(count)]


def served_prices(calls: int) -> set[float]:
    """The prices changing_global_quotes served in its first `calls` answers."""
    return {round(121.74 + index / 100, 2) for index in range(calls)}


def bulk_answer(symbols: list[str], moment: datetime, sequence: int) -> bytes:
    """A live-format REALTIME_BULK_QUOTES answer (the recorded live item as the template) for `symbols`,
    stamped `moment` in US/Eastern with milliseconds, the price moved a cent per `sequence`."""
    template = json.loads(fixture("realtime_bulk_quotes_live_shape.json"))
    item = template["data"][0]
    stamp = moment.astimezone(ZoneInfo("US/Eastern")).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    close = float(item["close"]) + sequence / 100
    template["data"] = [{**item, "symbol": symbol, "timestamp": stamp, "close": f"{close:.2f}"} for symbol in symbols]
    return json.dumps(template).encode()


class AlphaVantageStandIn:
    """Serves a scripted sequence of answers per (function, symbol); the last answer repeats."""

    def __init__(self) -> None:
        self.scripts: dict[tuple[str, str], list[Answer]] = {}
        self.delay = 0.0  # added to every answer: the real API takes about 250 ms
        self.bulk_unknown: set[str] = set()  # symbols bulk answers leave out
        self._bulk_sequence = itertools.count()
        self.requests: list[dict[str, str]] = []
        self.request_times: list[float] = []  # when each request reached this machine (kernel_arrival)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        # On the listening socket too: the kernel stamps a packet only if stamping was on when it arrived.
        with contextlib.suppress(OSError):
            self._server.socket.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/query"

    def script(self, function: str, symbol: str, *answers: Answer) -> None:
        self.scripts[(function, symbol)] = list(answers)

    def script_recorded_intraday(self) -> None:
        """MSFT's 100 recorded 1min bars and IBM's 2 recorded 5min bars."""
        self.script("TIME_SERIES_INTRADAY", "MSFT", recorded("intraday_1min_MSFT_compact.json"))
        self.script("TIME_SERIES_INTRADAY", "IBM", recorded("intraday_5min_IBM_trimmed.json"))

    def script_recorded_daily(self) -> None:
        """MSFT's 100 recorded daily closes (compact) and IBM's 2 (the newest taken during its session)."""
        self.script("TIME_SERIES_DAILY", "MSFT", recorded("daily_MSFT_compact.json"))
        self.script("TIME_SERIES_DAILY", "IBM", recorded("daily_IBM_trimmed.json"))

    def calls_for(self, symbol: str) -> int:
        return sum(1 for request in self.requests if request.get("symbol") == symbol)

    def _next_answer(self, function: str, symbol: str) -> Answer:
        with self._lock:
            answers = self.scripts.get((function, symbol))
            if not answers and function == "REALTIME_BULK_QUOTES":
                known = [name for name in symbol.split(",")[:100] if name and name not in self.bulk_unknown]
                return Answer(bulk_answer(known, datetime.now().astimezone(), next(self._bulk_sequence)))
            if not answers:
                unknown = {"GLOBAL_QUOTE": "global_quote_unknown_symbol.json",
                           "TIME_SERIES_DAILY": "error_invalid_symbol_daily.json"}
                return recorded(unknown.get(function, "error_invalid_symbol_intraday.json"))
            return answers.pop(0) if len(answers) > 1 else answers[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            arrived_at: float | None = None

            def setup(self) -> None:
                super().setup()
                with contextlib.suppress(OSError):
                    self.connection.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)

            def handle_one_request(self) -> None:
                self.arrived_at = kernel_arrival(self.connection)
                super().handle_one_request()

            def do_GET(self) -> None:
                query = {key: values[-1] for key, values in parse_qs(urlsplit(self.path).query).items()}
                with standin._lock:
                    standin.requests.append(query)
                    standin.request_times.append(self.arrived_at or time.time())
                if query.get("apikey", "") == "":
                    answer = recorded("error_missing_apikey.json")
                else:
                    answer = standin._next_answer(query.get("function", ""), query.get("symbol", ""))
                if answer.delay or standin.delay:
                    time.sleep(answer.delay + standin.delay)
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", answer.content_type)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the tests read self.requests instead

        return Handler

    def __enter__(self) -> AlphaVantageStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
