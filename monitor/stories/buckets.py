"""A compact hash table from LSH bucket key to the entries in that bucket, for the near-duplicate tier.

The dict it replaces (`int → row | [rows]`) cost about 100 bytes per (item, band): a Python int key, a dict slot
and, for shared buckets, a list. Here an entry is one (row, band) pair with the id `row × bands + band`, and the
table holds, per slot, the key's top 32 bits (its fingerprint) and the first entry of its chain; the chains run through
one int32 array indexed by entry id. That is 8 bytes per slot (the table is kept between a quarter and half
full) plus 4 bytes per entry.

* Open addressing with linear probing and no wrap-around: a key lives at or after its home slot (the top bits of
  the fingerprint, so that a rebuild can place keys without the rest of them) and before the next empty slot; the table ends in a run of empty slots. A rebuild places all
  keys at once with numpy (sorted by home slot, each at max(home, previous + 1)).
* Two keys with equal fingerprints share a chain: the table may return rows of another bucket.
  The caller checks candidates against the signature values (`NearDuplicateIndex.candidates` does), so what it
  finds is exactly what an exact dict would give.
* The arrays are `array.array`s: element access from Python costs a third of numpy scalar indexing; numpy views
  of them serve the rebuilds.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable

import numpy as np

__all__ = ["BucketTable"]

_EMPTY = -1  # a slot never used since the last rebuild: a probe stops here
_DELETED = -2  # a slot whose chain emptied: a probe passes it
_END = -1  # the end of a chain
_MIN_BITS = 10  # at most 32: the home slot is the top bits of the 32-bit fingerprint
_PAD = 64  # empty slots after the last home slot, so that a run can spill over the end


class BucketTable:
    """Bucket key (unsigned 64-bit) → entry ids (non-negative, below the entry capacity)."""

    def __init__(self, entry_capacity: int = 1024) -> None:
        self._bits = _MIN_BITS
        self._fingerprints = array("I")
        self._heads = array("i")
        self._next = array("i", [_END]) * entry_capacity
        self._keys = 0  # slots holding a chain
        self._used = 0  # slots holding a chain or deleted
        self._resize(self._bits)

    def __len__(self) -> int:
        return self._keys

    @property
    def nbytes(self) -> int:
        return sum(len(a) * a.itemsize for a in (self._fingerprints, self._heads, self._next))

    def reserve(self, entry_capacity: int) -> None:
        """Make room for entry ids below `entry_capacity`."""
        if entry_capacity > len(self._next):
            self._next.extend(array("i", [_END]) * (entry_capacity - len(self._next)))

    def add(self, key: int, entry: int) -> None:
        slot = self._find(key)
        if slot >= 0:
            self._next[entry] = self._heads[slot]
            self._heads[slot] = entry
            return
        if 2 * (self._used + 1) > (1 << self._bits):
            self._rebuild(self._bits + 1 if 4 * (self._keys + 1) > (1 << self._bits) else self._bits)
        slot = self._free_slot(key)
        if slot < 0:  # the run reached the end of the table: place everything again, with more room
            self._rebuild(self._bits + 1)
            slot = self._free_slot(key)
        if self._heads[slot] == _EMPTY:
            self._used += 1
        self._keys += 1
        self._fingerprints[slot] = key >> 32
        self._next[entry] = _END
        self._heads[slot] = entry

    def add_many(self, keys: Iterable[int], first_entry: int) -> None:
        """`add(key, first_entry + i)` for the i-th key: one call per item, the probing inlined (this runs
        20 times for every stored item)."""
        for offset, key in enumerate(keys):
            entry = first_entry + offset
            heads, fingerprints, following = self._heads, self._fingerprints, self._next
            fingerprint = key >> 32
            slot = fingerprint >> (32 - self._bits)
            free = -1
            while True:
                head = heads[slot]
                if head == _EMPTY:
                    break
                if head == _DELETED:
                    if free < 0:
                        free = slot
                elif fingerprints[slot] == fingerprint:
                    following[entry] = head
                    heads[slot] = entry
                    break
                slot += 1
            if head != _EMPTY:
                continue  # joined the key's chain
            if free < 0:
                free = slot
            if 2 * (self._used + 1) > (1 << self._bits) or free >= len(heads) - 1:
                self.add(key, entry)  # a rebuild first: the general path
                continue
            if heads[free] == _EMPTY:
                self._used += 1
            self._keys += 1
            fingerprints[free] = fingerprint
            following[entry] = _END
            heads[free] = entry

    def remove(self, key: int, entry: int) -> None:
        slot = self._find(key)
        if slot < 0:
            return
        heads, following = self._heads, self._next
        current = heads[slot]
        if current == entry:
            heads[slot] = following[entry]
            if heads[slot] == _END:
                heads[slot] = _DELETED
                self._keys -= 1
        else:
            while current != _END:
                after = following[current]
                if after == entry:
                    following[current] = following[entry]
                    break
                current = after
        following[entry] = _END

    def entries(self, keys: Iterable[int]) -> list[int]:
        """The entries of each key's chain (and of any key sharing its home slot and fingerprint)."""
        found: list[int] = []
        following = self._next
        for key in keys:
            slot = self._find(key)
            if slot < 0:
                continue
            entry = self._heads[slot]
            while entry != _END:
                found.append(entry)
                entry = following[entry]
        return found

    # -- internals -------------------------------------------------------------------------------------------

    def _find(self, key: int) -> int:
        fingerprint = key >> 32
        heads, fingerprints = self._heads, self._fingerprints
        slot = fingerprint >> (32 - self._bits)
        while True:
            head = heads[slot]
            if head == _EMPTY:
                return -1
            if head != _DELETED and fingerprints[slot] == fingerprint:
                return slot
            slot += 1

    def _free_slot(self, key: int) -> int:
        heads = self._heads
        slot = key >> (64 - self._bits)
        last = len(heads) - 1  # stays empty: every probe ends
        while heads[slot] >= 0:
            slot += 1
        return slot if slot < last else -1

    def _resize(self, bits: int) -> None:
        self._bits = bits
        size = (1 << bits) + _PAD
        self._fingerprints = array("I", bytes(4 * size))
        self._heads = array("i", [_EMPTY]) * size
        self._keys = self._used = 0

    def _rebuild(self, bits: int) -> None:
        """Place every live chain again, at `bits` bits of home slot (vectorised)."""
        heads = np.frombuffer(self._heads, dtype=np.int32)
        live = np.flatnonzero(heads >= 0)
        chains = heads[live].copy()
        fingerprints = np.frombuffer(self._fingerprints, dtype=np.uint32)[live].copy()
        del heads
        while True:
            home = (fingerprints >> np.uint32(32 - bits)).astype(np.int64)
            order = np.argsort(home, kind="stable")
            ranks = np.arange(len(order), dtype=np.int64)
            placed = ranks + np.maximum.accumulate(home[order] - ranks) if len(order) else ranks
            if not len(placed) or int(placed[-1]) < (1 << bits) + _PAD - 1:
                break
            bits += 1
        self._resize(bits)
        np.frombuffer(self._fingerprints, dtype=np.uint32)[placed] = fingerprints[order]
        np.frombuffer(self._heads, dtype=np.int32)[placed] = chains[order]
        self._keys = self._used = len(order)
