"""Tier 2 of story clustering: near-duplicate copies of one text, by MinHash over word-bigram shingles.

Shingles are the word bigrams of the cleaned headline and summary (`monitor.stories.cleaning`), taken per field
and pooled in one set: a feed that uses another's lead sentence as its title still shares that sentence's
shingles. An LSH band index finds candidates; short texts (a headline with one sentence) are also probed by
single signature values. A candidate is the same story when the estimated Jaccard similarity reaches the
threshold, or when one text is almost contained in the other. Both texts stating figures that mostly differ
vetoes a match: one template with other facts (Monday's and Tuesday's market report) is two stories.

Signatures are computed here (numpy, seeds derived from sha256), not by datasketch: the serialized form is ours
and versioned, so a library upgrade cannot silently change stored signatures.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from monitor.stories.buckets import BucketTable

__all__ = [
    "SIGNATURE_VERSION",
    "MinHasher",
    "NearDuplicateIndex",
    "decode_signature",
    "encode_signature",
    "shingle_set",
]

U32 = npt.NDArray[np.uint32]


def _field_shingles(words: Sequence[str]) -> set[str]:
    if len(words) == 1:
        return {words[0]}
    return {f"{a} {b}" for a, b in itertools.pairwise(words)}


def shingle_set(*fields: Sequence[str]) -> set[str]:
    """The word-bigram shingles of each field's words, pooled (no bigram spans two fields)."""
    found: set[str] = set()
    for words in fields:
        if words:
            found |= _field_shingles(words)
    return found


# -- MinHash -------------------------------------------------------------------------------------------------

_MERSENNE = np.uint64((1 << 61) - 1)
_MASK64 = (1 << 64) - 1
_SIGNATURE_MAGIC = b"SM"
# 2: shingles without markup leftovers, datelines and headline kickers. 3: and without a publisher suffix.
# 4: words are the shared analysis tokens (monitor.text.fold: ä → ae, not a), not a second tokenization.
SIGNATURE_VERSION = 4
_HEADER = struct.Struct("<2sBBHI")  # magic, version, flags, num_perm, shingle count
_TEXTUAL = 1  # flag: the text was long enough to cluster by


def seeded_uint64(label: str, count: int, low: int, high: int) -> npt.NDArray[np.uint64]:
    values = [
        low + int.from_bytes(hashlib.sha256(f"{label}:{i}".encode()).digest()[:8], "little") % (high - low)
        for i in range(count)
    ]
    return np.array(values, dtype=np.uint64)


class MinHasher:
    """MinHash with num_perm hash functions h_i(x) = (a_i·x + b_i) mod (2^61 − 1), truncated to 32 bits, over
    32-bit blake2b hashes of the shingles. a_i < 2^31 and x < 2^32 keep a_i·x + b_i inside uint64."""

    def __init__(self, num_perm: int) -> None:
        self.num_perm = num_perm
        self._a = seeded_uint64("monitor-minhash-a", num_perm, 1, 1 << 31)
        self._b = seeded_uint64("monitor-minhash-b", num_perm, 0, 1 << 32)

    def signature(self, shingles: set[str]) -> U32:
        if not shingles:
            return np.full(self.num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)
        hashes = np.fromiter(
            (
                int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=4).digest(), "little")
                for s in sorted(shingles)
            ),
            dtype=np.uint64,
            count=len(shingles),
        )
        permuted = (np.outer(hashes, self._a) + self._b) % _MERSENNE
        minima: U32 = (permuted & np.uint64(0xFFFFFFFF)).min(axis=0).astype(np.uint32)
        return minima


def encode_signature(signature: U32, size: int, textual: bool) -> bytes:
    flags = _TEXTUAL if textual else 0
    header = _HEADER.pack(_SIGNATURE_MAGIC, SIGNATURE_VERSION, flags, len(signature), size)
    return header + signature.astype("<u4").tobytes()


def decode_signature(blob: bytes, num_perm: int) -> tuple[U32, int, bool] | None:
    """Signature, shingle count and textual flag; None when the blob is from another version or num_perm."""
    if len(blob) != _HEADER.size + 4 * num_perm:
        return None
    magic, version, flags, stored_perm, size = _HEADER.unpack_from(blob)
    if magic != _SIGNATURE_MAGIC or version != SIGNATURE_VERSION or stored_perm != num_perm:
        return None
    signature = np.frombuffer(blob, dtype="<u4", offset=_HEADER.size).astype(np.uint32)
    return signature, int(size), bool(flags & _TEXTUAL)


# Signature values a short text is probed with (see `NearDuplicateIndex.short_candidates`). A headline alone
# against its full article (7 shingles in 50, Jaccard ~0.14) shares none of 16 values about one time in ten; of
# 48, about one time in 1,500. The scan costs time only for short texts, and 48 x 4 bytes of memory per item.
_SHORT_PROBE = 48
# Texts with fewer shingles than this are probed: a headline with one sentence inside a long copy has a Jaccard
# similarity near 0.3, where the 2-row LSH bands miss about one pair in six.
PROBE_BELOW = 24
# Rows indexed per step of `NearDuplicateIndex.flush`.
_FLUSH_CHUNK = 4096
# Size of the smaller shingle set relative to the larger below which containment is no evidence.
_MIN_CONTAINED_SHARE = 0.1
# Estimated Jaccard similarity (share of equal signature values) below which containment is not estimated.
_MIN_CONTAINMENT_JACCARD = 1 / 16


class NearDuplicateIndex:
    """Signatures of the window's items in one growing numpy matrix (expired rows are reused), with an LSH
    band index over the textual ones; short texts are probed with the first values of every row.

    The first `bands` × `rows` values form the bands, each mixed into one 64-bit integer key of a compact
    multimap (`monitor.stories.buckets`: about 8 bytes per item and band, where a dict of Python ints took about
    100 and datasketch's `MinHashLSH` a bytes key and a set per band per item)."""

    def __init__(
        self,
        *,
        threshold: float,
        containment: float,
        min_containment_size: int,
        min_short_size: int,
        short_containment: float,
        num_perm: int,
        bands: int,
        rows: int,
    ) -> None:
        self.threshold = threshold
        self.containment = containment
        self.min_containment_size = min_containment_size
        self.min_short_size = min_short_size
        self.short_containment = short_containment
        self.num_perm = num_perm
        self.hasher = MinHasher(num_perm)
        self._bands = bands
        self._rows = rows
        # Odd 64-bit multipliers that mix a band's values and its index into one integer bucket key.
        self._band_mix = seeded_uint64("monitor-lsh-mix", rows + 1, 1, 1 << 63) | np.uint64(1)
        self._mix = [int(m) for m in self._band_mix[:rows]]
        self._mix_band = int(self._band_mix[-1])
        self._matrix: U32 = np.zeros((1024, num_perm), dtype=np.uint32)
        # Short texts are probed with the first values of every row, read from the matrix itself (a column-major
        # copy of them cost 192 bytes per item for a scan that only short texts pay).
        self._probe_width = min(_SHORT_PROBE, num_perm)
        self._free_rows: list[int] = []
        self._pending: list[int] = []  # rows added `later`, not yet in the buckets
        self._next_row = 0
        # Which rows hold an item (a set of Python ints cost about 100 bytes per item, this one byte).
        self._live = np.zeros(len(self._matrix), dtype=np.bool_)
        self._buckets = BucketTable(1024 * bands)

    def row_signature(self, row: int) -> U32:
        signature: U32 = self._matrix[row]
        return signature

    def add(
        self, signature: U32, textual: bool, *, later: bool = False, keys: list[int] | None = None
    ) -> int:
        """Store a signature; textual ones are indexed for candidates. Returns its row. `later`: index it at
        the next `flush` (or use), with all others so added in one go (the load at start). `keys`: its
        `band_keys`, when the caller has them already."""
        row = self._allocate_row()
        self._matrix[row] = signature
        self._live[row] = True
        if textual:
            if later:
                self._pending.append(row)
            else:
                self._buckets.add_many(self.band_keys(signature) if keys is None else keys, row * self._bands)
        return row

    def flush(self) -> None:
        """Index the rows added `later`: their band keys for all of them at once with numpy's wrap-around
        uint64 arithmetic (what `band_keys` computes in Python ints masked to 64 bits), one merge."""
        pending, self._pending = self._pending, []
        # In chunks: the temporary arrays are about 1.7 KB per row, and a load's peak is the daemon's peak.
        for start in range(0, len(pending), _FLUSH_CHUNK):
            self._index_rows(np.array(pending[start : start + _FLUSH_CHUNK], dtype=np.int64))

    def _index_rows(self, rows: npt.NDArray[np.int64]) -> None:
        per_band = self._rows
        values = self._matrix[rows, : self._bands * per_band].astype(np.uint64)
        fingerprints = np.empty((len(rows), self._bands), dtype=np.uint32)
        for band in range(self._bands):
            key = np.full(len(rows), (band * self._mix_band) & _MASK64, dtype=np.uint64)
            for column in range(per_band):
                key = (key ^ values[:, band * per_band + column]) * np.uint64(self._mix[column])
            fingerprints[:, band] = (key >> np.uint64(32)).astype(np.uint32)
        entries = (rows[:, None] * self._bands + np.arange(self._bands)).astype(np.int32)
        self._buckets.add_bulk(fingerprints.ravel(), entries.ravel())

    def remove(self, row: int, textual: bool) -> None:
        self.flush()
        self._live[row] = False
        if textual:
            self._buckets.remove_many(self.band_keys(self._matrix[row]), row * self._bands)
        self._free_rows.append(row)

    def candidates(self, signature: U32, size: int, keys: list[int] | None = None) -> list[int]:
        """Rows that may be near-duplicates of a text of `size` shingles, in row order: those sharing an LSH
        band with it (checked against the stored values, as the bucket table may offer rows of a bucket with
        the same fingerprint) and, for short texts, those sharing one of the first signature values. `keys`:
        the signature's `band_keys`, when the caller has them already (an assignment looks and then adds)."""
        self.flush()
        entries = self._buckets.entries(self.band_keys(signature) if keys is None else keys)
        found: set[int] = set()
        if entries:
            bands = self._bands
            rows = np.array(sorted({entry // bands for entry in entries}), dtype=np.int64)
            width = self._bands * self._rows
            stored = self._matrix[rows, :width].reshape(len(rows), self._bands, self._rows)
            wanted = signature[:width].reshape(self._bands, self._rows)
            same = (stored == wanted).all(axis=2).any(axis=1)
            found.update(rows[same].tolist())
        if self.min_short_size <= size < PROBE_BELOW:
            found |= self._short_candidates(signature)
        return sorted(found)

    def jaccard(self, signature: U32, row: int) -> float:
        return float(np.count_nonzero(self._matrix[row] == signature)) / self.num_perm

    def same_story(self, jaccard: float, signature: U32, size: int, row: int, row_size: int) -> bool:
        if jaccard >= self.threshold:
            return True
        smaller = min(size, row_size)
        # A short text of common word pairs ("a lot of people are in") is "contained" in any long text; a real
        # truncated copy (a headline with the first sentence) is still a noticeable part of the whole. The set
        # sizes are exact, unlike a Jaccard estimate at these low values. And a containment estimate from a
        # handful of equal signature values is noise (6 equal, 3 below read 0.67 for a true 0.28 in the corpus).
        if (
            smaller < self.min_short_size
            or smaller < _MIN_CONTAINED_SHARE * max(size, row_size)
            or jaccard < _MIN_CONTAINMENT_JACCARD
        ):
            return False
        needed = self.containment if smaller >= self.min_containment_size else self.short_containment
        return self._containment(signature, size, row, row_size) >= needed

    def _containment(self, signature: U32, size: int, row: int, row_size: int) -> float:
        """Estimated share of the smaller shingle set S found in the larger set L. Per hash function, the
        minimum of S ∪ L lies in S ∩ L when both minima are equal, and in S \\ L when S's minimum is below
        L's; so equal / (equal + S below) estimates |S ∩ L| / |S|. A subset is never below, so a contained
        short text scores exactly 1, where deriving |S ∩ L| from the Jaccard estimate and the set sizes is
        noisy when S is much smaller than L."""
        stored = self._matrix[row]
        small, large = (signature, stored) if size <= row_size else (stored, signature)
        equal = int(np.count_nonzero(small == large))
        below = int(np.count_nonzero(small < large))
        return equal / (equal + below) if equal else 0.0

    def _short_candidates(self, signature: U32) -> set[int]:
        """Rows sharing one of the first `_SHORT_PROBE` signature values with a short text. A short text inside
        a long one (a headline with its first sentence) has a low Jaccard similarity, so the 2-row LSH bands
        rarely offer the pair; single values do, at the cost of a scan that only short texts pay."""
        width = self._probe_width
        found = (self._matrix[: self._next_row, :width] == signature[:width]).any(axis=1)
        hits = np.flatnonzero(found)
        return set(hits[self._live[hits]].tolist())

    def band_keys(self, signature: U32) -> list[int]:
        """The signature's LSH bucket keys, one per band."""
        # The same mixing as numpy's wrap-around uint64 arithmetic, in Python ints masked to 64 bits: for 20
        # bands of 2 values a dozen small numpy calls cost more than the arithmetic.
        values = signature[: self._bands * self._rows].tolist()
        mix, last, rows = self._mix, self._mix_band, self._rows
        keys = []
        for band in range(self._bands):
            key = (band * last) & _MASK64
            for column in range(rows):
                key = ((key ^ values[band * rows + column]) * mix[column]) & _MASK64
            keys.append(key)
        return keys

    def _allocate_row(self) -> int:
        if self._free_rows:
            return self._free_rows.pop()
        if self._next_row == len(self._matrix):
            # Grow by a quarter, not double: the matrix is most of the index's memory, and a copy per 25% of
            # growth is cheap next to the assignments that filled it.
            grown = np.zeros(
                (len(self._matrix) + max(1024, len(self._matrix) // 4), self.num_perm), dtype=np.uint32
            )
            grown[: len(self._matrix)] = self._matrix
            self._matrix = grown
            self._live = np.concatenate((self._live, np.zeros(len(grown) - len(self._live), dtype=np.bool_)))
            self._buckets.reserve(len(grown) * self._bands)
        self._next_row += 1
        return self._next_row - 1
