"""METRICS_ADDRESS and METRICS_TOKEN: what binds where, and when a token is required."""

from __future__ import annotations

import pytest

from common.setting_values import ConfigError
from service.address import ListenAddress, check_token, parse_listen_address


@pytest.mark.parametrize(("text", "expected"), [
    ("", None),
    ("  ", None),
    ("9464", ListenAddress("127.0.0.1", 9464)),
    ("0", ListenAddress("127.0.0.1", 0)),
    ("127.0.0.1:9464", ListenAddress("127.0.0.1", 9464)),
    ("localhost:9464", ListenAddress("localhost", 9464)),
    ("0.0.0.0:9464", ListenAddress("0.0.0.0", 9464)),
    ("[::1]:9464", ListenAddress("::1", 9464)),
    ("monitor.lan:9464", ListenAddress("monitor.lan", 9464)),
])
def test_addresses_parse(text: str, expected: ListenAddress | None) -> None:
    assert parse_listen_address("METRICS_ADDRESS", text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("127.0.0.1", "METRICS_ADDRESS: '127.0.0.1' is not host:port (e.g. 127.0.0.1:9464; 0.0.0.0:9464 for every "
                  "interface, with a token)"),
    ("127.0.0.1:70000", "METRICS_ADDRESS: '127.0.0.1:70000': port 70000 is not between 0 and 65535"),
    ("[::zz]:9464", "METRICS_ADDRESS: '[::zz]:9464' is not host:port (e.g. 127.0.0.1:9464; 0.0.0.0:9464 for every "
                    "interface, with a token)"),
    ("http://0.0.0.0:9464", "METRICS_ADDRESS: 'http://0.0.0.0:9464' is not host:port (e.g. 127.0.0.1:9464; "
                            "0.0.0.0:9464 for every interface, with a token)"),
])
def test_bad_addresses_name_the_setting(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_listen_address("METRICS_ADDRESS", text)
    assert str(raised.value) == message


def test_loopback_is_only_this_machine() -> None:
    assert ListenAddress("127.0.0.1", 1).loopback and ListenAddress("::1", 1).loopback
    assert ListenAddress("localhost", 1).loopback and ListenAddress("127.8.0.1", 1).loopback
    assert not ListenAddress("0.0.0.0", 1).loopback and not ListenAddress("::", 1).loopback
    assert not ListenAddress("monitor.lan", 1).loopback and not ListenAddress("192.168.1.5", 1).loopback


def test_a_wider_address_needs_a_long_token() -> None:
    wide, local = ListenAddress("0.0.0.0", 9464), ListenAddress("127.0.0.1", 9464)
    assert check_token(local, "", "METRICS_ADDRESS", "METRICS_TOKEN") == ""
    assert check_token(wide, "t" * 16, "METRICS_ADDRESS", "METRICS_TOKEN") == "t" * 16
    with pytest.raises(ConfigError, match=r"^METRICS_TOKEN: must be set when METRICS_ADDRESS is 0\.0\.0\.0, which "
                                          r"other machines can reach \(or bind 127\.0\.0\.1\)$"):
        check_token(wide, "", "METRICS_ADDRESS", "METRICS_TOKEN")
    with pytest.raises(ConfigError, match=r"^METRICS_TOKEN: must be at least 16 characters$"):
        check_token(local, "short", "METRICS_ADDRESS", "METRICS_TOKEN")
