"""Story clustering: which reports are one story. Pure: no I/O, no clock (time comes in as data).

A *story* is the set of items that report one event: copies of one text under other URLs, near-copies (a new
headline, a dateline, a cut), and reports of the same event in other words and other languages. Each new item
goes to an existing story or opens one (`StoryIndex.assign`), by three tiers, one module each:

- `monitor.stories.exact` — the same content hash or document URL;
- `monitor.stories.near_duplicate` — MinHash over word-bigram shingles;
- `monitor.stories.event` — weighted content words, actors, names and figures against per-language
  sub-clusters, linked across languages (features from `monitor.stories.features`);

tied together by `monitor.stories.index`. What the tiers read of the text comes from the item's one
`monitor.analysis.Analysis`, cleaned by `monitor.stories.cleaning`. Design and measurements:
docs/design/stories.md.
"""

from monitor.stories.cleaning import clean_summary, clean_title, figures, figures_conflict
from monitor.stories.event import EventIndex, EventMatch
from monitor.stories.features import EventFeatures, event_features, name_skeleton
from monitor.stories.index import (
    EVENT_FEATURES_VERSION,
    TIERS,
    PreparedItem,
    StoredSignature,
    StoryAssignment,
    StoryIndex,
    shingles,
    story_id_for,
)
from monitor.stories.near_duplicate import SIGNATURE_VERSION

# The signature version under its earlier name, which tests and tools read.
_SIGNATURE_VERSION = SIGNATURE_VERSION

__all__ = [
    "EVENT_FEATURES_VERSION",
    "SIGNATURE_VERSION",
    "TIERS",
    "EventFeatures",
    "EventIndex",
    "EventMatch",
    "PreparedItem",
    "StoredSignature",
    "StoryAssignment",
    "StoryIndex",
    "clean_summary",
    "clean_title",
    "event_features",
    "figures",
    "figures_conflict",
    "name_skeleton",
    "shingles",
    "story_id_for",
]
