"""A WebSub hub of our own on 127.0.0.1 for tests: threaded, started and stopped per test.

    with WebSubHub(lease_seconds=120) as hub:
        hub.url                                   # http://127.0.0.1:PORT/hub, to name in a feed's rel="hub"
        ... the subscriber POSTs hub.mode=subscribe ...
        hub.wait_verified(topic)                  # the hub verified the intent (GET with hub.challenge echoed)
        hub.publish(topic, body)                  # content distribution to every verified callback, signed
        hub.publish(topic, body, secret="wrong")  # ... with a wrong signature; sign=False: with none

Like a real hub, a subscribe request is answered 202 Accepted first and verified afterwards, on a thread of
its own (§5.3: "the hub MUST verify the intent of the subscriber"): a GET to hub.callback with hub.mode,
hub.topic, hub.challenge and hub.lease_seconds; the subscription counts only when the body echoes the
challenge. Every subscribe request and every verification answer is recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.error import HTTPError

__all__ = ["Subscription", "Verification", "WebSubHub", "verify_get"]


@dataclass(frozen=True)
class Subscription:
    topic: str
    callback: str
    secret: str
    lease_seconds: int
    requested: dict[str, str]  # the form the subscriber sent


@dataclass(frozen=True)
class Verification:
    callback: str
    status: int
    echoed: bool


def verify_get(callback: str, params: dict[str, str]) -> tuple[int, bytes]:
    """GET `callback` with `params` as the hub's verification request: (status, body)."""
    url = callback + ("&" if "?" in callback else "?") + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return int(response.status), bytes(response.read())
    except HTTPError as exc:
        return exc.code, exc.read()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64


class WebSubHub:
    def __init__(self, *, lease_seconds: int | None = None) -> None:
        self.lease_seconds = lease_seconds  # granted; None: what the subscriber asked for
        self._lock = threading.RLock()
        self.requests: list[dict[str, str]] = []
        self.verifications: list[Verification] = []
        self._subscriptions: dict[tuple[str, str], Subscription] = {}
        self._changed = threading.Condition(self._lock)
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hub"

    def subscriptions(self, topic: str | None = None) -> list[Subscription]:
        with self._lock:
            return [s for s in self._subscriptions.values() if topic is None or s.topic == topic]

    def wait_for(self, condition: Any, *, timeout: float = 30.0, what: str = "hub condition") -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {what}")
                self._changed.wait(left)

    def _subscribe(self, form: dict[str, str]) -> None:
        """The hub's verification of intent, after it answered 202."""
        lease = self.lease_seconds or int(form.get("hub.lease_seconds") or 864000)
        challenge = secrets.token_urlsafe(24)
        status, body = verify_get(
            form["hub.callback"],
            {
                "hub.mode": "subscribe",
                "hub.topic": form["hub.topic"],
                "hub.challenge": challenge,
                "hub.lease_seconds": str(lease),
            },
        )
        echoed = status == 200 and body == challenge.encode()
        with self._changed:
            self.verifications.append(Verification(form["hub.callback"], status, echoed))
            if echoed:
                key = (form["hub.topic"], form["hub.callback"])
                self._subscriptions[key] = Subscription(
                    form["hub.topic"], form["hub.callback"], form.get("hub.secret", ""), lease, form
                )
            self._changed.notify_all()

    def publish(
        self,
        topic: str,
        body: bytes,
        *,
        content_type: str = "application/rss+xml",
        secret: str | None = None,
        sign: bool = True,
        method: str = "sha256",
    ) -> list[int]:
        """Content distribution (§7): POST `body` to every verified callback of `topic`, signed with the
        subscription's secret (or `secret`); returns the statuses the subscriber answered."""
        statuses = []
        for subscription in self.subscriptions(topic):
            headers = {"Content-Type": content_type}
            if sign:
                key = (secret if secret is not None else subscription.secret).encode()
                digest = hmac.new(key, body, getattr(hashlib, method)).hexdigest()
                headers["X-Hub-Signature"] = f"{method}={digest}"
            request = urllib.request.Request(subscription.callback, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    statuses.append(int(response.status))
            except HTTPError as exc:
                statuses.append(exc.code)
        return statuses

    def __enter__(self) -> Self:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                form = {k: v[-1] for k, v in urllib.parse.parse_qs(self.rfile.read(length).decode()).items()}
                with hub._changed:
                    hub.requests.append(form)
                    hub._changed.notify_all()
                ok = form.get("hub.mode") == "subscribe" and "hub.callback" in form and "hub.topic" in form
                self.send_response(202 if ok else 400)
                self.send_header("content-length", "0")
                self.end_headers()
                if ok:
                    thread = threading.Thread(target=hub._subscribe, args=(form,), daemon=True)
                    hub._threads.append(thread)
                    thread.start()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._threads.append(thread)
        thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=30)
