"""REALTIME_BULK_QUOTES: up to 100 symbols per call, so a premium key refreshes hundreds of symbols a minute.

The live answer is `{"endpoint": ..., "message": "success", "data": [{...}, ...]}` with every
value a string, `change_percent` without a `%`, and a naive US/Eastern `timestamp` with
milliseconds. Any other `message` (the demo key's "This is a premium endpoint", which comes with
ARTIFICIAL sample data) is a refused request: nothing from it is ever published.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from quotesource.alphavantage import (
    ApiNotice,
    BadPayload,
    Quote,
    check_for_error_body,
    eastern_to_utc,
    number_field,
    price_field,
    volume_field,
)

REALTIME_BULK_QUOTES = "REALTIME_BULK_QUOTES"
# Alpha Vantage ignores any symbol beyond the 100th of one call.
BULK_LIMIT = 100
BULK_TIME_ZONE = "US/Eastern"
# Public clients read either spelling of these two fields.
PRICE_FIELDS = ("close", "price")
PREVIOUS_CLOSE_FIELDS = ("previous_close", "previous close")


@dataclass
class BulkAnswer:
    """What one bulk call brought: the quotes, the symbols it left out, and items it could not use."""

    quotes: list[Quote] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "SYMBOL: reason"


def chunks(symbols: list[str], limit: int = BULK_LIMIT) -> list[list[str]]:
    """The symbols in as few calls as the limit allows, of even sizes (250 -> 84, 83, 83)."""
    if not symbols:
        return []
    count = math.ceil(len(symbols) / limit)
    size, extra = divmod(len(symbols), count)
    result, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        result.append(symbols[start:end])
        start = end
    return result


def _first_present(item: dict[str, Any], names: tuple[str, ...]) -> str | None:
    return next((name for name in names if _present(item, name)), None)


def _present(item: dict[str, Any], name: str) -> bool:
    """A field that carries a value: outside extended hours those fields may be empty."""
    value = item.get(name)
    return value is not None and str(value).strip() not in ("", "-", "None", "null")


def _optional_number(item: dict[str, Any], *names: str) -> float | None:
    name = _first_present(item, names)
    return None if name is None else number_field(item, name)


def parse_bulk_item(item: dict[str, Any], symbol: str, fetched_at: datetime, entitlement: str) -> Quote:
    """One item of `data` as a Quote whose `ts` is the item's own timestamp, in UTC."""
    stamp = item.get("timestamp")
    if not isinstance(stamp, str):
        raise BadPayload("field 'timestamp' is missing")
    ts = eastern_to_utc(stamp, BULK_TIME_ZONE)
    price_name = _first_present(item, PRICE_FIELDS)
    if price_name is None:
        raise BadPayload("neither 'close' nor 'price' is present")
    return Quote(
        symbol=symbol,
        ts=ts,
        price=price_field(item, price_name),
        open=price_field(item, "open"),
        high=price_field(item, "high"),
        low=price_field(item, "low"),
        volume=volume_field(item, "volume"),
        source=REALTIME_BULK_QUOTES,
        fetched_at=fetched_at,
        change=_optional_number(item, "change"),
        change_percent=_optional_number(item, "change_percent"),
        trading_day=datetime.fromisoformat(stamp.strip()).date().isoformat(),  # the US/Eastern date
        previous_close=_optional_number(item, *PREVIOUS_CLOSE_FIELDS),
        extended_hours_quote=_optional_number(item, "extended_hours_quote"),
        extended_hours_change=_optional_number(item, "extended_hours_change"),
        extended_hours_change_percent=_optional_number(item, "extended_hours_change_percent"),
        entitlement=entitlement or "realtime",
    )


def parse_bulk_quotes(payload: Any, symbols: list[str], fetched_at: datetime, entitlement: str = "") -> BulkAnswer:
    """A REALTIME_BULK_QUOTES body for `symbols`; raise the ApiError a refusal or notice stands for."""
    check_for_error_body(payload)
    message = payload.get("message")
    if not isinstance(message, str) or message.strip().lower() != "success":
        raise ApiNotice(f"REALTIME_BULK_QUOTES answered {str(message)[:160]!r}; nothing from it is used")
    data = payload.get("data")
    if not isinstance(data, list):
        raise BadPayload("'data' is missing or not a list")
    wanted = {symbol.upper(): symbol for symbol in symbols}
    answer, answered = BulkAnswer(), set()
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("symbol"), str):
            answer.skipped.append(f"an item without a symbol: {str(item)[:40]!r}")
            continue
        key = item["symbol"].strip().upper()
        if key not in wanted or key in answered:
            continue  # not asked for, or a second item for the same symbol
        answered.add(key)
        try:
            answer.quotes.append(parse_bulk_item(item, wanted[key], fetched_at, entitlement))
        except BadPayload as exc:
            answer.skipped.append(f"{wanted[key]}: {exc.detail}")
    answer.missing = [symbol for symbol in symbols if symbol.upper() not in answered]
    return answer
