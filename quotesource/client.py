"""The Alpha Vantage HTTP client: one request per call, safe to use from several threads at once."""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import requests

from common.redact import redact
from market.calendar import regular_session
from quotesource.alphavantage import (
    GLOBAL_QUOTE,
    TIME_SERIES_DAILY,
    TIME_SERIES_INTRADAY,
    ApiError,
    ApiHttpError,
    ApiNotJson,
    ApiRequestFailed,
    ApiTimeout,
    ApiUnreachable,
    Quote,
    connection_failure_cause,
    parse_daily,
    parse_global_quote,
    parse_intraday,
)
from quotesource.bulk import REALTIME_BULK_QUOTES, parse_bulk_quotes
from quotesource.send_gate import SendGate, gated_session


@dataclass
class Fetched:
    """What one call brought: its quotes, and for bulk calls the symbols it left out or could not use."""

    quotes: list[Quote]
    missing: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class AlphaVantageClient:
    """Makes one request per call; knows the API key but never lets it into a message.

    Each call borrows an HTTP session of its own from a pool (requests' sessions are not meant to
    be shared between threads), so connections are kept alive and calls may run side by side.
    """

    def __init__(self, api_key: str, base_url: str, function: str = GLOBAL_QUOTE, interval: str = "5min",
                 entitlement: str = "", timeout: tuple[float, float] = (5.0, 20.0),
                 session: requests.Session | None = None, gate: SendGate | None = None,
                 close_of: Callable[[date], datetime] = lambda day: regular_session(day).close) -> None:
        self._api_key = api_key
        self.close_of = close_of  # when a day's session closed: the time of its TIME_SERIES_DAILY quote
        self.base_url = base_url
        self.function = function
        self.interval = interval
        self.entitlement = entitlement
        self.timeout = timeout
        self.gate = gate  # calls in flight at once still leave the spacing apart (quotesource/send_gate.py)
        self._sessions: queue.SimpleQueue[requests.Session] = queue.SimpleQueue()
        if session is not None:
            self._sessions.put(session)

    def _params(self, symbol: str, function: str) -> dict[str, str]:
        params = {"function": function, "symbol": symbol, "datatype": "json"}
        if function == TIME_SERIES_INTRADAY:
            params |= {"interval": self.interval, "outputsize": "compact"}
        if function == TIME_SERIES_DAILY:
            params["outputsize"] = "compact"  # the last 100 sessions; "full" is premium now
        elif self.entitlement:
            params["entitlement"] = self.entitlement
        params["apikey"] = self._api_key
        return params

    def _redact(self, text: str) -> str:
        return redact(text, [self._api_key])

    @contextlib.contextmanager
    def _session(self) -> Iterator[requests.Session]:
        try:
            session = self._sessions.get_nowait()
        except queue.Empty:
            session = gated_session(self.gate) if self.gate else requests.Session()
        try:
            yield session
        finally:
            self._sessions.put(session)

    def fetch_payload(self, symbol: str, function: str | None = None) -> Any:
        """GET the data for `symbol` (comma-separated for bulk quotes) and return the decoded JSON,
        or raise the matching ApiError."""
        params = self._params(symbol, function or self.function)
        try:
            with self._session() as session:
                response = session.get(self.base_url, params=params, timeout=self.timeout)
        except requests.ConnectTimeout:  # before Timeout: the request never reached the server
            raise ApiUnreachable(f"{self.base_url}: no connection within {self.timeout[0]:g}s") from None
        except requests.Timeout:
            raise ApiTimeout(f"no answer from {self.base_url} within {self.timeout[1]:g}s") from None
        except requests.ConnectionError as exc:
            raise ApiUnreachable(self._redact(f"{self.base_url}: {connection_failure_cause(exc)}")) from None
        except requests.RequestException as exc:
            raise ApiRequestFailed(self._redact(f"{self.base_url}: {type(exc).__name__}")) from None
        if response.status_code != 200:
            raise ApiHttpError(response.status_code, response.reason or "")
        try:
            return response.json()
        except ValueError:
            start = response.text[:60].replace("\n", " ").strip()
            raise ApiNotJson(self._redact(f"body starts with {start!r}")) from None

    def fetch(self, symbols: list[str], function: str | None = None) -> Fetched:
        """One call: the current quote of one symbol (GLOBAL_QUOTE), its recent bars
        (TIME_SERIES_INTRADAY), the quotes of up to 100 symbols (REALTIME_BULK_QUOTES), or with
        `function` TIME_SERIES_DAILY the closes of its last 100 sessions."""
        function = function or self.function
        payload = self.fetch_payload(",".join(symbols), function)
        fetched_at = datetime.now(UTC)
        try:
            if function == REALTIME_BULK_QUOTES:
                answer = parse_bulk_quotes(payload, symbols, fetched_at, self.entitlement)
                return Fetched(answer.quotes, answer.missing, answer.skipped)
            [symbol] = symbols
            if function == TIME_SERIES_DAILY:
                return Fetched(parse_daily(payload, symbol, fetched_at, self.close_of))
            if function == TIME_SERIES_INTRADAY:
                return Fetched(parse_intraday(payload, symbol, fetched_at, self.entitlement))
            return Fetched([parse_global_quote(payload, symbol, fetched_at, self.entitlement)])
        except ApiError as exc:
            # The API puts the key into some of its own messages ("We have detected your API key as ...").
            exc.redact([self._api_key])
            raise

    def fetch_quotes(self, symbol: str) -> list[Quote]:
        """The quotes one call brings for one symbol."""
        return self.fetch([symbol]).quotes
