"""The consumer counts set-aside messages by a short reason label: bounded, never the free text."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streaming.messages import InvalidMessage, check_not_future, decode_quote, future_limit, rejection_kind

KINDS = {"not_utf8", "not_json", "tombstone", "empty", "not_object", "version", "future", "undecodable",
         "missing", "invalid"}
GOOD = {"v": 1, "symbol": "IBM", "ts": "2020-01-01T15:00:00Z", "price": 1.0, "open": 1.0, "high": 1.0, "low": 1.0,
        "volume": 1, "source": "GLOBAL_QUOTE", "fetched_at": "2020-01-01T15:00:01Z"}


def reason_for(value: bytes) -> str:
    with pytest.raises(InvalidMessage) as raised:
        decode_quote(value)
    return str(raised.value)


@pytest.mark.parametrize(("value", "kind"), [
    (b"\xff\xfe", "not_utf8"),
    (b"not json", "not_json"),
    (b"", "empty"),
    (b"[1]", "not_object"),
    (json.dumps({**GOOD, "v": 99}).encode(), "version"),
    (json.dumps({key: value for key, value in GOOD.items() if key != "symbol"}).encode(), "missing"),
    (json.dumps({**GOOD, "price": None}).encode(), "missing"),
    (json.dumps({**GOOD, "price": -1}).encode(), "invalid"),
])
def test_each_kind_of_bad_message_gets_its_label(value: bytes, kind: str) -> None:
    assert rejection_kind(reason_for(value)) == kind


def test_a_quote_from_the_future_is_labelled_future() -> None:
    row = decode_quote(json.dumps({**GOOD, "ts": "2999-01-01T00:00:00Z"}).encode())
    with pytest.raises(InvalidMessage) as raised:
        check_not_future(row, future_limit(datetime(2026, 12, 3, tzinfo=UTC)))
    assert rejection_kind(str(raised.value)) == "future"


@given(st.binary(max_size=200))
def test_any_reason_maps_to_one_of_the_documented_labels(value: bytes) -> None:
    try:
        decode_quote(value)
    except InvalidMessage as exc:
        assert rejection_kind(str(exc)) in KINDS
