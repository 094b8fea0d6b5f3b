"""Record the socket connections this process attempts, through Python's audit hooks (PEP 578).

A test that says "refused before any connection" wraps the call in `recorded_connects()` and asserts the list
stays empty. While a recorder is active, a connection to anything but loopback is also blocked (the hook raises),
so a test of a refused address sends no packet even when the code under test is broken. Audit hooks cannot be
removed, so one hook is installed once and acts only while a recorder is active.
"""

from __future__ import annotations

import ipaddress
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_active: list[list[Any]] = []
_lock = threading.Lock()
_installed = False


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect" or not _active:
        return
    address = args[1]
    with _lock:
        for recorder in _active:
            recorder.append(address)
    if not _is_loopback(address):
        raise ConnectionRefusedError(f"blocked by the test: connection to {address!r} is not loopback")


def _is_loopback(address: Any) -> bool:
    if not isinstance(address, tuple) or not address:
        return True  # a unix socket path
    try:
        ip = ipaddress.ip_address(str(address[0]).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


@contextmanager
def recorded_connects() -> Iterator[list[Any]]:
    """Yield a list that receives the address of every socket.connect made while the block runs."""
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True
    attempts: list[Any] = []
    _active.append(attempts)
    try:
        yield attempts
    finally:
        _active.remove(attempts)
