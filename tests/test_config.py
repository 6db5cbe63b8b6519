"""Settings: precedence, validation, and the exact one-line errors users see."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, load_settings, secrets_as_given
from conftest import run_script, script_env


def test_defaults_give_a_newcomer_real_data_with_the_demo_key():
    settings = load_settings(environ={}, env_file=None)
    assert settings.api_key == "demo"
    assert settings.symbols == ("IBM",)
    assert settings.function == "GLOBAL_QUOTE"
    assert (settings.interval, settings.entitlement) == ("5min", "")
    assert (settings.requests_per_minute, settings.requests_per_day) == (5, 25)
    assert (settings.bootstrap_servers, settings.topic, settings.group_id) == (
        "localhost:9092", "stock_prices", "stock-monitor")
    assert settings.db_path == Path("stocks.db")
    assert settings.log_level == "INFO"
    assert settings.kafka_security() == {"security_protocol": "PLAINTEXT"}


def test_environment_wins_over_env_file_and_flags_win_over_both(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("STOCK_SYMBOLS=AAPL\nKAFKA_TOPIC=from_file\nDB_PATH=file.db\n")
    settings = load_settings({"DB_PATH": "flag.db"}, environ={"KAFKA_TOPIC": "from_env", "DB_PATH": "env.db"},
                             env_file=env_file)
    assert settings.symbols == ("AAPL",)
    assert settings.topic == "from_env"
    assert settings.db_path == Path("flag.db")


def test_symbols_are_upper_cased_deduplicated_and_may_hold_dots_and_dashes():
    settings = load_settings(environ={"STOCK_SYMBOLS": " ibm, brk.b ,TSCO.LON, rds-a,IBM,"}, env_file=None)
    assert settings.symbols == ("IBM", "BRK.B", "TSCO.LON", "RDS-A")


def test_the_api_key_is_not_in_the_settings_repr():
    settings = load_settings(environ={"ALPHAVANTAGE_API_KEY": "SECRETKEY123456"}, env_file=None)
    assert "SECRETKEY123456" not in repr(settings)


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("STOCK_SYMBOLS", "IBM,AB$C", "STOCK_SYMBOLS: 'AB$C' is not a valid symbol (letters, digits, '.' and '-', at most 20)"),
    ("STOCK_SYMBOLS", " , ", "STOCK_SYMBOLS: no symbols given"),
    ("ALPHAVANTAGE_FUNCTION", "TIME_SERIES_DAILY",
     "ALPHAVANTAGE_FUNCTION: 'TIME_SERIES_DAILY' is not one of GLOBAL_QUOTE, TIME_SERIES_INTRADAY, REALTIME_BULK_QUOTES"),
    ("ALPHAVANTAGE_INTERVAL", "2min", "ALPHAVANTAGE_INTERVAL: '2min' is not one of 1min, 5min, 15min, 30min, 60min"),
    ("ALPHAVANTAGE_ENTITLEMENT", "live", "ALPHAVANTAGE_ENTITLEMENT: 'live' is not one of empty, realtime, delayed"),
    ("REQUESTS_PER_MINUTE", "five", "REQUESTS_PER_MINUTE: 'five' is not a whole number"),
    ("REQUESTS_PER_MINUTE", "0", "REQUESTS_PER_MINUTE: must be at least 1, got 0"),
    ("REQUESTS_PER_DAY", "2.5", "REQUESTS_PER_DAY: '2.5' is not a whole number"),
    ("REQUESTS_PER_DAY", "-1", "REQUESTS_PER_DAY: must be 0 or more, got -1"),
    ("REQUESTS_IN_FLIGHT", "0", "REQUESTS_IN_FLIGHT: must be at least 1, got 0"),
    ("REQUESTS_IN_FLIGHT", "many", "REQUESTS_IN_FLIGHT: 'many' is not a whole number"),
    ("ALPHAVANTAGE_TIMEOUT", "-1", "ALPHAVANTAGE_TIMEOUT: must be a positive number of seconds, got -1"),
    ("ALPHAVANTAGE_API_KEY", "  ", "ALPHAVANTAGE_API_KEY: must not be empty"),
    ("ALPHAVANTAGE_BASE_URL", "ftp://example", "ALPHAVANTAGE_BASE_URL: 'ftp://example' is not an http(s) URL"),
    ("KAFKA_TOPIC", "stock prices", "KAFKA_TOPIC: 'stock prices' is not a valid topic name (letters, digits, '.', '_', '-')"),
    ("KAFKA_FETCH_MAX_WAIT_MS", "0", "KAFKA_FETCH_MAX_WAIT_MS: must be at least 1, got 0"),
    ("KAFKA_FETCH_MAX_WAIT_MS", "10001", "KAFKA_FETCH_MAX_WAIT_MS: must be at most 10000, got 10001"),
    ("KAFKA_FETCH_MAX_WAIT_MS", "0.5s", "KAFKA_FETCH_MAX_WAIT_MS: '0.5s' is not a whole number"),
    ("LOG_LEVEL", "LOUD", "LOG_LEVEL: 'LOUD' is not one of DEBUG, INFO, WARNING, ERROR"),
    ("POLL_HOURS", "weekdays", "POLL_HOURS: 'weekdays' is not one of market, extended, always"),
    ("BACKFILL", "yes", "BACKFILL: 'yes' is not one of auto, off"),
    ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL", "KAFKA_SASL_MECHANISM: must be set when KAFKA_SECURITY_PROTOCOL is SASL_SSL"),
])
def test_a_bad_value_names_the_setting_and_the_problem(variable, value, message):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={variable: value}, env_file=None)
    assert str(caught.value) == message
    assert caught.value.setting == message.split(":")[0]


def test_sasl_settings_become_kafka_python_options():
    settings = load_settings(environ={"KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "KAFKA_SASL_MECHANISM": "scram-sha-512",
                                      "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p",
                                      "KAFKA_SSL_CAFILE": "/ca.pem"}, env_file=None)
    assert settings.kafka_security() == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                                         "sasl_plain_username": "u", "sasl_plain_password": "p",
                                         "ssl_cafile": "/ca.pem"}


@pytest.mark.parametrize("script", ["producer.py", "consumer.py"])
def test_scripts_exit_2_with_one_line_naming_the_setting(script):
    result = run_script(script, env=script_env(REQUESTS_PER_MINUTE="lots"), timeout=30)
    assert result.returncode == 2
    assert result.stderr == f"{script[:-3]}: error: REQUESTS_PER_MINUTE: 'lots' is not a whole number\n"


def test_a_bad_flag_value_is_reported_like_the_variable():
    result = run_script("producer.py", "--symbols", "IBM;DROP", env=script_env(), timeout=30)
    assert result.returncode == 2
    assert result.stderr == (
        "producer: error: STOCK_SYMBOLS: 'IBM;DROP' is not a valid symbol (letters, digits, '.' and '-', at most 20)\n")


@pytest.mark.parametrize("servers", ["localhost:90x2", "localhost", "host:0", "host:65536", "a:1,,b:2", "a b:1"])
def test_each_bootstrap_server_must_be_host_and_port(servers):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"KAFKA_BOOTSTRAP_SERVERS": servers}, env_file=None)
    assert caught.value.setting == "KAFKA_BOOTSTRAP_SERVERS"


def test_bootstrap_servers_accept_names_addresses_and_ipv6_with_spaces_dropped():
    settings = load_settings(environ={"KAFKA_BOOTSTRAP_SERVERS": " b1.example.com:9093, 10.0.0.2:9092,[::1]:9094 "},
                             env_file=None)
    assert settings.bootstrap_servers == "b1.example.com:9093,10.0.0.2:9092,[::1]:9094"


def test_a_mistyped_port_stops_the_producer_with_exit_2_naming_the_setting():
    result = run_script("producer.py", env=script_env(KAFKA_BOOTSTRAP_SERVERS="localhost:90x2"), timeout=30)
    assert (result.returncode, result.stderr) == (
        2, "producer: error: KAFKA_BOOTSTRAP_SERVERS: 'localhost:90x2' is not host:port\n")


def test_a_byte_order_mark_does_not_hide_the_first_setting(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_bytes("\ufeffSTOCK_SYMBOLS=MSFT\nKAFKA_TOPIC=prices\n".encode())
    settings = load_settings(environ={}, env_file=env_file)
    assert (settings.symbols, settings.topic, settings.notices) == (("MSFT",), "prices", ())


def test_names_in_env_that_look_like_settings_are_warned_about_once_with_the_closest_match(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(f"STOCK_SYMBOL=MSFT\nstock_symbols=AAPL\nCOMPOSE_PROJECT_NAME=x\nDB_PATH={tmp_path / 'none.db'}\n")
    notice = (f"{env_file}: ignoring unknown setting(s) 'STOCK_SYMBOL' (did you mean STOCK_SYMBOLS?), "
              "'stock_symbols' (did you mean STOCK_SYMBOLS?)")
    settings = load_settings(environ={}, env_file=env_file)
    assert (settings.symbols, settings.notices) == (("IBM",), (notice,))
    result = run_script("monitor.py", "--env-file", str(env_file), "--json", env=script_env(), timeout=30)
    assert result.returncode == 0
    warned = [line.split(" ", 2)[2] for line in result.stderr.splitlines() if "ignoring" in line]
    assert warned == [f"WARNING monitor: {notice}"]


def test_a_named_env_file_that_does_not_exist_is_exit_2(tmp_path):
    missing = tmp_path / "prod.env"
    for script in ("producer.py", "consumer.py", "monitor.py"):
        result = run_script(script, "--env-file", str(missing), env=script_env(), timeout=30)
        assert (result.returncode, result.stderr) == (
            2, f"{script[:-3]}: error: --env-file: '{missing}' does not exist\n")


def test_requests_per_day_0_means_no_daily_limit_and_bulk_quotes_are_a_function():
    settings = load_settings(environ={"REQUESTS_PER_DAY": "0", "ALPHAVANTAGE_FUNCTION": "realtime_bulk_quotes"},
                             env_file=None)
    assert settings.requests_per_day == 0
    assert settings.function == "REALTIME_BULK_QUOTES"
    assert settings.requests_in_flight is None  # auto
    assert load_settings(environ={"REQUESTS_IN_FLIGHT": "3"}, env_file=None).requests_in_flight == 3


def test_the_fetch_hold_defaults_to_50_ms_and_can_be_set():
    assert load_settings(environ={}, env_file=None).fetch_max_wait_ms == 50
    assert load_settings(environ={"KAFKA_FETCH_MAX_WAIT_MS": "500"}, env_file=None).fetch_max_wait_ms == 500


def test_secrets_as_given_are_found_before_the_settings_parse():
    found = secrets_as_given({"ALPHAVANTAGE_API_KEY": "file-key-0123456789", "KAFKA_SASL_PASSWORD": "pw-in-file",
                              "NOTIFY_URLS": "json://hooks.example.com/hook/tokentokentoken", "STOCK_SYMBOLS": "IBM"},
                             environ={"ALPHAVANTAGE_API_KEY": "env-key-0123456789", "METRICS_TOKEN": "t" * 16})
    assert {"env-key-0123456789", "pw-in-file", "tokentokentoken", "t" * 16} <= set(found)
    assert "file-key-0123456789" not in found and "IBM" not in found  # the environment wins, as in load_settings
