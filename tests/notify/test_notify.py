"""Notifications delivered to real local servers: an HTTP webhook (apprise's json://) and an SMTP server
(aiosmtpd), through the real consumer, broker and SQLite file; no mock of apprise."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from alert_feed import pipeline_env_without_kafka, quote_message, wait_for
from alerts.text import alert_body, alert_title
from conftest import pipeline_env, run_script, running, start_script
from notify.channels import Channel, check_channels, parse_channels, send, shown, split_urls
from streaming.local_broker import free_port
from streaming.messages import AlertRow

RULE_ALERT = AlertRow("IBM", "IBM>150", "up", 150.75, "2026-11-24T15:02:00.000Z", 149.5, "2026-11-24T15:01:00.000Z",
                      0.8361, "2026-11-24T15:02:01.000Z")


def test_the_text_says_what_happened_at_a_glance():
    assert alert_title(RULE_ALERT) == "IBM crossed above 150"
    assert alert_body(RULE_ALERT).startswith("IBM crossed above 150: 150.75 (+0.84% from 149.50) at ")
    move = RULE_ALERT._replace(rule="TSLA:5%/1h", symbol="TSLA", direction="down", price=190.0,
                               reference_price=200.0, move_percent=-5.0)
    assert alert_title(move) == "TSLA down -5.00% within 1h"


def test_urls_are_split_on_spaces_and_shown_without_their_secrets():
    assert split_urls(" json://a.example/x \n tgram://123:ABCsecretTOKEN/99 json://a.example/x") == (
        "json://a.example/x", "tgram://123:ABCsecretTOKEN/99")
    assert shown("tgram://123456:ABCsecretTOKEN/987") == "tgram://***/987"
    assert shown("mailtos://me:hunter22@mail.example.com?to=a@b.c") == "mailtos://***:***@mail.example.com"
    assert shown("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV") == "discord://***/***"


def test_a_webhook_and_a_mailbox_get_the_message_and_a_dead_or_refusing_one_says_why(webhook, mailbox):
    box, mail_url = mailbox
    hook, mail = check_channels(parse_channels(f"{webhook.url()} {mail_url}"))
    assert send(hook, "IBM crossed above 150", "body").ok
    assert webhook.received == [("/hook", {"version": "1.0", "title": "IBM crossed above 150", "message": "body",
                                           "attachments": [], "type": "info"})]
    assert send(mail, "IBM crossed above 150", "the body").ok
    assert box.messages[0]["Subject"] == "IBM crossed above 150"
    dead = send(Channel(f"json://127.0.0.1:{free_port()}/hook"), "t", "b")
    assert (dead.ok, dead.rejected) == (False, False)
    assert "Connection error" in dead.reason
    refused = send(Channel(webhook.url("refuse")), "t", "b")
    assert (refused.ok, refused.rejected) == (False, True)
    assert "401" in refused.reason


def test_notify_test_prints_each_channel_and_fails_if_any_failed(webhook, tmp_path):
    dead = f"json://user:s3cretpassword@127.0.0.1:{free_port()}/hook"
    env = pipeline_env_without_kafka(tmp_path, NOTIFY_URLS=f"{webhook.url()} {dead}")
    result = run_script("consumer.py", "--notify-test", env=env)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"ok      json://127.0.0.1:{webhook.port}/hook"
    assert lines[1].startswith(f"FAILED  json://***:***@127.0.0.1:{dead.split(':')[3].split('/')[0]}/hook: ")
    assert "s3cretpassword" not in result.stdout + result.stderr
    assert webhook.received[0][1]["title"] == "stockmon test"
    ok = run_script("consumer.py", "--notify-test", env=pipeline_env_without_kafka(tmp_path, NOTIFY_URLS=webhook.url()))
    assert (ok.returncode, ok.stdout) == (0, f"ok      json://127.0.0.1:{webhook.port}/hook\n")


@pytest.mark.parametrize(("urls", "line"), [
    ("nonsense://x", "consumer: error: NOTIFY_URLS: 'nonsense://***' is not a notification URL apprise can use "
                     "(e.g. json://host/path, mailto://user:password@host, tgram://token/chat, ntfy://topic)"),
    ("hooks.example.com/x", "consumer: error: NOTIFY_URLS: '***/x' is not a URL (scheme://..., e.g. "
                            "json://host/path, or name=URL for a channel rules route to); separate URLs with "
                            "spaces"),
])
def test_a_bad_notification_url_exits_2_with_one_line(tmp_path, urls, line):
    result = run_script("consumer.py", "--notify-test", env=pipeline_env_without_kafka(tmp_path, NOTIFY_URLS=urls))
    assert (result.returncode, result.stderr.splitlines()[-1]) == (2, line)


def test_every_alert_reaches_every_channel_in_order_and_an_outage_is_one_warning(kafka_broker, topic, standin,
                                                                                  tmp_path, webhook, mailbox):
    from kafka import KafkaProducer

    box, mail_url = mailbox
    webhook.stop()  # down when the alerts come
    log_path = tmp_path / "consumer.log"
    env = pipeline_env(kafka_broker, topic, standin, tmp_path / "stocks.db", ALERT_RULES="IBM>100",
                       KAFKA_ALERTS_TOPIC=f"{topic}-alerts", NOTIFY_URLS=f"{webhook.url()} {mail_url}", TZ="UTC")
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    with running(start_script("consumer.py", env=env, log_path=log_path)) as process:
        wait_for(lambda: "consuming " in log_path.read_text(), what=log_path.read_text)
        for minute, price in enumerate([90, 110, 95, 120, 99, 130.5]):
            producer.send(topic, key=b"IBM", value=quote_message(price, minute))
        producer.flush()
        wait_for(lambda: len(box.messages) == 3, what=log_path.read_text)  # e-mail is not held up by the webhook
        time.sleep(2)  # several retries of the webhook meanwhile
        webhook.start()
        wait_for(lambda: len(webhook.received) == 3, timeout=90, what=log_path.read_text)
        process.terminate()
        assert process.wait(timeout=30) == 0
    producer.close()
    log = log_path.read_text()
    bodies = [body["message"] for _, body in webhook.received]
    assert bodies == [f"IBM crossed above 100: {price} ({move} from {before}) at 2026-01-05 15:{minute:02d} UTC "
                      "[rule IBM>100]" for price, move, before, minute in
                      [("110.00", "+22.22%", "90.00", 1), ("120.00", "+26.32%", "95.00", 3),
                       ("130.50", "+31.82%", "99.00", 5)]]
    assert [message["Subject"] for message in box.messages] == ["IBM crossed above 100"] * 3
    assert box.messages[0].get_body(("plain", "html")).get_content().strip().startswith(
        "IBM crossed above 100: 110.00 (+22.22% from 90.00)")
    assert log.count(f"notifications to json://127.0.0.1:{webhook.port}/hook cannot be delivered") == 1
    assert f"notifications to json://127.0.0.1:{webhook.port}/hook are delivered again after " in log
    assert "Traceback" not in log


def test_a_refusing_channel_is_an_error_naming_it_without_its_secret(kafka_broker, topic, standin, tmp_path,
                                                                    webhook):
    from kafka import KafkaProducer

    log_path = tmp_path / "consumer.log"
    refusing = f"json://stockmon:t0psecretpassword@127.0.0.1:{webhook.port}/refuse"
    env = pipeline_env(kafka_broker, topic, standin, tmp_path / "stocks.db", ALERT_RULES="IBM>100",
                       KAFKA_ALERTS_TOPIC=f"{topic}-alerts", NOTIFY_URLS=f"{refusing} {webhook.url()}")
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    with running(start_script("consumer.py", "--log-level", "DEBUG", env=env, log_path=log_path)) as process:
        wait_for(lambda: "consuming " in log_path.read_text(), what=log_path.read_text)
        for minute, price in enumerate([90, 110, 95, 120]):
            producer.send(topic, key=b"IBM", value=quote_message(price, minute))
        producer.flush()
        wait_for(lambda: len(webhook.received) == 2, what=log_path.read_text)  # the other channel carries on
        wait_for(lambda: "are refused" in log_path.read_text(), what=log_path.read_text)
        process.terminate()
        assert process.wait(timeout=30) == 0
    producer.close()
    log = log_path.read_text()
    assert (f"ERROR consumer: notifications to json://***:***@127.0.0.1:{webhook.port}/refuse are refused: "
            in log)
    assert log.count(" are refused") == 1
    assert "t0psecretpassword" not in log


def alert_count(path: Path) -> int:
    import sqlite3

    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT count(*) FROM alerts").fetchone()[0]
    finally:
        connection.close()


def test_two_consumers_on_one_database_deliver_each_alert_once(kafka_broker, topic, standin, tmp_path, webhook):
    from kafka import KafkaProducer

    db_path = tmp_path / "stocks.db"
    symbols = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]
    env = pipeline_env(kafka_broker, topic, standin, db_path, ALERT_RULES=", ".join(f"{s}>100" for s in symbols),
                       KAFKA_ALERTS_TOPIC=f"{topic}-alerts", NOTIFY_URLS=webhook.url())
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    with running(start_script("consumer.py", env=env, log_path=logs[0])) as first, \
            running(start_script("consumer.py", env=env, log_path=logs[1])) as second:
        for log in logs:
            wait_for(lambda log=log: "consuming " in log.read_text(), what=log.read_text)
        time.sleep(3)  # both in the group, the partitions shared
        for minute in range(10):
            for symbol in symbols:
                producer.send(topic, key=symbol.encode(), value=quote_message(90 if minute % 2 == 0 else 110,
                                                                              minute, symbol))
        producer.flush()
        wait_for(lambda: alert_count(db_path) == 30 and len(webhook.received) >= 30, timeout=60,
                 what=lambda: (alert_count(db_path), len(webhook.received), logs[0].read_text()))
        time.sleep(2)  # a second delivery of any alert would come now
        for process in (first, second):
            process.terminate()
            assert process.wait(timeout=30) == 0
    producer.close()
    messages = [body["message"] for _, body in webhook.received]
    assert len(messages) == len(set(messages)) == 30
    assert all("stored" in log.read_text() for log in logs)  # both stored quotes: both fired alerts


def test_a_consumer_killed_mid_delivery_delivers_the_rest_after_a_restart(kafka_broker, topic, standin, tmp_path,
                                                                         webhook):
    from kafka import KafkaProducer

    db_path, log_path = tmp_path / "stocks.db", tmp_path / "consumer.log"
    env = pipeline_env(kafka_broker, topic, standin, db_path, ALERT_RULES="IBM>100",
                       KAFKA_ALERTS_TOPIC=f"{topic}-alerts", NOTIFY_URLS=webhook.url())
    webhook.hold_after = 2  # the third alert is in flight when the consumer dies
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    with running(start_script("consumer.py", env=env, log_path=log_path)) as process:
        wait_for(lambda: "consuming " in log_path.read_text(), what=log_path.read_text)
        for minute in range(16):
            producer.send(topic, key=b"IBM", value=quote_message(90 if minute % 2 == 0 else 110, minute))
        producer.flush()
        wait_for(lambda: len(webhook.received) == 2, what=lambda: [body["message"][-40:] for _, body in webhook.received])
        time.sleep(1)  # the third is sent and waits for its answer
        process.kill()
        process.wait()
    producer.close()
    assert alert_count(db_path) == 8 and len(webhook.received) == 2
    webhook.gate.set()  # the server takes the third after all: its sender never heard
    with running(start_script("consumer.py", env=env, log_path=log_path)) as process:
        wait_for(lambda: len({body["message"] for _, body in webhook.received}) == 8, what=log_path.read_text)
        time.sleep(2)
        process.terminate()
        assert process.wait(timeout=30) == 0
    messages = [body["message"] for _, body in webhook.received]
    assert sorted(set(messages)) == sorted(set(messages), key=messages.index)  # each first seen in order
    assert len(messages) - len(set(messages)) <= 1  # at most the one in flight when killed, twice


def test_sighup_switches_the_channels_and_a_bad_url_keeps_them(kafka_broker, topic, standin, tmp_path, webhook):
    from kafka import KafkaProducer

    log_path, settings_file = tmp_path / "consumer.log", tmp_path / "settings.env"
    settings_file.write_text(f"ALERT_RULES=IBM>100\nNOTIFY_URLS={webhook.url('first')}\n")
    env = pipeline_env(kafka_broker, topic, standin, tmp_path / "stocks.db", KAFKA_ALERTS_TOPIC=f"{topic}-alerts")
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    minutes = iter(range(60))

    def cross() -> None:
        for price in (90, 110):
            producer.send(topic, key=b"IBM", value=quote_message(price, next(minutes)))
        producer.flush()

    def paths() -> list[str]:
        return [path for path, _ in webhook.received]

    with running(start_script("consumer.py", "--env-file", str(settings_file), env=env, log_path=log_path)) as process:
        wait_for(lambda: "consuming " in log_path.read_text(), what=log_path.read_text)
        cross()
        wait_for(lambda: paths() == ["/first"], what=log_path.read_text)
        settings_file.write_text(f"ALERT_RULES=IBM>100\nNOTIFY_URLS={webhook.url('second')} "
                                 f"json://user:n3wsecretpassword@127.0.0.1:{webhook.port}/other\n")
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP: notifications now go to" in log_path.read_text(), what=log_path.read_text)
        cross()
        wait_for(lambda: sorted(paths()) == ["/first", "/other", "/second"], what=log_path.read_text)
        settings_file.write_text("ALERT_RULES=IBM>100\nNOTIFY_URLS=nonsense://x\n")
        process.send_signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP: the settings cannot be read" in log_path.read_text(), what=log_path.read_text)
        cross()
        wait_for(lambda: len(paths()) == 5, what=log_path.read_text)
        process.terminate()
        assert process.wait(timeout=30) == 0
    producer.close()
    log = log_path.read_text()
    assert sorted(paths()[3:]) == ["/other", "/second"]  # the channels in force were kept
    assert (f"SIGHUP: notifications now go to json://127.0.0.1:{webhook.port}/second, "
            f"json://***:***@127.0.0.1:{webhook.port}/other") in log
    assert ("SIGHUP: the settings cannot be read, so the alert rules (IBM>100) and notification channels in force "
            "are kept: NOTIFY_URLS: 'nonsense://***' is not a notification URL") in log
    assert "n3wsecretpassword" not in log
