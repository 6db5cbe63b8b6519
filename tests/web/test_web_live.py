"""The live stream end to end: a quote the real producer publishes and the real consumer stores reaches an
open event stream without a reload, as a new board with a new id; reconnecting with that id waits for news."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from alphavantage_standin import AlphaVantageStandIn, recorded
from conftest import Broker, pipeline_env, run_script, running, start_script
from web_process import web

pytestmark = pytest.mark.slow


def board_events(response: requests.Response) -> Iterator[tuple[str, dict]]:
    """(id, board) of each `board` event in a text/event-stream answer."""
    fields: dict[str, str] = {}
    for line in response.iter_lines(decode_unicode=True):
        if line:
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
            continue
        if fields.get("event") == "board":
            yield fields["id"], json.loads(fields["data"])
        fields = {}


def test_a_stored_quote_reaches_an_open_stream_without_a_reload(kafka_broker: Broker, topic: str,
                                                               standin: AlphaVantageStandIn, tmp_path: Path) -> None:
    standin.script("GLOBAL_QUOTE", "IBM", recorded("global_quote_IBM.json"))
    standin.script("GLOBAL_QUOTE", "MSFT", recorded("global_quote_MSFT.json"))
    db_path = tmp_path / "stocks.db"
    env = pipeline_env(kafka_broker, topic, standin, db_path, STOCK_SYMBOLS="IBM")
    assert run_script("producer.py", "--once", env=env).returncode == 0
    with running(start_script("consumer.py", env=env, log_path=tmp_path / "consumer.log")), \
            web(db_path, tmp_path / "web.log") as url:
        stream = requests.get(f"{url}/api/events", stream=True, timeout=30)
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        events = board_events(stream)
        first_id, board = next(events)
        while [line["symbol"] for line in board["symbols"]] != ["IBM"]:  # the consumer may still be storing it
            first_id, board = next(events)
        found: list[tuple[str, dict]] = []

        def read_next() -> None:
            found.append(next(events))

        reader = threading.Thread(target=read_next, daemon=True)
        reader.start()
        produced = run_script("producer.py", "--once", env={**env, "STOCK_SYMBOLS": "IBM,MSFT"})
        assert produced.returncode == 0, produced.stderr
        reader.join(30)
        assert found, "no new board reached the stream"
        new_id, new_board = found[0]
        while [line["symbol"] for line in new_board["symbols"]] != ["IBM", "MSFT"]:
            new_id, new_board = next(events)
        stream.close()
        assert new_id != first_id and new_board["symbols"][1]["price"] == 112.13
        assert requests.get(f"{url}/api/board", timeout=10).json()["symbols"] == new_board["symbols"]
        # Reconnecting with the newest id: no board is sent again until something changes.
        resumed = requests.get(f"{url}/api/events", headers={"Last-Event-ID": new_id}, stream=True, timeout=(5, 1.5))
        with pytest.raises(requests.exceptions.ConnectionError):
            next(board_events(resumed))  # the read times out: nothing to send
        resumed.close()
