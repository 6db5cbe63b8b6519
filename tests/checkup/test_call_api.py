"""doctor.py --call-api against the stand-in serving recorded answers: entitlement, throttling, a refused key."""

from __future__ import annotations

import pytest

from alphavantage_standin import AlphaVantageStandIn, recorded
from checkup.api_check import call_api
from checkup.finding import FAIL, OK, WARN
from config import load_settings
from conftest import TEST_API_KEY


def settings_for(standin: AlphaVantageStandIn, **extra: str):
    return load_settings(environ={"ALPHAVANTAGE_API_KEY": TEST_API_KEY, "ALPHAVANTAGE_BASE_URL": standin.url,
                                  "STOCK_SYMBOLS": "IBM,MSFT", **extra}, env_file=None)


@pytest.mark.parametrize(("answer", "extra", "status", "why"), [
    ("global_quote_IBM.json", {}, OK,
     "GLOBAL_QUOTE IBM: answered, not throttled; IBM 121.74 (trading day 2020-05-08); entitlement none (end-of-day data)"),
    ("global_quote_delayed_envelope.json", {"ALPHAVANTAGE_ENTITLEMENT": "delayed"}, OK,
     "GLOBAL_QUOTE IBM: answered, not throttled; IBM 121.74 (trading day 2020-05-08); entitlement delayed"),
    ("global_quote_delayed_envelope.json", {"ALPHAVANTAGE_ENTITLEMENT": "realtime"}, WARN,
     "GLOBAL_QUOTE IBM: answered, not throttled; IBM 121.74 (trading day 2020-05-08); entitlement delayed, "
     "though ALPHAVANTAGE_ENTITLEMENT asks for realtime"),
    ("note_rate_limit.json", {}, WARN,
     "GLOBAL_QUOTE IBM: the key is throttled right now (rate limited: Thank you for using Alpha Vantage! Our "
     "standard API call frequency is 5 calls per minute and 500 calls per day. Please visit "
     "https://www.alphavantage.co/premium/ if you would like to target a higher API call frequency.)"),
    ("information_daily_limit.json", {}, WARN,
     "GLOBAL_QUOTE IBM: the key is throttled until the next UTC day (daily limit reached: Thank you for using "
     "Alpha Vantage! Our standard API rate limit is 25 requests per day. Please subscribe to any of the premium "
     "plans at https://www.alphavantage.co/premium/ to instantly remove all daily rate limits.)"),
    ("error_missing_apikey.json", {}, FAIL,
     "GLOBAL_QUOTE IBM: API key rejected: the parameter apikey is invalid or missing. Please claim your free API "
     "key on (https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."),
])
def test_one_call_reports_entitlement_and_throttling(standin: AlphaVantageStandIn, answer: str,
                                                     extra: dict[str, str], status: str, why: str) -> None:
    standin.script("GLOBAL_QUOTE", "IBM", recorded(answer))
    finding = call_api(settings_for(standin, **extra))
    assert (finding.status, finding.why) == (status, why)
    assert [request["symbol"] for request in standin.requests] == ["IBM"]  # one call, the first symbol
    assert TEST_API_KEY not in finding.line()


def test_bulk_quotes_ask_for_up_to_100_symbols_in_one_call(standin: AlphaVantageStandIn) -> None:
    finding = call_api(settings_for(standin, ALPHAVANTAGE_FUNCTION="REALTIME_BULK_QUOTES",
                                    ALPHAVANTAGE_ENTITLEMENT="realtime"))
    assert finding.status == OK, finding.why
    assert finding.why.startswith("REALTIME_BULK_QUOTES IBM,MSFT: answered, not throttled; MSFT ")
    assert finding.why.endswith("entitlement realtime")
    assert [request["symbol"] for request in standin.requests] == ["IBM,MSFT"]


def test_an_unreachable_api_fails(standin: AlphaVantageStandIn) -> None:
    settings = load_settings(environ={"ALPHAVANTAGE_API_KEY": TEST_API_KEY, "ALPHAVANTAGE_BASE_URL":
                                      "http://127.0.0.1:9/query", "ALPHAVANTAGE_TIMEOUT": "2"}, env_file=None)
    finding = call_api(settings)
    assert finding.status == FAIL and finding.why.startswith("GLOBAL_QUOTE IBM: ")
