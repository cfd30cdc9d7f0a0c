"""Refuse and count every network attempt that leaves this machine, so a bench proves it ran offline.

`install()` adds a `sys.addaudithook` hook, here and in the Python processes started from here:
connects, sends and name lookups aimed at anything but loopback raise `OfflineError` and are
counted; with `OFFLINE_AUDIT_LOG` set, each is appended there.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from typing import Any

__all__ = ["OfflineError", "install", "refused", "read_log"]

LOG_ENV = "OFFLINE_AUDIT_LOG"
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
_refused: list[str] = []
_GUARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "guard")


class OfflineError(ConnectionRefusedError):
    """A bench tried to reach a non-loopback address."""


def _is_loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return False
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _target(event: str, args: tuple[Any, ...]) -> Any:
    """The host an audited socket event is aimed at, or None when it is not an inet address."""
    if event == "socket.getaddrinfo":
        return args[0]
    address = args[1] if event in ("socket.connect", "socket.sendto") else None
    if isinstance(address, tuple) and address:
        return address[0]
    return None


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event not in ("socket.connect", "socket.sendto", "socket.getaddrinfo"):
        return
    host = _target(event, args)
    if host is None or _is_loopback(host):
        return
    what = f"{event} {host!r}"
    _refused.append(what)
    path = os.environ.get(LOG_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{os.getpid()} {what}\n")
    raise OfflineError(f"offline bench: refused {what}")


def install() -> None:
    """Start refusing non-loopback network attempts in this process (audit hooks cannot be removed),
    and in the Python processes it starts, through `guard/sitecustomize.py` on their PYTHONPATH."""
    sys.addaudithook(_hook)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if _GUARD not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([_GUARD, *paths])


def refused() -> list[str]:
    """The attempts refused in this process so far."""
    return list(_refused)


def read_log(path: str) -> list[str]:
    """The attempts other processes appended to the log at `path`."""
    try:
        with open(path, encoding="utf-8") as log:
            return log.read().splitlines()
    except FileNotFoundError:
        return []
