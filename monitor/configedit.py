"""Edit the feed list of monitor.yaml in place, keeping its comments, key order and layout.

`monitor feeds add|remove|import` change one file that people also edit by hand, so the edit is a round trip
through ruamel.yaml (PyYAML, which `monitor.yamlsource` uses to read, drops comments and reflows the file).
Every edit is checked before the file is touched:

- the new text is validated exactly as the daemon would load it (`config_from_yaml`), so an edit can never
  leave a file that `monitor check` or a SIGHUP reload refuses; problems name the file and line;
- each new URL is judged by the network policy the file itself sets (`allow_private_networks`): a literal
  address or `localhost` without DNS, a name by resolving it (a name that does not resolve now is accepted
  with a note: it is judged again before every fetch);
- a URL already listed is refused (add) or skipped (import), naming the line it is on.

The file is replaced atomically (a temporary file in the same folder, then a rename, keeping its mode), so a
daemon reloading at that moment reads the old file or the new one, never half of one.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from monitor.config import MonitorConfig, config_from_yaml
from monitor.errors import ConfigError, NetworkPolicyError
from monitor.netpolicy import NetworkPolicy
from monitor.yamlsource import LocatedYaml, load_yaml, load_yaml_file

__all__ = ["FeedEdit", "NewFeed", "add_feeds", "remove_feeds"]

# How long `feeds add` waits for DNS when judging a host name (an offline machine must not hang the command).
RESOLVE_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class NewFeed:
    url: str
    interval: str | None = None  # as written: "5m", validated with the rest of the file
    title: str | None = None
    tags: tuple[str, ...] = ()
    line: int | None = None  # where it came from (an OPML file's line), for messages
    source: str | None = None


@dataclass(slots=True)
class FeedEdit:
    """What an edit did: the URLs added or removed, those skipped with the reason, notes for the operator."""

    changed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def add_feeds(
    path: Path,
    feeds: Sequence[NewFeed],
    *,
    skip_listed: bool = False,
    on_checked: Callable[[int, int], None] | None = None,
) -> FeedEdit:
    """Append `feeds` to the `feeds:` list of the config at `path`.

    A URL already listed is an error (ConfigError at its line), or with `skip_listed` (import) skipped. A URL
    the network policy refuses is an error naming it (and, for an OPML entry, its file and line); nothing is
    written then. `on_checked(done, total)` is called as each new URL has been judged (the slow part: DNS)."""
    current = load_yaml_file(path)  # the file's own errors first, located by the reader the daemon uses
    document, yaml = _round_trip(path)
    listed = _listed_urls(current)
    config = config_from_yaml(current, path)
    policy = NetworkPolicy.from_setting(config.allow_private_networks)
    edit = FeedEdit()
    entries = _feed_list(document, path)
    new: list[tuple[str, NewFeed]] = []
    for feed in feeds:
        url = feed.url.strip()
        if url in listed:
            line = listed[url]
            if skip_listed:
                # line 0: added a moment ago, from earlier in the same import
                edit.skipped.append((url, f"already listed at {path}:{line}" if line else "listed twice"))
                continue
            where = f"{feed.source}:{feed.line}: " if feed.source and feed.line else ""
            raise ConfigError(f"{where}{url} is already listed", file=str(path), line=line, field="feeds")
        listed[url] = 0
        new.append((url, feed))
    refusals = asyncio.run(_judge(policy, [url for url, _ in new], on_checked))
    for url, feed in new:
        _check_policy(url, refusals[url], feed, edit, path)
        entries.append(_entry(feed, url))
        edit.changed.append(url)
    if edit.changed:
        _write_validated(path, document, yaml)
    return edit


def remove_feeds(path: Path, urls: Sequence[str]) -> FeedEdit:
    """Remove each URL from the `feeds:` list; a URL that is not listed is an error and nothing is written.
    The daemon deactivates a removed feed on reload (its validators and items stay in the database).

    In a block list each entry's own lines are cut from the text (its first line to its last line with a value,
    comments among them), so the comments that follow it, which ruamel would attach to the removed entry and
    drop with it, stay; a flow list (`feeds: [...]`) is edited through ruamel."""
    current = load_yaml_file(path)
    listed = _listed_urls(current)
    missing = [url for url in urls if url.strip() not in listed]
    if missing:
        raise ConfigError(f"not listed under feeds: {', '.join(missing)}", file=str(path), field="feeds")
    document, yaml = _round_trip(path)
    entries = _feed_list(document, path)
    wanted = {url.strip() for url in urls}
    indices = [
        index
        for index, entry in enumerate(entries)
        if isinstance(entry, dict) and str(entry.get("url", "")).strip() in wanted
    ]
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    spans = [_entry_lines(entries, index, lines) for index in indices]
    if all(span is not None for span in spans):
        for span in sorted((span for span in spans if span is not None), reverse=True):
            del lines[span[0] : span[1]]
        if len(indices) == len(entries):  # an empty `feeds:` would be null, which is no list: say []
            key = current.locate_key(("feeds",)).line - 1
            lines[key] = re.sub(r"^(\s*feeds\s*:)", r"\1 []", lines[key], count=1)
        _write_text(path, "".join(lines))
    else:
        for index in reversed(indices):
            del entries[index]
        _write_validated(path, document, yaml)
    return FeedEdit(changed=[url.strip() for url in urls])


def _entry_lines(entries: CommentedSeq, index: int, lines: list[str]) -> tuple[int, int] | None:
    """The lines [start, end) of block-list entry `index`, or None when it does not start on a `- ` line."""
    line, column = entries.lc.item(index)
    head = lines[line][:column].rstrip()
    if not head.endswith("-") or head[:-1].strip():
        return None
    dash = len(head) - 1
    end = line + 1
    for number in range(line + 1, len(lines)):
        text = lines[number]
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if len(text) - len(text.lstrip()) <= dash:
            break  # the next entry, or the next key of the file
        end = number + 1
    return line, end


def _round_trip(path: Path) -> tuple[Any, YAML]:
    text = path.read_text(encoding="utf-8")
    try:
        document, indent, dash = load_yaml_guess_indent(text)
    except YAMLError as exc:  # load_yaml_file accepted it, so this is a construct ruamel reads differently
        raise ConfigError(f"cannot edit this file: {exc}", file=str(path)) from exc
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a long line someone wrote
    # ruamel writes the whole file with one indentation, so it must be the file's own: lists as `feeds:\n- url:`
    # (dash at the key's column) or `feeds:\n  - url:` (the README's) stay as they are, everywhere in the file.
    if dash is None:  # no block list in the file yet: the README's style, at the file's mapping indent
        mapping = indent or 2
        yaml.indent(mapping=mapping, sequence=mapping + 2, offset=mapping)
    else:
        yaml.indent(mapping=indent - dash if indent > dash else 2, sequence=indent, offset=dash)
    return (CommentedMap() if document is None else document), yaml


def _feed_list(document: Any, path: Path) -> CommentedSeq:
    if not isinstance(document, CommentedMap):
        raise ConfigError("the top level must be a mapping of keys", file=str(path), line=1)
    entries = document.get("feeds")
    if entries is None:
        entries = CommentedSeq()
        document["feeds"] = entries
    if not isinstance(entries, CommentedSeq):
        raise ConfigError("feeds must be a list", file=str(path), field="feeds")
    if entries.fa.flow_style():
        entries.fa.set_block_style()  # `feeds: []` becomes a block list once it holds a feed
    return entries


def _entry(feed: NewFeed, url: str) -> CommentedMap:
    entry = CommentedMap()
    entry["url"] = url
    if feed.title:
        entry["title"] = feed.title
    if feed.interval:
        entry["interval"] = feed.interval
    if feed.tags:
        tags = CommentedSeq(feed.tags)
        tags.fa.set_flow_style()  # tags: [de, wire], as the README writes them
        entry["tags"] = tags
    return entry


def _listed_urls(doc: LocatedYaml) -> dict[str, int]:
    """Each URL under feeds: with the line it is on."""
    data = doc.data if isinstance(doc.data, dict) else {}
    entries = data.get("feeds") or []
    listed: dict[str, int] = {}
    if not isinstance(entries, list):
        return listed
    for index, entry in enumerate(entries):
        if isinstance(entry, dict) and isinstance(entry.get("url"), str):
            listed.setdefault(entry["url"].strip(), doc.locate(("feeds", index, "url")).line)
    return listed


async def _judge(
    policy: NetworkPolicy, urls: list[str], on_checked: Callable[[int, int], None] | None = None
) -> dict[str, str | None]:
    """Per URL: why the policy refuses it, None when it does not, or a note starting with "?" when its name
    could not be resolved now. All names are resolved at once, each within RESOLVE_TIMEOUT."""
    done = 0

    async def one(url: str) -> str | None:
        nonlocal done
        try:
            return await judge(url)
        finally:
            done += 1
            if on_checked is not None:
                on_checked(done, len(urls))

    async def judge(url: str) -> str | None:
        reason = policy.refusal_without_dns(url)
        if reason is not None:
            return reason
        try:
            await asyncio.wait_for(policy.check_url(url), RESOLVE_TIMEOUT)
        except NetworkPolicyError as exc:
            return exc.message
        except (TimeoutError, OSError) as exc:
            return f"?{exc or 'DNS timed out'}"
        return None

    results = await asyncio.gather(*(one(url) for url in urls))
    return dict(zip(urls, results, strict=True))


def _check_policy(url: str, reason: str | None, feed: NewFeed, edit: FeedEdit, config_path: Path) -> None:
    if reason is None:
        return
    if reason.startswith("?"):
        # The name does not resolve now (offline, a typo, a host not up yet): the fetcher judges it again before
        # every request, so this is a note, not a refusal.
        edit.notes.append(f"{url}: not judged now ({reason[1:]}); judged again at each fetch")
        return
    if feed.source and feed.line:
        raise ConfigError(f"{url}: refused by the network policy: {reason}", file=feed.source, line=feed.line)
    raise ConfigError(f"{url}: refused by the network policy of {config_path}: {reason}")


def _write_validated(path: Path, document: Any, yaml: YAML) -> MonitorConfig:
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    return _write_text(path, buffer.getvalue())


def _write_text(path: Path, text: str) -> MonitorConfig:
    """Validate `text` as the config at `path` would be loaded, then replace the file with it."""
    config = config_from_yaml(load_yaml(text, str(path)), path)
    status = path.stat()
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        # The new file takes the old one's owner, group and mode: /etc/monitor/monitor.yaml is root:monitor 0640,
        # and a copy owned by root:root (`sudo monitor feeds add`) could no longer be read by the daemon.
        try:
            os.chown(temporary, status.st_uid, status.st_gid)
        except PermissionError:  # not root: the file is ours already; keep its group if we are in it
            if status.st_gid in os.getgroups():
                os.chown(temporary, -1, status.st_gid)
        Path(temporary).chmod(status.st_mode & 0o7777)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return config
