"""The Host rule against DNS rebinding: the names a request may use to address the dashboard.

A page on `evil.example` whose name is re-pointed at 127.0.0.1 reaches the dashboard with
`Host: evil.example`; refusing every name but loopback ones (and those named with
`--allowed-host`) keeps it out. An IP-address Host cannot be rebound, so with a token (needed
on any non-loopback bind) any address is accepted too: the token does the guarding there.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterable

__all__ = ["HostRule", "host_name"]

_MAX_PORT_DIGITS = 5
_CACHED = 256  # recent Host values and their verdicts, so most requests skip parsing (at most 256 x 16 KiB)


def host_name(value: str) -> str | None:
    """The lowercase name or address of a Host value (`name`, `name:port`, `[v6]:port`); None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, port = value[1:].partition("]")
        if not bracket:
            return None
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return None
    else:
        name, colon, digits = value.partition(":")
        port = colon + digits
    if port and not (port[0] == ":" and port[1:].isascii() and port[1:].isdigit() and len(port) <= _MAX_PORT_DIGITS + 1):
        return None
    return name or None


class HostRule:
    """Which Host names are accepted: loopback ones, the `allowed` names and, if `any_address`, any IP address."""

    def __init__(self, allowed: Iterable[str] = (), *, any_address: bool = False) -> None:
        names = set()
        for entry in allowed:
            name = host_name(entry)
            if name is None or "/" in name:
                raise ValueError(f"allowed host {entry!r} is not a host name or address (such as dash.example or 10.0.0.5)")
            names.add(name)
        self.allowed = frozenset(names)
        self.any_address = any_address
        self.allows: Callable[[str], bool] = functools.lru_cache(maxsize=_CACHED)(self._allows)
        """True if the Host value `value` names this dashboard."""

    def _allows(self, value: str) -> bool:
        name = host_name(value)
        if name is None:
            return False
        if name == "localhost" or name in self.allowed:
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False
        return address.is_loopback or self.any_address
