"""A compact hash table from 64-bit digests to row numbers, for the story index's per-item maps (item key → row,
content hash → first row, URL → first row).

A dict from a str key to an int costs about 100 bytes per item on top of the key string itself (80-130 bytes
for an item key, a content hash or a URL); here an entry is a uint64 digest and an int32 row in two
`array.array`s, 12 bytes per slot, the table kept at most 5/8 full: 19-38 bytes per entry, and no string.

* Open addressing with linear probing (wrapping around), home slot = the digest's top bits. The digests are
  cryptographic (sha256/blake2b prefixes), so the top bits are uniform.
* Several rows may share a digest: `rows` gives all of them, and the caller tells them apart (the story index
  compares the item key it keeps per row; for content hashes and URLs an equal 64-bit digest is taken for an
  equal value, a collision chance of about 3·10⁻¹⁰ among 100,000 items).
* Removal leaves a tombstone that probes pass; tombstones are cleared when the table is rebuilt.
"""

from __future__ import annotations

from array import array

__all__ = ["DigestTable"]

_EMPTY = -1
_DELETED = -2
_MIN_BITS = 8


class DigestTable:
    """Digest (unsigned 64-bit) → rows (non-negative int32)."""

    def __init__(self) -> None:
        self._count = 0  # live entries
        self._used = 0  # live entries and tombstones
        self._bits = _MIN_BITS
        self._digests = array("Q", bytes(8 << _MIN_BITS))
        self._rows = array("i", [_EMPTY]) * (1 << _MIN_BITS)

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return len(self._digests) * 8 + len(self._rows) * 4

    def rows(self, digest: int) -> list[int]:
        """The rows stored under `digest`, in the order of their slots."""
        digests, rows = self._digests, self._rows
        mask = len(rows) - 1
        slot = digest >> (64 - self._bits)
        found: list[int] = []
        while True:
            row = rows[slot]
            if row == _EMPTY:
                return found
            if row >= 0 and digests[slot] == digest:
                found.append(row)
            slot = (slot + 1) & mask

    def first(self, digest: int) -> int:
        """One row stored under `digest` (the only one where the caller keeps one per digest), or -1."""
        digests, rows = self._digests, self._rows
        mask = len(rows) - 1
        slot = digest >> (64 - self._bits)
        while True:
            row = rows[slot]
            if row == _EMPTY:
                return -1
            if row >= 0 and digests[slot] == digest:
                return row
            slot = (slot + 1) & mask

    def add(self, digest: int, row: int) -> None:
        if 8 * (self._used + 1) > 5 * len(self._rows):
            self._rebuild()
        digests, rows = self._digests, self._rows
        mask = len(rows) - 1
        slot = digest >> (64 - self._bits)
        while rows[slot] >= 0:
            slot = (slot + 1) & mask
        if rows[slot] == _EMPTY:
            self._used += 1
        digests[slot] = digest
        rows[slot] = row
        self._count += 1

    def remove(self, digest: int, row: int) -> bool:
        """Drop the entry (digest, row); False when there is none."""
        digests, rows = self._digests, self._rows
        mask = len(rows) - 1
        slot = digest >> (64 - self._bits)
        while True:
            found = rows[slot]
            if found == _EMPTY:
                return False
            if found == row and digests[slot] == digest:
                rows[slot] = _DELETED
                self._count -= 1
                return True
            slot = (slot + 1) & mask

    def _rebuild(self) -> None:
        """Place the live entries again, in a table at most 5/16 full (so it grows when half the used slots are
        live, and is only cleaned of tombstones otherwise)."""
        live = [(d, r) for d, r in zip(self._digests, self._rows, strict=True) if r >= 0]
        bits = _MIN_BITS
        while 16 * (len(live) + 1) > 5 * (1 << bits):
            bits += 1
        self._bits = bits
        self._digests = array("Q", bytes(8 << bits))
        self._rows = array("i", [_EMPTY]) * (1 << bits)
        self._count = self._used = 0
        for digest, row in live:
            self.add(digest, row)
