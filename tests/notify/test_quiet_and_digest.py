"""Quiet hours and digests with an injected clock: the real delivery thread, a real SQLite file, and real
local servers (an HTTP webhook, an SMTP server) taking apprise's sends."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import db
from alert_feed import wait_for
from alerts.routes import Routes, parse_routed_rules
from checkup.backlog_checks import backlog_checks
from checkup.settings_checks import notify_urls
from config import load_settings
from market.calendar import TradingCalendar
from notify.channels import Channel
from notify.delivery import NotificationDelivery, register_channels
from notify.schedule import Digest, QuietHours, parse_digest, parse_quiet_hours
from streaming.messages import AlertRow

NEW_YORK = ZoneInfo("America/New_York")


class Clock:
    """The wall clock and the monotonic one, moved together by the test."""

    def __init__(self, start: datetime) -> None:
        self.wall = start
        self.monotonic = 1000.0
        self.lock = threading.Lock()

    def now(self) -> datetime:
        with self.lock:
            return self.wall

    def mono(self) -> float:
        with self.lock:
            return self.monotonic

    def to(self, moment: datetime) -> None:
        with self.lock:
            self.monotonic += (moment - self.wall).total_seconds()
            self.wall = moment


def new_york(day: int, hour: int, minute: int) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=NEW_YORK).astimezone(UTC)


def alert(symbol: str, rule: str, price: float, move: float, at: datetime) -> AlertRow:
    ts = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return AlertRow(symbol, rule, "up" if move > 0 else "down", price, ts, round(price / (1 + move / 100), 2), ts,
                    move, ts)


def store(path: Path, *alerts: AlertRow) -> None:
    connection = db.connect(path)
    db.save_batch(connection, [], [], alerts)
    connection.close()


def delivering(path: Path, channels: tuple[Channel, ...], clock: Clock) -> NotificationDelivery:
    delivery = NotificationDelivery(path, channels, "test-owner", zone=NEW_YORK, clock=clock.mono, now=clock.now,
                                    routes=Routes(), calendar=TradingCalendar.nyse())
    delivery.start()
    return delivery


def test_quiet_hours_hold_the_alerts_and_send_one_summary_when_they_end_also_after_a_restart(tmp_path, webhook):
    path = tmp_path / "stocks.db"
    quiet = QuietHours(time(22, 0), time(7, 0), NEW_YORK)
    phone, everything = Channel(webhook.url("phone"), "phone", quiet=quiet), Channel(webhook.url("all"))
    clock = Clock(new_york(24, 22, 30))
    delivery = delivering(path, (phone, everything), clock)

    def at(where: str) -> list[tuple[str, str]]:
        return [(body["title"], body["message"]) for path_, body in webhook.received if path_ == where]

    store(path, alert("IBM", "IBM>150", 150.75, 0.84, new_york(24, 22, 40)),
          alert("TSLA", "TSLA:5%/1h", 212.4, -5.2, new_york(24, 23, 10)))
    delivery.wake()
    wait_for(lambda: len(at("/all")) == 2)
    delivery.stop()  # a restart in the middle of the night: the held alerts are in the database
    clock.to(new_york(25, 2, 0))
    delivery = delivering(path, (phone, everything), clock)
    store(path, alert("IBM", "2%/15m", 147.1, -2.42, new_york(25, 2, 0)))
    delivery.wake()
    wait_for(lambda: len(at("/all")) == 3)
    assert at("/phone") == []
    clock.to(new_york(25, 7, 0))
    delivery.wake()
    wait_for(lambda: len(at("/phone")) == 1)
    assert at("/phone") == [(
        "stockmon: 3 alerts while quiet (22:00-07:00 America/New_York)",
        "3 alerts on 2 symbols, 2026-11-24 22:40 EST to 2026-11-25 02:00 EST.\n"
        "Biggest moves: TSLA -5.20%, IBM -2.42%\n"
        "IBM: 2 alerts (IBM>150, 2%/15m), last 147.10 at 2026-11-25 02:00 EST\n"
        "TSLA: 1 alert (TSLA:5%/1h), last 212.40 at 2026-11-24 23:10 EST")]
    store(path, alert("IBM", "IBM>150", 151.0, 0.5, new_york(25, 8, 15)))  # after the quiet hours: on its own
    delivery.wake()
    wait_for(lambda: len(at("/phone")) == 2)
    assert at("/phone")[1][0] == "IBM crossed above 150"
    delivery.stop()
    assert len(at("/all")) == 4 and all(not title.startswith("stockmon:") for title, _ in at("/all"))


def test_digests_every_30_minutes_and_at_the_close_hold_each_alert_until_their_time(tmp_path, webhook, mailbox):
    box, mail_url = mailbox
    path = tmp_path / "stocks.db"
    team = Channel(webhook.url("team"), "team", digest=Digest(timedelta(minutes=30)))
    mail = Channel(mail_url, "mail", digest=Digest())
    clock = Clock(new_york(24, 10, 5))  # a Tuesday; the session closes at 16:00
    delivery = delivering(path, (team, mail), clock)

    def team_got() -> list[tuple[str, str]]:
        return [(body["title"], body["message"]) for _, body in webhook.received]

    store(path, alert("IBM", "IBM>150", 150.75, 0.84, new_york(24, 10, 10)),
          alert("TSLA", "TSLA:5%/1h", 212.4, -5.2, new_york(24, 10, 20)),
          alert("IBM", "2%/15m", 153.9, 2.09, new_york(24, 10, 40)),
          alert("AAPL", "AAPL:vol3x/20", 230.1, 250.0, new_york(24, 15, 30)))
    for moment, sent in ((new_york(24, 10, 25), 0), (new_york(24, 10, 30), 1), (new_york(24, 10, 59), 1),
                         (new_york(24, 11, 0), 2), (new_york(24, 15, 59), 2), (new_york(24, 16, 0), 3)):
        clock.to(moment)
        delivery.wake()
        if sent:
            wait_for(lambda sent=sent: len(team_got()) == sent, what=team_got)
        threading.Event().wait(1.2)  # a round of the thread: nothing more goes out
        assert len(team_got()) == sent, (moment, team_got())
    wait_for(lambda: len(box.messages) == 1)
    delivery.stop()
    assert team_got()[0] == (
        "stockmon: 2 alerts in the digest every 30m",
        "2 alerts on 2 symbols, 2026-11-24 10:10 EST to 2026-11-24 10:20 EST.\n"
        "Biggest moves: TSLA -5.20%, IBM +0.84%\n"
        "IBM: 1 alert (IBM>150), last 150.75 at 2026-11-24 10:10 EST\n"
        "TSLA: 1 alert (TSLA:5%/1h), last 212.40 at 2026-11-24 10:20 EST")
    assert [title for title, _ in team_got()[1:]] == ["stockmon: 1 alert in the digest every 30m"] * 2
    assert box.messages[0]["Subject"] == "stockmon: 4 alerts in the digest at the close"
    assert box.messages[0].get_body(("plain",)).get_content().splitlines() == [  # lines kept, as written
        "4 alerts on 3 symbols, 2026-11-24 10:10 EST to 2026-11-24 15:30 EST.",
        "Biggest moves: TSLA -5.20%, IBM +2.09%",
        "IBM: 2 alerts (IBM>150, 2%/15m), last 153.90 at 2026-11-24 10:40 EST",
        "AAPL: 1 alert (AAPL:vol3x/20), last 230.10 at 2026-11-24 15:30 EST",
        "TSLA: 1 alert (TSLA:5%/1h), last 212.40 at 2026-11-24 10:20 EST"]


def test_the_close_digest_follows_the_nyse_calendar() -> None:
    calendar = TradingCalendar.nyse()
    close = Digest()
    assert close.due(new_york(24, 12, 0), calendar) == new_york(24, 16, 0)
    assert close.due(new_york(24, 16, 0), calendar) == new_york(25, 16, 0)  # after the close: the next one
    assert close.due(new_york(25, 17, 0), calendar) == new_york(27, 13, 0)  # Thanksgiving; Friday closes early
    assert Digest(timedelta(hours=4)).due(datetime(2026, 11, 24, 13, 59, tzinfo=UTC), calendar) == datetime(
        2026, 11, 24, 16, 0, tzinfo=UTC)
    night = QuietHours(time(22, 0), time(7, 0), NEW_YORK)
    assert night.holds(new_york(24, 23, 0)) and night.holds(new_york(25, 6, 59)) and not night.holds(new_york(25, 7, 0))
    assert night.ends_after(new_york(24, 23, 0)) == new_york(25, 7, 0)
    lunch = QuietHours(time(12, 0), time(13, 0), NEW_YORK)
    assert lunch.holds(new_york(24, 12, 30)) and not lunch.holds(new_york(24, 13, 0))


@pytest.mark.parametrize(("settings", "reason"), [
    ({"NOTIFY_QUIET_HOURS": "pager=22:00-07:00"},
     "NOTIFY_QUIET_HOURS: no channel named pager in NOTIFY_URLS (named ones: mail, phone)"),
    ({"NOTIFY_QUIET_HOURS": "phone=22:00-22:00"}, "NOTIFY_QUIET_HOURS: '22:00-22:00' starts and ends at the same time"),
    ({"NOTIFY_QUIET_HOURS": "phone=25:00-07:00"}, "NOTIFY_QUIET_HOURS: '25:00' is not a time of day (00:00 to 23:59)"),
    ({"NOTIFY_QUIET_HOURS": "phone=22:00-07:00@Mars/Olympus"},
     "NOTIFY_QUIET_HOURS: '22:00-07:00@Mars/Olympus': 'Mars/Olympus' is not a time zone (e.g. America/New_York)"),
    ({"NOTIFY_QUIET_HOURS": "22:00-07:00"},
     "NOTIFY_QUIET_HOURS: '22:00-07:00' is not name=value (the name of a channel in NOTIFY_URLS)"),
    ({"NOTIFY_DIGEST": "mail=7m"}, "NOTIFY_DIGEST: '7m': a digest goes every 1m to 1d, a whole number of times a day "
                                   "(30m, 4h)"),
    ({"NOTIFY_DIGEST": "mail=daily"}, "NOTIFY_DIGEST: 'daily' is not a duration (a number and s, m, h, d or w, e.g. "
                                      "15m), or close"),
    ({"NOTIFY_DIGEST": "mail=close mail=1h"}, "NOTIFY_DIGEST: 'mail' is given twice in NOTIFY_DIGEST"),
])
def test_a_quiet_hours_or_digest_setting_that_cannot_be_used_names_itself_and_why(settings, reason) -> None:
    from common.setting_values import ConfigError

    with pytest.raises(ConfigError) as raised:
        load_settings(environ={"ALPHAVANTAGE_API_KEY": "K" * 16,
                               "NOTIFY_URLS": "phone=json://127.0.0.1:9/p mail=json://127.0.0.1:9/m", **settings},
                      env_file=None)
    assert str(raised.value) == reason


def test_the_settings_give_each_named_channel_its_quiet_hours_and_digest() -> None:
    settings = load_settings(environ={
        "ALPHAVANTAGE_API_KEY": "K" * 16, "NOTIFY_URLS": "phone=json://127.0.0.1:9/p mail=json://127.0.0.1:9/m "
                                                          "json://127.0.0.1:9/all",
        "NOTIFY_QUIET_HOURS": "phone=22:00-07:00@Europe/Berlin", "NOTIFY_DIGEST": "mail=close"}, env_file=None)
    phone, mail, unnamed = settings.notify_channels
    assert (phone.quiet, phone.digest) == (parse_quiet_hours("22:00-07:00@Europe/Berlin"), None)
    assert (mail.quiet, mail.digest, unnamed.quiet, unnamed.digest) == (None, parse_digest("close"), None, None)
    assert phone.quiet.text() == "22:00-07:00 Europe/Berlin" and mail.digest.text() == "at the close"


def test_doctor_says_when_each_channel_is_quiet_and_which_takes_a_digest() -> None:
    settings = load_settings(environ={
        "ALPHAVANTAGE_API_KEY": "K" * 16, "NOTIFY_URLS": "phone=json://127.0.0.1:9/p mail=json://127.0.0.1:9/m",
        "NOTIFY_QUIET_HOURS": "phone=22:00-07:00", "NOTIFY_DIGEST": "mail=30m phone=close"}, env_file=None)
    assert [finding.why for finding in notify_urls(settings) if "parses" not in finding.why] == [
        "phone (json://127.0.0.1:9/p): quiet 22:00-07:00 (what comes then goes as one summary after); one digest at "
        "the close instead of each alert",
        "mail (json://127.0.0.1:9/m): one digest every 30m instead of each alert"]


def test_doctor_counts_each_channels_backlog_by_its_routes_and_says_which_are_held(tmp_path) -> None:
    path = tmp_path / "stocks.db"
    phone = Channel("json://127.0.0.1:9/p", "phone", quiet=QuietHours(time(22, 0), time(7, 0), NEW_YORK))
    team, mail = Channel("json://127.0.0.1:9/t", "team"), Channel("json://127.0.0.1:9/m", "mail", digest=Digest())
    connection = db.connect(path)
    register_channels(connection, [channel.key for channel in (phone, team, mail)])
    connection.close()
    store(path, alert("IBM", "IBM>100", 101.0, 1.0, new_york(24, 21, 0)),
          alert("MSFT", "MSFT>100", 101.0, 1.0, new_york(24, 21, 5)),
          alert("IBM", "IBM>100", 102.0, 1.5, new_york(24, 22, 30)))
    _, routes = parse_routed_rules("IBM>100 -> phone mail, MSFT>100 -> team")
    connection = db.connect(path)
    found = backlog_checks(connection, (phone, team, mail, Channel("json://127.0.0.1:9/n", "new")), routes,
                           new_york(24, 23, 0))
    connection.close()
    assert [(finding.status, finding.why) for finding in found] == [
        ("ok", "phone (json://127.0.0.1:9/p): 2 alert(s) held for its quiet hours (22:00-07:00 America/New_York)"),
        ("warn", "team (json://127.0.0.1:9/t): 1 alert(s) not delivered yet; a running consumer sends them when the "
                 "channel answers (its log says why not)"),
        ("ok", "mail (json://127.0.0.1:9/m): 2 alert(s) for its next digest (at the close)"),
        ("ok", "new (json://127.0.0.1:9/n) is new: the consumer starts it with the next alert")]
