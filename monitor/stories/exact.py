"""Tier 1 of story clustering: exact copies. The same content hash (`monitor.identify.content_hash`: equal for
texts that differ only in case, Unicode form, whitespace or punctuation), or the same canonical URL when that
URL names one document (an updated article keeps its URL; a front page that many items link to does not)."""

from __future__ import annotations

__all__ = ["ExactIndex", "url_names_document"]


def url_names_document(url: str | None) -> bool:
    """A URL with a path or query names one document; a bare host is a front page many items link to."""
    if not url:
        return False
    rest = url.split("://", 1)[-1]
    return "/" in rest and rest.split("/", 1)[1] not in ("", "#")


class ExactIndex:
    """The first item of the window with each content hash (of texts long enough to cluster by) and each URL."""

    def __init__(self) -> None:
        self._by_hash: dict[str, str] = {}
        self._by_url: dict[str, str] = {}

    def same_text(self, content_hash: str) -> str | None:
        return self._by_hash.get(content_hash)

    def same_url(self, url: str | None) -> str | None:
        return self._by_url.get(url) if url is not None and url_names_document(url) else None

    def add(self, item_key: str, content_hash: str, url: str | None, textual: bool) -> None:
        if textual:
            self._by_hash.setdefault(content_hash, item_key)
        if url is not None:
            self._by_url.setdefault(url, item_key)

    def remove(self, item_key: str, content_hash: str, url: str | None) -> None:
        if self._by_hash.get(content_hash) == item_key:
            del self._by_hash[content_hash]
        if url is not None and self._by_url.get(url) == item_key:
            del self._by_url[url]
