"""Alerts to the channels their rules name (`TSLA:5%/1h -> phone team`): the syntax, its one-line errors,
and real consumers delivering to real local webhooks by route, with a channel's backlog while it is down."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import pytest

from alert_feed import pipeline_env_without_kafka, quote_message, wait_for
from alerts.routes import Routes, parse_routed_rules
from alerts.rules import LevelRule, MoveRule, RuleError
from checkup.settings_checks import notify_urls
from config import load_settings
from conftest import pipeline_env, run_script, running, start_script
from notify.channels import Channel, ChannelError, parse_channels, url_secrets
from scrape import listener_url, scrape
from webhook import Webhook

SECRET = "r0utesecretpassword"


def test_a_rule_names_its_channels_after_an_arrow_and_a_rule_without_one_goes_everywhere() -> None:
    rules, routes = parse_routed_rules("TSLA:5%/1h -> phone team, 2%/15m->team, AAPL>200 cooldown 30m -> phone, "
                                       "IBM<150, tsla:5%/60m -> mail")
    assert [rule.text for rule in rules] == ["TSLA:5%/1h", "2%/15m", "AAPL>200 cooldown 30m", "IBM<150"]
    assert isinstance(rules[0], MoveRule) and isinstance(rules[3], LevelRule)
    assert routes == Routes({"TSLA:5%/1h": frozenset({"phone", "team", "mail"}), "2%/15m": frozenset({"team"}),
                             "AAPL>200 cooldown 30m": frozenset({"phone"})})
    assert routes.wants("phone", "TSLA:5%/1h") and not routes.wants("phone", "2%/15m")
    assert routes.wants("team", "IBM<150") and routes.wants(None, "IBM<150")  # no arrow: every channel
    assert not routes.wants(None, "2%/15m")  # an unnamed channel gets only the rules without an arrow
    assert routes.skipped_by("team") == ["AAPL>200 cooldown 30m"]
    assert routes.text() == "TSLA:5%/1h -> mail phone team, 2%/15m -> team, AAPL>200 cooldown 30m -> phone"
    assert parse_routed_rules("2%/15m, IBM>150") == (parse_routed_rules("2%/15m, IBM>150")[0], Routes())


@pytest.mark.parametrize(("text", "reason"), [
    ("IBM>150 ->", "'IBM>150 ->': no channel name after -> (names from NOTIFY_URLS, e.g. -> phone team)"),
    ("-> phone", "'-> phone': no rule before ->"),
    ("IBM>150 -> ph!ne", "'IBM>150 -> ph!ne': 'ph!ne' is not a channel name (a letter, then letters, digits, '_' "
                         "or '-', at most 32)"),
    ("2%/15m TSLA:5%/1h -> team", "'2%/15mTSLA:5%/1h': '2%/15mTSLA' is not a valid symbol (letters, digits, '.' "
                                  "and '-', at most 20) (separate rules with commas)"),
])
def test_a_route_that_cannot_be_read_says_which_part_and_why(text: str, reason: str) -> None:
    with pytest.raises(RuleError) as raised:
        parse_routed_rules(text)
    assert str(raised.value).startswith(reason)


def test_a_channel_is_named_before_its_url_and_each_name_and_url_is_given_once() -> None:
    hook = f"json://user:{SECRET}@127.0.0.1:9/hook"
    channels = parse_channels(f"phone=ntfy://alerts-topic {hook} team=json://127.0.0.1:9/t phone=ntfy://alerts-topic")
    assert channels == (Channel("ntfy://alerts-topic", "phone"), Channel(hook), Channel("json://127.0.0.1:9/t", "team"))
    assert [channel.name for channel in channels] == ["phone (ntfy://***)",  # a topic is a secret too
                                                      "json://***:***@127.0.0.1:9/hook", "team (json://127.0.0.1:9/t)"]
    assert Channel(hook, "phone").key == Channel(hook).key  # the place in the alerts follows the URL, not the name
    assert url_secrets(f"mail={hook}") == url_secrets(hook) == ["user", SECRET]
    assert SECRET not in repr(channels)
    for text, reason in [("phone=json://a/1 phone=json://a/2", "the channel name 'phone' is given twice"),
                         ("phone=json://a/1 team=json://a/1", "'json://***/1' is given twice, as phone and team"),
                         ("phone=", "'phone=' is not a URL")]:
        with pytest.raises(ChannelError) as raised:
            parse_channels(text)
        assert str(raised.value).startswith(reason)


@pytest.mark.parametrize(("settings", "line"), [
    ({"ALERT_RULES": "IBM>100 -> pager", "NOTIFY_URLS": "phone=json://127.0.0.1:9/p"},
     "consumer: error: ALERT_RULES: IBM>100 -> pager: no channel named pager in NOTIFY_URLS (named ones: phone)"),
    ({"ALERT_RULES": "IBM>100 -> phone", "NOTIFY_URLS": f"json://u:{SECRET}@127.0.0.1:9/p"},
     "consumer: error: ALERT_RULES: IBM>100 -> phone: no channel named phone in NOTIFY_URLS (named ones: none: "
     "name one as name=URL)"),
    ({"NOTIFY_URLS": f"phone=json://u:{SECRET}@127.0.0.1:9/p phone=json://127.0.0.1:9/q"},
     "consumer: error: NOTIFY_URLS: the channel name 'phone' is given twice; each name=URL needs its own name"),
])
def test_an_unknown_or_repeated_channel_name_exits_2_with_one_line(tmp_path: Path, settings: dict, line: str) -> None:
    result = run_script("consumer.py", "--notify-test", env=pipeline_env_without_kafka(tmp_path, **settings))
    assert (result.returncode, result.stderr.splitlines()[-1]) == (2, line)
    assert SECRET not in result.stdout + result.stderr


def test_notify_test_with_a_name_sends_to_that_channel_only(tmp_path: Path) -> None:
    hook = Webhook()
    hook.start()
    try:
        env = pipeline_env_without_kafka(tmp_path, NOTIFY_URLS=f"phone={hook.url('phone')} {hook.url('all')}")
        result = run_script("consumer.py", "--notify-test", "phone", env=env)
        assert (result.returncode, result.stdout) == (0, f"ok      phone (json://127.0.0.1:{hook.port}/phone)\n")
        assert [path for path, _ in hook.received] == ["/phone"]
        missing = run_script("consumer.py", "--notify-test", "team", env=env)
        assert (missing.returncode, missing.stderr.splitlines()[-1]) == (
            2, "consumer: error: --notify-test: no channel named 'team' in NOTIFY_URLS (name one as team=URL)")
        assert len(hook.received) == 1
    finally:
        hook.stop()


def test_doctor_says_which_rules_each_channel_gets() -> None:
    settings = load_settings(environ={"ALPHAVANTAGE_API_KEY": "K" * 16, "ALERT_RULES": "IBM>100 -> phone, MSFT>100",
                                      "NOTIFY_URLS": "phone=json://127.0.0.1:9/p json://127.0.0.1:9/a "
                                                     "idle=json://127.0.0.1:9/i"}, env_file=None)
    found = [(finding.status, finding.why) for finding in notify_urls(settings) if "gets" in finding.why]
    assert found == [("ok", "phone (json://127.0.0.1:9/p) gets the alerts of IBM>100, MSFT>100"),
                     ("ok", "json://127.0.0.1:9/a gets the alerts of MSFT>100"),
                     ("ok", "idle (json://127.0.0.1:9/i) gets the alerts of MSFT>100")]
    only_routed = load_settings(environ={"ALPHAVANTAGE_API_KEY": "K" * 16, "ALERT_RULES": "IBM>100 -> phone",
                                         "NOTIFY_URLS": "phone=json://127.0.0.1:9/p json://127.0.0.1:9/a"},
                                env_file=None)
    assert [(finding.status, finding.why) for finding in notify_urls(only_routed) if "gets" in finding.why][1] == (
        "warn", "json://127.0.0.1:9/a gets no alert: every rule in ALERT_RULES routes elsewhere with ->")


def test_each_alert_reaches_exactly_its_channels_a_down_one_gets_its_backlog_and_sighup_reroutes(
        kafka_broker, topic, standin, tmp_path):
    from kafka import KafkaProducer

    hooks, team = Webhook(), Webhook()  # phone and the unnamed channel on one server, team on its own
    hooks.start()  # team is down when the first alerts come
    team_url = f"json://user:{SECRET}@127.0.0.1:{team.port}/team"
    log_path, settings_file = tmp_path / "consumer.log", tmp_path / "settings.env"
    urls = f"phone={hooks.url('phone')} team={team_url} {hooks.url('all')}"
    settings_file.write_text(f"ALERT_RULES=IBM>100 -> phone team, MSFT>100 -> team, AAPL>100\nNOTIFY_URLS={urls}\n")
    env = pipeline_env(kafka_broker, topic, standin, tmp_path / "stocks.db", KAFKA_ALERTS_TOPIC=f"{topic}-alerts",
                       METRICS_ADDRESS="127.0.0.1:0", TZ="UTC")
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    minutes = iter(range(60))

    def cross(*symbols: str) -> None:
        for symbol in symbols:
            for price in (90, 110):
                producer.send(topic, key=symbol.encode(), value=quote_message(price, next(minutes), symbol))
        producer.flush()

    def got(server: Webhook, path: str) -> list[str]:
        return [body["title"].split()[0] for where, body in server.received if where == path]

    def backlog(url: str) -> float | None:
        return scrape(listener_url(log_path)).value("stockmon_notification_backlog", channel=Channel(url).key)

    def stored(routed_to: set[str], first: int, last: int) -> list[str]:
        """The symbols of the alerts first..last in the order stored (one batch may hold all three symbols,
        from three partitions, in any order): each channel gets its alerts in that order."""
        connection = sqlite3.connect(tmp_path / "stocks.db")
        try:
            symbols = [row[0] for row in connection.execute("SELECT symbol FROM alerts ORDER BY id")]
        finally:
            connection.close()
        return [symbol for symbol in symbols[first:last] if symbol in routed_to]

    try:
        with running(start_script("consumer.py", "--env-file", str(settings_file), env=env,
                                  log_path=log_path)) as process:
            wait_for(lambda: "consuming " in log_path.read_text(), what=log_path.read_text)
            cross("IBM", "MSFT", "AAPL")
            wait_for(lambda: (len(got(hooks, "/phone")), len(got(hooks, "/all"))) == (2, 1),
                     what=lambda: f"{hooks.received}\n{log_path.read_text()}")
            assert (got(hooks, "/phone"), got(hooks, "/all")) == (stored({"IBM", "AAPL"}, 0, 3), ["AAPL"])
            wait_for(lambda: (backlog(team_url), backlog(hooks.url("phone")), backlog(hooks.url("all")))
                     == (3, 0, 0), what=log_path.read_text)  # only what team's routes give it
            team.start()
            wait_for(lambda: len(got(team, "/team")) == 3, timeout=90, what=log_path.read_text)
            assert got(team, "/team") == stored({"IBM", "MSFT", "AAPL"}, 0, 3)
            wait_for(lambda: backlog(team_url) == 0, what=log_path.read_text)

            settings_file.write_text(f"ALERT_RULES=IBM>100 -> team, MSFT>100, AAPL>100 -> phone\n"
                                     f"NOTIFY_URLS={urls}\n")
            process.send_signal(signal.SIGHUP)
            wait_for(lambda: "SIGHUP: notifications now go to" in log_path.read_text(), what=log_path.read_text)
            cross("IBM", "MSFT", "AAPL")
            wait_for(lambda: (len(got(team, "/team")), len(got(hooks, "/phone")), len(got(hooks, "/all")))
                     == (5, 4, 2), what=lambda: f"{hooks.received}\n{team.received}\n{log_path.read_text()}")
            assert got(team, "/team")[3:] == stored({"IBM", "MSFT"}, 3, 6)  # the new routes
            assert got(hooks, "/phone")[2:] == stored({"MSFT", "AAPL"}, 3, 6)
            assert got(hooks, "/all")[1:] == ["MSFT"]
            process.terminate()
            assert process.wait(timeout=30) == 0
    finally:
        producer.close()
        hooks.stop()
        team.stop()
    log = log_path.read_text()
    assert "alert rules: IBM>100 -> phone team, MSFT>100 -> team, AAPL>100 (alerts go to topic" in log
    assert (f"SIGHUP: notifications now go to phone (json://127.0.0.1:{hooks.port}/phone), team (json://***:***@"
            f"127.0.0.1:{team.port}/team), json://127.0.0.1:{hooks.port}/all; routes: IBM>100 -> team, "
            "AAPL>100 -> phone") in log
    assert log.count(f"notifications to team (json://***:***@127.0.0.1:{team.port}/team) cannot be delivered") == 1
    assert SECRET not in log
    assert "Traceback" not in log
