"""Secret masking: thorough for real keys, harmless for short or public ones."""

from __future__ import annotations

import logging

from common.redact import RedactingFilter, redact


def test_a_real_key_is_masked_wherever_it_appears():
    key = "TESTKEY9F3A7Q2Z8X"
    assert redact(f"GET /query?symbol=IBM&apikey={key} detected {key}", [key]) == (
        "GET /query?symbol=IBM&apikey=*** detected ***")


def test_a_short_secret_is_masked_only_as_a_whole_word():
    assert redact("apikey=k kafka broker k", ["k"]) == "apikey=*** kafka broker ***"


def test_the_public_demo_key_is_left_alone():
    assert redact("The **demo** API key is for demo purposes only", ["demo"]) == (
        "The **demo** API key is for demo purposes only")


def test_the_filter_masks_arguments_and_tracebacks():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "calling %s", ("apikey=SECRETSECRET",), None)
    try:
        raise ValueError("boom SECRETSECRET")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    RedactingFilter(["SECRETSECRET"]).filter(record)
    assert record.getMessage() == "calling apikey=***"
    assert "SECRETSECRET" not in record.exc_text and "boom ***" in record.exc_text
