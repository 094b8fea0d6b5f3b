"""The sd_notify protocol (READY, STATUS, WATCHDOG, STOPPING), spoken directly over $NOTIFY_SOCKET.

A dozen lines of socket code instead of a dependency: the protocol is one datagram of KEY=VALUE lines. Without
$NOTIFY_SOCKET (not under systemd, or Type=simple) every call is a no-op.
"""

from __future__ import annotations

import os
import socket

__all__ = ["notify", "watchdog_interval"]


def notify(*states: str) -> bool:
    """Send e.g. notify("READY=1", "STATUS=polling 12 feeds"). Returns whether a message was sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(states).encode())
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Half of WatchdogSec (as systemd recommends), in seconds, when the watchdog is enabled for us."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1_000_000 / 2
    except ValueError:
        return None
