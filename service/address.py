"""Where a listener binds: METRICS_ADDRESS read into a host and a port, loopback unless the user says otherwise."""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

from common.setting_values import ConfigError

SHORTEST_TOKEN = 16


@dataclass(frozen=True)
class ListenAddress:
    host: str  # as given, without the brackets of an IPv6 address
    port: int  # 0: any free port, chosen when the listener starts

    @property
    def loopback(self) -> bool:
        """Only this machine can connect: 127.0.0.0/8, ::1 or localhost."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a host name: whatever it resolves to may be reachable from elsewhere

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    def host_port(self, port: int | None = None) -> str:
        """'127.0.0.1:9464', '[::1]:9464': as the user writes it (port: the one bound, for port 0)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port if port is None else port}"

    def url(self, port: int | None = None) -> str:
        return f"http://{self.host_port(port)}"


def parse_listen_address(name: str, text: str) -> ListenAddress | None:
    """'127.0.0.1:9464', '[::1]:9464', '0.0.0.0:9464' or a port alone (loopback); empty: no listener."""
    value = text.strip()
    if not value:
        return None
    if value.isdigit():
        value = f"127.0.0.1:{value}"
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([A-Za-z0-9._-]+):(\d{1,5})", value)
    if not match:
        raise ConfigError(name, f"{text.strip()!r} is not host:port (e.g. 127.0.0.1:9464; 0.0.0.0:9464 for every "
                                "interface, with a token)")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if port > 65535:
        raise ConfigError(name, f"{value!r}: port {port} is not between 0 and 65535")
    if match.group(1):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(name, f"{value!r}: {host!r} is not an IPv6 address") from None
    return ListenAddress(host, port)


def check_token(address: ListenAddress | None, token: str, name: str, token_name: str) -> str:
    """The token, required (and long enough to guess at no rate) when the address is reachable from elsewhere."""
    token = token.strip()
    if token and len(token) < SHORTEST_TOKEN:
        raise ConfigError(token_name, f"must be at least {SHORTEST_TOKEN} characters")
    if address is not None and not address.loopback and not token:
        raise ConfigError(token_name, f"must be set when {name} is {address.host}, which other machines can "
                                      f"reach (or bind 127.0.0.1)")
    return token
