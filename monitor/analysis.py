"""One analysis per item: its fields tokenized and folded once, its language decided once. Pure, no I/O.

The rule matcher and the story index both read words. Before, each tokenized the title and summary itself (and
the matcher detected the language, and the index folded the text its own way). An `Analysis` is made once per
item and handed to both: the matcher takes each field's `Tokens` from it, the story index takes the same tokens
for its shingles and event features. Fields are tokenized on first use, so a field that no rule reads and the
index does not need (a long `content`) costs nothing.

The language is the item's declared one, else `monitor.text.detect_language` of its text: whatever detector
text.py exposes, the analysis only calls it.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.text import Tokens, detect_language, tokenize
from monitor.types import Item

__all__ = ["NO_ACTORS", "ActorMentions", "Analysis", "analyse", "analyse_item"]


@dataclass(frozen=True, slots=True)
class ActorMentions:
    """The rule set's actors an item mentions: their ids, and where (field, start, end character offsets) the
    mentions are, so that the words of a name or a role ("Kirill Dmitriev, head of the Russian Direct Investment
    Fund") count once, as the actor, and not again as content words."""

    ids: frozenset[str] = frozenset()
    spans: tuple[tuple[str, int, int], ...] = ()

    def covers(self, field: str, start: int, end: int) -> bool:
        return any(f == field and s < end and start < e for f, s, e in self.spans)


NO_ACTORS = ActorMentions()


class Analysis:
    """The tokens of an item's fields (computed on first use, then shared) and its language."""

    __slots__ = ("_texts", "_tokens", "language")

    def __init__(self, texts: dict[str, str], language: str | None) -> None:
        self._texts = texts
        self._tokens: dict[str, Tokens] = {}
        self.language = language

    def text(self, field: str) -> str:
        return self._texts.get(field, "")

    def tokens(self, field: str) -> Tokens:
        """The tokens of `field` (title, summary, content, ...), tokenized once."""
        found = self._tokens.get(field)
        if found is None:
            found = self._tokens[field] = tokenize(self._texts.get(field, ""))
        return found

    def covers(self, field: str, text: str) -> bool:
        """True when this analysis holds exactly `text` for `field` (so its tokens stand for that text)."""
        return self._texts.get(field) == text


def analyse(title: str, summary: str, *, content: str = "", language: str | None = None) -> Analysis:
    """The analysis of a text given by its fields; the language is detected when not given."""
    if language is None:
        language = detect_language(f"{title}\n{summary}\n{content[:2000]}")
    return Analysis({"title": title, "summary": summary, "content": content}, language)


def analyse_item(item: Item) -> Analysis:
    """The analysis of an item: its title, summary, content and categories; its resolved language."""
    texts = {
        "title": item.title,
        "summary": item.summary,
        "content": item.content,
        "categories": "\n".join(item.categories),
    }
    language = item.language
    if language is None:
        language = detect_language(f"{item.title}\n{item.summary}\n{item.content[:2000]}")
    return Analysis(texts, language)
