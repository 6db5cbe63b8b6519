"""What the user is told while Kafka cannot be reached: one line, and one more only when it says more."""

from __future__ import annotations

import logging
import threading

import pytest
from kafka.errors import KafkaConnectionError, SaslAuthenticationFailedError

from quotesource.limiter import Backoff
from streaming.kafka_client import Unreachable, retry_until_connected


def failing_then_connecting(*failures: Exception):
    remaining = list(failures)

    def connect() -> str:
        if remaining:
            raise remaining.pop(0)
        return "connected"

    return connect


def test_a_clearer_reason_after_a_vague_first_failure_is_said_once_more(caplog):
    # A loaded broker may drop the first socket before it answers the login; the second attempt says why.
    connect = failing_then_connecting(KafkaConnectionError("socket disconnected"),
                                      KafkaConnectionError("socket disconnected"),
                                      SaslAuthenticationFailedError("Authentication failed: Invalid username or password"),
                                      SaslAuthenticationFailedError("Authentication failed: Invalid username or password"),
                                      KafkaConnectionError("socket disconnected"))
    with caplog.at_level(logging.DEBUG, logger="kafka_client"):
        result = retry_until_connected(connect, "the consumer", "127.0.0.1:9092", threading.Event(),
                                       Backoff(initial=0.001, maximum=0.001))
    assert result == "connected"
    said = [record.getMessage() for record in caplog.records if record.levelno >= logging.INFO]
    assert said == [
        "Kafka is not reachable at 127.0.0.1:9092 (KafkaConnectionError: socket disconnected); "
        "the consumer will keep retrying",
        "Kafka is still not reachable at 127.0.0.1:9092 (SaslAuthenticationFailedError: Authentication failed: "
        "Invalid username or password)",
        "Kafka at 127.0.0.1:9092 is reachable again after 5 failed attempts",
    ]


def test_the_same_reason_again_and_again_is_said_once(caplog):
    refused = [KafkaConnectionError("111 ECONNREFUSED") for _ in range(6)]
    with caplog.at_level(logging.INFO, logger="kafka_client"):
        retry_until_connected(failing_then_connecting(*refused), "the producer", "127.0.0.1:9092", threading.Event(),
                              Backoff(initial=0.001, maximum=0.001))
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert warnings == ["Kafka is not reachable at 127.0.0.1:9092 (KafkaConnectionError: 111 ECONNREFUSED); "
                        "the producer will keep retrying"]


def test_giving_up_at_the_deadline_names_the_clearest_reason_seen_not_the_last():
    # The broker drops the socket after refusing a login; the attempt that happens to be last at the
    # deadline may see only that drop (doctor.py said "socket disconnected" for a wrong password).
    now = [0.0]
    attempts = failing_then_connecting(KafkaConnectionError("socket disconnected"),
                                       SaslAuthenticationFailedError("Authentication failed: Invalid username or "
                                                                     "password"),
                                       KafkaConnectionError("socket disconnected"))

    def connect() -> str:
        now[0] += 4.0  # each attempt takes 4 s: the third ends past the 10 s deadline
        return attempts()

    with pytest.raises(Unreachable) as caught:
        retry_until_connected(connect, "doctor.py", "127.0.0.1:9092", threading.Event(),
                              Backoff(initial=0.001, maximum=0.001), deadline=10.0, clock=lambda: now[0])
    assert str(caught.value) == ("Kafka is not reachable at 127.0.0.1:9092 (SaslAuthenticationFailedError: "
                                 "Authentication failed: Invalid username or password)")
