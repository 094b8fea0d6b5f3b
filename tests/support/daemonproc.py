"""`monitor run` as a real subprocess for daemon tests, with the feeds, config and systemd socket it needs.

    feeds = FeedBuilder()                                   # RSS items that fire the default rules
    config = write_config(tmp_path, feed_urls=[...], hook_url=hook.url)
    with DaemonProcess(config) as daemon:                   # killed (SIGKILL) on exit if still running
        ...
        assert daemon.terminate() == 0                      # SIGTERM, wait, exit code
    daemon.log()                                            # everything it wrote to stderr

`NotifySocket` binds the unix datagram socket that $NOTIFY_SOCKET names, as systemd would, and collects the
sd_notify messages the daemon sends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self
from xml.sax.saxutils import escape

from tests.support.receivers import wait_until

__all__ = ["DaemonProcess", "FeedBuilder", "NotifySocket", "write_config"]

VERBOSE = ["-v"] if os.environ.get("MONITOR_TEST_DAEMON_VERBOSE") else []
REPO = Path(__file__).resolve().parents[2]

# Headlines that fire the default rules (rare-earths, ukraine-peace-talks, actor-putin, actor-trump, ...),
# each on its own story. Written for these tests.
HEADLINES = (
    ("Putin signs decree on rare earth metals mining", "A programme for rare earth elements in Siberia."),
    ("Trump says Ukraine peace talks will resume in Geneva", "Negotiators meet next week for a ceasefire."),
    ("Dmitriev meets US envoy to discuss investment", "The RDIF chief spoke about joint projects."),
    ("China tightens export controls on rare earths", "Magnets and gallium are on the new list."),
    ("Manturov visits rare earth magnet plant in the Urals", "The deputy premier toured the factory."),
    ("Zelensky and European leaders prepare Ukraine peace talks", "A summit on a ceasefire is planned."),
    ("Putin calls Trump after Alaska summit", "The two presidents spoke for an hour."),
    ("Lynas opens rare earth refinery in Texas", "Heavy rare earth separation starts next year."),
    ("Witkoff and Dmitriev draft a US-Russia economic agenda", "Arctic energy and rare earths are on it."),
    ("Trump hosts Zelensky for Ukraine peace talks at the White House", "Security guarantees are discussed."),
    ("Russia offers the US access to rare earth deposits", "Putin named the offer in a televised meeting."),
    ("Ceasefire talks on Ukraine stall in Istanbul", "Delegations left without an agreement."),
)
_SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM")
QUIET = ("Local bakery wins national award", "Bread, rolls and a record queue.")


@dataclass
class FeedBuilder:
    """An RSS feed whose items can be appended between polls; `rss()` renders the current state."""

    title: str = "Test wire"
    items: list[tuple[str, str, str]] = field(default_factory=list)  # guid, title, summary
    # Declared, as a wire's feed is: these tests are about polling and delivery, and an undeclared feed would make
    # the daemon's first poll wait for the language model (seconds of wall time on a loaded machine).
    language: str | None = "en"

    def add(self, guid: str, title: str, summary: str) -> None:
        self.items.append((guid, title, summary))

    def add_headlines(self, prefix: str, indices: range) -> None:
        for index in indices:
            title, summary = HEADLINES[index % len(HEADLINES)]
            self.add(f"{prefix}-{index}", title, summary)

    def rss(self) -> bytes:
        parts = [
            '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>',
            f"<title>{escape(self.title)}</title><link>http://127.0.0.1/</link><description>tests</description>",
        ]
        if self.language:
            parts.append(f"<language>{escape(self.language)}</language>")
        for guid, title, summary in self.items:
            parts.append(
                f"<item><guid isPermaLink='false'>{escape(guid)}</guid><title>{escape(title)}</title>"
                f"<link>http://127.0.0.1/{escape(guid)}</link><description>{escape(summary)}</description></item>"
            )
        parts.append("</channel></rss>\n")
        return "".join(parts).encode()


def write_config(
    directory: Path,
    *,
    feed_urls: list[str],
    hook_url: str | None = None,
    interval: str = "1s",
    hook_timeout: float = 5.0,
    delivery_poll: str = "0.2s",
    name: str = "monitor.yaml",
    database: str | None = None,
    extra: list[str] | None = None,
) -> Path:
    """A monitor.yaml with the default rules, loopback allowed explicitly, and one webhook channel `hook`.
    `database` replaces the SQLite file (a postgresql:// URL), `extra` adds top-level YAML lines."""
    lines = [
        f"database: {database or directory / 'state' / 'monitor.db'}",
        *(extra or []),
        'allow_private_networks: ["127.0.0.1/32"]',
        f"interval: {interval}",
        "feeds:",
        *(f"  - url: {url}" for url in feed_urls),
        "delivery:",
        f"  poll: {delivery_poll}",
    ]
    if hook_url is not None:
        lines += [
            "channels:",
            "  hook:",
            "    type: webhook",
            f"    url: {hook_url}",
            f"    timeout: {hook_timeout}",
        ]
    path = directory / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


STARTUP_TIMEOUT = 120.0  # seconds; see DaemonProcess.__enter__


class DaemonProcess:
    """`python -m monitor run --config PATH` in a subprocess; stderr goes to a file (never a full pipe)."""

    def __init__(self, config: Path, *, env: dict[str, str] | None = None, log_name: str = "daemon") -> None:
        self.config = config
        self.log_path = config.parent / f"{log_name}-{time.monotonic_ns()}.log"
        # The test's own systemd variables (if any) must not leak into the daemon; `env` sets them explicitly.
        environment = {k: v for k, v in os.environ.items() if k not in _SYSTEMD_VARIABLES}
        environment.update(env or {})
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "monitor", *VERBOSE, "run", "--config", str(config)],
                cwd=REPO,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def running(self) -> bool:
        return self.process.poll() is None

    def send(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """Wait for the exit; on timeout kill it and fail with its log."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"daemon did not exit within {timeout}s; log:\n{self.log()}") from None

    def terminate(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> int:
        self.send(sig)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def wait_for_log(self, text: str, *, timeout: float = 60.0) -> None:
        wait_until(lambda: text in self.log() or not self.running(), timeout=timeout, what=repr(text))
        assert text in self.log(), f"daemon exited before logging {text!r}; log:\n{self.log()}"

    def __enter__(self) -> Self:
        # Give the daemon its start-up time before the test's own (short) waits begin: on a loaded test machine
        # importing and loading the rules alone took 15 s, and every daemon test then timed out. Not an
        # assertion: a daemon that is meant to fail at start simply exits, and the test checks that.
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline and self.running() and "monitor running" not in self.log():
            time.sleep(0.05)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()


class NotifySocket:
    """A bound AF_UNIX datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self) -> None:
        # A short path of its own: unix socket paths are limited to ~108 bytes, pytest's tmp_path may not be.
        self._dir = tempfile.mkdtemp(prefix="sdn-", dir="/tmp")
        self.path = str(Path(self._dir) / "notify")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self._sock.settimeout(0.05)
        self.messages: list[str] = []

    def collect(self) -> list[str]:
        """Read every datagram that has arrived; returns all messages so far, one per datagram."""
        while True:
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                return list(self.messages)
            self.messages.append(data.decode())

    def states(self) -> list[str]:
        """Every KEY=VALUE line received so far, in order."""
        return [line for message in self.collect() for line in message.splitlines()]

    def wait_for(self, state: str, *, timeout: float = 60.0) -> None:
        wait_until(lambda: state in self.states(), timeout=timeout, what=f"sd_notify {state}")

    def close(self) -> None:
        self._sock.close()
        Path(self.path).unlink(missing_ok=True)
        Path(self._dir).rmdir()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
