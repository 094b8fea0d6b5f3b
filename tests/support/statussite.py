"""A status listener over a database filled by the real pipeline, for page, Atom, API and browser tests.

`StatusSite(tmp_path)` polls feeds from a FeedServer once (the default rules fire on them; one feed carries
hostile text: markup, a script tag, a javascript: link; one answers 404), delivers to a webhook receiver, then
serves the database with the daemon's StatusServer on 127.0.0.1 from a thread with its own event loop."""

from __future__ import annotations

import asyncio
import html
import threading
import urllib.error
import urllib.request
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from monitor.config import DEFAULT_RULES, MonitorConfig
from monitor.rules import load_rules
from monitor.service import open_runtime, poll_all
from monitor.status import StatusServer
from monitor.store import SQLiteStore
from tests.support.daemonproc import FeedBuilder
from tests.support.feedserver import FeedServer
from tests.support.receivers import WebhookReceiver

HOSTILE_TITLE = 'Putin <script>alert("x")</script> & <b>Trump</b> meet on rare earths'
HOSTILE_LINK = "javascript:alert(document.cookie)"


def fill_database(database: Path) -> list[str]:
    """Poll three feeds once and deliver; returns the feed URLs."""
    wire = FeedBuilder(title="Wire <Desk> & Co")
    wire.add_headlines("n", range(4))
    hostile = FeedBuilder(title="Hostile feed")
    # Escaped once more than usual: feed titles are HTML, so this is what makes the markup survive as text.
    hostile.add(
        "h1", html.escape(HOSTILE_TITLE), html.escape("Summary with <i>tags</i> and rare earth magnets.")
    )
    with FeedServer() as feeds, WebhookReceiver() as hook:
        feeds.set("/wire.xml", wire.rss())
        body = hostile.rss().replace(b"http://127.0.0.1/h1", HOSTILE_LINK.encode())
        feeds.set("/hostile.xml", body)
        feeds.set("/broken.xml", b"nope", status=404)
        urls = [feeds.url("/wire.xml"), feeds.url("/hostile.xml"), feeds.url("/broken.xml")]
        config = MonitorConfig.model_validate(
            {
                "database": database,
                "allow_private_networks": ["127.0.0.1/32"],
                "feeds": [{"url": url} for url in urls],
                "channels": {"hook": {"type": "webhook", "url": hook.url}},
            }
        )

        async def run() -> None:
            async with open_runtime(config, load_rules(DEFAULT_RULES)) as runtime:
                await poll_all(runtime)
                await runtime.deliver()

        asyncio.run(run())
    return urls


class StatusSite:
    """The daemon's StatusServer on 127.0.0.1 (a free port) over `database`, in a thread of its own."""

    def __init__(self, database: Path, *, token: str | None = None) -> None:
        self.database = database
        self.token = token
        self._loop = asyncio.new_event_loop()
        self._started: Future[int] = Future()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="status-site", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._started.result(timeout=10)}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        with SQLiteStore(self.database) as store:  # opened in this thread: sqlite3 connections stay in theirs
            now = datetime.now(UTC)
            server = StatusServer(
                store, lambda: datetime.now(UTC), lambda: now, 2.0, token=self.token, port=0
            )
            try:
                await server.start()
            except BaseException as exc:
                self._started.set_exception(exc)
                raise
            self._started.set_result(server.port)
            await self._stop.wait()
            await server.stop()

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.base_url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers.items()), response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, dict(exc.headers.items()), exc.read()

    def __enter__(self) -> Self:
        self._thread.start()
        self.base_url  # noqa: B018  (waits until it listens)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
