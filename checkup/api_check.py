"""doctor.py --call-api: one real call as the producer would make it, to see the key's entitlement and
whether it is throttled. Never made without the flag: a call spends part of the day's budget."""

from __future__ import annotations

from checkup.finding import Finding, fail, ok, warn
from config import Settings
from quotesource.alphavantage import ApiDailyLimit, ApiError, ApiThrottled
from quotesource.bulk import BULK_LIMIT, REALTIME_BULK_QUOTES
from quotesource.client import AlphaVantageClient

WHAT = "Alpha Vantage"


def call_api(settings: Settings) -> Finding:
    client = AlphaVantageClient(settings.api_key, settings.base_url, settings.function, settings.interval,
                                settings.entitlement, timeout=(5.0, settings.api_timeout))
    symbols = list(settings.symbols[:BULK_LIMIT] if settings.function == REALTIME_BULK_QUOTES else settings.symbols[:1])
    asked = f"{settings.function} {','.join(symbols[:3])}{',...' if len(symbols) > 3 else ''}"
    try:
        fetched = client.fetch(symbols)
    except ApiDailyLimit as exc:
        return warn(WHAT, f"{asked}: the key is throttled until the next UTC day ({exc})")
    except ApiThrottled as exc:
        return warn(WHAT, f"{asked}: the key is throttled right now ({exc})")
    except ApiError as exc:
        return fail(WHAT, f"{asked}: {exc}")
    if not fetched.quotes:
        return fail(WHAT, f"{asked}: answered without a quote (missing: {', '.join(fetched.missing) or 'all'})")
    quote = fetched.quotes[-1]
    entitlement = quote.entitlement or "none (end-of-day data)"
    when = f"trading day {quote.trading_day}" if quote.trading_day else f"{quote.ts:%Y-%m-%d %H:%M} UTC"
    found = f"{asked}: answered, not throttled; {quote.symbol} {quote.price:g} ({when}); entitlement {entitlement}"
    if settings.entitlement and quote.entitlement != settings.entitlement:
        return warn(WHAT, f"{found}, though ALPHAVANTAGE_ENTITLEMENT asks for {settings.entitlement}")
    return ok(WHAT, found)
