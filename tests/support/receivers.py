"""Real receivers on 127.0.0.1 for delivery tests: a webhook endpoint and an SMTP server.

Both are threaded, started and stopped as context managers, and record what they received:

    with WebhookReceiver(statuses=[503, 503, 200]) as hook:     # answers 503, 503, then 200 (the default)
        ... POST to hook.url ...
        hook.requests[0].headers["webhook-id"], hook.requests[0].json()

    with SMTPReceiver(replies=["451 4.3.0 try again later"]) as smtp:   # first DATA refused, then 250
        ... send to smtp.host, smtp.port ...
        smtp.messages[0]["Subject"]                                       # parsed, email.policy.default

    with SMTPReceiver(tls=cert.server_context(), mode="starttls", credentials=("u", "p")) as smtp:
        ...                                        # STARTTLS required before MAIL and AUTH; or mode="ssl"
        smtp.mails[0].tls                          # the cipher the message came over, None if plain

`WebhookReceiver(hold=True)` makes every request wait until `release()` is called, to show that a stuck
receiver delays nobody else without timing anything.
"""

from __future__ import annotations

import email
import json
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["AuthAttempt", "ReceivedMail", "RecordedRequest", "SMTPReceiver", "WebhookReceiver", "wait_until"]


def wait_until(condition: Any, *, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll `condition()` until it is true; fail the test with `what` after `timeout` seconds.

    The default is generous because a passing test returns as soon as the condition holds: only a failing one
    waits it out, while a tight limit fails good code on a loaded machine (a daemon process that has to start,
    load its rules and poll first). Conditions that open the database are polled every 50 ms, not in a tight
    loop that would compete with the daemon for it."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's backlog of 5 drops connections on a loaded machine

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout tests) leaves a broken pipe behind: expected, not worth a traceback.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class WebhookReceiver:
    """An HTTP server that records requests and answers a scripted sequence of statuses."""

    def __init__(
        self,
        statuses: Iterable[int] = (),
        *,
        default_status: int = 200,
        retry_after: str | None = None,
        headers: dict[str, str] | None = None,
        hold: bool = False,
    ) -> None:
        self._statuses: deque[int] = deque(statuses)
        self.default_status = default_status
        self.retry_after = retry_after
        self.extra_headers = dict(headers or {})
        self._released = threading.Event()
        if not hold:
            self._released.set()
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self.answers: list[int] = []  # status answered to each recorded request, in order
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def url(self) -> str:
        assert self._server is not None, "receiver not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def respond_with(self, statuses: Iterable[int], *, retry_after: str | None = None) -> None:
        with self._lock:
            self._statuses = deque(statuses)
            self.retry_after = retry_after

    def release(self) -> None:
        self._released.set()

    def _next_status(self, request: RecordedRequest) -> int:
        with self._lock:
            self._requests.append(request)
            status = self._statuses.popleft() if self._statuses else self.default_status
            self.answers.append(status)
            return status

    def __enter__(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                recorded = RecordedRequest(
                    "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                receiver._released.wait(timeout=30)
                status = receiver._next_status(recorded)
                payload = b"ok" if status < 300 else f"status {status} from test receiver".encode()
                self.send_response(status)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(payload)))
                if receiver.retry_after is not None and status >= 300:
                    self.send_header("retry-after", receiver.retry_after)
                for name, value in receiver.extra_headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="webhook-receiver",
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._released.set()
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    message: EmailMessage
    tls: tuple[str, str, int] | None  # (cipher, protocol, bits) of the session, None when sent in plain
    authenticated: bool  # the session had passed AUTH when the message came


@dataclass(frozen=True)
class AuthAttempt:
    login: str
    accepted: bool
    tls: bool  # the connection was encrypted when AUTH came


def _cipher(server: SMTP) -> tuple[str, str, int] | None:
    """(cipher, protocol, bits) of the connection, None when it is plain.

    Asked of the transport, because aiosmtpd fills `session.ssl` only after STARTTLS, not for implicit TLS."""
    transport = server.transport
    cipher = transport.get_extra_info("cipher") if transport is not None else None
    return (str(cipher[0]), str(cipher[1]), int(cipher[2])) if cipher else None


class _Handler:
    def __init__(self, receiver: SMTPReceiver) -> None:
        self.receiver = receiver

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return self.receiver._accept(server, session, envelope)


class SMTPReceiver:
    """An aiosmtpd server on 127.0.0.1 that records messages and answers DATA with scripted replies.

    `replies` are full SMTP reply lines ("451 4.3.0 later", "550 5.7.1 no"); after them every message gets
    "250 OK". With `credentials` (user, password) the server offers AUTH (without TLS: tests only).

    With `tls` (a server SSLContext) the server speaks TLS: `mode="starttls"` offers STARTTLS and refuses
    MAIL and AUTH before it (aiosmtpd's require_starttls; AUTH is then only advertised after the handshake),
    `mode="ssl"` is implicit TLS from the first byte (SMTPS)."""

    def __init__(
        self,
        replies: Iterable[str] = (),
        *,
        credentials: tuple[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
        mode: Literal["starttls", "ssl"] = "starttls",
    ) -> None:
        self._replies: deque[str] = deque(replies)
        self.credentials = credentials
        self.tls = tls
        self.mode = mode
        self.auth_attempts: list[AuthAttempt] = []  # in order
        self._lock = threading.Lock()
        self._mails: list[ReceivedMail] = []
        self.answers: list[str] = []
        self.host = "127.0.0.1"
        self.port = 0
        self._controller: Controller | None = None

    @property
    def mails(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._mails)

    @property
    def messages(self) -> list[EmailMessage]:
        return [mail.message for mail in self.mails]

    def respond_with(self, replies: Iterable[str]) -> None:
        with self._lock:
            self._replies = deque(replies)

    def _accept(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            reply = self._replies.popleft() if self._replies else "250 OK"
            self.answers.append(reply)
            if reply.startswith("250"):
                content = envelope.content or b""
                data = content.encode() if isinstance(content, str) else bytes(content)
                parsed = email.message_from_bytes(data, policy=default_policy)
                assert isinstance(parsed, EmailMessage)
                cipher = _cipher(server)
                self._mails.append(
                    ReceivedMail(
                        str(envelope.mail_from),
                        tuple(envelope.rcpt_tos),
                        data,
                        parsed,
                        tls=cipher,
                        authenticated=bool(session.authenticated),
                    )
                )
            return reply

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.credentials is not None
            and (auth_data.login.decode(), auth_data.password.decode()) == self.credentials
        )
        with self._lock:
            login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?"
            self.auth_attempts.append(AuthAttempt(login, ok, tls=_cipher(server) is not None))
        return AuthResult(success=ok, handled=False)

    def __enter__(self) -> SMTPReceiver:
        with socket.socket() as probe:  # aiosmtpd needs a concrete port to check its own start-up
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        kwargs: dict[str, Any] = {}
        if self.credentials is not None:
            # PLAIN only: smtplib falls back from a refused PLAIN to LOGIN, which stalls against aiosmtpd.
            kwargs = {
                "authenticator": self._authenticate,
                # aiosmtpd cannot tell that an implicit-TLS socket is encrypted (it only knows its own
                # STARTTLS) and would never offer AUTH there (aiosmtpd issue 281); every byte on that
                # socket is TLS anyway.
                "auth_require_tls": self.tls is not None and self.mode == "starttls",
                "auth_exclude_mechanism": ["LOGIN"],
            }
        if self.tls is not None and self.mode == "starttls":
            kwargs.update(tls_context=self.tls, require_starttls=True)
        elif self.tls is not None:
            # The Controller wraps its listening socket, and its own start-up probe, in TLS.
            kwargs.update(ssl_context=self.tls)
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port, **kwargs)
        self._controller.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._controller is not None
        self._controller.stop()
