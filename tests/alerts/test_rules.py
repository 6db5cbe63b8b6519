"""Alert rules in their written form: what each form means, its canonical text, and the exact errors."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alerts.rules import (
    AverageRule,
    GapRule,
    LevelRule,
    MoveRule,
    RuleError,
    VolumeRule,
    longest_window,
    parse_rules,
    quotes_needed,
)
from config import ConfigError, load_settings
from conftest import run_script, script_env


def test_every_written_form_becomes_its_rule_with_one_canonical_text():
    rules = parse_rules("2%/15m, TSLA:5%/1h, AAPL>200, IBM<150, tsla:+2.5%/90m, -3%/1d, brk.b > 450.5")
    assert rules == (
        MoveRule(2.0, timedelta(minutes=15)),
        MoveRule(5.0, timedelta(hours=1), "TSLA"),
        LevelRule("AAPL", 200.0, above=True),
        LevelRule("IBM", 150.0, above=False),
        MoveRule(2.5, timedelta(minutes=90), "TSLA", "up"),
        MoveRule(3.0, timedelta(days=1), None, "down"),
        LevelRule("BRK.B", 450.5, above=True),
    )
    assert [rule.text for rule in rules] == [
        "2%/15m", "TSLA:5%/1h", "AAPL>200", "IBM<150", "TSLA:+2.5%/90m", "-3%/1d", "BRK.B>450.5"]


def test_the_same_rule_written_twice_is_kept_once_and_empty_means_none():
    assert parse_rules("TSLA:5%/60m; tsla:5%/1h ,") == (MoveRule(5.0, timedelta(hours=1), "TSLA"),)
    assert parse_rules("") == ()
    assert parse_rules(" , ") == ()


def test_which_symbols_a_rule_watches_and_how_far_back():
    rules = parse_rules("2%/15m, TSLA:5%/1h, AAPL>200")
    assert [rule.applies_to("TSLA") for rule in rules] == [True, True, False]
    assert [rule.applies_to("AAPL") for rule in rules] == [True, False, True]
    assert longest_window(rules, "TSLA") == timedelta(hours=1)
    assert longest_window(rules, "AAPL") == timedelta(minutes=15)
    assert longest_window(parse_rules("AAPL>200"), "AAPL") == timedelta(0)


SYNTAX = ("expected PERCENT%/WINDOW (2%/15m), SYMBOL:PERCENT%/WINDOW (TSLA:5%/1h), "
          "SYMBOL>PRICE (AAPL>200) or SYMBOL<PRICE (IBM<150), SYMBOL>maN or <maN (IBM>ma20), "
          "gapPERCENT% (gap2%, TSLA:gap+3%), volTIMESx/COUNT (vol3x/20, IBM:vol5x/30), "
          "each optionally ending in cooldown PERIOD")


def test_average_and_gap_rules_in_their_written_forms():
    rules = parse_rules("IBM>ma20, <MA50, tsla:gap+2.5%, gap3% cooldown 1d, ibm:GAP-1%, GAP>20, MA>300, MA>ma5, "
                        "vol3x/20, IBM:VOL2.5x/60 cooldown 1h, VOL>5")
    assert rules == (
        AverageRule(20, above=True, symbol="IBM"),
        AverageRule(50, above=False),
        GapRule(2.5, "TSLA", "up"),
        GapRule(3.0, cooldown=timedelta(days=1)),
        GapRule(1.0, "IBM", "down"),
        LevelRule("GAP", 20.0, above=True),  # the tickers GAP and MA stay level rules
        LevelRule("MA", 300.0, above=True),
        AverageRule(5, above=True, symbol="MA"),
        VolumeRule(3.0, 20),
        VolumeRule(2.5, 60, "IBM", cooldown=timedelta(hours=1)),
        LevelRule("VOL", 5.0, above=True),
    )
    assert [rule.text for rule in rules] == ["IBM>ma20", "<ma50", "TSLA:gap+2.5%", "gap3% cooldown 1d", "IBM:gap-1%",
                                             "GAP>20", "MA>300", "MA>ma5", "vol3x/20", "IBM:vol2.5x/60 cooldown 1h",
                                             "VOL>5"]
    assert parse_rules(", ".join(rule.text for rule in rules)) == rules
    # The last quotes the engine reloads: a 50-quote average, or 60 volumes before a quote, and the quote.
    assert (quotes_needed(rules, "IBM"), quotes_needed(rules, "MSFT"), quotes_needed(rules[2:4], "IBM")) == (61, 50, 1)


def test_a_cooldown_ends_any_rule_and_is_part_of_its_text():
    rules = parse_rules("IBM>150 cooldown 30m, tsla:-2%/15m COOLDOWN 1h, 2%/15mcooldown90m, IBM>150")
    assert rules == (
        LevelRule("IBM", 150.0, above=True, cooldown=timedelta(minutes=30)),
        MoveRule(2.0, timedelta(minutes=15), "TSLA", "down", cooldown=timedelta(hours=1)),
        MoveRule(2.0, timedelta(minutes=15), cooldown=timedelta(minutes=90)),
        LevelRule("IBM", 150.0, above=True),  # without a cooldown: another rule
    )
    assert [rule.text for rule in rules] == ["IBM>150 cooldown 30m", "TSLA:-2%/15m cooldown 1h",
                                             "2%/15m cooldown 90m", "IBM>150"]
    assert parse_rules(" , ".join(rule.text for rule in rules)) == rules


@pytest.mark.parametrize(("written", "message"), [
    ("2%", f"'2%' is not a rule: {SYNTAX}"),
    ("TSLA", f"'TSLA' is not a rule: {SYNTAX}"),
    ("2%/15m TSLA:5%/1h", "'2%/15mTSLA:5%/1h': '2%/15mTSLA' is not a valid symbol "
                          "(letters, digits, '.' and '-', at most 20) (separate rules with commas)"),
    ("2%/15x", "'2%/15x': window '15x' is not a duration (a number and s, m, h, d or w, e.g. 15m)"),
    ("2%/0m", "'2%/0m': window '0m' is not a positive duration"),
    ("TSLA:0%/1h", "'TSLA:0%/1h': the percentage must be a positive number, got 0"),
    ("TSLA:two%/1h", "'TSLA:two%/1h': 'two' is not a percentage"),
    ("AAPL>abc", "'AAPL>abc': 'abc' is not a price"),
    ("AAPL>=200", "'AAPL>=200': '=200' is not a price"),
    ("AAPL>-5", "'AAPL>-5': the price must be a positive number, got -5"),
    ("AAPL>nan", "'AAPL>nan': the price must be a positive number, got nan"),
    ("$$:2%/1h", "'$$:2%/1h': '$$' is not a valid symbol (letters, digits, '.' and '-', at most 20)"),
    ("IBM>150 cooldown 30x", "'IBM>150cooldown30x': cooldown '30x' is not a duration (a number and s, m, h, d or w, "
                             "e.g. 15m)"),
    ("IBM>150 cooldown 0m", "'IBM>150cooldown0m': cooldown '0m' is not a positive duration"),
    ("IBM>150 cooldown", "'IBM>150cooldown': '150cooldown' is not a price"),
    ("cooldown 5m", f"'cooldown5m' is not a rule: {SYNTAX}"),
    ("IBM>ma1", "'IBM>ma1': the average's quote count must be a whole number from 2 to 1000, got 1"),
    ("IBM>ma2.5", "'IBM>ma2.5': the average's quote count must be a whole number from 2 to 1000, got 2.5"),
    ("gap0%", "'gap0%': the percentage must be a positive number, got 0"),
    ("vol0x/20", "'vol0x/20': the volume multiple must be a positive number, got 0"),
    ("vol3x/0", "'vol3x/0': the quote count of the volume average must be a whole number from 1 to 1000, got 0"),
])
def test_a_malformed_rule_says_which_and_why(written, message):
    with pytest.raises(RuleError) as caught:
        parse_rules(f"AAPL>200, {written}")
    assert str(caught.value) == message


def test_a_malformed_rule_is_a_configuration_error_naming_alert_rules():
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"ALERT_RULES": "IBM>>150"}, env_file=None)
    assert str(caught.value) == "ALERT_RULES: 'IBM>>150': '>150' is not a price"
    assert caught.value.setting == "ALERT_RULES"


@pytest.mark.parametrize("script", ["consumer.py", "producer.py", "monitor.py"])
def test_every_script_exits_2_with_one_line_for_a_malformed_rule(script):
    result = run_script(script, env=script_env(ALERT_RULES="2%/15m, IBM<"), timeout=30)
    assert result.returncode == 2
    assert result.stderr == f"{script[:-3]}: error: ALERT_RULES: 'IBM<' is not a rule: {SYNTAX}\n"


def test_a_rules_text_keeps_every_digit_of_its_numbers():
    assert [rule.text for rule in parse_rules("IBM>164.0625, BRK.A<1234567, 2.125%/15m")] == [
        "IBM>164.0625", "BRK.A<1234567", "2.125%/15m"]
