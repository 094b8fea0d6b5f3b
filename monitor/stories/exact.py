"""Tier 1 of story clustering: exact copies. The same content hash (`monitor.identify.content_hash`: equal for
texts that differ only in case, Unicode form, whitespace or punctuation), or the same canonical URL when that
URL names one document (an updated article keeps its URL; a front page that many items link to does not).

Both maps hold 64-bit digests of the hash and the URL (`digest`), not the strings: the story index keeps each
row's digests to remove it again (see `monitor.stories.slots` for the collision chance)."""

from __future__ import annotations

import hashlib

from monitor.stories.slots import DigestTable

__all__ = ["ExactIndex", "digest", "url_names_document"]


def url_names_document(url: str | None) -> bool:
    """A URL with a path or query names one document; a bare host is a front page many items link to."""
    if not url:
        return False
    rest = url.split("://", 1)[-1]
    return "/" in rest and rest.split("/", 1)[1] not in ("", "#")


def digest(text: str) -> int:
    """A stable 64-bit digest of a string (never Python's salted `hash`)."""
    return int.from_bytes(
        hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big"
    )


class ExactIndex:
    """The first row of the window with each content hash (of texts long enough to cluster by) and each URL."""

    def __init__(self) -> None:
        self._by_hash = DigestTable()
        self._by_url = DigestTable()

    @property
    def nbytes(self) -> int:
        return self._by_hash.nbytes + self._by_url.nbytes

    def same_text(self, hash_digest: int) -> int:
        """The row of the first item with this content hash digest, or -1."""
        return self._by_hash.first(hash_digest)

    def same_url(self, url: str | None) -> int:
        """The row of the first item with this URL, if it names a document; else -1."""
        return self._by_url.first(digest(url)) if url is not None and url_names_document(url) else -1

    def add(self, row: int, hash_digest: int, url_digest: int | None, textual: bool) -> None:
        if textual and self._by_hash.first(hash_digest) < 0:
            self._by_hash.add(hash_digest, row)
        if url_digest is not None and self._by_url.first(url_digest) < 0:
            self._by_url.add(url_digest, row)

    def remove(self, row: int, hash_digest: int, url_digest: int | None) -> None:
        self._by_hash.remove(hash_digest, row)
        if url_digest is not None:
            self._by_url.remove(url_digest, row)
