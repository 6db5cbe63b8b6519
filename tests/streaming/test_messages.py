"""The message format both ways, and every kind of bad message named by its reason."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.timestamps import format_time
from quotesource.alphavantage import Quote
from streaming.messages import (
    InvalidMessage,
    QuoteRow,
    _checked_row,
    _number,
    _parsed_time,
    _positive,
    _time,
    _typed_row,
    check_not_future,
    decode_quote,
    encode_quote,
    future_limit,
)

QUOTE = Quote(symbol="IBM", ts=datetime(2020, 5, 8, 18, 5, tzinfo=UTC), price=121.74, open=121.79, high=121.86,
              low=121.7225, volume=31454, source="TIME_SERIES_INTRADAY",
              fetched_at=datetime(2026, 11, 24, 15, 0, 1, 987654, tzinfo=UTC))
GOOD = {"v": 1, "symbol": "IBM", "ts": "2020-05-08T18:05:00.000Z", "price": 121.74, "open": 121.79, "high": 121.86,
        "low": 121.7225, "volume": 31454, "source": "TIME_SERIES_INTRADAY", "fetched_at": "2026-11-24T15:00:01.987Z"}


def test_a_quote_encodes_to_the_documented_message():
    assert json.loads(encode_quote(QUOTE)) == GOOD


def test_global_quote_extras_are_included_when_present():
    quote = Quote(**{**QUOTE.__dict__, "source": "GLOBAL_QUOTE", "change": 0.51, "change_percent": 0.4207,
                     "trading_day": "2020-05-08"})
    message = json.loads(encode_quote(quote))
    assert (message["change"], message["change_percent"], message["trading_day"]) == (0.51, 0.4207, "2020-05-08")


def test_decoding_gives_the_row_back():
    assert decode_quote(encode_quote(QUOTE)) == QuoteRow(
        "IBM", "2020-05-08T18:05:00.000Z", 121.74, 121.79, 121.86, 121.7225, 31454, None, None, None,
        "TIME_SERIES_INTRADAY", "2026-11-24T15:00:01.987Z")


def test_times_with_other_offsets_are_normalised_to_utc():
    row = decode_quote(json.dumps({**GOOD, "ts": "2020-05-08T14:05:00-04:00"}).encode())
    assert row.ts == "2020-05-08T18:05:00.000Z"
    assert format_time(datetime(2020, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)) == "2020-01-02T03:04:05.006Z"


def with_(**changes: object) -> bytes:
    message = {**GOOD, **changes}
    return json.dumps({k: v for k, v in message.items() if v is not ...}, allow_nan=True).encode()


@pytest.mark.parametrize(("raw", "reason"), [
    (b"\xff\xfe\x00garbage", "not UTF-8 (byte 0)"),
    (b"not json", "not JSON: Expecting value: line 1 column 1 (char 0)"),
    (b'{"v": 1, "symbol": "IBM"', "not JSON: Expecting ',' delimiter: line 1 column 25 (char 24)"),
    (b"[1, 2, 3]", "not a JSON object but list"),
    (b'"IBM"', "not a JSON object but str"),
    (with_(symbol=...), "symbol is missing"),
    (with_(symbol=42), "symbol is not a string"),
    (with_(price=...), "price is missing"),
    (with_(price=None), "price is null"),
    (with_(price="121.74"), "price is not a number: '121.74'"),
    (with_(price="abc"), "price is not a number: 'abc'"),
    (with_(price=-1.5), "price must be positive, got -1.5"),
    (with_(price=0), "price must be positive, got 0"),
    (with_(price=float("nan")), "price is not finite: nan"),
    (with_(price=float("inf")), "price is not finite: inf"),
    (with_(price=True), "price is not a number: 'True'"),
    (with_(ts="yesterday"), "ts does not parse as ISO-8601: 'yesterday'"),
    (with_(ts="2020-05-08T18:05:00"), "ts has no time zone: '2020-05-08T18:05:00'"),
    (with_(ts=...), "ts is missing"),
    (with_(v=2), "unsupported message version '2'"),
    (with_(v=...), "unsupported message version 'None'"),
    (with_(volume=-3), "volume is not a whole non-negative number: '-3'"),
    (with_(volume=1.5), "volume is not a whole non-negative number: '1.5'"),
    (with_(source="CSV"), "source is not one of ['GLOBAL_QUOTE', 'REALTIME_BULK_QUOTES', 'TIME_SERIES_DAILY', 'TIME_SERIES_INTRADAY']: 'CSV'"),
    (with_(symbol="IBM'; DROP TABLE stock_prices;--"), "symbol is not valid: \"IBM'; DROP TABLE stock_prices;--\""),
    (with_(symbol="IBM\x00\n"), "symbol is not valid: 'IBM\\x00\\n'"),
    (with_(trading_day="someday"), "trading_day is not a date: 'someday'"),
    (b"", "empty value"),
    (None, "null value (tombstone)"),
    # Poison messages that once crashed the consumer on every start (issue 9).
    (with_(price=10**400), f"price is out of range: '{str(10**400)[:40]}'"),
    (with_(change=-(10**400)), f"change is out of range: '{str(-(10**400))[:40]}'"),
    (with_(change_percent=10**400), f"change_percent is out of range: '{str(10**400)[:40]}'"),
    (with_(volume=2**63), "volume is out of range (at most 2^63-1): '9223372036854775808'"),
    (with_(extra=[[[[]]]]).replace(b"[[[[]]]]", b"[" * 100_000 + b"]" * 100_000),
     "not JSON we accept: nested more than 1024 levels deep"),
    (with_(ts="9999-12-31T23:00:00-05:00"), "ts is out of range in UTC: '9999-12-31T23:00:00-05:00'"),
    (with_(fetched_at="0001-01-01T00:00:00+05:00"), "fetched_at is out of range in UTC: '0001-01-01T00:00:00+05:00'"),
    (with_(source=["GLOBAL_QUOTE"]), "source is not one of ['GLOBAL_QUOTE', 'REALTIME_BULK_QUOTES', 'TIME_SERIES_DAILY', 'TIME_SERIES_INTRADAY']: \"['GLOBAL_QUOTE']\""),
    (with_(v={"a": 1}), "unsupported message version \"{'a': 1}\""),
])
def test_each_bad_message_is_refused_with_a_reason_naming_the_problem(raw, reason):
    with pytest.raises(InvalidMessage) as caught:
        decode_quote(raw)
    assert str(caught.value) == reason


def test_a_one_megabyte_value_is_refused_without_trouble():
    raw = json.dumps({**GOOD, "padding": "x" * 1_000_000, "price": "big"}).encode()
    with pytest.raises(InvalidMessage, match="price is not a number"):
        decode_quote(raw)


def test_the_largest_volume_sqlite_holds_is_accepted():
    assert decode_quote(with_(volume=2**63 - 1)).volume == 2**63 - 1


def test_years_before_1000_are_stored_zero_padded_so_text_order_is_time_order():
    assert decode_quote(with_(ts="0999-06-01T00:00:00+00:00")).ts == "0999-06-01T00:00:00.000Z"
    assert format_time(datetime(999, 6, 1, tzinfo=UTC)) == "0999-06-01T00:00:00.000Z"
    assert format_time(datetime(1, 1, 1, tzinfo=UTC)) < format_time(datetime(999, 6, 1, tzinfo=UTC)) < GOOD["ts"]


def test_a_compact_trading_day_is_stored_in_the_dashed_form():
    assert decode_quote(with_(trading_day="20200508")).trading_day == "2020-05-08"


@pytest.mark.parametrize(("ts", "refused"), [
    ("2026-11-28T12:10:00.000Z", False),  # within the tolerance of a clock a little behind
    ("2026-11-28T12:10:00.001Z", True),
    ("2100-01-01T00:00:00.000Z", True),
])
def test_a_quote_stamped_beyond_the_tolerance_ahead_of_the_consumers_clock_is_refused(ts, refused):
    limit = future_limit(datetime(2026, 11, 28, 12, 0, tzinfo=UTC))
    assert limit == "2026-11-28T12:10:00.000Z"
    row = decode_quote(with_(ts=ts))
    if not refused:
        check_not_future(row, limit)
        return
    with pytest.raises(InvalidMessage) as caught:
        check_not_future(row, limit)
    assert str(caught.value) == (f"ts is in the future: {ts} is after 2026-11-28T12:10:00.000Z, the consumer's "
                                 "clock plus 10 minutes")


def _slow_outcome(action):
    try:
        return action()
    except InvalidMessage as exc:
        return f"refused: {exc}"


def _positive_by_the_rules(message: dict, name: str) -> float:
    """What _positive returned before its shortcut for floats: any number, checked, then its sign."""
    value = _number(message, name)
    assert value is not None
    if value <= 0:
        raise InvalidMessage(f"{name} must be positive, got {value:g}")
    return value


# Times near the canonical form: each part at and past its range, or in non-ASCII digits (fullwidth,
# Arabic-Indic); other separators, days that do not exist, offsets. One or more parts off a valid time.
TIME_PARTS = {
    "year": ["2024", "0000", "0001", "9999", "\uff12\uff10\uff12\uff14", "202"],
    "month": ["02", "01", "12", "13", "00", "\u0660\u0661"],
    "day": ["29", "01", "28", "30", "31", "32", "00", "\u0660\u0661"],
    "hour": ["23", "00", "09", "19", "20", "24", "99", "\u0660\u0661"],
    "minute": ["59", "00", "60", "5", "\u0660\u0661"], "second": ["59", "00", "60", "61", "\u0660\u0661"],
    "ms": ["999", "000", "00", "0000", "\u0660\u0661\u0662"], "sep": ["T", " ", "t"],
    "zone": ["Z", "z", "+00:00", "-05:00", ""],
}
VALID_TIME = {part: values[0] for part, values in TIME_PARTS.items()}


def _joined(parts: dict) -> str:
    return (f"{parts['year']}-{parts['month']}-{parts['day']}{parts['sep']}{parts['hour']}:{parts['minute']}:"
            f"{parts['second']}.{parts['ms']}{parts['zone']}")


NEAR_CANONICAL = st.one_of(
    st.sampled_from(list(TIME_PARTS)).flatmap(
        lambda part: st.sampled_from(TIME_PARTS[part]).map(lambda value: _joined({**VALID_TIME, part: value}))),
    st.fixed_dictionaries({part: st.sampled_from(values) for part, values in TIME_PARTS.items()}).map(_joined))


@settings(max_examples=2000)
@given(st.one_of(NEAR_CANONICAL, st.text(max_size=30), st.none(), st.integers(), st.floats()))
def test_a_time_takes_the_same_way_through_the_shortcut_as_through_the_parse(value):
    """The canonical shortcut accepts exactly what the full parse returns unchanged, and refuses nothing."""
    message = {"ts": value}
    assert _slow_outcome(lambda: _time(message, "ts")) == _slow_outcome(lambda: _parsed_time(value, "ts"))


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-10**400, max_value=10**400),
                 st.booleans(), st.none(), st.text(max_size=5)))
def test_a_price_takes_the_same_way_through_the_shortcut_as_through_the_checks(value):
    message = {"price": value}
    assert _slow_outcome(lambda: _positive(message, "price")) == _slow_outcome(
        lambda: _positive_by_the_rules(message, "price"))


# Field values a message may carry instead of a good one: every JSON type, numbers at and past each
# limit, times and days near the stored form, symbols and sources near the valid ones.
ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**64, max_value=2**64),
    st.sampled_from([0, -0.0, 0.0, 1, 1.0, 2**63 - 1, 2**63, 5e-324, 1e308, 1e-400, 2**53 + 1]),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12), NEAR_CANONICAL,
    st.sampled_from(["IBM", "ibm", "BRK.B", "", "A" * 21, "IBM\n", "GLOBAL_QUOTE", "REALTIME_BULK_QUOTES", "realtime",
                     "delayed", "2020-05-08", "20200508", "2020-02-30", "2020-5-8", "\uff12020-05-08"]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
FIELDS = [*GOOD, "change", "change_percent", "trading_day", "entitlement", "previous_close", "extended_hours_quote",
          "extended_hours_change", "extended_hours_change_percent"]


def _odd_message(changes: dict, dropped: list[str]) -> dict:
    return {name: value for name, value in {**GOOD, **changes}.items() if name not in dropped}


ODD_MESSAGES = st.builds(_odd_message, st.dictionaries(st.sampled_from([*FIELDS, "other"]), ODD_VALUES, max_size=4),
                         st.lists(st.sampled_from(FIELDS), max_size=2))


def _raw_forms(message: dict) -> st.SearchStrategy[bytes]:
    """The message as bytes: compact, spaced, NaN and Infinity as the standard library writes them, and
    with a key written twice (JSON parsers keep the last)."""
    text = json.dumps(message, separators=(",", ":"))
    twice = text[:-1] + (',' if len(message) else '') + '"price":-1}' if text.startswith("{") else text
    return st.sampled_from([text.encode(), json.dumps(message).encode(), twice.encode(),
                            ('{"price":-1,' + text[1:]).encode() if len(message) else text.encode()])


def _with(**changes) -> bytes:
    return json.dumps({**GOOD, **changes}).encode()


# Each at or just past one check's edge; a typed pass missing that check fails on it.
EDGES = [_with(volume=2**63), _with(volume=2**63 - 1), _with(volume=-1), _with(volume=5.0), _with(volume=True),
         _with(trading_day="20200508"), _with(trading_day="2020-02-30"), _with(trading_day="\uff12020-05-08"),
         _with(ts="2020-05-08T18:05:00.000+00:00"), _with(fetched_at="2026-11-24T15:00:01Z"),
         _with(price=1e-400), _with(price=10**400), _with(price=7), _with(low=-1.5), _with(change=10**400),
         _with(change=True), _with(v=1.0), _with(v=True), _with(v=2), _with(symbol="IBM\n"), _with(symbol="ibm"),
         _with(source="daily"), _with(entitlement="REALTIME"), _with(entitlement="delayed"),
         _with(previous_close="1"), _with(extended_hours_quote=None)]


@settings(max_examples=3000)
@given(st.one_of(st.sampled_from(EDGES), ODD_MESSAGES.flatmap(_raw_forms),
                 st.sampled_from([float("nan"), float("inf"), -float("inf")]).map(
                     lambda number: json.dumps({**GOOD, "price": number}).encode()),
                 st.binary(max_size=40), st.just(b"\xff" + json.dumps(GOOD).encode())))
def test_the_typed_pass_accepts_only_what_the_full_checks_accept_and_gives_the_same_row(raw):
    """Any message the typed pass takes, the full checks take too, into the very same row (the same
    types: an integer price stored as REAL either way); anything else goes to the full checks."""
    typed = _typed_row(raw)
    if typed is not None:
        assert repr(typed) == repr(_checked_row(raw))


def test_the_typed_pass_takes_the_producers_messages():
    """The producer's own messages, bulk quotes' extras included, go the fast way."""
    bulk = dataclasses.replace(QUOTE, source="REALTIME_BULK_QUOTES", change=-0.5, change_percent=-0.41, trading_day="2020-05-08",
                          entitlement="delayed", previous_close=122.24, extended_hours_quote=121.9,
                          extended_hours_change=0.16, extended_hours_change_percent=0.13)
    for quote in (QUOTE, bulk):
        raw = encode_quote(quote)
        assert _typed_row(raw) is not None
        assert repr(_typed_row(raw)) == repr(_checked_row(raw))


@pytest.mark.parametrize("raw", EDGES)
def test_at_each_checks_edge_the_typed_pass_agrees_with_the_full_checks(raw):
    typed = _typed_row(raw)
    if typed is not None:
        assert repr(typed) == repr(_checked_row(raw))
