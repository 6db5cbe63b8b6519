"""Settings: read once from the environment, a `.env` file and CLI flags into one frozen object.

Precedence, highest first: CLI flag, environment variable, `.env` file, default. Only this
module reads the environment.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from dotenv import dotenv_values

from alerts.routes import Routes, parse_routed_rules, unknown_names
from alerts.rules import MoveRule, Rule, RuleError
from common.cli import print_error
from common.redact import configure_logging
from common.setting_values import (
    ConfigError,
    base_url,
    bootstrap_servers,
    choice,
    fetch_max_wait_ms,
    non_empty,
    positive_number,
    topic_name,
    whole_number,
)
from common.symbols import SYMBOL_PATTERN
from history.retention import Retention, read_retention
from market.hours import POLL_MODES
from notify.channels import Channel, ChannelError, parse_channels, split_urls, url_secrets, with_schedules
from service.address import ListenAddress, check_token, parse_listen_address

DEFAULT_BASE_URL = "https://www.alphavantage.co/query"
FUNCTIONS = ("GLOBAL_QUOTE", "TIME_SERIES_INTRADAY", "REALTIME_BULK_QUOTES")
INTERVALS = ("1min", "5min", "15min", "30min", "60min")
ENTITLEMENTS = ("", "realtime", "delayed")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
BACKFILL_MODES = ("auto", "off")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

# name, default, meaning: the single list behind --help; .env.example and the README repeat it.
SETTINGS_HELP: tuple[tuple[str, str, str], ...] = (
    ("ALPHAVANTAGE_API_KEY", "demo", "Alpha Vantage API key (secret; 'demo' serves IBM only)"),
    ("ALPHAVANTAGE_BASE_URL", DEFAULT_BASE_URL, "query endpoint (tests point it at a local stand-in)"),
    ("STOCK_SYMBOLS", "IBM", "comma-separated symbols, e.g. IBM,MSFT,BRK.B,TSCO.LON"),
    ("ALPHAVANTAGE_FUNCTION", "GLOBAL_QUOTE",
     "GLOBAL_QUOTE, TIME_SERIES_INTRADAY or REALTIME_BULK_QUOTES (premium: 100 symbols a call)"),
    ("ALPHAVANTAGE_INTERVAL", "5min", "intraday bar size: 1min, 5min, 15min, 30min or 60min"),
    ("ALPHAVANTAGE_ENTITLEMENT", "", "premium keys only: realtime or delayed (empty: end-of-day data)"),
    ("ALPHAVANTAGE_TIMEOUT", "20", "seconds to wait for an API answer before retrying later"),
    ("REQUESTS_PER_MINUTE", "5", "API calls allowed in any 60 s window (also spaces calls >= 1 s apart)"),
    ("REQUESTS_PER_DAY", "25", "API calls allowed per UTC day (25 on the free tier; 0: no daily limit)"),
    ("REQUESTS_IN_FLIGHT", "auto", "API calls at once: auto (1 up to 60/min, more above) or a number"),
    ("POLL_HOURS", "market",
     "when to call the API: market (NYSE session, then a catch-up pass), extended (04:00-20:00 ET) or always"),
    ("BACKFILL", "auto", "auto: fetch 100 days of daily closes once for each new symbol; off: only with --backfill"),
    ("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092", "comma-separated host:port list of Kafka brokers"),
    ("KAFKA_TOPIC", "stock_prices", "topic the quotes go through (created if missing)"),
    ("KAFKA_GROUP_ID", "stock-monitor", "consumer group of consumer.py"),
    ("KAFKA_FETCH_MAX_WAIT_MS", "50", "longest a broker holds consumer.py's fetch for partitions with nothing new "
                                      "(1-10000; an idle consumer sends 1000/N fetches a second)"),
    ("KAFKA_ALERTS_TOPIC", "stock_alerts", "topic consumer.py publishes alerts to, as JSON (created if missing)"),
    ("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
    ("KAFKA_SASL_MECHANISM", "", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with SASL_*)"),
    ("KAFKA_SASL_USERNAME", "", "SASL user name"),
    ("KAFKA_SASL_PASSWORD", "", "SASL password (secret)"),
    ("KAFKA_SSL_CAFILE", "", "CA bundle to verify the brokers' certificates (with SSL)"),
    ("ALERT_RULES", "", "alert rules, comma-separated: 2%/15m, TSLA:5%/1h, AAPL>200, IBM<150 cooldown 30m; "
                        "-> names the channels a rule's alerts go to: TSLA:5%/1h -> phone team (empty: none)"),
    ("NOTIFY_URLS", "", "where consumer.py sends each alert: apprise URLs separated by spaces, each optionally "
                        "named for ALERT_RULES' ->, e.g. json://host/path phone=ntfy://topic "
                        "mail=mailtos://user:password@host (secret; empty: none)"),
    ("NOTIFY_QUIET_HOURS", "", "named channels that get nothing at these hours, then one summary: "
                               "phone=22:00-07:00 or phone=22:00-07:00@Europe/Berlin (default zone: the machine's)"),
    ("NOTIFY_DIGEST", "", "named channels that get one summary instead of each alert: mail=close (the NYSE "
                          "session's close) or team=30m (every 1m to 1d, on the UTC clock)"),
    ("DB_PATH", "stocks.db", "SQLite database file written by consumer.py"),
    ("RETAIN_QUOTES", "forever", "how long consumer.py keeps raw quotes: 30d, 12w, 1y or forever (older ones are "
                                 "purged hourly; their 1-minute and daily bars stay)"),
    ("RETAIN_MINUTE_BARS", "forever", "how long 1-minute bars are kept (at least RETAIN_QUOTES)"),
    ("RETAIN_DAILY_BARS", "forever", "how long daily bars are kept (at least RETAIN_MINUTE_BARS)"),
    ("RETAIN_ALERTS", "forever", "how long alerts are kept once published and sent to every channel"),
    ("PRODUCER_STATE_PATH", "producer_state.json", "where producer.py remembers its call budget and what it published"),
    ("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR"),
    ("LOG_FORMAT", "text", "text (for people) or json (one object per line, for journald, Loki, log shippers)"),
    ("METRICS_ADDRESS", "", "where each script serves /metrics, /healthz and /readyz: host:port, e.g. 127.0.0.1:9464 "
                            "(port 0: any free port; empty: off)"),
    ("METRICS_TOKEN", "", "bearer token the listener asks for; needed when METRICS_ADDRESS is not loopback (secret)"),
    ("WEB_TOKEN", "", "token monitor.py --web asks for; needed when --listen is not loopback (secret)"),
)
DEFAULTS = {name: default for name, default, _ in SETTINGS_HELP}
SECRET_SUFFIXES = ("API_KEY", "PASSWORD", "TOKEN")  # the settings whose values are secrets


@dataclass(frozen=True)
class Settings:
    """Everything the scripts need; each field is filled from the variable named in SETTINGS_HELP."""

    api_key: str = field(repr=False)
    base_url: str
    symbols: tuple[str, ...]
    function: str
    interval: str
    entitlement: str
    api_timeout: float
    requests_per_minute: int
    requests_per_day: int
    requests_in_flight: int | None  # None: calls_in_flight(requests_per_minute) decides
    poll_hours: str  # market, extended or always (market.hours.POLL_MODES)
    backfill: str  # auto or off
    bootstrap_servers: str
    topic: str
    group_id: str
    fetch_max_wait_ms: int
    alerts_topic: str
    alert_rules: tuple[Rule, ...]
    alert_routes: Routes  # which named channels a rule's alerts go to (alerts/routes.py)
    notify_channels: tuple[Channel, ...] = field(repr=False)  # their URLs carry tokens and passwords
    security_protocol: str
    sasl_mechanism: str
    sasl_username: str
    sasl_password: str = field(repr=False)
    ssl_cafile: str
    db_path: Path
    retention: Retention
    state_path: Path
    log_level: str
    log_format: str  # text or json
    metrics_address: ListenAddress | None  # None: no listener
    metrics_token: str = field(repr=False)
    web_token: str = field(repr=False)
    # Warnings about the settings themselves (a likely typo in .env), logged once logging is set up.
    notices: tuple[str, ...] = field(default=(), compare=False)

    @property
    def secrets(self) -> list[str]:
        """What no log line or message may show: the API key, SASL password, listener tokens, notification tokens."""
        return [self.api_key, self.sasl_password, self.metrics_token, self.web_token,
                *(secret for channel in self.notify_channels for secret in url_secrets(channel.url))]

    def kafka_security(self) -> dict[str, str]:
        """kafka-python keyword arguments for the cluster's security settings (empty for PLAINTEXT)."""
        options: dict[str, str] = {"security_protocol": self.security_protocol}
        if self.sasl_mechanism:
            options |= {"sasl_mechanism": self.sasl_mechanism,
                        "sasl_plain_username": self.sasl_username,
                        "sasl_plain_password": self.sasl_password}
        if self.ssl_cafile:
            options["ssl_cafile"] = self.ssl_cafile
        return options


def parse_symbols(text: str) -> tuple[str, ...]:
    """Split, upper-case and validate a comma-separated symbol list, keeping order, dropping repeats."""
    symbols: list[str] = []
    for raw in text.split(","):
        symbol = raw.strip().upper()
        if not symbol:
            continue
        if not SYMBOL_PATTERN.fullmatch(symbol):
            raise ConfigError("STOCK_SYMBOLS", f"{raw.strip()!r} is not a valid symbol "
                                               "(letters, digits, '.' and '-', at most 20)")
        if symbol not in symbols:
            symbols.append(symbol)
    if not symbols:
        raise ConfigError("STOCK_SYMBOLS", "no symbols given")
    return tuple(symbols)


def read_env_file(env_file: str | Path | None, required: bool = False) -> dict[str, str | None]:
    """The settings in an env file; a missing file is fine unless the user named it (`required`).

    A UTF-8 byte-order mark (Windows editors add one) is read as such, not as part of the first name.
    """
    if not env_file or (not required and not Path(env_file).exists()):
        return {}
    if not Path(env_file).exists():
        raise ConfigError("--env-file", f"{str(env_file)!r} does not exist")
    try:
        return dotenv_values(env_file, encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError("--env-file", f"cannot read {str(env_file)!r}: {problem}") from None


def guess_setting(name: str) -> str | None:
    """The setting a name that is not one was likely meant to be (a typo, lower case), if any."""
    if name.upper() in DEFAULTS:
        return name.upper()
    return next(iter(difflib.get_close_matches(name.upper(), DEFAULTS, n=1, cutoff=0.8)), None)


def unknown_settings_notice(env_file: str | Path, names: Iterable[str]) -> str | None:
    """One line about names in the env file that are not settings but look like one (a typo, lower case)."""
    guesses = []
    for name in names:
        if name in DEFAULTS:
            continue
        match = guess_setting(name)
        if match:
            guesses.append(f"{name!r} (did you mean {match}?)")
    if not guesses:
        return None
    return f"{env_file}: ignoring unknown setting(s) {', '.join(guesses)}"


def load_settings(overrides: Mapping[str, str | None] | None = None,
                  environ: Mapping[str, str] | None = None,
                  env_file: str | Path | None = ".env", env_file_required: bool = False) -> Settings:
    """Build Settings from overrides (CLI), then environ, then the .env file, then defaults."""
    environ = os.environ if environ is None else environ
    from_file = read_env_file(env_file, env_file_required)
    values: dict[str, str] = {}
    for name in DEFAULTS:
        chosen = (overrides or {}).get(name)
        if chosen is None:
            chosen = environ.get(name)
        if chosen is None:
            chosen = from_file.get(name)
        values[name] = DEFAULTS[name] if chosen is None else chosen

    security_protocol = choice("KAFKA_SECURITY_PROTOCOL", values["KAFKA_SECURITY_PROTOCOL"],
                                SECURITY_PROTOCOLS, upper=True)
    sasl_mechanism = choice("KAFKA_SASL_MECHANISM", values["KAFKA_SASL_MECHANISM"], SASL_MECHANISMS,
                             upper=True)
    metrics_address = parse_listen_address("METRICS_ADDRESS", values["METRICS_ADDRESS"])
    alert_rules, alert_routes = _alert_rules(values["ALERT_RULES"])
    notify_channels = _notify_channels(values["NOTIFY_URLS"], values["NOTIFY_QUIET_HOURS"], values["NOTIFY_DIGEST"])
    unknown = unknown_names(alert_routes, (channel.label for channel in notify_channels))
    if unknown:
        raise ConfigError("ALERT_RULES", unknown)
    windows = [rule.window for rule in alert_rules if isinstance(rule, MoveRule)]
    if security_protocol.startswith("SASL") and not sasl_mechanism:
        raise ConfigError("KAFKA_SASL_MECHANISM", f"must be set when KAFKA_SECURITY_PROTOCOL is {security_protocol}")
    return Settings(
        api_key=non_empty("ALPHAVANTAGE_API_KEY", values["ALPHAVANTAGE_API_KEY"]),
        base_url=base_url(values["ALPHAVANTAGE_BASE_URL"]),
        symbols=parse_symbols(values["STOCK_SYMBOLS"]),
        function=choice("ALPHAVANTAGE_FUNCTION", values["ALPHAVANTAGE_FUNCTION"], FUNCTIONS, upper=True),
        interval=choice("ALPHAVANTAGE_INTERVAL", values["ALPHAVANTAGE_INTERVAL"], INTERVALS),
        entitlement=choice("ALPHAVANTAGE_ENTITLEMENT", values["ALPHAVANTAGE_ENTITLEMENT"], ENTITLEMENTS),
        api_timeout=positive_number("ALPHAVANTAGE_TIMEOUT", values["ALPHAVANTAGE_TIMEOUT"]),
        requests_per_minute=whole_number("REQUESTS_PER_MINUTE", values["REQUESTS_PER_MINUTE"], 1),
        requests_per_day=whole_number("REQUESTS_PER_DAY", values["REQUESTS_PER_DAY"], 0),
        requests_in_flight=None if values["REQUESTS_IN_FLIGHT"].strip().lower() == "auto"
        else whole_number("REQUESTS_IN_FLIGHT", values["REQUESTS_IN_FLIGHT"], 1),
        poll_hours=choice("POLL_HOURS", values["POLL_HOURS"].lower(), POLL_MODES),
        backfill=choice("BACKFILL", values["BACKFILL"].lower(), BACKFILL_MODES),
        bootstrap_servers=bootstrap_servers(values["KAFKA_BOOTSTRAP_SERVERS"]),
        topic=topic_name("KAFKA_TOPIC", values["KAFKA_TOPIC"]),
        group_id=non_empty("KAFKA_GROUP_ID", values["KAFKA_GROUP_ID"]),
        fetch_max_wait_ms=fetch_max_wait_ms(values["KAFKA_FETCH_MAX_WAIT_MS"]),
        alerts_topic=topic_name("KAFKA_ALERTS_TOPIC", values["KAFKA_ALERTS_TOPIC"]),
        alert_rules=alert_rules,
        alert_routes=alert_routes,
        notify_channels=notify_channels,
        security_protocol=security_protocol,
        sasl_mechanism=sasl_mechanism,
        sasl_username=values["KAFKA_SASL_USERNAME"].strip(),
        sasl_password=values["KAFKA_SASL_PASSWORD"],
        ssl_cafile=values["KAFKA_SSL_CAFILE"].strip(),
        db_path=Path(non_empty("DB_PATH", values["DB_PATH"])),
        retention=read_retention(values, max(windows, default=timedelta(0))),
        state_path=Path(non_empty("PRODUCER_STATE_PATH", values["PRODUCER_STATE_PATH"])),
        log_level=choice("LOG_LEVEL", values["LOG_LEVEL"], LOG_LEVELS, upper=True),
        log_format=choice("LOG_FORMAT", values["LOG_FORMAT"].lower(), LOG_FORMATS),
        metrics_address=metrics_address,
        metrics_token=check_token(metrics_address, values["METRICS_TOKEN"], "METRICS_ADDRESS", "METRICS_TOKEN"),
        web_token=check_token(None, values["WEB_TOKEN"], "--listen", "WEB_TOKEN"),
        notices=tuple(filter(None, [unknown_settings_notice(env_file, from_file)])) if env_file else (),
    )


def secrets_as_given(from_file: Mapping[str, str | None], environ: Mapping[str, str] | None = None) -> list[str]:
    """The secrets as written in the environment or the settings file, for masking a problem found
    before the settings parsed (doctor.py)."""
    environ = os.environ if environ is None else environ
    found: list[str] = []
    for name in DEFAULTS:
        value = environ.get(name, from_file.get(name)) or ""
        if name.endswith(SECRET_SUFFIXES):
            found.append(value)
        elif name == "NOTIFY_URLS":
            found += [secret for url in split_urls(value) for secret in url_secrets(url)]
    return found


def _notify_channels(urls: str, quiet_hours: str, digests: str) -> tuple[Channel, ...]:
    try:
        return with_schedules(parse_channels(urls), quiet_hours, digests)
    except ChannelError as exc:
        raise ConfigError("NOTIFY_URLS", str(exc)) from None


def _alert_rules(text: str) -> tuple[tuple[Rule, ...], Routes]:
    try:
        return parse_routed_rules(text)
    except RuleError as exc:
        raise ConfigError("ALERT_RULES", str(exc)) from None


def settings_epilog() -> str:
    """The settings list for --help."""
    width = max(len(name) for name, _, _ in SETTINGS_HELP)
    lines = ["settings (environment or .env; flags above override them):"]
    for name, default, meaning in SETTINGS_HELP:
        shown = "" if name.endswith(SECRET_SUFFIXES) else f" [default: {default or 'empty'}]"
        lines.append(f"  {name:<{width}}  {meaning}{shown}")
    return "\n".join(lines)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags both scripts accept; each maps onto one setting."""
    parser.add_argument("--bootstrap-servers", dest="KAFKA_BOOTSTRAP_SERVERS", metavar="HOST:PORT",
                        help="Kafka brokers (KAFKA_BOOTSTRAP_SERVERS)")
    parser.add_argument("--topic", dest="KAFKA_TOPIC", metavar="NAME", help="Kafka topic (KAFKA_TOPIC)")
    parser.add_argument("--log-level", dest="LOG_LEVEL", metavar="LEVEL",
                        help="DEBUG, INFO, WARNING or ERROR (LOG_LEVEL)")
    parser.add_argument("--metrics-address", dest="METRICS_ADDRESS", metavar="HOST:PORT",
                        help="serve /metrics, /healthz and /readyz here; empty: off (METRICS_ADDRESS)")
    parser.add_argument("--env-file", metavar="PATH",
                        help="read settings from this file too (default .env, which may be missing; "
                             "a file named here must exist)")


def overrides_from(args: argparse.Namespace) -> dict[str, str | None]:
    """The setting overrides carried by parsed flags (flags whose dest is a setting name)."""
    return {name: value for name, value in vars(args).items() if name in DEFAULTS}


def read_settings(args: argparse.Namespace) -> Settings:
    """Settings from the flags, the environment and the settings file (--env-file, default .env); ConfigError."""
    return load_settings(overrides_from(args), env_file=args.env_file or ".env",
                         env_file_required=args.env_file is not None)


def settings_from_args(prog: str, args: argparse.Namespace) -> Settings | None:
    """Load settings and configure logging; print the problem and return None when they are bad."""
    try:
        settings = read_settings(args)
    except ConfigError as exc:
        print_error(prog, str(exc))
        return None
    configure_logging(settings.log_level, settings.secrets, settings.log_format)
    for notice in settings.notices:
        logging.getLogger(prog).warning("%s", notice)
    return settings
