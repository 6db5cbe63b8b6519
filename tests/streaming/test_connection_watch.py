"""The consumer's one line when Kafka is lost and one when it is back, also when a stop follows the return
within a second (a broker restart in CI: the quotes after it were stored, the log never said it was back)."""

from __future__ import annotations

import logging

import pytest

from streaming.kafka_client import ConnectionWatch


class Connections:
    """What the Kafka client's metrics() says of its broker connections (the only part the watch reads)."""

    def __init__(self) -> None:
        self.count = 1.0

    def metrics(self) -> dict[str, dict[str, float]]:
        return {"consumer-metrics": {"connection-count": self.count}}


def test_messages_after_a_reported_loss_say_it_is_back_at_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kafka_client")
    client, now = Connections(), [0.0]
    watch = ConnectionWatch(client, "127.0.0.1:9092", clock=lambda: now[0])
    client.count = 0
    for second in (1.0, 2.0, 3.0, 4.0):
        now[0] = second
        watch.check()
    assert [record.getMessage() for record in caplog.records] == [
        "lost the connection to Kafka at 127.0.0.1:9092; reconnecting by itself (uncommitted messages will be read "
        "again, nothing is lost)"]
    client.count = 1
    now[0] = 4.3  # messages again, 0.3 s after the last look: the connection is back, whatever the clock says
    watch.check(delivered=True)
    assert caplog.records[-1].getMessage() == "connection to Kafka at 127.0.0.1:9092 is back"
    assert watch.connected
    now[0] = 4.6
    watch.check(delivered=True)  # nothing reported: a poll with messages costs no look at the metrics
    assert len(caplog.records) == 2
