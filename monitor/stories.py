"""Story clustering. Pure: no I/O, no clock (time comes in as data).

A *story* is a set of items that report the same text: copies under other URLs, with tracking parameters,
rewritten headlines, an added or a dropped sentence. `StoryIndex.assign` puts each new item into the story of
its most similar earlier item inside the time window, or opens a new story. In order:

1. the same content hash (`monitor.identify.content_hash`) → same story;
2. the same canonical URL, when that URL names a document (it has a path) and the texts are not unrelated;
3. MinHash near-duplicates: word-bigram shingles of title and summary (Unicode words, case and accents
   folded; Chinese/Japanese/Thai runs as character bigrams, so every language works without stemming or
   stop words; markup leftovers, a leading wire dateline and a headline kicker such as "UPDATE 1-" are
   removed first). An LSH band index finds candidates, and short texts (a headline with one sentence) are
   also probed by single signature values; a candidate is the same story when the estimated Jaccard
   similarity reaches `threshold`, or when one text is almost contained in the other (`containment`,
   `short_containment` for texts of 5-9 shingles) and the smaller one is a tenth of the larger or more.
   Both texts stating figures that mostly differ vetoes rule 3: one template with other facts (Monday's
   and Tuesday's market report, two companies' quarterly results) is two stories.

Texts with fewer than `min_tokens` words never cluster by text (rule 1 or 3): "Live updates" twice is no
evidence. Two stories on the same topic share words but few word *pairs*, which is what keeps them apart.
Story ids are derived from the first item's key, so the same input order gives the same ids.

Signatures are computed here (numpy, seeds derived from sha256), not by datasketch: the serialized form is
ours and versioned, so a library upgrade cannot silently change stored signatures (datasketch 2.0 changed its
default hashing scheme).
"""

from __future__ import annotations

import hashlib
import html
import itertools
import re
import struct
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "StoredSignature",
    "StoryAssignment",
    "StoryIndex",
    "shingles",
    "story_id_for",
]

_U32 = npt.NDArray[np.uint32]

# -- text → shingles -----------------------------------------------------------------------------------------

# Scripts written without spaces between words: a "word" run there is a phrase, so it is cut into character
# bigrams instead. Hangul is written with spaces and is left to the word rule.
_UNSPACED = (
    "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0e7f\u0e80-\u0eff\u1000-\u109f\u1780-\u17ff"
)
_TOKEN = re.compile(rf"[{_UNSPACED}]+|[^\W_{_UNSPACED}]+")
_UNSPACED_RUN = re.compile(rf"[{_UNSPACED}]")


# Leftovers of markup in feed text (`<p>`, `&nbsp;`, escaped tags): one outlet's feed has them, another's not.
_TAG = re.compile(r"</?[A-Za-z][^<>]{0,200}>")

# A wire dateline or agency credit opening a summary: "KUALA LUMPUR (Reuters) -", "FRANKFURT/MAIN (dpa) -",
# "(dpa) -", "PERTH, Australia, April 7, 2025 /PRNewswire/ --", "МУРМАНСК, 7 апреля. /ТАСС/.", "МОСКВА, 7 апр —
# РИА Новости.", "Москва. 7 апреля. INTERFAX.RU -", "Hanau, 7. April 2025 –". One copy carries it and the next
# does not, while unrelated stories of the same agency and day all share it: it is evidence of neither.
_DATELINE = re.compile(
    r"""^\s*(?:
        [^()\n]{0,60}\([^()\n]{1,30}\)\s*[-\u2013\u2014]{1,2}\s*              # CITY (Agency) -
      | [^/\n]{1,80}/[^\W\d_](?:[^\W\d_]|[ .]){1,27}/\s*(?:[-\u2013\u2014]{1,2}|\.)?\s*  # CITY, date /Agency/ --
      | [^\W\d][^,.\n]{0,40},\s*\d{1,2}\.?\s+[^\W\d]{3,10}\.?(?:\s+\d{4})?\s*[-\u2013\u2014]{1,2}\s*
        (?:(?:[A-ZА-ЯЁ][\w-]*\s+){0,2}[A-ZА-ЯЁ][\w-]*\.\s+)?                # CITY, 7 апр — Agency.
      | [^\W\d][^,.\n]{0,40}\.\s*\d{1,2}\s+[^\W\d]{3,10}\.\s*[A-ZА-ЯЁ][\w.]{1,20}\s*[-\u2013\u2014]{1,2}\s*
                                                                            # Город. 7 апреля. INTERFAX.RU -
    )""",
    re.VERBOSE,
)
# An all-caps kicker opening a headline: "UPDATE 2-", "ROUNDUP:", "ROHSTOFFE:", "EXCLUSIVE-".
_KICKER = re.compile(r"^\s*[A-ZÄÖÜ]{4,}(?:\s+\d{1,2})?\s*[-:\u2013\u2014]\s*(?=\S)")
# A publisher name closing a headline: "... - Reuters", "... | EU Portal", "... — РИА Новости" (aggregators and
# some feeds append it). One to three capitalized words after a spaced dash or bar. A headline-only copy
# otherwise gets two foreign word pairs, which is a fifth of a short headline's shingles. Lower-case words
# ("– Bund gibt 104 Millionen") mark a subtitle, which is kept.
_PUBLISHER_SUFFIX = re.compile(
    r"(?<=\S)\s+[-|\u2013\u2014]\s+(?:[A-Z\u00c0-\u00de\u0400-\u042f][\w.&'’-]*\s*){1,3}$"
)


def clean_summary(summary: str) -> str:
    """The summary without markup leftovers and without a leading wire dateline (see `_DATELINE`)."""
    text = _TAG.sub(" ", html.unescape(summary))
    return _DATELINE.sub("", text, count=1)


def clean_title(title: str) -> str:
    """The title without markup leftovers, without a leading all-caps kicker ("UPDATE 1-") and without a
    trailing publisher name ("- Reuters", see `_PUBLISHER_SUFFIX`) when at least four words remain."""
    title = _KICKER.sub("", _TAG.sub(" ", html.unescape(title)), count=1)
    headline = _PUBLISHER_SUFFIX.sub("", title, count=1)
    # A short headline that is mostly "name - name" ("Rovers - United") is not a headline plus a publisher.
    return headline if len(headline.split()) >= 4 else title


def _tokens(text: str) -> list[str]:
    """Words, case-folded, accents removed (ё→е, é→e: outlets differ in whether they write them)."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    folded = "".join(ch for ch in folded if unicodedata.category(ch) not in ("Mn", "Cf"))
    out: list[str] = []
    for run in _TOKEN.findall(folded):
        if _UNSPACED_RUN.match(run):
            out.extend(run[i : i + 2] for i in range(max(1, len(run) - 1)))
        else:
            out.append(run)
    return out


def _field_shingles(tokens: list[str]) -> set[str]:
    if len(tokens) == 1:
        return {tokens[0]}
    return {f"{a} {b}" for a, b in itertools.pairwise(tokens)}


def shingles(title: str, summary: str) -> set[str]:
    """The word-bigram shingles of title and summary, taken per field (no bigram spans the two), pooled in one
    set: a feed that uses another's lead sentence as its title still shares that sentence's shingles. Markup
    leftovers, a wire dateline and a headline kicker are removed first (`clean_title`, `clean_summary`)."""
    return _analyse(title, summary)[0]


# A figure: digits with decimal or thousands separators ("3,500", "64,20", "2 000"). Figures are the facts
# that tell one day's market report, one company's results or one match from the next, which share the rest
# of their template. Single digits ("UPDATE 1", "7 April") and years say little and are left out.
_FIGURE = re.compile(r"\d+(?:[.,]\d+|[ \u00a0\u202f]\d{3}(?!\d))*")
_SEPARATORS = str.maketrans("", "", ".,  \u00a0\u202f")


def figures(title: str, summary: str) -> frozenset[str]:
    """The figures of an item's text, separators removed (so "3,500", "3.500" and "3 500" are one figure)."""
    return _analyse(title, summary)[2]


def _figures(text: str) -> frozenset[str]:
    found = set()
    for figure in _FIGURE.findall(text):
        digits = figure.translate(_SEPARATORS)
        if len(digits) >= 2 and not (len(digits) == 4 and digits[:2] in ("19", "20")):  # not a year
            found.add(digits.lstrip("0") or "0")
    return frozenset(found)


def _analyse(title: str, summary: str) -> tuple[set[str], int, frozenset[str]]:
    """Shingles, word count and figures of an item, cleaning and tokenizing each field once."""
    title, summary = clean_title(title), clean_summary(summary)
    title_tokens, summary_tokens = _tokens(title), _tokens(summary)
    shingle_set = _field_shingles(title_tokens) | _field_shingles(summary_tokens)
    return shingle_set, len(title_tokens) + len(summary_tokens), _figures(title + "\n" + summary)


def figures_conflict(a: frozenset[str], b: frozenset[str]) -> bool:
    """True when both texts state figures and fewer than half of the smaller set's figures occur in the
    other: the same template with other facts (Monday's prices against Tuesday's). A copy keeps its
    figures; a truncated copy keeps a subset; an extended one adds figures."""
    smaller = min(len(a), len(b))
    return smaller > 0 and 2 * len(a & b) < smaller


# -- MinHash -------------------------------------------------------------------------------------------------

_MERSENNE = np.uint64((1 << 61) - 1)
_SIGNATURE_MAGIC = b"SM"
# 2: shingles without markup leftovers, datelines and headline kickers. 3: and without a publisher suffix.
_SIGNATURE_VERSION = 3
_HEADER = struct.Struct("<2sBBHI")  # magic, version, flags, num_perm, shingle count
_TEXTUAL = 1  # flag: the text was long enough to cluster by


def _seeded_uint64(label: str, count: int, low: int, high: int) -> npt.NDArray[np.uint64]:
    values = [
        low + int.from_bytes(hashlib.sha256(f"{label}:{i}".encode()).digest()[:8], "little") % (high - low)
        for i in range(count)
    ]
    return np.array(values, dtype=np.uint64)


class _MinHasher:
    """MinHash with num_perm hash functions h_i(x) = (a_i·x + b_i) mod (2^61 − 1), truncated to 32 bits, over
    32-bit blake2b hashes of the shingles. a_i < 2^31 and x < 2^32 keep a_i·x + b_i inside uint64."""

    def __init__(self, num_perm: int) -> None:
        self.num_perm = num_perm
        self._a = _seeded_uint64("monitor-minhash-a", num_perm, 1, 1 << 31)
        self._b = _seeded_uint64("monitor-minhash-b", num_perm, 0, 1 << 32)

    def signature(self, shingle_set: set[str]) -> _U32:
        if not shingle_set:
            return np.full(self.num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)
        hashes = np.fromiter(
            (
                int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=4).digest(), "little")
                for s in sorted(shingle_set)
            ),
            dtype=np.uint64,
            count=len(shingle_set),
        )
        permuted = (np.outer(hashes, self._a) + self._b) % _MERSENNE
        minima: _U32 = (permuted & np.uint64(0xFFFFFFFF)).min(axis=0).astype(np.uint32)
        return minima


def _encode_signature(signature: _U32, size: int, textual: bool) -> bytes:
    flags = _TEXTUAL if textual else 0
    header = _HEADER.pack(_SIGNATURE_MAGIC, _SIGNATURE_VERSION, flags, len(signature), size)
    return header + signature.astype("<u4").tobytes()


def _decode_signature(blob: bytes, num_perm: int) -> tuple[_U32, int, bool] | None:
    """Signature, shingle count and textual flag; None when the blob is from another version or num_perm."""
    if len(blob) != _HEADER.size + 4 * num_perm:
        return None
    magic, version, flags, stored_perm, size = _HEADER.unpack_from(blob)
    if magic != _SIGNATURE_MAGIC or version != _SIGNATURE_VERSION or stored_perm != num_perm:
        return None
    signature = np.frombuffer(blob, dtype="<u4", offset=_HEADER.size).astype(np.uint32)
    return signature, int(size), bool(flags & _TEXTUAL)


# Signature values a short text is probed with (see `StoryIndex._short_candidates`). A headline alone against
# its full article (7 shingles in 50, Jaccard ~0.14) shares none of 16 values about one time in ten; of 48,
# about one time in 1,500. The scan costs time only for short texts, and 48 x 4 bytes of memory per item.
_SHORT_PROBE = 48
# Texts with fewer shingles than this are probed: a headline with one sentence inside a long copy has a Jaccard
# similarity near 0.3, where the 2-row LSH bands miss about one pair in six.
_PROBE_BELOW = 24
# Size of the smaller shingle set relative to the larger below which containment is no evidence.
_MIN_CONTAINED_SHARE = 0.1
# Estimated Jaccard similarity (share of equal signature values) below which containment is not estimated.
_MIN_CONTAINMENT_JACCARD = 1 / 16

# -- the index -----------------------------------------------------------------------------------------------

Reason = Literal["new", "known", "hash", "url", "similar"]


@dataclass(frozen=True, slots=True)
class StoryAssignment:
    """Where `assign` put an item. `similarity` is 1.0 for hash and URL matches, the estimated Jaccard
    similarity for near-duplicates and 0.0 for a new story; `matched_item_key` is the item it was matched to."""

    story_id: str
    is_new_story: bool
    similarity: float
    matched_item_key: str | None
    reason: Reason


@dataclass(frozen=True, slots=True)
class StoredSignature:
    """One item of the window as the store keeps it. When `signature` is missing or from another version,
    it is recomputed from `title` and `summary`."""

    item_key: str
    story_id: str
    signature: bytes | None
    published: datetime
    url: str | None
    content_hash: str
    title: str = ""
    summary: str = ""
    source: str | None = None

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> StoredSignature:
        return cls(
            item_key=row["item_key"],
            story_id=row["story_id"],
            signature=row.get("signature"),
            published=row["published"],
            url=row.get("url"),
            content_hash=row["content_hash"],
            title=row.get("title") or "",
            summary=row.get("summary") or "",
            source=row.get("source"),
        )


def story_id_for(item_key: str) -> str:
    """The id of the story an item opens: derived from its key, so replays give the same ids."""
    return "st_" + hashlib.sha256(f"story\0{item_key}".encode()).hexdigest()[:24]


@dataclass(slots=True)
class _Entry:
    row: int  # row of the signature matrix
    item_key: str
    story_id: str
    published: datetime
    url: str | None
    content_hash: str
    size: int  # number of shingles
    textual: bool  # long enough to cluster by text
    source: str | None  # the feed, when known
    figures: frozenset[str]  # see `figures`: a conflict vetoes a near-duplicate match


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _url_names_document(url: str | None) -> bool:
    """A URL with a path or query names one document; a bare host is a front page many items link to."""
    if not url:
        return False
    rest = url.split("://", 1)[-1]
    return "/" in rest and rest.split("/", 1)[1] not in ("", "#")


class StoryIndex:
    """Items of the recent window with their signatures, to assign each new item to a story.

    `threshold`: estimated Jaccard similarity of shingle sets at or above which two items are one story.
    `containment`: share of the smaller shingle set found in the larger one at or above which they are one
    story, if the smaller set has at least `min_containment_size` shingles (a truncated copy, an added
    paragraph). `bands` × `rows` leading signature values form the LSH index; pairs at the thresholds above
    become candidates with probability > 0.99, unrelated pairs almost never.
    """

    def __init__(
        self,
        *,
        window: timedelta = timedelta(hours=72),
        threshold: float = 0.5,
        containment: float = 0.65,
        min_containment_size: int = 10,
        min_short_size: int = 5,
        short_containment: float = 0.8,
        min_tokens: int = 4,
        same_source_threshold: float = 0.8,
        num_perm: int = 128,
        bands: int = 20,
        rows: int = 2,
    ) -> None:
        if not 0.0 < threshold <= 1.0 or not 0.0 < containment <= 1.0:
            raise ValueError(f"threshold and containment must be in (0, 1], got {threshold}, {containment}")
        if bands * rows > num_perm or bands < 1 or rows < 1:
            raise ValueError(f"bands × rows ({bands}×{rows}) must be between 1 and num_perm ({num_perm})")
        self.window = window
        self.threshold = threshold
        self.containment = containment
        self.min_containment_size = min_containment_size
        self.min_short_size = min_short_size
        self.short_containment = short_containment
        self.min_tokens = min_tokens
        self.same_source_threshold = same_source_threshold
        self.num_perm = num_perm
        self._bands = bands
        self._rows = rows
        self._hasher = _MinHasher(num_perm)
        # Odd 64-bit multipliers that mix a band's values and its index into one integer bucket key.
        self._band_mix = _seeded_uint64("monitor-lsh-mix", rows + 1, 1, 1 << 63) | np.uint64(1)
        self._matrix: _U32 = np.zeros((1024, num_perm), dtype=np.uint32)
        # The first values of every row again, column-major, so that probing a short text scans contiguous memory.
        self._probe_width = min(_SHORT_PROBE, num_perm)
        self._probe: _U32 = np.zeros((self._probe_width, 1024), dtype=np.uint32)
        self._free_rows: list[int] = []
        self._next_row = 0
        self._entries: dict[str, _Entry] = {}
        self._by_row: dict[int, _Entry] = {}
        self._by_hash: dict[str, str] = {}
        self._by_url: dict[str, str] = {}
        self._buckets: dict[int, int | list[int]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, item_key: object) -> bool:
        return item_key in self._entries

    # -- public API ------------------------------------------------------------------------------------------

    def assign(
        self,
        *,
        item_key: str,
        title: str,
        summary: str,
        url: str | None,
        content_hash: str,
        published: datetime,
        source: str | None = None,
    ) -> StoryAssignment:
        """Put the item into a story and remember it. Assigning a key again returns its story unchanged.

        `source` (the feed URL) is optional but recommended: two items of one feed are one story only on a
        hash or URL match or a near-identical text (`same_source_threshold`), because a feed's own
        boilerplate ("Subscribe to our newsletter ...") can make its distinct short items look alike."""
        known = self._entries.get(item_key)
        if known is not None:
            return StoryAssignment(
                known.story_id, known.story_id == story_id_for(item_key), 1.0, None, "known"
            )
        published = _aware(published)
        shingle_set, token_count, item_figures = _analyse(title, summary)
        signature = self._hasher.signature(shingle_set)
        textual = token_count >= self.min_tokens and bool(shingle_set)
        matched = self._find(
            signature, len(shingle_set), textual, url, content_hash, published, source, item_figures
        )
        if matched is None:
            assignment = StoryAssignment(story_id_for(item_key), True, 0.0, None, "new")
        else:
            entry, similarity, reason = matched
            assignment = StoryAssignment(entry.story_id, False, similarity, entry.item_key, reason)
        self._add(
            _Entry(
                -1,
                item_key,
                assignment.story_id,
                published,
                url,
                content_hash,
                len(shingle_set),
                textual,
                source,
                item_figures,
            ),
            signature,
        )
        return assignment

    def signature(self, item_key: str) -> bytes:
        """The serialized signature of an assigned or loaded item, for the store."""
        entry = self._entries.get(item_key)
        if entry is None:
            raise KeyError(f"item {item_key!r} is not in the story index")
        return _encode_signature(self._matrix[entry.row], entry.size, entry.textual)

    def load(self, rows: Iterable[StoredSignature | Mapping[str, Any]]) -> int:
        """Rebuild from the store at startup, in the order the items were first assigned. Keeps the stored
        story ids. Signatures from another version are recomputed from the stored text. Returns the number of
        items loaded (a key already present is skipped)."""
        loaded = 0
        for raw in rows:
            row = raw if isinstance(raw, StoredSignature) else StoredSignature.from_mapping(raw)
            if row.item_key in self._entries:
                continue
            decoded = _decode_signature(row.signature, self.num_perm) if row.signature else None
            if decoded is None:
                shingle_set, token_count, row_figures = _analyse(row.title, row.summary)
                textual = token_count >= self.min_tokens and bool(shingle_set)
                decoded = (self._hasher.signature(shingle_set), len(shingle_set), textual)
            else:
                row_figures = _figures(clean_title(row.title) + "\n" + clean_summary(row.summary))
            signature, size, textual = decoded
            entry = _Entry(
                -1,
                row.item_key,
                row.story_id,
                _aware(row.published),
                row.url,
                row.content_hash,
                size,
                textual,
                row.source,
                row_figures,
            )
            self._add(entry, signature)
            loaded += 1
        return loaded

    def expire(self, before: datetime) -> int:
        """Forget items published before `before` (bounds memory to the window). Returns how many."""
        before = _aware(before)
        old = [entry for entry in self._entries.values() if entry.published < before]
        for entry in old:
            self._remove(entry)
        return len(old)

    # -- internals -------------------------------------------------------------------------------------------

    def _in_window(self, entry: _Entry, published: datetime) -> bool:
        return abs(entry.published - published) <= self.window

    def _find(
        self,
        signature: _U32,
        size: int,
        textual: bool,
        url: str | None,
        content_hash: str,
        published: datetime,
        source: str | None,
        item_figures: frozenset[str],
    ) -> tuple[_Entry, float, Reason] | None:
        if textual:
            same_text = self._entries.get(self._by_hash.get(content_hash, ""))
            if same_text is not None and self._in_window(same_text, published):
                return same_text, 1.0, "hash"
        if url is not None and _url_names_document(url):
            same_url = self._entries.get(self._by_url.get(url, ""))
            # An updated article keeps its URL; a page that every item links to does not share text.
            if (
                same_url is not None
                and self._in_window(same_url, published)
                and (not textual or not same_url.textual or self._jaccard(signature, same_url.row) >= 0.1)
            ):
                return same_url, 1.0, "url"
        if not textual:
            return None
        best: tuple[_Entry, float, Reason] | None = None
        candidates = self._candidates(signature)
        if self.min_short_size <= size < _PROBE_BELOW:
            candidates |= self._short_candidates(signature)
        for row in sorted(candidates):
            entry = self._by_row[row]
            if not entry.textual or not self._in_window(entry, published):
                continue
            if figures_conflict(item_figures, entry.figures):
                continue  # one template, other facts: another day's report, another company's results
            jaccard = self._jaccard(signature, row)
            if source is not None and entry.source == source:
                same = jaccard >= self.same_source_threshold
            else:
                same = self._same_story(jaccard, signature, size, row, entry.size)
            if same and (best is None or jaccard > best[1]):
                best = (entry, jaccard, "similar")
        return best

    def _same_story(self, jaccard: float, signature: _U32, size: int, row: int, row_size: int) -> bool:
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

    def _containment(self, signature: _U32, size: int, row: int, row_size: int) -> float:
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

    def _short_candidates(self, signature: _U32) -> set[int]:
        """Rows sharing one of the first `_SHORT_PROBE` signature values with a short text. A short text inside
        a long one (a headline with its first sentence) has a low Jaccard similarity, so the 2-row LSH bands
        rarely offer the pair; single values do, at the cost of a scan that only short texts pay."""
        columns = self._probe[:, : self._next_row]
        found = columns[0] == signature[0]
        for column in range(1, self._probe_width):
            found |= columns[column] == signature[column]
        hits = np.flatnonzero(found)
        return {int(row) for row in hits if int(row) in self._by_row}

    def _jaccard(self, signature: _U32, row: int) -> float:
        return float(np.count_nonzero(self._matrix[row] == signature)) / self.num_perm

    def _band_keys(self, signature: _U32) -> list[int]:
        bands = signature[: self._bands * self._rows].astype(np.uint64).reshape(self._bands, self._rows)
        index = np.arange(self._bands, dtype=np.uint64)
        with np.errstate(over="ignore"):  # wrap-around multiplication is the mixing
            keys = index * self._band_mix[-1]
            for column in range(self._rows):
                keys = (keys ^ bands[:, column]) * self._band_mix[column]
        return [int(k) for k in keys]

    def _candidates(self, signature: _U32) -> set[int]:
        found: set[int] = set()
        for key in self._band_keys(signature):
            slot = self._buckets.get(key)
            if slot is None:
                continue
            if isinstance(slot, int):
                found.add(slot)
            else:
                found.update(slot)
        return found

    def _add(self, entry: _Entry, signature: _U32) -> None:
        row = entry.row = self._allocate_row()
        self._matrix[row] = signature
        self._probe[:, row] = signature[: self._probe_width]
        item_key, url, content_hash, textual = entry.item_key, entry.url, entry.content_hash, entry.textual
        self._entries[item_key] = entry
        self._by_row[row] = entry
        if textual:
            self._by_hash.setdefault(content_hash, item_key)
            for key in self._band_keys(signature):
                slot = self._buckets.get(key)
                if slot is None:
                    self._buckets[key] = row
                elif isinstance(slot, int):
                    self._buckets[key] = [slot, row]
                else:
                    slot.append(row)
        if url is not None:
            self._by_url.setdefault(url, item_key)

    def _remove(self, entry: _Entry) -> None:
        del self._entries[entry.item_key]
        del self._by_row[entry.row]
        if self._by_hash.get(entry.content_hash) == entry.item_key:
            del self._by_hash[entry.content_hash]
        if entry.url is not None and self._by_url.get(entry.url) == entry.item_key:
            del self._by_url[entry.url]
        if entry.textual:
            for key in self._band_keys(self._matrix[entry.row]):
                slot = self._buckets.get(key)
                if slot == entry.row:
                    del self._buckets[key]
                elif isinstance(slot, list):
                    slot.remove(entry.row)
                    if len(slot) == 1:
                        self._buckets[key] = slot[0]
        self._free_rows.append(entry.row)

    def _allocate_row(self) -> int:
        if self._free_rows:
            return self._free_rows.pop()
        if self._next_row == len(self._matrix):
            grown = np.zeros((2 * len(self._matrix), self.num_perm), dtype=np.uint32)
            grown[: len(self._matrix)] = self._matrix
            self._matrix = grown
            grown_probe = np.zeros((self._probe_width, len(grown)), dtype=np.uint32)
            grown_probe[:, : self._probe.shape[1]] = self._probe
            self._probe = grown_probe
        self._next_row += 1
        return self._next_row - 1
