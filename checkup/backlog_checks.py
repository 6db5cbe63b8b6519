"""Doctor lines about each notification channel's backlog in the database: how many alerts its routes give
it that it has not had yet, and whether that is a hold (quiet hours, a digest) or a channel not reached."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from alerts.routes import Routes
from checkup.finding import Finding, ok, warn
from notify.channels import Channel
from notify.delivery import channel_backlog


def backlog_checks(connection: sqlite3.Connection, channels: tuple[Channel, ...], routes: Routes,
                   now: datetime) -> list[Finding]:
    registered = {row[0] for row in connection.execute("SELECT channel FROM notify_channels")}
    findings = []
    for channel in channels:
        what = "notify backlog"
        if channel.key not in registered:
            findings.append(ok(what, f"{channel.name} is new: the consumer starts it with the next alert"))
            continue
        waiting = channel_backlog(connection, channel.key, routes.skipped_by(channel.label))
        if not waiting:
            findings.append(ok(what, f"{channel.name} has had every alert its rules give it"))
        elif channel.quiet and channel.quiet.holds(now):
            findings.append(ok(what, f"{channel.name}: {waiting} alert(s) held for its quiet hours "
                                     f"({channel.quiet.text()})"))
        elif channel.digest:
            findings.append(ok(what, f"{channel.name}: {waiting} alert(s) for its next digest "
                                     f"({channel.digest.text()})"))
        else:
            findings.append(warn(what, f"{channel.name}: {waiting} alert(s) not delivered yet; a running consumer "
                                       "sends them when the channel answers (its log says why not)"))
    return findings
