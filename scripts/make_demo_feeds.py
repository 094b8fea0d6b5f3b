#!/usr/bin/env python3
"""Regenerate monitor/demo/data/ from ../shared: the two seed articles and the labelled eval items.

Run from the repository root when the seeds or the eval set change. The output is committed, so the demo
works offline on a machine without ../shared.
"""

from __future__ import annotations

import html
import sys
from email.utils import format_datetime
from datetime import datetime, timezone
from pathlib import Path
from xml.etree import ElementTree as ET

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
OUT = ROOT / "monitor" / "demo" / "data"


def seed_items() -> list[dict[str, str]]:
    items = []
    for index, path in enumerate(sorted((SHARED / "seeds").glob("*.txt"))):
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        title = lines[1] if lines[0].startswith("Veröffentlichungsdatum") else lines[0]
        body = [line for line in lines if line != title and not line.startswith("Veröffentlichungsdatum")]
        if title.startswith("Russland verfügt"):  # the second seed has no headline line of its own
            title = "Moskau bietet Washington Russlands Reichtum an Seltenen Erden an"
        items.append(
            {
                "title": title,
                "link": f"https://demo.monitor.invalid/welt/{path.stem}",
                "guid": f"seed-{path.stem}",
                "description": body[0],
                "content": "".join(f"<p>{html.escape(p)}</p>" for p in body),
                "date": format_datetime(datetime(2025, 3, 31, 17, 48 + index, tzinfo=timezone.utc)),
            }
        )
    return items


def eval_items(lang: str) -> tuple[str, list[dict[str, str]]]:
    tree = ET.parse(SHARED / "eval" / f"dev-{lang}.xml")
    channel = tree.getroot().find("channel")
    assert channel is not None
    items = []
    for item in channel.findall("item"):
        items.append(
            {
                "title": item.findtext("title", ""),
                "link": item.findtext("link", ""),
                "guid": item.findtext("guid", ""),
                "description": item.findtext("description", ""),
                "content": "",
                "date": item.findtext("pubDate", ""),
            }
        )
    return channel.findtext("language", lang), items


def write_rss(path: Path, title: str, language: str, items: list[dict[str, str]]) -> None:
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">',
        "<channel>",
        f"<title>{html.escape(title)}</title>",
        "<link>https://demo.monitor.invalid/</link>",
        "<description>Bundled demo feed for monitor</description>",
        f"<language>{language}</language>",
    ]
    for it in items:
        parts += [
            "<item>",
            f"<title>{html.escape(it['title'])}</title>",
            f"<link>{html.escape(it['link'])}</link>",
            f'<guid isPermaLink="false">{html.escape(it["guid"])}</guid>',
            f"<pubDate>{it['date']}</pubDate>",
            f"<description>{html.escape(it['description'])}</description>",
        ]
        if it["content"]:
            parts.append(f"<content:encoded><![CDATA[{it['content']}]]></content:encoded>")
        parts.append("</item>")
    parts += ["</channel>", "</rss>", ""]
    path.write_text("\n".join(parts), encoding="utf-8")


def main() -> int:
    if not SHARED.is_dir():
        print(f"{SHARED} is absent", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    seeds = seed_items()
    write_rss(OUT / "welt-de.xml", "Welt Nachrichten (Demo)", "de", seeds)
    # The same first seed story, syndicated by a second outlet under a tracking-parameter URL and a new guid:
    # the demo shows it folded into the first alert rather than alerted twice.
    copy = dict(seeds[0], guid="syndicated-1", link=seeds[0]["link"].replace("/welt/", "/wire/") + "?utm_source=rss")
    lang_feeds = {lang: eval_items(lang) for lang in ("de", "en", "ru")}
    write_rss(OUT / "wire-de.xml", "Nachrichtenagentur (Demo)", "de", [copy, *lang_feeds["de"][1]])
    write_rss(OUT / "wire-en.xml", "Wire Service (Demo)", "en", lang_feeds["en"][1])
    write_rss(OUT / "wire-ru.xml", "Новости (Демо)", "ru", lang_feeds["ru"][1])
    print(f"wrote {sorted(p.name for p in OUT.glob('*.xml'))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
