"""The offline demo: bundled feeds served on 127.0.0.1, the default rules, a local webhook receiver.

Everything real but the network: the feeds come over HTTP from a server on 127.0.0.1, the pipeline writes a
real SQLite file in a temporary state folder, and alerts are delivered to a webhook receiver on 127.0.0.1
through the outbox. The demo config allows exactly 127.0.0.1/32, the way an operator would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from monitor.config import load_config
from monitor.pipeline import FeedOutcome
from monitor.store import open_store

__all__ = ["DemoResult", "demo_feeds", "run_demo"]


def demo_feeds() -> dict[str, bytes]:
    """The bundled demo feeds by file name."""
    folder = resources.files("monitor.demo") / "data"
    return {entry.name: entry.read_bytes() for entry in folder.iterdir() if entry.name.endswith(".xml")}


@dataclass
class DemoResult:
    config_path: Path
    outcomes: list[FeedOutcome]
    delivery_summary: str
    alerts: list[dict[str, Any]]
    webhook_bodies: list[dict[str, Any]] = field(default_factory=list)
    items: int = 0  # new items the feeds brought
    stories: int = 0  # the stories they were folded into
    stories_alerted: int = 0  # stories some rule fired on


class _DemoHandler(BaseHTTPRequestHandler):
    server: _DemoServer

    def do_GET(self) -> None:
        body = self.server.feeds.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length)
        with self.server.lock:
            self.server.received.append(json.loads(payload or b"{}"))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # the demo prints its own summary
        return


class _DemoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, feeds: dict[str, bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _DemoHandler)
        self.feeds = feeds
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()


@contextmanager
def _serving(feeds: dict[str, bytes]) -> Iterator[_DemoServer]:
    server = _DemoServer(feeds)
    thread = threading.Thread(target=server.serve_forever, name="monitor-demo-http", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def write_demo_config(state_dir: Path, port: int, feed_names: list[str]) -> Path:
    config = {
        "database": str(state_dir / "monitor.db"),
        "allow_private_networks": ["127.0.0.1/32"],
        "interval": "10m",
        "feeds": [{"url": f"http://127.0.0.1:{port}/{name}"} for name in sorted(feed_names)],
        "channels": {"demo-hook": {"type": "webhook", "url": f"http://127.0.0.1:{port}/hook"}},
    }
    path = state_dir / "monitor.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def run_demo(state_dir: Path) -> DemoResult:
    """Serve the demo feeds, run one full poll-and-deliver cycle, and return what happened."""
    import asyncio

    from monitor.once import run_once

    state_dir.mkdir(parents=True, exist_ok=True)
    feeds = demo_feeds()
    with _serving(feeds) as server:
        config_path = write_demo_config(state_dir, server.server_address[1], list(feeds))
        config = load_config(config_path)
        outcomes, summary = asyncio.run(run_once(config))
        with server.lock:
            received = list(server.received)
    with open_store(config.database) as store:
        alerts = store.list_alerts(limit=1000)
        counts = store.counts()
    return DemoResult(
        config_path,
        outcomes,
        summary,
        alerts,
        received,
        items=counts["items"],
        stories=counts["stories"],
        stories_alerted=len({alert["story"] for alert in alerts}),
    )
