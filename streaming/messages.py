"""The Kafka message formats (version 1): quotes both ways (Quote -> bytes -> validated row), and
the alerts consumer.py publishes for other programs.

Times travel as UTC ISO-8601 with milliseconds and a "Z" (`2020-05-08T18:05:00.000Z`), a form
that sorts correctly as text in SQLite.
"""

from __future__ import annotations

import functools
import json
import math
import re
import typing
from datetime import date, datetime, timedelta
from typing import Any, Literal, NamedTuple

import msgspec
import msgspec.structs
import orjson

from common.symbols import SYMBOL_PATTERN
from common.timestamps import CANONICAL_TIME, format_time
from quotesource.alphavantage import GLOBAL_QUOTE, TIME_SERIES_DAILY, TIME_SERIES_INTRADAY, Quote
from quotesource.bulk import REALTIME_BULK_QUOTES

VERSION = 1
SOURCES = frozenset({GLOBAL_QUOTE, TIME_SERIES_INTRADAY, REALTIME_BULK_QUOTES, TIME_SERIES_DAILY})
# What premium data came with; a message without the field carries end-of-day data.
ENTITLEMENTS = frozenset({"realtime", "delayed"})
# Optional numbers a quote may carry beside its price (bulk quotes bring all four, global quotes the first).
EXTRA_NUMBERS = ("previous_close", "extended_hours_quote", "extended_hours_change", "extended_hours_change_percent")
# SQLite stores integers in 64 bits; a larger volume would fail the whole batch's insert.
MAX_VOLUME = 2**63 - 1
# A quote stamped further ahead of the consumer's clock than this is a fault, not a quote: stored, it
# would make every later quote of its symbol look late and silence its alerts.
FUTURE_TOLERANCE = timedelta(minutes=10)
# The canonical form (common.timestamps.CANONICAL_TIME) with a clock Python's parse accepts; the day is
# checked apart. ASCII digits only, as the parse takes.
CANONICAL_CLOCK = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{3}Z")
# A trading day in its stored form (ASCII digits; whether the date exists is checked apart).
CANONICAL_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class InvalidMessage(ValueError):
    """A message we cannot store; the text is the reason kept with it."""


class QuoteRow(NamedTuple):
    """A validated message, in the column order of db.save_batch."""

    symbol: str
    ts: str
    price: float
    open: float
    high: float
    low: float
    volume: int
    change: float | None
    change_percent: float | None
    trading_day: str | None
    source: str
    fetched_at: str
    entitlement: str | None = None
    previous_close: float | None = None
    extended_hours_quote: float | None = None
    extended_hours_change: float | None = None
    extended_hours_change_percent: float | None = None


class AlertRow(NamedTuple):
    """An alert as stored and published, in the column order of db.save_batch."""

    symbol: str
    rule: str
    direction: str  # "up" or "down"
    price: float
    ts: str  # the quote that fired it
    reference_price: float
    reference_ts: str
    move_percent: float
    fired_at: str


# The reason a message was set aside, in one word of a fixed set (a metric label; the stored reason says more).
REJECTION_KINDS = (
    ("not UTF-8", "not_utf8"), ("not JSON", "not_json"), ("null value", "tombstone"), ("empty value", "empty"),
    ("not a JSON object", "not_object"), ("unsupported message version", "version"),
    ("ts is in the future", "future"), ("cannot be decoded", "undecodable"),
)


def rejection_kind(reason: str) -> str:
    """not_utf8, not_json, tombstone, empty, not_object, version, future, undecodable, missing or invalid."""
    for start, kind in REJECTION_KINDS:
        if reason.startswith(start):
            return kind
    return "missing" if reason.endswith((" is missing", " is null")) else "invalid"


def encode_quote(quote: Quote) -> bytes:
    """The message value for a quote."""
    message: dict[str, Any] = {
        "v": VERSION, "symbol": quote.symbol, "ts": format_time(quote.ts), "price": quote.price,
        "open": quote.open, "high": quote.high, "low": quote.low, "volume": quote.volume,
        "source": quote.source, "fetched_at": format_time(quote.fetched_at),
    }
    if quote.change is not None:
        message["change"] = quote.change
    if quote.change_percent is not None:
        message["change_percent"] = quote.change_percent
    if quote.trading_day is not None:
        message["trading_day"] = quote.trading_day
    if quote.entitlement is not None:
        message["entitlement"] = quote.entitlement
    for name in EXTRA_NUMBERS:
        if getattr(quote, name) is not None:
            message[name] = getattr(quote, name)
    return json.dumps(message, separators=(",", ":")).encode()


def encode_alert(alert: AlertRow) -> bytes:
    """The alerts topic's message value: the stored alert as one JSON object, with a version."""
    return json.dumps({"v": VERSION, **alert._asdict()}, separators=(",", ":")).encode()


def quote_from_row(row: QuoteRow) -> Quote:
    """The Quote a validated message stands for (times at the message's millisecond precision)."""
    return Quote(symbol=row.symbol, ts=datetime.fromisoformat(row.ts), price=row.price, open=row.open,
                 high=row.high, low=row.low, volume=row.volume, source=row.source,
                 fetched_at=datetime.fromisoformat(row.fetched_at), change=row.change,
                 change_percent=row.change_percent, trading_day=row.trading_day, entitlement=row.entitlement,
                 **{name: getattr(row, name) for name in EXTRA_NUMBERS})


def _number(message: dict[str, Any], name: str, *, optional: bool = False) -> float | None:
    if name not in message or message[name] is None:
        if optional:
            return None
        raise InvalidMessage(f"{name} is missing" if name not in message else f"{name} is null")
    value = message[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidMessage(f"{name} is not a number: {_excerpt(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise InvalidMessage(f"{name} is out of range: {_excerpt(value)}") from None
    if not math.isfinite(number):
        raise InvalidMessage(f"{name} is not finite: {number}")
    return number


def _positive(message: dict[str, Any], name: str) -> float:
    value = message.get(name)
    if type(value) is float and 0.0 < value < math.inf:  # what the producer sends; NaN fails both comparisons
        return value
    value = _number(message, name)
    assert value is not None
    if value <= 0:
        raise InvalidMessage(f"{name} must be positive, got {value:g}")
    return value


def _excerpt(value: object, length: int = 40) -> str:
    """The start of a value, quoted, for a rejection reason."""
    try:
        text = str(value)
    except ValueError:  # an int past Python's digit limit for str()
        text = f"an integer of {value.bit_length()} bits" if isinstance(value, int) else type(value).__name__
    return repr(text[:length])


@functools.lru_cache(maxsize=1024)
def _is_day(text: str) -> bool:
    """Whether YYYY-MM-DD is a real date (a stream's quotes share a few days: each is checked once)."""
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _time(message: dict[str, Any], name: str) -> str:
    value = message.get(name)
    # The producer's canonical form, its clock in range and its day real, is what the parse below
    # accepts and returns unchanged: two datetime parses were 40% of decoding a quote.
    if type(value) is str and (match := CANONICAL_CLOCK.fullmatch(value)) and _is_day(match[1]):
        return value
    return _parsed_time(value, name)


def _parsed_time(value: object, name: str) -> str:
    """A time in any ISO-8601 form with a zone, in the stored form; InvalidMessage naming `name` otherwise."""
    if not isinstance(value, str):
        raise InvalidMessage(f"{name} is missing" if value is None else f"{name} is not a string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidMessage(f"{name} does not parse as ISO-8601: {value[:40]!r}") from None
    if moment.tzinfo is None:
        raise InvalidMessage(f"{name} has no time zone: {value[:40]!r}")
    # The producer already writes the canonical form; re-formatting it was a third of decode time.
    if CANONICAL_TIME.fullmatch(value):
        return value
    try:
        return format_time(moment)
    except OverflowError:
        raise InvalidMessage(f"{name} is out of range in UTC: {value[:40]!r}") from None


def future_limit(now: datetime) -> str:
    """The latest `ts` a quote may carry when the consumer's clock reads `now` (stored-time form)."""
    return format_time(now + FUTURE_TOLERANCE)


def check_not_future(row: QuoteRow, limit: str) -> None:
    """Refuse a quote stamped after `limit` (see future_limit: computed once per batch, not per quote)."""
    if row.ts > limit:
        raise InvalidMessage(f"ts is in the future: {row.ts} is after {limit}, the consumer's clock plus "
                             f"{FUTURE_TOLERANCE.seconds // 60} minutes")


def _parse_slowly(raw: bytes) -> Any:
    """The standard library's parse of what orjson refused: it names the problem precisely, and it
    accepts NaN and Infinity, so those are rejected by validation as non-finite prices."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessage(f"not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidMessage(f"not JSON: {exc}") from None
    except RecursionError:
        raise InvalidMessage("not JSON we accept: nested too deeply") from None


def _typed_fields() -> list[tuple]:
    """The version, then QuoteRow's fields in its order with its types; a field that may be None may also be
    left out."""
    hints = typing.get_type_hints(QuoteRow)
    return [("v", Literal[1]), *((name, hints[name], None) if type(None) in typing.get_args(hints[name])
                                 else (name, hints[name]) for name in QuoteRow._fields)]


# A message as the producer writes it, typed: msgspec checks the JSON and every field's type in one C pass,
# which is what most of decoding a quote cost in Python. Unknown fields are ignored, as the full checks
# ignore them.
_TypedQuote = msgspec.defstruct("_TypedQuote", _typed_fields(), kw_only=True)
_TYPED = msgspec.json.Decoder(_TypedQuote)


def _canonical_time(text: str) -> bool:
    """What _time returns unchanged without parsing (the producer's form, a real day)."""
    return (match := CANONICAL_CLOCK.fullmatch(text)) is not None and _is_day(match[1])


def _typed_row(raw: bytes) -> QuoteRow | None:
    """The row of a message in the producer's own form, or None: the full checks then decide, and
    name the problem. A row this returns is the row they return (a property test holds it to that)."""
    try:
        quote = _TYPED.decode(raw)
    except (msgspec.MsgspecError, ValueError, RecursionError):  # a UnicodeDecodeError is a ValueError
        return None
    trading_day = quote.trading_day
    if (SYMBOL_PATTERN.fullmatch(quote.symbol) and quote.source in SOURCES
            and 0.0 < quote.price < math.inf and 0.0 < quote.open < math.inf
            and 0.0 < quote.high < math.inf and 0.0 < quote.low < math.inf
            and 0 <= quote.volume <= MAX_VOLUME
            and (trading_day is None or _is_canonical_day(trading_day))
            and (quote.entitlement is None or quote.entitlement in ENTITLEMENTS)
            and _canonical_time(quote.ts) and _canonical_time(quote.fetched_at)):
        return QuoteRow(*msgspec.structs.astuple(quote)[1:])  # without the version
    return None


@functools.lru_cache(maxsize=1024)
def _is_canonical_day(text: str) -> bool:
    """Whether a trading day is already in its stored form, YYYY-MM-DD of a real date."""
    return CANONICAL_DAY.fullmatch(text) is not None and _is_day(text)


def decode_quote(raw: bytes | None) -> QuoteRow:
    """Parse and validate a message value; raise InvalidMessage naming the first problem."""
    if raw and (row := _typed_row(raw)) is not None:
        return row
    return _checked_row(raw)


def _checked_row(raw: bytes | None) -> QuoteRow:
    """Every check, in order, each with its reason: the way any message that is not in the producer's
    own form is decoded."""
    if raw is None:
        raise InvalidMessage("null value (tombstone)")
    if not raw:
        raise InvalidMessage("empty value")
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith("depth limit"):  # the standard library would only recurse until it fails
            raise InvalidMessage("not JSON we accept: nested more than 1024 levels deep") from None
        message = _parse_slowly(raw)
    if not isinstance(message, dict):
        raise InvalidMessage(f"not a JSON object but {type(message).__name__}")
    if message.get("v") != VERSION:
        raise InvalidMessage(f"unsupported message version {_excerpt(message.get('v'), 20)}")
    symbol = message.get("symbol")
    if not isinstance(symbol, str):
        raise InvalidMessage("symbol is missing" if symbol is None else "symbol is not a string")
    if not SYMBOL_PATTERN.fullmatch(symbol):
        raise InvalidMessage(f"symbol is not valid: {symbol[:40]!r}")
    source = message.get("source")
    if not isinstance(source, str) or source not in SOURCES:
        raise InvalidMessage(f"source is not one of {sorted(SOURCES)}: {_excerpt(source)}")
    volume = message.get("volume")
    if isinstance(volume, bool) or not isinstance(volume, int) or volume < 0:
        raise InvalidMessage(f"volume is not a whole non-negative number: {_excerpt(volume)}")
    if volume > MAX_VOLUME:
        raise InvalidMessage(f"volume is out of range (at most 2^63-1): {_excerpt(volume)}")
    trading_day = message.get("trading_day")
    if trading_day is not None:
        try:
            trading_day = date.fromisoformat(trading_day).isoformat()  # "20200508" too, stored as 2020-05-08
        except (TypeError, ValueError):
            raise InvalidMessage(f"trading_day is not a date: {_excerpt(trading_day)}") from None
    entitlement = message.get("entitlement")
    if entitlement is not None and (not isinstance(entitlement, str) or entitlement not in ENTITLEMENTS):
        raise InvalidMessage(f"entitlement is not one of {sorted(ENTITLEMENTS)}: {_excerpt(entitlement)}")
    # Runs for every message: positional arguments in QuoteRow's order (the extras last, as EXTRA_NUMBERS)
    # and one set test for the extras decode in 7.2 us, keywords and four lookups took 7.9 (6.9 without extras).
    extras = () if message.keys().isdisjoint(EXTRA_NUMBERS) \
        else tuple(_number(message, name, optional=True) for name in EXTRA_NUMBERS)
    return QuoteRow(symbol, _time(message, "ts"), _positive(message, "price"), _positive(message, "open"),
                    _positive(message, "high"), _positive(message, "low"), volume,
                    _number(message, "change", optional=True), _number(message, "change_percent", optional=True),
                    trading_day, source, _time(message, "fetched_at"), entitlement, *extras)
