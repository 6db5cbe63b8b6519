"""The producer's INFO log: a line per call while calls are sparse, one summary a second under load
(with each call's line at DEBUG), and JSON lines that carry the symbol and count."""

from __future__ import annotations

import json
import logging

import pytest

from common.logformat import JsonFormatter
from polling.call_log import CallLog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def info_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.INFO]


def test_sparse_calls_each_get_their_own_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="producer")
    clock = Clock()
    calls = CallLog(clock=clock)
    for price in range(3):
        calls.said(f"IBM: published 1 new quote(s), price {price}", {"IBM"}, 1, "IBM")
        clock.now += 12  # five calls a minute
        calls.flush()
    assert info_lines(caplog) == ["IBM: published 1 new quote(s), price 0", "IBM: published 1 new quote(s), price 1",
                                  "IBM: published 1 new quote(s), price 2"]


def test_many_calls_a_second_become_one_summary_line_a_second(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="producer")
    clock = Clock()
    calls = CallLog(clock=clock)
    symbols = ["IBM", "MSFT", "AAPL", "TSLA"]
    for call in range(40):  # 20 calls a second for 2 s
        symbol = symbols[call % 4]
        calls.said(f"{symbol}: published 1 new quote(s)", {symbol}, 1 if call % 2 else 0, symbol)
        clock.now += 0.05
        calls.flush()
    calls.flush(force=True)
    assert info_lines(caplog) == [
        "IBM: published 1 new quote(s)",  # the first, after a quiet spell
        "published 10 new quote(s) of 4 symbol(s) in 20 call(s) over 1.0 s",
        "published 10 new quote(s) of 4 symbol(s) in 19 call(s) over 0.9 s",
    ]
    debug = [record for record in caplog.records if record.levelno == logging.DEBUG]
    assert len(debug) == 39  # every call but the first still has its own line at DEBUG


def test_json_lines_carry_the_symbol_and_count(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="producer")
    CallLog(clock=Clock()).said("MSFT: published 2 new quote(s)", {"MSFT"}, 2, "MSFT")
    [record] = caplog.records
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "MSFT: published 2 new quote(s)"
    assert (line["level"], line["logger"], line["symbol"], line["count"]) == ("INFO", "producer", "MSFT", 2)
    assert line["time"].endswith("+00:00")  # UTC, ISO 8601
