"""Every real feed of ../shared/corpus through the whole pipeline at once: fetched over HTTP from 127.0.0.1,
parsed, normalized, identified, matched, clustered into stories, stored and alerted, in one `monitor once`.

This is the "hostile input" test of the path as a whole: odd encodings, malformed XML, huge feeds, JSON
Feeds and a truncated one. Each feed must end as "ok" or as a recorded error naming it; none may stop the run
or the other feeds, and a second run must not alert anything again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from monitor.cli.daemon_cmds import run_once
from monitor.config import load_config
from monitor.store import SQLiteStore
from tests.support.feedserver import FeedServer
from tests.support.receivers import WebhookReceiver


@pytest.fixture(scope="module")
def corpus(shared_dir: Path) -> list[Path]:
    return sorted(p for p in (shared_dir / "corpus" / "feeds").iterdir() if p.name != "SOURCES.md")


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def test_the_whole_corpus_goes_through_once_without_stopping_anything(
    tmp_path: Path, corpus: list[Path], hook: WebhookReceiver
) -> None:
    with FeedServer() as server:
        urls = []
        for path in corpus:
            content_type = "application/feed+json" if path.suffix == ".json" else "application/xml"
            server.set(
                f"/{path.name}", path.read_bytes(), content_type=content_type, etag=f'"{path.stat().st_size}"'
            )
            urls.append(server.url(f"/{path.name}"))
        config_path = tmp_path / "monitor.yaml"
        config_path.write_text(
            yaml.safe_dump(
                {
                    "database": str(tmp_path / "monitor.db"),
                    "allow_private_networks": ["127.0.0.1/32"],
                    "feeds": [{"url": url} for url in urls],
                    "channels": {"hook": {"type": "webhook", "url": hook.url}},
                    # One server on 127.0.0.1 stands in for the corpus's many publishers: their own hosts would
                    # each get the per-host limits; here those would only queue the feeds one after another.
                    "fetch": {"per_host_concurrency": 0, "per_host_gap": "0s"},
                }
            ),
            encoding="utf-8",
        )
        config = load_config(config_path)
        outcomes, _summary = asyncio.run(run_once(config))
        failed = {o.url.rsplit("/", 1)[1]: o.error for o in outcomes if o.status == "error"}
        ok = [o for o in outcomes if o.status == "ok"]
        print(f"\n{len(ok)} of {len(outcomes)} corpus feeds ok; failed: {failed}")
        assert len(outcomes) == len(corpus)
        # The one feed that cannot be read is the truncated JSON Feed, and its error says so.
        assert list(failed) == ["Ranchero-Software__NetNewsWire__allthis-truncated.json"]
        assert "truncated" in (failed["Ranchero-Software__NetNewsWire__allthis-truncated.json"] or "")
        assert all(o.entries > 0 and o.new_items > 0 for o in ok)
        with SQLiteStore(config.database) as store:
            counts = store.counts()
            assert counts["items"] == sum(o.new_items for o in ok)
            assert counts["alerts"] == sum(o.alerts for o in ok)
            # One notification per story on the channel, naming every rule that fired on it (issue 8).
            stories = {alert["story"] for alert in store.list_alerts(limit=10_000)}
            assert len(hook.requests) == len(stories) <= counts["alerts"]
            assert store.delivery_counts().get("pending", 0) == 0
            feeds = {f.url.rsplit("/", 1)[1]: f for f in store.list_feeds()}
            assert feeds["Ranchero-Software__NetNewsWire__allthis-truncated.json"].error_count == 1
        # A second run: validators give 304 everywhere (or the same items again): nothing new, nothing sent.
        sent = len(hook.requests)
        again, _ = asyncio.run(run_once(config))
        assert sum(o.new_items for o in again) == 0
        assert len(hook.requests) == sent
