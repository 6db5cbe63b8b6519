"""Property tests: whatever arrives (bytes, JSON, text), the decoders and parsers either return a valid
result or raise their documented error kind, never anything else. Profiles in conftest.py."""

from __future__ import annotations

import json
import sqlite3
import string
from datetime import UTC, datetime

from hypothesis import assume, given
from hypothesis import strategies as st

import db
from alerts.rules import RuleError, parse_rules
from common.timestamps import CANONICAL_TIME
from config import DEFAULTS, ConfigError, load_settings
from market.calendar import TradingCalendar
from quotesource.alphavantage import ApiError, parse_daily, parse_global_quote, parse_intraday
from streaming.messages import InvalidMessage, check_not_future, decode_quote, future_limit

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CALENDAR = TradingCalendar.nyse()
FIELDS = ["v", "symbol", "ts", "price", "open", "high", "low", "volume", "change", "change_percent", "trading_day",
          "source", "fetched_at"]
# Scalars that reach the edges: huge and tiny numbers, times near year 1 and 9999, odd text.
EDGE_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=2**62, max_value=10**500),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00", "0999-06-01T00:00:00Z",
                     "2020-05-08T18:05:00.000Z", "2020-05-08", "20200508", "GLOBAL_QUOTE", "TIME_SERIES_INTRADAY",
                     "IBM", "BRK.B", "\ud800", "2020-02-30T00:00:00Z"]),
)
JSON_VALUES = st.recursive(EDGE_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
VALID = {"v": 1, "symbol": "IBM", "ts": "2020-05-08T18:05:00.000Z", "price": 121.74, "open": 121.79, "high": 121.86,
         "low": 121.7225, "volume": 31454, "source": "TIME_SERIES_INTRADAY", "fetched_at": "2026-11-24T15:00:01.987Z"}


def as_bytes(message: object) -> bytes:
    return json.dumps(message, allow_nan=True).encode("utf-8", "surrogatepass")


def stored_fine(raw: bytes) -> None:
    """Decode; a row that comes out must go into SQLite as it is, with times in the stored form."""
    try:
        row = decode_quote(raw)
        check_not_future(row, future_limit(NOW))
    except InvalidMessage:
        return
    assert CANONICAL_TIME.fullmatch(row.ts) and CANONICAL_TIME.fullmatch(row.fetched_at)
    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.executescript(db.SCHEMA)
    assert db.save_batch(connection, [row], []) == 1
    connection.close()


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_are_refused_with_a_reason(raw):
    stored_fine(raw)


@given(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), JSON_VALUES, max_size=14))
def test_any_json_object_decodes_or_is_refused_with_a_reason(message):
    stored_fine(as_bytes(message))


@given(st.sampled_from(FIELDS), JSON_VALUES)
def test_a_valid_message_with_any_one_field_changed_decodes_or_is_refused(field, value):
    stored_fine(as_bytes({**VALID, field: value}))


@given(st.integers(min_value=1, max_value=20_000))
def test_any_depth_of_nesting_is_refused_not_recursed_into(depth):
    stored_fine(as_bytes(VALID)[:-1] + b', "x": ' + b"[" * depth + b"]" * depth + b"}")


RULE_TEXT = st.text(alphabet=string.ascii_letters + string.digits + "%/<>:+-., mhdw", max_size=30) | st.text(max_size=20)


@given(RULE_TEXT)
def test_any_rule_text_parses_or_is_refused_and_a_parsed_rule_reads_back_the_same(text):
    try:
        rules = parse_rules(text)
    except RuleError:
        return
    assert parse_rules(", ".join(rule.text for rule in rules)) == rules


@given(st.sampled_from(sorted(DEFAULTS)), st.text(max_size=40))
def test_any_setting_value_is_taken_or_refused_naming_the_setting(name, value):
    assume("\x00" not in value)
    try:
        load_settings(environ={name: value}, env_file=None)
    except ConfigError as exc:
        assert exc.setting in (name, "KAFKA_SASL_MECHANISM")


ANY_JSON = st.recursive(EDGE_SCALARS, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=12), inner, max_size=3), max_leaves=10)
QUOTE_KEYS = ["01. symbol", "02. open", "03. high", "04. low", "05. price", "06. volume", "07. latest trading day",
              "08. previous close", "09. change", "10. change percent"]
BAR_KEYS = ["1. open", "2. high", "3. low", "4. close", "5. volume"]


@given(ANY_JSON | st.fixed_dictionaries({"Global Quote": st.dictionaries(st.sampled_from(QUOTE_KEYS), ANY_JSON)}))
def test_any_global_quote_body_parses_or_raises_an_api_error(payload):
    try:
        quote = parse_global_quote(payload, "IBM", NOW)
    except ApiError:
        return
    assert quote.price > 0 and quote.volume >= 0


@given(ANY_JSON | st.fixed_dictionaries({
    "Meta Data": st.fixed_dictionaries({"6. Time Zone": st.sampled_from(["US/Eastern", "Mars/Olympus"]) | st.text()}),
    "Time Series (5min)": st.dictionaries(st.text(max_size=25) | st.sampled_from(["2020-05-08 14:05:00", "9999-12-31 23:59:59"]),
                                          st.dictionaries(st.sampled_from(BAR_KEYS), ANY_JSON), max_size=3)}))
def test_any_intraday_body_parses_or_raises_an_api_error(payload):
    try:
        bars = parse_intraday(payload, "IBM", NOW)
    except ApiError:
        return
    assert all(bar.ts.tzinfo is not None for bar in bars)


@given(ANY_JSON | st.fixed_dictionaries({
    "Meta Data": st.fixed_dictionaries({"5. Time Zone": st.just("US/Eastern")}),
    "Time Series (Daily)": st.dictionaries(st.text(max_size=12) | st.sampled_from(["2020-05-08", "9999-12-31"]),
                                           st.dictionaries(st.sampled_from(BAR_KEYS), ANY_JSON), max_size=3)}))
def test_any_daily_body_parses_or_raises_an_api_error(payload):
    try:
        closes = parse_daily(payload, "IBM", NOW, CALENDAR.close_of)
    except ApiError:
        return
    assert all(close.ts <= NOW and close.trading_day for close in closes)


STATE_PARTS = st.fixed_dictionaries({}, optional={
    "limiter": st.fixed_dictionaries({}, optional={"recent": st.lists(EDGE_SCALARS, max_size=4) | ANY_JSON,
                                                   "day": EDGE_SCALARS, "day_count": EDGE_SCALARS}) | ANY_JSON,
    "published": st.fixed_dictionaries({}, optional={
        "last_global": st.dictionaries(st.sampled_from(["IBM", "MSFT"]), ANY_JSON),
        "last_bar": st.dictionaries(st.sampled_from(["IBM", "MSFT"]), EDGE_SCALARS),
        "last_daily": st.dictionaries(st.sampled_from(["IBM", "MSFT"]), EDGE_SCALARS)}) | ANY_JSON,
    "schedule": st.fixed_dictionaries({}, optional={
        "last_called": st.dictionaries(st.sampled_from(["IBM", "MSFT"]), EDGE_SCALARS) | ANY_JSON,
        "backfilled": st.lists(EDGE_SCALARS, max_size=3) | ANY_JSON}) | ANY_JSON,
    "held": st.lists(st.builds(as_bytes, st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES)).map(
        lambda raw: raw.decode("utf-8", "replace")) | ANY_JSON, max_size=3) | ANY_JSON,
})


@given(STATE_PARTS | ANY_JSON)
def test_any_state_file_is_loaded_or_discarded_and_the_producer_carries_on(tmp_path_factory, state):
    """Whatever a state file holds, loading it never raises, and the producer's next steps work on what was
    kept: asking the limiter, filtering a fresh quote and a fresh bar, writing the state back."""
    from market.hours import PollingHours
    from polling.publisher import NewQuoteFilter
    from polling.state import load_state, save_state
    from quotesource.alphavantage import Quote
    from quotesource.limiter import RateLimiter
    from quotesource.plan import CallPlan, ScheduleMemory
    from quotesource.schedule import Target

    path = tmp_path_factory.mktemp("state") / "producer_state.json"
    path.write_text(json.dumps(state, allow_nan=True), errors="surrogatepass")
    limiter, seen, memory = RateLimiter(5, 25, clock=lambda: NOW.timestamp()), NewQuoteFilter(), ScheduleMemory()
    held = load_state(path, limiter, seen, memory)
    assert 0 <= limiter.delay() <= 86_400
    assert all(moment <= NOW for moment in memory.last_called.values())
    plan = CallPlan([Target(["IBM"])], [], PollingHours("market"), limiter, memory.last_called, NOW)
    assert 0 <= plan.wait(NOW) <= 3600
    fresh = [Quote("IBM", NOW, 1.0, 1.0, 1.0, 1.0, 1, "GLOBAL_QUOTE", NOW, trading_day="2026-11-27"),
             Quote("MSFT", NOW, 1.0, 1.0, 1.0, 1.0, 1, "TIME_SERIES_INTRADAY", NOW),
             Quote("MSFT", NOW, 1.0, 1.0, 1.0, 1.0, 1, "TIME_SERIES_DAILY", NOW, trading_day="2026-11-27")]
    seen.remember(seen.new_quotes(fresh))
    save_state(path, limiter, seen, held, memory)


@given(st.binary(max_size=200) | st.lists(st.sampled_from(sorted(DEFAULTS)) | st.text(max_size=10), max_size=4).map(
    lambda names: "\n".join(f"{name}=x" for name in names).encode("utf-8", "surrogatepass")))
def test_any_env_file_is_read_or_refused_naming_it(tmp_path_factory, content):
    env_file = tmp_path_factory.mktemp("env") / ".env"
    env_file.write_bytes(content)
    try:
        settings = load_settings(environ={}, env_file=env_file)
    except ConfigError as exc:
        assert exc.setting in DEFAULTS or exc.setting == "--env-file"
        return
    assert all(notice.startswith(f"{env_file}: ") for notice in settings.notices)
