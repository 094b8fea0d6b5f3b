"""Text normalization shared by the rule engine and anything else that compares words. Pure, no I/O.

Folding (`fold`): Unicode NFKC, then case folding, then spelling equivalences: ä/ö/ü → ae/oe/ue, ß → ss, ё → е,
other Latin diacritics dropped (é → e, ł → l), soft hyphens and zero-width joiners removed. So "Größe", "GROESSE"
and "groesse" fold alike, and so do "Ёлка" and "елка".

Tokens (`tokenize`): maximal runs of letters and digits (plus combining marks). Everything else separates tokens,
including hyphens and apostrophes: "rare-earth" is the two tokens rare, earth and "Putin's" is putin, s. Each
token keeps its character span in the original text, so matches can be shown on the text as it was written, and
the index of the sentence it is in (sentences end at . ! ? … followed by space and a capital, or at a blank line).

Stems (`stem_words`): Snowball (PyStemmer) in every language it has, chosen per token by script: Cyrillic tokens
use the item's language when that is written in Cyrillic and Russian otherwise; Latin tokens use the item's
language when it is written in Latin script and English otherwise.

Language (`detect_language`): by script first (Cyrillic → ru, or uk when Ukrainian letters occur; Greek, Arabic,
Hebrew, CJK...), links and addresses left out; Latin script by py3langid's character n-gram model over its 97
languages, *preferring* the languages the rules are written in plus the configured ones (`prefer_languages`): one
of those is chosen unless another language scores clearly higher (ESCAPE_MARGIN). Short headlines are where a
free choice among 97 languages errs; see docs/design/rules.md for the measured accuracy.
"""

from __future__ import annotations

import bisect
import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

import numpy
import Stemmer

__all__ = [
    "DEFAULT_PREFERRED_LANGUAGES",
    "SNOWBALL_LANGUAGES",
    "Tokens",
    "detect_language",
    "fold",
    "is_cyrillic",
    "language_evidence",
    "prefer_languages",
    "stem_words",
    "stemmer_language",
    "tokenize",
]

# ISO 639-1 (and a few 639-3) codes → Snowball algorithm names, for every algorithm PyStemmer ships.
SNOWBALL_LANGUAGES: dict[str, str] = {
    "ar": "arabic",
    "hy": "armenian",
    "eu": "basque",
    "ca": "catalan",
    "cs": "czech",
    "da": "danish",
    "nl": "dutch",
    "en": "english",
    "eo": "esperanto",
    "et": "estonian",
    "fi": "finnish",
    "fr": "french",
    "de": "german",
    "el": "greek",
    "hi": "hindi",
    "hu": "hungarian",
    "id": "indonesian",
    "ga": "irish",
    "it": "italian",
    "lt": "lithuanian",
    "ne": "nepali",
    "no": "norwegian",
    "nb": "norwegian",
    "nn": "norwegian",
    "fa": "persian",
    "pl": "polish",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sr": "serbian",
    "st": "sesotho",
    "es": "spanish",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
    "yi": "yiddish",
}
_AVAILABLE = set(Stemmer.algorithms())
SNOWBALL_LANGUAGES = {code: algo for code, algo in SNOWBALL_LANGUAGES.items() if algo in _AVAILABLE}

# Languages whose Snowball stemmer works on Cyrillic text (Serbian takes both scripts; we pick Cyrillic here
# only for the Cyrillic tokens of a Serbian item).
_CYRILLIC_LANGUAGES = {"ru", "sr"}
_NON_LATIN_LANGUAGES = {"ar", "hy", "el", "hi", "ne", "fa", "ta", "yi", "ru", "sr"}


def _build_fold_table() -> dict[int, str]:
    table: dict[int, str] = {}
    # Latin letters with diacritics → base letters, computed from the Unicode decomposition.
    for code in range(0x00C0, 0x0250):
        char = chr(code)
        base = "".join(c for c in unicodedata.normalize("NFD", char) if not unicodedata.combining(c))
        if base and base != char and base.isascii():
            table[code] = base.lower()
    table.update(
        {
            ord("ä"): "ae",
            ord("ö"): "oe",
            ord("ü"): "ue",
            ord("ß"): "ss",
            ord("æ"): "ae",
            ord("ø"): "o",
            ord("œ"): "oe",
            ord("đ"): "d",
            ord("ł"): "l",
            ord("ı"): "i",
            ord("ё"): "е",
            0x00AD: "",  # soft hyphen
            0x200C: "",  # zero-width non-joiner
            0x200D: "",  # zero-width joiner
        }
    )
    # Combining marks left after NFKC (decomposed input) are dropped, except the Cyrillic breve of й.
    for code in range(0x0300, 0x0370):
        if code != 0x0306:
            table[code] = ""
    table[0x0308] = ""  # diaeresis: ё arrives decomposed as е + U+0308
    return table


_FOLD_TABLE = _build_fold_table()


def fold(text: str) -> str:
    """The comparison form of `text`: NFKC, case-folded, spelling equivalences applied (see module doc)."""
    if text.isascii():
        return text.lower()
    text = unicodedata.normalize("NFKC", text).casefold()
    # casefold turns ß into ss already; a decomposed "й" (и + breve) is recomposed by NFKC above.
    return text.translate(_FOLD_TABLE)


# A token: letters/digits, with combining marks, soft hyphens and zero-width joiners allowed inside.
_TOKEN = re.compile(r"[^\W_][\w\u0300-\u036f\u0483-\u0489\u00ad\u200c\u200d]*")
# A sentence ends at . ! ? … (optionally followed by closing quotes/brackets), then space and the start of a new
# sentence (a capital, a digit or an opening quote); or at a line break.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'»“”’)\]]*\s+(?=[\"'«„“(\[]?[^\W\d_a-zа-яё]|\d)|\n\s*")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that end with a period without ending the sentence.
_ABBREVIATIONS = _words(
    "jr sr mr mrs ms dr prof st nr no bzw vgl ca etc inc ltd co corp gen col lt sgt rep sen gov dept "
    "z b d h u s usw hr fr vs т г гг им ул"
)


class Tokens:
    """The tokens of one text. Folded forms are computed at once; spans and sentences on first use, because
    matching needs them only for the few tokens that hit."""

    __slots__ = ("_boundaries", "_ends", "_padded", "_starts", "norms", "text")

    def __init__(self, text: str, norms: tuple[str, ...], padded: str | None = None) -> None:
        self.text = text
        self.norms = norms  # folded forms
        # ASCII fast path: the text with separators as spaces, lower-cased and padded with one space each side,
        # so a single token's span can be found with str.find instead of scanning the whole text.
        self._padded = padded
        self._starts: list[int] | None = None
        self._ends: list[int] | None = None
        self._boundaries: list[int] | None = None

    def __len__(self) -> int:
        return len(self.norms)

    def _compute_spans(self) -> tuple[list[int], list[int]]:
        if self._starts is None or self._ends is None:
            spans = [found.span() for found in _TOKEN.finditer(self.text)]
            self._starts = [start for start, _ in spans]
            self._ends = [end for _, end in spans]
        return self._starts, self._ends

    @property
    def starts(self) -> list[int]:
        """Character offset of each token in `text`."""
        return self._compute_spans()[0]

    @property
    def ends(self) -> list[int]:
        return self._compute_spans()[1]

    def start(self, index: int) -> int:
        """Character offset of token `index` in `text`."""
        if self._starts is None and self._padded is not None:
            found = self._find(index)
            if found is not None:
                return found
        return self.starts[index]

    def end(self, index: int) -> int:
        """Character offset just after token `index` in `text`."""
        if self._ends is None and self._padded is not None:
            found = self._find(index)
            if found is not None:
                return found + len(self.norms[index])
        return self.ends[index]

    def _find(self, index: int) -> int | None:
        # Token `index` is occurrence number k of its form among the tokens; in the padded text every token is
        # surrounded by spaces, so it is the k-th match of " form ". Worth it only for rare forms.
        padded = self._padded
        if padded is None:
            return None
        norm = self.norms[index]
        occurrence = self.norms[:index].count(norm)
        if occurrence > 4:
            return None
        needle = f" {norm} "
        position = -1
        for _ in range(occurrence + 1):
            position = padded.find(needle, position + 1)
        # The token starts one after the space found, and the padded text is one ahead of `text`: they cancel.
        return position

    def sentence_of(self, index: int) -> int:
        """Sentence index (0-based) of token `index`."""
        if self._boundaries is None:
            self._boundaries = _sentence_boundaries(self.text)
        return bisect.bisect_right(self._boundaries, self.start(index)) if self._boundaries else 0

    @property
    def sentences(self) -> list[int]:
        """Sentence index of every token."""
        return [self.sentence_of(index) for index in range(len(self.norms))]

    def surface(self, index: int) -> str:
        """The token as written (NFKC, not folded): what case-sensitive terms compare against."""
        return unicodedata.normalize("NFKC", self.text[self.start(index) : self.end(index)])

    def token_at(self, offset: int) -> int:
        """Index of the first token ending after character `offset` (for mapping spans to token positions)."""
        return bisect.bisect_right(self.ends, offset)


# ASCII characters that separate tokens, mapped to a space (underscores are handled by the general path).
_ASCII_SEPARATORS = str.maketrans({chr(code): " " for code in range(128) if not chr(code).isalnum()})


def tokenize(text: str) -> Tokens:
    """Split `text` into folded tokens (spans and sentence indices follow on demand; see the module doc)."""
    if text.isascii() and "_" not in text:
        # Same tokens as the general path (runs of ASCII letters and digits), without a regex: about 3x faster.
        padded = f" {text.translate(_ASCII_SEPARATORS).lower()} "
        return Tokens(text, tuple(padded.split()), padded)
    surfaces = _TOKEN.findall(text)
    if not surfaces:
        return Tokens(text, ())
    # Fold all tokens in one call: NUL cannot occur inside a token, and none of the folding steps merges
    # characters across it, so splitting afterwards gives one folded form per token.
    return Tokens(text, tuple(fold("\x00".join(surfaces)).split("\x00")))


def _sentence_boundaries(text: str) -> list[int]:
    boundaries: list[int] = []
    for found in _SENTENCE_END.finditer(text):
        if found.group()[0] == ".":
            word_start = found.start()
            while word_start > 0 and (text[word_start - 1].isalnum() or text[word_start - 1] == "."):
                word_start -= 1
            word = text[word_start : found.start()].lower().replace(".", "")
            if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                continue
        boundaries.append(found.end())
    return boundaries


def is_cyrillic(token: str) -> bool:
    return bool(token) and "\u0400" <= token[0] <= "\u04ff"


def stemmer_language(token: str, language: str | None) -> str | None:
    """The ISO code whose Snowball stemmer applies to `token` in an item of `language` (None: no stemming)."""
    if not token:
        return None
    first = token[0]
    if "\u0400" <= first <= "\u04ff":
        return language if language in _CYRILLIC_LANGUAGES else "ru"
    if first.isascii() or "\u00c0" <= first <= "\u024f":
        if language in SNOWBALL_LANGUAGES and language not in _NON_LATIN_LANGUAGES:
            return language
        return "en"
    return language if language in SNOWBALL_LANGUAGES else None


_local = threading.local()


def _stemmer(language: str) -> Stemmer._Stemmer:
    # PyStemmer objects keep an internal cache and are not safe to share between threads.
    cache: dict[str, Stemmer._Stemmer] | None = getattr(_local, "stemmers", None)
    if cache is None:
        cache = {}
        _local.stemmers = cache
    stemmer = cache.get(language)
    if stemmer is None:
        stemmer = Stemmer.Stemmer(SNOWBALL_LANGUAGES[language], 10000)
        cache[language] = stemmer
    return stemmer


def stem_words(words: Sequence[str], language: str) -> list[str]:
    """Snowball stems of already folded `words` in `language` (an ISO code from SNOWBALL_LANGUAGES)."""
    # PyStemmer keeps its own cache of recent words per stemmer, so repeated news vocabulary is cheap.
    result: list[str] = _stemmer(language).stemWords(words)
    return result


def _letter_class(first: int, last: int) -> str:
    """A regex character class of exactly the letters (str.isalpha) from `first` to `last` inclusive."""
    runs: list[tuple[int, int]] = []
    for code in range(first, last + 1):
        if chr(code).isalpha():
            if runs and runs[-1][1] == code - 1:
                runs[-1] = (runs[-1][0], code)
            else:
                runs.append((code, code))
    return "[" + "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in runs) + "]"


# Letters by script, for detect_language.
_SCRIPT_RANGES = {
    "latin": (0x0000, 0x024F),
    "cyrillic": (0x0400, 0x04FF),
    "greek": (0x0370, 0x03FF),
    "arabic": (0x0600, 0x06FF),
    "hebrew": (0x0590, 0x05FF),
    "kana": (0x3040, 0x30FF),
    "han": (0x4E00, 0x9FFF),
    "hangul": (0xAC00, 0xD7AF),
}
_SCRIPT_LETTERS = {name: re.compile(_letter_class(*bounds)) for name, bounds in _SCRIPT_RANGES.items()}
# Letters of any other script: [^\W\d_] also takes letter-like numerals (Ⅷ), which detect_language drops with
# str.isalpha.
_OTHER_LETTERS = re.compile(
    "(?![" + "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in _SCRIPT_RANGES.values()) + r"])[^\W\d_]"
)


# Languages the default rules are written in: detection prefers them (and those added by prefer_languages).
DEFAULT_PREFERRED_LANGUAGES = ("de", "en", "ru")
# How much higher (py3langid log-probability) a language outside the preferred ones must score than the best
# preferred one to be chosen instead. Chosen on the feed corpus (bench/bench_language.py): at 20 the rule
# languages lose 0.1 point of title accuracy against a strict restriction, other languages keep 85 % of theirs.
ESCAPE_MARGIN = 20.0
# Evidence of a script decision (no model involved): larger than any model margin that counts as confident.
SCRIPT_EVIDENCE = 1000.0
_URL = re.compile(r"(?:https?://|www\.)\S+|\S+@\S+\.\w+")
_preferred: tuple[str, ...] = DEFAULT_PREFERRED_LANGUAGES
_identifier_lock = threading.Lock()
_identifier: Any = None


def prefer_languages(codes: Iterable[str]) -> None:
    """Prefer DEFAULT_PREFERRED_LANGUAGES plus `codes` (rule scopes, configured feed languages) from now on."""
    global _preferred
    _preferred = tuple(dict.fromkeys((*DEFAULT_PREFERRED_LANGUAGES, *(code.lower() for code in codes))))


def _langid() -> Any:
    # The model takes about 0.3 s to load: once per process, on first use. Ranking is read-only afterwards, so
    # the identifier is shared between threads.
    global _identifier
    if _identifier is None:
        with _identifier_lock:
            if _identifier is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                _identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
    return _identifier


SCRIPT_SAMPLE = 1000


def detect_language(text: str) -> str | None:
    """Best guess of the ISO 639-1 language of `text`, or None when there is too little to tell.

    Script decides first: mostly Cyrillic → ru (uk when і/ї/є/ґ occur), Greek → el, Arabic → ar, Hebrew → he,
    Han/Kana → zh/ja, Hangul → ko. Latin text goes to py3langid, preferring the rule languages (module doc).
    """
    return language_evidence(text)[0]


def language_evidence(text: str) -> tuple[str | None, float]:
    """`detect_language(text)` and how sure it is: the score margin over the runner-up (SCRIPT_EVIDENCE when
    the script decided; 0.0 with no language). Per-feed language caches weigh items by it."""
    # The script is decided on the first SCRIPT_SAMPLE characters (title, summary and the start of the body):
    # counting letters per script over 4,000 cost three quarters of the detection of a 1 KB item.
    sample = text[:SCRIPT_SAMPLE]
    if "/" in sample or "@" in sample:
        sample = _URL.sub(" ", sample)
    if sample.isascii():
        counts = {"latin": len(_SCRIPT_LETTERS["latin"].findall(sample))}
    else:
        # One C-level findall per script instead of a Python loop over every character.
        counts = {script: len(pattern.findall(sample)) for script, pattern in _SCRIPT_LETTERS.items()}
        others = [found.start() for found in _OTHER_LETTERS.finditer(sample) if found.group().isalpha()]
        counts["other"] = len(others)
    counts = {script: count for script, count in counts.items() if count}
    if len(counts) > 1:
        # Ties go to the script that occurs first, so order the scripts by their first letter.
        first = {
            script: others[0] if script == "other" else _SCRIPT_LETTERS[script].search(sample).start()  # type: ignore[union-attr]
            for script in counts
        }
        counts = dict(sorted(counts.items(), key=lambda entry: first[entry[0]]))
    if not counts:
        return None, 0.0
    script = max(counts, key=lambda name: counts[name])
    if script == "cyrillic":
        return ("uk" if any(c in sample for c in "іїєґІЇЄҐ") else "ru"), SCRIPT_EVIDENCE
    if script in ("han", "kana"):
        return ("ja" if counts.get("kana", 0) else "zh"), SCRIPT_EVIDENCE
    simple = {"greek": "el", "arabic": "ar", "hebrew": "he", "hangul": "ko"}
    if script in simple:
        return simple[script], SCRIPT_EVIDENCE
    if script != "latin":
        return None, 0.0
    if counts["latin"] < 3:
        return None, 0.0
    # The model walks the text byte by byte in Python: a headline and the start of its summary are enough.
    return _latin_language(sample[:250])


def _latin_language(sample: str) -> tuple[str, float]:
    identifier = _langid()
    # The class scores (log-probabilities) of all 97 languages in one array, compared with numpy: `rank` would
    # sort them in Python, which cost as much as the scoring.
    scores = identifier._decide(sample)
    classes: list[str] = identifier.nb_classes
    preferred, outsiders = _columns(classes, _preferred)
    if not len(preferred):
        order = numpy.argsort(scores)[::-1]
        return classes[order[0]], float(scores[order[0]] - scores[order[1]])
    preferred_scores = scores[preferred]
    best = int(preferred_scores.argmax())
    best_score = float(preferred_scores[best])
    outsider = int(outsiders[scores[outsiders].argmax()])
    outsider_score = float(scores[outsider])
    if outsider_score - best_score > ESCAPE_MARGIN:
        return classes[outsider], outsider_score - best_score
    runner_up = outsider_score
    if len(preferred) > 1:
        runner_up = max(runner_up, float(numpy.partition(preferred_scores, -2)[-2]))
    return classes[int(preferred[best])], best_score - runner_up


_columns_cache: dict[tuple[int, tuple[str, ...]], tuple[Any, Any]] = {}


def _columns(classes: list[str], preferred: tuple[str, ...]) -> tuple[Any, Any]:
    """Score columns of the preferred Latin-script languages the model knows, and of all others."""
    key = (id(classes), preferred)
    found = _columns_cache.get(key)
    if found is None:
        wanted = {code for code in preferred if code not in _NON_LATIN_LANGUAGES}
        chosen = [index for index, code in enumerate(classes) if code in wanted]
        rest = [index for index in range(len(classes)) if index not in chosen]
        found = _columns_cache[key] = (
            numpy.array(chosen, dtype=numpy.intp),
            numpy.array(rest, dtype=numpy.intp),
        )
    return found
