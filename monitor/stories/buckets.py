"""A compact multimap from LSH bucket key to the entries in that bucket, for the near-duplicate tier.

An entry is one (row, band) pair with the id `row × bands + band`; what is kept of its bucket key is the top 32
bits (its fingerprint). The entries live in two sorted numpy arrays (fingerprints uint32, entry ids int32: 8 bytes
per entry), with the newest ones in a small dict beside them that is merged in when it holds more than a
32nd of the entries (a linear merge: `np.searchsorted` and `np.insert`). A removed entry of the sorted part
becomes a tombstone (-1) until the next merge drops it.

* Two keys with equal fingerprints share their entries: the table may return rows of another bucket. The caller
  checks candidates against the signature values (`NearDuplicateIndex.candidates` does), so what it finds is
  exactly what an exact dict would give.
* It replaced an open-addressing table (8 bytes per slot at a quarter to half full, plus a 4-byte chain link per
  entry: 20-40 bytes per entry, 400-800 bytes per stored item for 20 bands), which itself replaced a dict of
  Python ints (about 100 bytes per entry).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

__all__ = ["BucketTable"]

_MIN_DELTA = 4096  # entries the dict holds before a merge, at least
_DELTA_SHARE = 32  # ... or this fraction of all entries


class BucketTable:
    """Bucket key (unsigned 64-bit) → entry ids (non-negative int32)."""

    def __init__(self, entry_capacity: int = 1024) -> None:
        # `entry_capacity` is accepted for the callers of the table this one replaced; nothing is preallocated.
        self._fingerprints: npt.NDArray[np.uint32] = np.zeros(0, dtype=np.uint32)
        self._entries: npt.NDArray[np.int32] = np.zeros(0, dtype=np.int32)
        self._delta: dict[int, int | list[int]] = {}  # fingerprint → entry, or entries
        self._delta_size = 0
        self._dead = 0  # tombstones in the sorted part

    def __len__(self) -> int:
        """The distinct fingerprints that hold entries."""
        live = self._fingerprints[self._entries >= 0]
        fresh = np.fromiter(self._delta, dtype=np.uint32, count=len(self._delta))
        return len(np.union1d(live, fresh))

    @property
    def nbytes(self) -> int:
        return self._fingerprints.nbytes + self._entries.nbytes + 100 * self._delta_size

    def reserve(self, entry_capacity: int) -> None:
        """Kept for the interface of the table this one replaced: nothing to reserve."""

    def add(self, key: int, entry: int) -> None:
        self.add_many((key,), entry)

    def add_many(self, keys: Iterable[int], first_entry: int) -> None:
        """`add(key, first_entry + i)` for the i-th key."""
        delta = self._delta
        entry = first_entry
        for key in keys:
            fingerprint = key >> 32
            held = delta.get(fingerprint)
            if held is None:
                delta[fingerprint] = entry
            elif isinstance(held, int):
                delta[fingerprint] = [held, entry]
            else:
                held.append(entry)
            entry += 1
        self._delta_size += entry - first_entry
        if self._delta_size > max(_MIN_DELTA, len(self._entries) // _DELTA_SHARE):
            self._merge()

    def remove(self, key: int, entry: int) -> None:
        self.remove_many((key,), entry)

    def remove_many(self, keys: Iterable[int], first_entry: int) -> None:
        """`remove(key, first_entry + i)` for the i-th key (one search of the sorted part for all of them)."""
        delta = self._delta
        left: list[tuple[int, int]] = []  # not in the dict: in the sorted part
        entry = first_entry
        for key in keys:
            fingerprint = key >> 32
            held = delta.get(fingerprint)
            if held == entry:
                del delta[fingerprint]
                self._delta_size -= 1
            elif isinstance(held, list) and entry in held:
                held.remove(entry)
                if len(held) == 1:
                    delta[fingerprint] = held[0]
                self._delta_size -= 1
            else:
                left.append((fingerprint, entry))
            entry += 1
        if not left or not len(self._fingerprints):
            return
        fingerprints, entries = self._fingerprints, self._entries
        starts = np.searchsorted(fingerprints, np.array([f for f, _ in left], dtype=np.uint32)).tolist()
        for (fingerprint, entry), at in zip(left, starts, strict=True):
            while at < len(fingerprints) and fingerprints[at] == fingerprint:
                if entries[at] == entry:
                    entries[at] = -1
                    self._dead += 1
                    break
                at += 1

    def entries(self, keys: Iterable[int]) -> list[int]:
        """The entries of each key's bucket (and of any key sharing its fingerprint)."""
        fingerprints = [key >> 32 for key in keys]
        found: list[int] = []
        delta = self._delta
        for fingerprint in fingerprints:
            held = delta.get(fingerprint)
            if held is not None:
                if isinstance(held, int):
                    found.append(held)
                else:
                    found += held
        stored = self._fingerprints
        if len(stored):
            # One binary search per key (each a dozen cache misses in a table of millions), then a walk along
            # the run of equal fingerprints for the few keys that are there.
            wanted = np.array(fingerprints, dtype=np.uint32)
            low = np.searchsorted(stored, wanted, side="left")
            there = stored[np.minimum(low, len(stored) - 1)] == wanted
            if there.any():
                entries = self._entries
                for start, fingerprint in zip(low[there].tolist(), wanted[there].tolist(), strict=True):
                    end = start + 1
                    while end < len(stored) and stored[end] == fingerprint:
                        end += 1
                    found += [entry for entry in entries[start:end].tolist() if entry >= 0]
        return found

    def add_bulk(self, fingerprints: npt.NDArray[np.uint32], entries: npt.NDArray[np.int32]) -> None:
        """Entries with their fingerprints (the top 32 bits of their keys), all in one merge."""
        if self._delta:
            self._merge()
        self._insert(fingerprints, entries)

    # -- internals -------------------------------------------------------------------------------------------

    def _merge(self) -> None:
        """Move the dict's entries into the sorted arrays (dropping tombstones): linear in the entries."""
        fresh_fingerprints: list[int] = []
        fresh_entries: list[int] = []
        for fingerprint, held in self._delta.items():
            if isinstance(held, int):
                fresh_fingerprints.append(fingerprint)
                fresh_entries.append(held)
            else:
                fresh_fingerprints += [fingerprint] * len(held)
                fresh_entries += held
        self._delta = {}
        self._delta_size = 0
        self._insert(np.array(fresh_fingerprints, dtype=np.uint32), np.array(fresh_entries, dtype=np.int32))

    def _insert(self, adding: npt.NDArray[np.uint32], added: npt.NDArray[np.int32]) -> None:
        order = np.argsort(adding, kind="stable")
        adding, added = adding[order], added[order]
        fingerprints, entries = self._fingerprints, self._entries
        if self._dead:
            live = entries >= 0
            fingerprints, entries = fingerprints[live], entries[live]
        at = np.searchsorted(fingerprints, adding, side="right")
        self._fingerprints = np.insert(fingerprints, at, adding)
        self._entries = np.insert(entries, at, added)
        self._dead = 0
