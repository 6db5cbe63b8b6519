"""REALTIME_BULK_QUOTES and the delayed GLOBAL_QUOTE envelope: what premium keys get back, parsed."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from alphavantage_standin import fixture
from polling.publisher import NewQuoteFilter
from quotesource.alphavantage import ApiNotice, ApiThrottled, BadPayload, parse_global_quote
from quotesource.bulk import REALTIME_BULK_QUOTES, chunks, parse_bulk_quotes
from streaming.messages import decode_quote, encode_quote

FETCHED = datetime(2026, 11, 24, 15, 0, 0, 123000, tzinfo=UTC)


def load(name: str) -> dict:
    return json.loads(fixture(name))


def test_the_live_format_is_parsed_with_its_own_time_in_utc_and_numbers_as_numbers():
    answer = parse_bulk_quotes(load("realtime_bulk_quotes_live_shape.json"), ["AAPL"], FETCHED)
    [quote] = answer.quotes
    assert (answer.missing, answer.skipped) == ([], [])
    # 2024-10-30 19:59:53.814 in New York is EDT (UTC-4).
    assert quote.ts == datetime(2024, 10, 30, 23, 59, 53, 814000, tzinfo=UTC)
    assert quote.trading_day == "2024-10-30"  # the US/Eastern date, not the UTC one
    assert (quote.symbol, quote.source, quote.fetched_at) == ("AAPL", REALTIME_BULK_QUOTES, FETCHED)
    assert (quote.price, quote.open, quote.high, quote.low, quote.volume) == (230.1, 232.62, 233.47, 229.56, 47070807)
    assert (quote.previous_close, quote.change, quote.change_percent) == (233.67, -3.57, -1.5278)
    assert (quote.extended_hours_quote, quote.extended_hours_change, quote.extended_hours_change_percent) == \
        (230.8, 0.7, 0.30422)
    assert quote.entitlement == "realtime"


def test_a_winter_timestamp_is_converted_with_standard_time():
    payload = load("realtime_bulk_quotes_live_shape.json")
    payload["data"][0]["timestamp"] = "2024-12-02 09:30:00.001"
    [quote] = parse_bulk_quotes(payload, ["AAPL"], FETCHED).quotes
    assert quote.ts == datetime(2024, 12, 2, 14, 30, 0, 1000, tzinfo=UTC)  # EST (UTC-5)


def test_the_other_spellings_public_clients_read_are_accepted():
    payload = load("realtime_bulk_quotes_live_shape.json")
    item = payload["data"][0]
    item["price"], item["previous close"] = item.pop("close"), item.pop("previous_close")
    for name in ("extended_hours_quote", "extended_hours_change", "extended_hours_change_percent"):
        item[name] = ""  # regular hours: nothing to report
    [quote] = parse_bulk_quotes(payload, ["AAPL"], FETCHED, entitlement="delayed").quotes
    assert (quote.price, quote.previous_close, quote.entitlement) == (230.1, 233.67, "delayed")
    assert quote.extended_hours_quote is None


def test_the_demo_keys_artificial_sample_is_a_refused_request():
    with pytest.raises(ApiNotice, match="This is a premium endpoint"):
        parse_bulk_quotes(load("realtime_bulk_quotes_demo_sample.json"), ["MSFT", "AAPL", "IBM"], FETCHED)


def test_a_throttle_notice_on_the_bulk_endpoint_is_a_throttle():
    with pytest.raises(ApiThrottled):
        parse_bulk_quotes(load("information_rate_limit_2025.json"), ["AAPL"], FETCHED)


def test_a_symbol_left_out_is_reported_and_a_bad_item_skipped_without_losing_the_rest():
    payload = load("realtime_bulk_quotes_live_shape.json")
    good = payload["data"][0]
    payload["data"] = [good, {**good, "symbol": "MSFT", "close": "n/a"}, {**good, "symbol": "NOTASKED"}, "junk"]
    answer = parse_bulk_quotes(payload, ["AAPL", "MSFT", "ZZZZ"], FETCHED)
    assert [quote.symbol for quote in answer.quotes] == ["AAPL"]
    assert answer.missing == ["ZZZZ"]
    assert answer.skipped == ["MSFT: field 'close' is not a number: 'n/a'", "an item without a symbol: 'junk'"]


@pytest.mark.parametrize("payload", [{"message": "success"}, {"message": "success", "data": {"AAPL": {}}}, [1, 2]])
def test_a_success_without_a_data_list_is_malformed(payload):
    with pytest.raises(BadPayload):
        parse_bulk_quotes(payload, ["AAPL"], FETCHED)


@pytest.mark.parametrize(("count", "sizes"), [(1, [1]), (100, [100]), (101, [51, 50]), (250, [84, 83, 83]),
                                              (500, [100] * 5), (0, [])])
def test_symbols_go_in_as_few_even_chunks_of_at_most_100_as_possible(count, sizes):
    symbols = [f"S{index}" for index in range(count)]
    result = chunks(symbols)
    assert [len(chunk) for chunk in result] == sizes
    assert [symbol for chunk in result for symbol in chunk] == symbols


def test_both_global_quote_envelopes_are_read_and_the_entitlement_recorded():
    plain = parse_global_quote(load("global_quote_IBM.json"), "IBM", FETCHED)
    delayed = parse_global_quote(load("global_quote_delayed_envelope.json"), "IBM", FETCHED, entitlement="delayed")
    realtime = parse_global_quote(load("global_quote_IBM.json"), "IBM", FETCHED, entitlement="realtime")
    assert (plain.entitlement, delayed.entitlement, realtime.entitlement) == (None, "delayed", "realtime")
    assert delayed.price == plain.price == 121.74
    assert delayed.previous_close == 121.23
    # Asked for realtime data but served delayed: the answer's own word is recorded.
    assert parse_global_quote(load("global_quote_delayed_envelope.json"), "IBM", FETCHED, "realtime").entitlement \
        == "delayed"


def test_a_bulk_quote_travels_through_the_message_with_its_extra_fields():
    [quote] = parse_bulk_quotes(load("realtime_bulk_quotes_live_shape.json"), ["AAPL"], FETCHED).quotes
    row = decode_quote(encode_quote(quote))
    assert (row.source, row.ts, row.trading_day, row.entitlement) == \
        (REALTIME_BULK_QUOTES, "2024-10-30T23:59:53.814Z", "2024-10-30", "realtime")
    assert (row.previous_close, row.extended_hours_quote, row.extended_hours_change,
            row.extended_hours_change_percent) == (233.67, 230.8, 0.7, 0.30422)


def test_a_bulk_quote_is_published_once_and_again_only_with_a_newer_timestamp():
    [quote] = parse_bulk_quotes(load("realtime_bulk_quotes_live_shape.json"), ["AAPL"], FETCHED).quotes
    seen = NewQuoteFilter()
    assert seen.new_quotes([quote]) == [quote]
    seen.remember([quote])
    assert seen.new_quotes([quote]) == []  # the same answer polled again
    newer = replace(quote, ts=quote.ts + timedelta(seconds=2), price=230.2)
    assert seen.new_quotes([newer]) == [newer]
