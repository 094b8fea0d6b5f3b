"""Terms: the smallest thing a rule looks for, parsed from how the author wrote it. Pure.

    Seltenerd*          prefix: any token that starts with "seltenerd"
    rare earth          phrase of inflected words: "rare earths", "rare-earth" (one token after another)
    "Seltene Erden"     exact phrase: the folded tokens exactly, no inflection
    =REE                case-sensitive: the term's capitals must be capitals in the text ("REE", "REEs", not "ree")
    /Nd[- ]?Fe[- ]?B/   a regular expression (google-re2, linear time) run on the original field text
    $name  @name        a vocabulary or an actor (resolved by the loader, not here)

Names (actor names and aliases) use name inflection instead of Snowball: the exact folded form, or that form
plus one of a short list of case endings of its script (Russian -а -у -ом -ым -е ..., German/English -s). Snowball
over-stems proper names ("Дмитриев" → "дмитр", the stem of "Дмитрий"), which this avoids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

import re2

from monitor.text import fold, is_cyrillic

__all__ = ["Pattern", "PatternKind", "Term", "TermSyntaxError", "compile_regex", "parse_term"]


class TermSyntaxError(ValueError):
    """A term that cannot be parsed; `offset` is the character offset of the problem inside the term."""

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.offset = offset


class PatternKind(Enum):
    WORD = "word"  # folded form or Snowball stem equal
    EXACT = "exact"  # folded form equal
    PREFIX = "prefix"  # folded form starts with
    NAME = "name"  # folded form equal to one of the name's inflected forms


_CYRILLIC_NAME_ENDINGS = (
    "а",
    "у",
    "ом",
    "ым",
    "им",
    "е",
    "ой",
    "ы",
    "ых",
    "ыми",
    "ами",
    "ам",
    "ах",
    "ов",
    "ою",
)
_LATIN_NAME_ENDINGS = ("s", "es")


@dataclass(frozen=True, slots=True)
class Pattern:
    """What one token of a term must look like."""

    kind: PatternKind
    norm: str  # folded form (for PREFIX: the folded prefix)
    surface: str | None = None  # as written, when the term is case-sensitive
    forms: frozenset[str] = frozenset()  # NAME: every accepted folded form

    def case_ok(self, surface: str) -> bool:
        """True when every capital of the term is a capital in `surface` at the same place."""
        if self.surface is None:
            return True
        for expected, actual in zip(self.surface, surface, strict=False):
            if expected.isupper() and not actual.isupper():
                return False
        return True


@dataclass(frozen=True, slots=True)
class Term:
    """A parsed term. Equal terms (same patterns, same regex) are matched once per item, however many rules use them."""

    source: str  # as the author wrote it
    patterns: tuple[Pattern, ...] = ()
    regex: str | None = None

    @property
    def key(self) -> tuple[object, ...]:
        return (self.patterns, self.regex)


_TOKEN = re.compile(r"[^\W_][\w\u0300-\u036f\u0483-\u0489\u00ad\u200c\u200d]*")


def parse_term(source: str, *, name: bool = False) -> Term:
    """Parse one term as written in a rule file (see the module doc). `name`: use name inflection.

    Raises TermSyntaxError with the offset of the problem.
    """
    text = source.strip()
    lead = len(source) - len(source.lstrip())
    if not text:
        raise TermSyntaxError("empty term", lead)
    if text.startswith("/"):
        return _parse_regex(source, text, lead)
    case_sensitive = text.startswith("=")
    if case_sensitive:
        text = text[1:]
        lead += 1
    exact = len(text) >= 2 and text[0] == '"' and text[-1] == '"'
    if exact:
        text = text[1:-1]
        lead += 1
    elif '"' in text:
        raise TermSyntaxError(
            'unbalanced double quote (an exact phrase is written "like this")', lead + text.index('"')
        )
    patterns: list[Pattern] = []
    position = 0
    for found in _TOKEN.finditer(text):
        between = text[position : found.start()]
        if "*" in between:
            raise TermSyntaxError(
                "'*' must follow a word directly (Seltenerd*)", lead + position + between.index("*")
            )
        position = found.end()
        prefix = text.startswith("*", found.end())
        if prefix:
            position += 1
        word = found.group()
        norm = fold(word)
        surface = word if case_sensitive else None
        if prefix:
            patterns.append(Pattern(PatternKind.PREFIX, norm, surface))
        elif exact:
            patterns.append(Pattern(PatternKind.EXACT, norm, surface))
        elif name:
            patterns.append(Pattern(PatternKind.NAME, norm, surface, _name_forms(norm)))
        else:
            patterns.append(Pattern(PatternKind.WORD, norm, surface))
    rest = text[position:]
    if "*" in rest:
        raise TermSyntaxError(
            "'*' must follow a word directly (Seltenerd*)", lead + position + rest.index("*")
        )
    if not patterns:
        raise TermSyntaxError(f"term {source.strip()!r} has no letters or digits to match", lead)
    if any(p.kind is PatternKind.PREFIX and len(p.norm) < 3 for p in patterns):
        raise TermSyntaxError(
            "a prefix needs at least 3 letters before '*' (shorter ones match almost anything)", lead
        )
    return Term(source.strip(), tuple(patterns))


def compile_regex(pattern: str) -> Any:
    """Compile with google-re2 (linear time, no backtracking); errors are raised, not logged to stderr."""
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options)


def _name_forms(norm: str) -> frozenset[str]:
    endings = _CYRILLIC_NAME_ENDINGS if is_cyrillic(norm) else _LATIN_NAME_ENDINGS
    return frozenset({norm, *(norm + ending for ending in endings)})


def _parse_regex(source: str, text: str, lead: int) -> Term:
    if len(text) < 3 or not text.endswith("/"):
        raise TermSyntaxError("a regular expression is written /like this/", lead)
    pattern = text[1:-1]
    try:
        compiled = compile_regex(pattern)
    except re2.error as exc:
        reason = (
            exc.args[0].decode("utf-8", "replace")
            if exc.args and isinstance(exc.args[0], bytes)
            else str(exc)
        )
        raise TermSyntaxError(
            f"invalid or unsupported regular expression (google-re2 syntax): {reason}", lead + 1
        ) from exc
    if compiled.search("") is not None:
        raise TermSyntaxError("regular expression matches the empty string", lead + 1)
    return Term(source.strip(), (), pattern)
