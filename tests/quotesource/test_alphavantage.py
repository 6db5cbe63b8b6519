"""The Alpha Vantage client: every recorded payload and every failure, each as its own error kind."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from alphavantage_standin import Answer, fixture, recorded
from conftest import TEST_API_KEY
from market.calendar import TradingCalendar
from quotesource.alphavantage import (
    ApiCallError,
    ApiDailyLimit,
    ApiError,
    ApiHttpError,
    ApiKeyError,
    ApiNotice,
    ApiNotJson,
    ApiThrottled,
    ApiTimeout,
    ApiUnreachable,
    BadPayload,
    UnknownSymbol,
    eastern_to_utc,
    parse_daily,
    parse_global_quote,
    parse_intraday,
)
from quotesource.client import AlphaVantageClient
from streaming.local_broker import free_port

FETCHED = datetime(2026, 11, 24, 15, 0, 0, 123000, tzinfo=UTC)


def load(name: str) -> object:
    return json.loads(fixture(name))


def test_global_quote_ibm_is_parsed_with_numbers_as_numbers():
    quote = parse_global_quote(load("global_quote_IBM.json"), "IBM", FETCHED)
    assert (quote.symbol, quote.price, quote.open, quote.high, quote.low) == ("IBM", 121.74, 122.67, 122.8, 121.06)
    assert quote.volume == 2528814 and isinstance(quote.volume, int)
    assert (quote.change, quote.change_percent, quote.trading_day) == (0.51, 0.4207, "2020-05-08")
    assert (quote.ts, quote.fetched_at, quote.source) == (FETCHED, FETCHED, "GLOBAL_QUOTE")


def test_global_quote_msft_keeps_negative_change():
    quote = parse_global_quote(load("global_quote_MSFT.json"), "MSFT", FETCHED)
    assert (quote.price, quote.volume, quote.change, quote.change_percent) == (112.13, 29062853, -0.66, -0.5852)
    assert quote.trading_day == "2018-10-05"


def test_intraday_bars_come_oldest_first_in_utc():
    quotes = parse_intraday(load("intraday_5min_IBM_trimmed.json"), "IBM", FETCHED)
    assert [(q.ts, q.price, q.open, q.high, q.low, q.volume) for q in quotes] == [
        (datetime(2020, 5, 8, 18, 0, tzinfo=UTC), 121.78, 121.685, 121.8, 121.685, 29277),
        (datetime(2020, 5, 8, 18, 5, tzinfo=UTC), 121.74, 121.79, 121.86, 121.7225, 31454),
    ]
    assert all(q.source == "TIME_SERIES_INTRADAY" and q.change is None and q.trading_day is None for q in quotes)


def test_the_full_compact_intraday_payload_gives_100_bars():
    quotes = parse_intraday(load("intraday_1min_MSFT_compact.json"), "MSFT", FETCHED)
    assert len(quotes) == 100
    assert quotes[0].ts == datetime(2018, 6, 1, 18, 21, tzinfo=UTC)
    assert quotes[-1].ts == datetime(2018, 6, 1, 20, 0, tzinfo=UTC)
    assert quotes[-1].volume == 4129781


@pytest.mark.parametrize(("local", "utc"), [
    # Spring forward, 2020-03-08 02:00 EST -> 03:00 EDT.
    ("2020-03-07 16:00:00", datetime(2020, 3, 7, 21, 0, tzinfo=UTC)),
    ("2020-03-08 01:55:00", datetime(2020, 3, 8, 6, 55, tzinfo=UTC)),
    ("2020-03-08 03:00:00", datetime(2020, 3, 8, 7, 0, tzinfo=UTC)),
    ("2020-03-09 09:30:00", datetime(2020, 3, 9, 13, 30, tzinfo=UTC)),
    # Fall back, 2020-11-01 02:00 EDT -> 01:00 EST.
    ("2020-10-30 16:00:00", datetime(2020, 10, 30, 20, 0, tzinfo=UTC)),
    ("2020-11-02 09:30:00", datetime(2020, 11, 2, 14, 30, tzinfo=UTC)),
    ("2020-11-01 03:00:00", datetime(2020, 11, 1, 8, 0, tzinfo=UTC)),
])
def test_eastern_times_convert_to_utc_across_daylight_saving_changes(local, utc):
    assert eastern_to_utc(local, "US/Eastern") == utc


def test_bars_on_both_sides_of_a_dst_change_stay_in_order_and_five_minutes_apart_in_market_time():
    payload = load("intraday_5min_IBM_trimmed.json")
    payload["Time Series (5min)"] = {
        "2020-03-09 09:35:00": payload["Time Series (5min)"]["2020-05-08 14:05:00"],
        "2020-03-06 15:55:00": payload["Time Series (5min)"]["2020-05-08 14:00:00"],
    }
    first, second = parse_intraday(payload, "IBM", FETCHED)
    assert first.ts == datetime(2020, 3, 6, 20, 55, tzinfo=UTC)   # EST, UTC-5
    assert second.ts == datetime(2020, 3, 9, 13, 35, tzinfo=UTC)  # EDT, UTC-4


@pytest.mark.parametrize(("name", "kind"), [
    ("note_rate_limit.json", ApiThrottled),
    ("information_rate_limit_2025.json", ApiThrottled),
    ("information_burst_limit_1rps.json", ApiThrottled),
    ("information_daily_limit.json", ApiDailyLimit),
    ("information_daily_limit_key_detected.json", ApiDailyLimit),
    ("information_demo_key.json", ApiNotice),
    ("information_premium_endpoint.json", ApiNotice),
    ("information_outputsize_full_premium.json", ApiNotice),
    ("error_invalid_symbol_intraday.json", ApiCallError),
    ("error_invalid_symbol_daily.json", ApiCallError),
    ("error_missing_apikey.json", ApiKeyError),
    ("global_quote_unknown_symbol.json", UnknownSymbol),
    ("daily_IBM_trimmed.json", BadPayload),
    ("realtime_bulk_quotes_demo_sample.json", BadPayload),
])
def test_every_recorded_error_body_is_its_own_error_kind_and_never_a_quote(name, kind):
    with pytest.raises(ApiError) as caught:
        parse_global_quote(load(name), "IBM", FETCHED)
    assert type(caught.value) is kind
    if name.startswith(("note", "information", "error")):
        body = load(name)
        assert caught.value.detail == next(iter(body.values()))


def test_throttles_are_transient_and_bad_symbols_are_not():
    assert ApiThrottled.transient and ApiDailyLimit.transient and ApiHttpError.transient
    assert not UnknownSymbol.transient and not ApiCallError.transient and not BadPayload.transient


@pytest.mark.parametrize(("change", "message"), [
    (lambda q: q.pop("05. price"), "malformed payload: field '05. price' is missing"),
    (lambda q: q.update({"05. price": "N/A"}), "malformed payload: field '05. price' is not a number: 'N/A'"),
    (lambda q: q.update({"05. price": "-3.1"}), "malformed payload: field '05. price' is not a positive price: '-3.1'"),
    (lambda q: q.update({"06. volume": "12.5"}), "malformed payload: field '06. volume' is not a whole non-negative number: '12.5'"),
    (lambda q: q.update({"02. open": "NaN"}), "malformed payload: field '02. open' is not finite: 'NaN'"),
    (lambda q: q.update({"07. latest trading day": "yesterday"}), "malformed payload: field '07. latest trading day' is not a date: 'yesterday'"),
])
def test_a_global_quote_with_a_missing_or_bad_field_is_rejected_with_its_name(change, message):
    payload = load("global_quote_IBM.json")
    change(payload["Global Quote"])
    with pytest.raises(BadPayload) as caught:
        parse_global_quote(payload, "IBM", FETCHED)
    assert str(caught.value) == message


def test_an_intraday_bar_with_a_bad_timestamp_is_rejected():
    payload = load("intraday_5min_IBM_trimmed.json")
    payload["Time Series (5min)"]["not a time"] = payload["Time Series (5min)"].pop("2020-05-08 14:05:00")
    with pytest.raises(BadPayload, match="timestamp 'not a time' does not parse"):
        parse_intraday(payload, "IBM", FETCHED)


def client_for(url: str, function: str = "GLOBAL_QUOTE", timeout: float = 5.0) -> AlphaVantageClient:
    return AlphaVantageClient(TEST_API_KEY, url, function=function, timeout=(1.0, timeout))


@pytest.mark.parametrize(("answer", "kind", "text"), [
    (Answer(b"<html><body><h1>Application Error</h1></body></html>", status=503, content_type="text/html"),
     ApiHttpError, "HTTP error: status 503 Service Unavailable"),
    (Answer(b'{"error": "boom"}', status=500), ApiHttpError, "HTTP error: status 500 Internal Server Error"),
    (Answer(b"slow down", status=429, content_type="text/plain"), ApiHttpError, "HTTP error: status 429 Too Many Requests"),
    (Answer(b"<html>maintenance</html>", content_type="text/html"), ApiNotJson,
     "response is not JSON: body starts with '<html>maintenance</html>'"),
    (Answer(fixture("global_quote_IBM.json")[:80]), ApiNotJson, None),
])
def test_http_level_failures_are_recognised(standin, answer, kind, text):
    standin.script("GLOBAL_QUOTE", "IBM", answer)
    with pytest.raises(ApiError) as caught:
        client_for(standin.url).fetch_quotes("IBM")
    assert type(caught.value) is kind
    if text:
        assert str(caught.value) == text


def test_a_slow_answer_is_a_timeout(standin):
    standin.script("GLOBAL_QUOTE", "IBM", recorded("global_quote_IBM.json", delay=1.5))
    with pytest.raises(ApiTimeout) as caught:
        client_for(standin.url, timeout=0.3).fetch_quotes("IBM")
    assert str(caught.value) == f"timeout: no answer from {standin.url} within 0.3s"


def test_connection_refused_is_unreachable_and_the_key_stays_out_of_the_message():
    url = f"http://127.0.0.1:{free_port()}/query"
    with pytest.raises(ApiUnreachable) as caught:
        client_for(url).fetch_quotes("IBM")
    assert str(caught.value) == f"connection failed: {url}: Connection refused"
    assert TEST_API_KEY not in repr(caught.value)


def test_a_name_that_does_not_resolve_is_unreachable_and_says_so():
    url = "http://stockmon-test.invalid/query"  # .invalid never resolves (RFC 2606)
    with pytest.raises(ApiUnreachable) as caught:
        client_for(url).fetch_quotes("IBM")
    assert str(caught.value).startswith(f"connection failed: {url}: Failed to resolve 'stockmon-test.invalid' (")


def test_the_key_the_server_echoes_back_is_redacted(standin):
    body = fixture("information_daily_limit_key_detected.json").replace(b"XXXXXXXXXXXXXXXX", TEST_API_KEY.encode())
    standin.script("GLOBAL_QUOTE", "IBM", Answer(body))
    with pytest.raises(ApiDailyLimit) as caught:
        client_for(standin.url).fetch_quotes("IBM")
    assert TEST_API_KEY not in str(caught.value)
    assert str(caught.value).startswith("daily limit reached: We have detected your API key as *** and our")


def test_the_client_sends_function_symbol_interval_and_entitlement(standin):
    standin.script("TIME_SERIES_INTRADAY", "IBM", recorded("intraday_5min_IBM_trimmed.json"))
    client = AlphaVantageClient(TEST_API_KEY, standin.url, function="TIME_SERIES_INTRADAY", interval="5min",
                                entitlement="delayed")
    assert len(client.fetch_quotes("IBM")) == 2
    assert standin.requests == [{"function": "TIME_SERIES_INTRADAY", "symbol": "IBM", "datatype": "json",
                                 "interval": "5min", "outputsize": "compact", "entitlement": "delayed",
                                 "apikey": TEST_API_KEY}]
    standin.script("TIME_SERIES_DAILY", "IBM", recorded("daily_IBM_trimmed.json"))
    assert len(client.fetch(["IBM"], "TIME_SERIES_DAILY").quotes) == 2
    assert standin.requests[1] == {"function": "TIME_SERIES_DAILY", "symbol": "IBM", "datatype": "json",
                                   "outputsize": "compact", "apikey": TEST_API_KEY}


@pytest.mark.parametrize(("zone", "stamp", "message"), [
    ("US/Eastern", "9999-12-31 23:59:59", "malformed payload: timestamp '9999-12-31 23:59:59' is out of range"),
    ("0" * 300, "2020-05-08 14:05:00", f"malformed payload: unknown time zone {'0' * 40!r}"),
])
def test_bar_times_at_the_ends_of_the_calendar_or_in_a_bogus_zone_are_malformed(zone, stamp, message):
    # Found by tests/test_properties.py: these raised OverflowError and OSError.
    payload = {"Meta Data": {"6. Time Zone": zone}, "Time Series (5min)": {stamp: {
        "1. open": "1", "2. high": "1", "3. low": "1", "4. close": "1", "5. volume": "1"}}}
    with pytest.raises(BadPayload) as caught:
        parse_intraday(payload, "IBM", datetime(2026, 1, 1, tzinfo=UTC))
    assert str(caught.value) == message


def test_a_request_that_fails_on_the_way_is_transient_and_retried():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class RedirectLoop(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", self.path)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), RedirectLoop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/query"
    try:
        with pytest.raises(ApiError) as caught:
            client_for(url).fetch_quotes("IBM")
    finally:
        server.shutdown()
        server.server_close()
    assert str(caught.value) == f"request failed: {url}: TooManyRedirects"
    assert caught.value.transient and not isinstance(caught.value, ApiUnreachable)
    assert TEST_API_KEY not in repr(caught.value)


def daily_closes(days: list[str], fetched_at: datetime) -> list[tuple[str, str, float]]:
    """IBM's two recorded daily bars, re-dated to `days`, parsed as of `fetched_at`."""
    payload = load("daily_IBM_trimmed.json")
    bars = list(payload["Time Series (Daily)"].values())
    payload["Time Series (Daily)"] = dict(zip(days, bars, strict=True))
    closes = parse_daily(payload, "IBM", fetched_at, TradingCalendar.nyse().close_of)
    return [(close.trading_day, close.ts.isoformat(), close.price) for close in closes]


def test_daily_closes_are_stamped_when_their_session_closed_early_closes_included():
    assert daily_closes(["2026-11-27", "2026-11-25"], datetime(2026, 11, 28, 12, tzinfo=UTC)) == [
        ("2026-11-25", "2026-11-25T21:00:00+00:00", 121.23),  # 16:00 EST
        ("2026-11-27", "2026-11-27T18:00:00+00:00", 121.79),  # the day after Thanksgiving: 13:00 EST
    ]
    # A day the calendar does not hold (a holiday here) gets 16:00 New York.
    assert daily_closes(["2026-11-26", "2026-07-03"], datetime(2026, 11, 28, 12, tzinfo=UTC))[1][:2] == \
        ("2026-11-26", "2026-11-26T21:00:00+00:00")


def test_a_session_still_open_when_the_answer_came_is_left_out():
    # The recorded answer was taken at 14:07 on 2020-05-08 ("Last Refreshed"): that day's bar is partial.
    payload = load("daily_IBM_trimmed.json")
    during = parse_daily(payload, "IBM", datetime(2020, 5, 8, 18, 7, 3, tzinfo=UTC), TradingCalendar.nyse().close_of)
    assert [close.trading_day for close in during] == ["2020-05-07"]
    after = parse_daily(payload, "IBM", datetime(2020, 5, 8, 20, 0, tzinfo=UTC), TradingCalendar.nyse().close_of)
    assert [close.trading_day for close in after] == ["2020-05-07", "2020-05-08"]
    assert all(close.source == "TIME_SERIES_DAILY" for close in after)


def test_a_daily_answer_with_a_bad_day_or_an_error_body_is_an_api_error():
    payload = load("daily_IBM_trimmed.json")
    payload["Time Series (Daily)"] = {"last friday": payload["Time Series (Daily)"]["2020-05-08"]}
    with pytest.raises(BadPayload, match="day 'last friday' is not a date"):
        parse_daily(payload, "IBM", FETCHED, TradingCalendar.nyse().close_of)
    with pytest.raises(ApiCallError):
        parse_daily(load("error_invalid_symbol_daily.json"), "IBM", FETCHED, TradingCalendar.nyse().close_of)
    with pytest.raises(ApiNotice):
        parse_daily(load("information_outputsize_full_premium.json"), "IBM", FETCHED, TradingCalendar.nyse().close_of)
