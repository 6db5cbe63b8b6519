"""Check a configuration without starting the pipeline: one line per check (ok, warn or FAIL, then why).

Exit 0 when nothing failed (warnings allowed), 1 when a check failed, 2 when a setting is unreadable.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from checkup.api_check import call_api
from checkup.finding import Finding, fail, failed, ok
from checkup.kafka_checks import kafka_checks
from checkup.settings_checks import api_key, env_file_names, metrics_listener, notify_urls, polling_hours
from checkup.storage_checks import database_checks, state_file
from common.cli import ExitCode
from common.redact import configure_logging
from config import (
    ConfigError,
    Settings,
    add_common_arguments,
    read_env_file,
    read_settings,
    secrets_as_given,
    settings_epilog,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="doctor", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Check the settings, Kafka, the database and the state file the way producer.py and "
                    "consumer.py would use them, without starting either. Exit 0: no check failed; "
                    "1: one failed; 2: a setting is unreadable.",
        epilog=settings_epilog())
    parser.add_argument("--call-api", action="store_true",
                        help="also make one real Alpha Vantage call (spends one call of the day's budget): "
                             "reports the key's entitlement and whether it is throttled")
    add_common_arguments(parser)
    return parser


def checks(settings: Settings, call: bool, now: Callable[[], datetime]) -> Iterator[Finding]:
    """The checks after the settings parsed, in the order a run meets them."""
    yield api_key(settings)
    yield metrics_listener(settings)
    yield from notify_urls(settings)
    yield polling_hours(settings, now())
    yield from kafka_checks(settings)
    yield from database_checks(settings.db_path, settings.retention, now(), settings.notify_channels,
                               settings.alert_routes)
    yield state_file(settings.state_path)
    if call:
        yield call_api(settings)


def main(argv: list[str] | None = None, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> int:
    args = build_parser().parse_args(argv)
    env_file = Path(args.env_file or ".env")
    try:
        names = read_env_file(env_file, required=args.env_file is not None)
    except ConfigError as exc:
        print(fail("settings", str(exc)).line())
        return ExitCode.BAD_CONFIG
    print(env_file_names(env_file, names).line())
    try:
        settings = read_settings(args)
    except ConfigError as exc:
        print(fail("settings", str(exc)).line(secrets_as_given(names)))
        return ExitCode.BAD_CONFIG
    print(ok("settings", "every setting parses").line())
    # Each line below says what went wrong; the libraries' own log lines (apprise, kafka-python) would repeat it.
    configure_logging("CRITICAL", settings.secrets)
    findings = []
    for finding in checks(settings, args.call_api, now):
        print(finding.line(settings.secrets), flush=True)
        findings.append(finding)
    return ExitCode.FAILURE if failed(findings) else ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
