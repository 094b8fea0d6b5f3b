"""What story clustering reads of an item's text: the headline and summary without the parts that differ between
copies of one report (markup leftovers, a wire dateline, a headline kicker, a publisher suffix), as words.

The words are the item's `monitor.analysis.Analysis` tokens (folded once, shared with the rule matcher): the
cleaning only decides which of them to keep, by character offset. Only a text with markup leftovers (`&lt;p&gt;`,
`<b>`) is tokenized again after cleaning, because there the words themselves change.
"""

from __future__ import annotations

import bisect
import html
import re
from collections.abc import Sequence

from monitor.analysis import Analysis
from monitor.text import Tokens, tokenize

__all__ = [
    "clean_summary",
    "clean_title",
    "cleaned_words",
    "figures",
    "figures_conflict",
    "figures_of",
]

# Scripts written without spaces between words: a "word" run there is a phrase, so it is cut into character
# bigrams instead. Hangul is written with spaces and is left to the word rule.
_UNSPACED = (
    "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0e7f\u0e80-\u0eff\u1000-\u109f\u1780-\u17ff"
)
_RUNS = re.compile(rf"[{_UNSPACED}]+|[^\W_{_UNSPACED}]+")
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


def _without_markup(text: str) -> str:
    if "<" not in text and "&" not in text:
        return text
    return _TAG.sub(" ", html.unescape(text))


def clean_summary(summary: str) -> str:
    """The summary without markup leftovers and without a leading wire dateline (see `_DATELINE`)."""
    return _DATELINE.sub("", _without_markup(summary), count=1)


def clean_title(title: str) -> str:
    """The title without markup leftovers, without a leading all-caps kicker ("UPDATE 1-") and without a
    trailing publisher name ("- Reuters", see `_PUBLISHER_SUFFIX`) when at least four words remain."""
    title = _KICKER.sub("", _without_markup(title), count=1)
    headline = _PUBLISHER_SUFFIX.sub("", title, count=1)
    # A short headline that is mostly "name - name" ("Rovers - United") is not a headline plus a publisher.
    return headline if len(headline.split()) >= 4 else title


def _split_unspaced(norms: Sequence[str]) -> tuple[str, ...]:
    """Words, with runs of scripts written without spaces cut into character bigrams."""
    if "".join(norms).isascii():
        return tuple(norms)
    out: list[str] = []
    for norm in norms:
        if not _UNSPACED_RUN.search(norm):
            out.append(norm)
            continue
        for run in _RUNS.findall(norm):
            if _UNSPACED_RUN.match(run):
                out.extend(run[i : i + 2] for i in range(max(1, len(run) - 1)))
            else:
                out.append(run)
    return tuple(out)


def _kept(tokens: Tokens, text: str, cleaned: str) -> tuple[tuple[str, ...], range]:
    """The words of `cleaned` taken from the tokens of `text`, and their token positions."""
    if cleaned == text:
        return tokens.norms, range(len(tokens.norms))
    offset = text.find(cleaned)
    if offset < 0:  # markup was removed: the words themselves differ
        return tokenize(cleaned).norms, range(0)
    first = bisect.bisect_left(tokens.starts, offset)
    last = bisect.bisect_right(tokens.ends, offset + len(cleaned))
    return tokens.norms[first:last], range(first, last)


def cleaned_words(analysis: Analysis, field: str, cleaned: str) -> tuple[tuple[str, ...], range]:
    """The folded words of the cleaned `field` (unspaced scripts as bigrams), and the positions in the field's
    tokens they came from (empty when the text had to be tokenized again)."""
    words, positions = _kept(analysis.tokens(field), analysis.text(field), cleaned)
    return _split_unspaced(words), positions


# A figure: digits with decimal or thousands separators ("3,500", "64,20", "2 000"). Figures are the facts
# that tell one day's market report, one company's results or one match from the next, which share the rest
# of their template. Single digits ("UPDATE 1", "7 April") and years say little and are left out.
_FIGURE = re.compile(r"\d+(?:[.,]\d+|[ \u00a0\u202f]\d{3}(?!\d))*")
_SEPARATORS = str.maketrans("", "", ".,  \u00a0\u202f")


# One empty set for every text without figures: `frozenset(set())` is a new 216-byte object each time, and the
# story index keeps one per stored item.
_NO_FIGURES: frozenset[str] = frozenset()


def figures_of(text: str) -> frozenset[str]:
    """The figures of a cleaned text, separators removed (so "3,500", "3.500" and "3 500" are one figure)."""
    found = set()
    for figure in _FIGURE.findall(text):
        digits = figure.translate(_SEPARATORS)
        if len(digits) >= 2 and not (len(digits) == 4 and digits[:2] in ("19", "20")):  # not a year
            found.add(digits.lstrip("0") or "0")
    return frozenset(found) if found else _NO_FIGURES


def figures(title: str, summary: str) -> frozenset[str]:
    """The figures of an item's text (see `figures_of`), after cleaning."""
    return figures_of(clean_title(title) + "\n" + clean_summary(summary))


def figures_conflict(a: frozenset[str], b: frozenset[str]) -> bool:
    """True when both texts state figures and fewer than half of the smaller set's figures occur in the
    other: the same template with other facts (Monday's prices against Tuesday's). A copy keeps its
    figures; a truncated copy keeps a subset; an extended one adds figures."""
    smaller = min(len(a), len(b))
    return smaller > 0 and 2 * len(a & b) < smaller
