"""Alpha Vantage answers, parsed into Quote records, and each way a call can fail as its own error kind.

Alpha Vantage answers almost every failure with HTTP 200 and a JSON body ("Note",
"Information", "Error Message", an empty "Global Quote"), so each of those is recognised and
raised as its own error kind; none of them is ever returned as a quote.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests

from common.redact import redact

GLOBAL_QUOTE = "GLOBAL_QUOTE"
TIME_SERIES_INTRADAY = "TIME_SERIES_INTRADAY"
TIME_SERIES_DAILY = "TIME_SERIES_DAILY"


@dataclass(frozen=True)
class Quote:
    """One price observation: a global quote, one intraday bar or one bulk quote, times in UTC."""

    symbol: str
    ts: datetime
    price: float
    open: float
    high: float
    low: float
    volume: int
    source: str
    fetched_at: datetime
    change: float | None = None
    change_percent: float | None = None
    trading_day: str | None = None
    previous_close: float | None = None
    extended_hours_quote: float | None = None
    extended_hours_change: float | None = None
    extended_hours_change_percent: float | None = None
    entitlement: str | None = None  # "realtime" or "delayed" (premium data); None: end-of-day data


class ApiError(Exception):
    """Base of every Alpha Vantage failure. `transient` errors are retried after a back-off."""

    kind = "API error"
    transient = False

    def __init__(self, detail: str) -> None:
        super().__init__(f"{self.kind}: {detail}")
        self.detail = detail

    def redact(self, secrets: list[str]) -> None:
        """Remove secrets that the server echoed back from this error's text."""
        self.detail = redact(self.detail, secrets)
        self.args = (f"{self.kind}: {self.detail}",)


class ApiHttpError(ApiError):
    kind = "HTTP error"
    transient = True

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"status {status} {detail}".strip())
        self.status = status


class ApiRequestFailed(ApiError):
    """The request went out but failed on the way (a dropped body, a redirect loop): it may have counted."""

    kind = "request failed"
    transient = True


class ApiTimeout(ApiError):
    kind = "timeout"
    transient = True


class ApiUnreachable(ApiError):
    """The request never reached Alpha Vantage (DNS, refused, no route): it costs no API call."""

    kind = "connection failed"
    transient = True


def connection_failure_cause(exc: requests.ConnectionError) -> str:
    """What urllib3 says went wrong ("Failed to resolve 'www.alphavantage.co' (...)", "Connection refused"),
    without the connection object's repr it starts with."""
    reason = exc.args[0] if exc.args else exc
    reason = getattr(reason, "reason", None) or reason
    text = re.sub(r"^(<[^>]*>|\w+\(host=[^)]*\)): ", "", str(reason).strip())
    text = re.sub(r"^Failed to establish a new connection: (\[Errno -?\d+\] )?", "", text)
    return text.splitlines()[0] if text else type(exc).__name__


class ApiNotJson(ApiError):
    kind = "response is not JSON"
    transient = True


class ApiThrottled(ApiError):
    """A "Note" or rate-limit "Information" body: we called too often."""

    kind = "rate limited"
    transient = True


class ApiDailyLimit(ApiThrottled):
    """The daily allowance is spent; only the next day helps."""

    kind = "daily limit reached"


class ApiNotice(ApiError):
    """An "Information" body that is not about rates: demo key misuse, premium-only request."""

    kind = "request refused"


class ApiCallError(ApiError):
    """An "Error Message" body: invalid symbol or call."""

    kind = "invalid call"


class ApiKeyError(ApiCallError):
    kind = "API key rejected"


class UnknownSymbol(ApiError):
    kind = "unknown symbol"


class BadPayload(ApiError):
    """The body looked like data but a field is missing or not a number."""

    kind = "malformed payload"


def number_field(record: dict[str, Any], key: str) -> float:
    if key not in record:
        raise BadPayload(f"field {key!r} is missing")
    try:
        value = float(str(record[key]).strip().rstrip("%"))
    except ValueError:
        raise BadPayload(f"field {key!r} is not a number: {str(record[key])[:40]!r}") from None
    if not math.isfinite(value):
        raise BadPayload(f"field {key!r} is not finite: {record[key]!r}")
    return value


def volume_field(record: dict[str, Any], key: str) -> int:
    value = number_field(record, key)
    if value < 0 or value != int(value):
        raise BadPayload(f"field {key!r} is not a whole non-negative number: {record[key]!r}")
    return int(value)


def price_field(record: dict[str, Any], key: str) -> float:
    value = number_field(record, key)
    if value <= 0:
        raise BadPayload(f"field {key!r} is not a positive price: {record[key]!r}")
    return value


def check_for_error_body(payload: Any) -> None:
    """Raise the error kind that a notice, limit or error body stands for."""
    if not isinstance(payload, dict):
        raise BadPayload(f"expected a JSON object, got {type(payload).__name__}")
    if "Error Message" in payload:
        message = str(payload["Error Message"])
        raise (ApiKeyError if "apikey" in message.lower() else ApiCallError)(message)
    for key in ("Note", "Information"):
        if key in payload:
            message = str(payload[key])
            lowered = message.lower()
            if "per day" in lowered and "rate limit is" in lowered:
                raise ApiDailyLimit(message)
            if key == "Note" or "sparingly" in lowered or "call frequency" in lowered:
                raise ApiThrottled(message)
            raise ApiNotice(message)


GLOBAL_QUOTE_KEY = "Global Quote"


def _global_quote_envelope(payload: dict[str, Any]) -> tuple[str, Any]:
    """The key the quote came under and its record: "Global Quote", or with a premium key's
    entitlement=delayed "Global Quote - DATA DELAYED BY 15 MINUTES"."""
    if GLOBAL_QUOTE_KEY in payload:
        return GLOBAL_QUOTE_KEY, payload[GLOBAL_QUOTE_KEY]
    key = next((key for key in payload if isinstance(key, str) and key.startswith(GLOBAL_QUOTE_KEY)), None)
    if key is None:
        raise BadPayload("no 'Global Quote' in the response")
    return key, payload[key]


def entitlement_of(envelope_key: str, requested: str) -> str | None:
    """What the data came with: "delayed" when the answer says so, else what was asked for (None: end of day)."""
    if "DELAYED" in envelope_key.upper():
        return "delayed"
    return requested or None


def parse_global_quote(payload: Any, symbol: str, fetched_at: datetime, entitlement: str = "") -> Quote:
    """A GLOBAL_QUOTE body as a Quote stamped with the fetch time (the API names only the day)."""
    check_for_error_body(payload)
    key, record = _global_quote_envelope(payload)
    if not isinstance(record, dict):
        raise BadPayload(f"{key!r} is not an object")
    if not record:
        raise UnknownSymbol(f"Alpha Vantage has no quote for {symbol}")
    trading_day = str(record.get("07. latest trading day", "")).strip()
    try:
        date.fromisoformat(trading_day)
    except ValueError:
        raise BadPayload(f"field '07. latest trading day' is not a date: {trading_day[:40]!r}") from None

    def optional(name: str) -> float | None:
        return number_field(record, name) if name in record else None

    return Quote(
        symbol=symbol,
        ts=fetched_at,
        price=price_field(record, "05. price"),
        open=price_field(record, "02. open"),
        high=price_field(record, "03. high"),
        low=price_field(record, "04. low"),
        volume=volume_field(record, "06. volume"),
        source=GLOBAL_QUOTE,
        fetched_at=fetched_at,
        change=optional("09. change"),
        change_percent=optional("10. change percent"),
        trading_day=trading_day,
        previous_close=optional("08. previous close"),
        entitlement=entitlement_of(key, entitlement),
    )


def eastern_to_utc(naive: str, zone_name: str) -> datetime:
    """Convert the API's naive local timestamp in `zone_name` to an aware UTC datetime.

    zoneinfo applies the offset in force on that date, so daylight-saving changes are right.
    Bars never fall in the repeated autumn hour (trading is 04:00-20:00), so fold=0 is safe.
    """
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a tzdata file
        raise BadPayload(f"unknown time zone {zone_name[:40]!r}") from None
    try:
        local = datetime.fromisoformat(naive.strip())
    except ValueError:
        raise BadPayload(f"timestamp {naive[:40]!r} does not parse") from None
    try:
        return local.astimezone(UTC) if local.tzinfo is not None else local.replace(tzinfo=zone).astimezone(UTC)
    except OverflowError:  # within a day of year 1 or 9999
        raise BadPayload(f"timestamp {naive[:40]!r} is out of range") from None


def _time_series(payload: Any) -> tuple[str, dict[str, Any]]:
    """The time zone and the series of a TIME_SERIES_* body."""
    check_for_error_body(payload)
    meta = payload.get("Meta Data")
    series_key = next((key for key in payload if key.startswith("Time Series (")), None)
    if not isinstance(meta, dict) or series_key is None:
        raise BadPayload("no 'Meta Data' or 'Time Series' in the response")
    zone_name = next((str(value) for key, value in meta.items() if key.endswith("Time Zone")), None)
    if zone_name is None:
        raise BadPayload("'Meta Data' has no time zone")
    series = payload[series_key]
    if not isinstance(series, dict):
        raise BadPayload(f"{series_key!r} is not an object")
    for stamp, bar in series.items():
        if not isinstance(bar, dict):
            raise BadPayload(f"bar {stamp[:40]!r} is not an object")
    return zone_name, series


def _bar_quote(symbol: str, bar: dict[str, Any], ts: datetime, source: str, fetched_at: datetime,
               entitlement: str = "", trading_day: str | None = None) -> Quote:
    return Quote(symbol=symbol, ts=ts, price=price_field(bar, "4. close"), open=price_field(bar, "1. open"),
                 high=price_field(bar, "2. high"), low=price_field(bar, "3. low"),
                 volume=volume_field(bar, "5. volume"), source=source, fetched_at=fetched_at,
                 trading_day=trading_day, entitlement=entitlement or None)


def parse_intraday(payload: Any, symbol: str, fetched_at: datetime, entitlement: str = "") -> list[Quote]:
    """A TIME_SERIES_INTRADAY body as Quotes in time order, oldest first."""
    zone_name, series = _time_series(payload)
    quotes = [_bar_quote(symbol, bar, eastern_to_utc(stamp, zone_name), TIME_SERIES_INTRADAY, fetched_at, entitlement)
              for stamp, bar in series.items()]
    quotes.sort(key=lambda quote: quote.ts)
    return quotes


def parse_daily(payload: Any, symbol: str, fetched_at: datetime, close_of: Callable[[date], datetime]) -> list[Quote]:
    """A TIME_SERIES_DAILY body as one Quote per finished session, oldest first: the day's close at the
    moment the session closed (`close_of`, from the trading calendar). A session still open when the
    answer came (its bar is partial: "Last Refreshed" then holds a time) is left out."""
    _, series = _time_series(payload)
    quotes = []
    for stamp, bar in series.items():
        try:
            day = date.fromisoformat(stamp.strip())
        except ValueError:
            raise BadPayload(f"day {stamp[:40]!r} is not a date") from None
        try:
            closed = close_of(day)
        except OverflowError:  # a day at the end of the calendar
            raise BadPayload(f"day {stamp[:40]!r} is out of range") from None
        if closed <= fetched_at:
            quotes.append(_bar_quote(symbol, bar, closed, TIME_SERIES_DAILY, fetched_at, trading_day=day.isoformat()))
    quotes.sort(key=lambda quote: quote.ts)
    return quotes
