"""The compiled rule set and the matcher. Pure: no I/O; `RuleSet.match` is safe to call from many threads.

Semantics
---------
Normalization. Every field is split into tokens (runs of letters and digits; hyphens, apostrophes and all other
punctuation separate tokens) and each token is folded: NFKC, case folding, ä=ae ö=oe ü=ue ß=ss ё=е, other Latin
diacritics dropped (see monitor.text). Terms are folded the same way, so "rare-earth" = "rare earth",
"Putin's" contains the token "putin", and "Trump" never matches inside "Trumpfkarte".

What a term matches. A term is a sequence of token patterns that must match consecutive tokens of one field:
- a word matches a token with the same folded form or the same Snowball stem. The stemmer is chosen per token
  (Cyrillic tokens: Russian unless the item is in another Cyrillic language; Latin tokens: the item's language
  when it is written in Latin script, else English). The item's language is the declared one, else detected.
- an "exact phrase" (double quotes) matches the folded forms exactly, without inflection;
- a prefix (`Seltenerd*`) matches any token starting with it, which is how German compounds are reached;
- actor names match their folded form or it plus a case ending of its script (Путина, Putins, Manturows);
- `=Term` is case-sensitive: each capital in the term must be a capital in the text (REE, not "ree");
- a /regex/ runs with google-re2 on the original field text; its hit covers the tokens it overlaps.

Logic. A rule fires when all its parts hold: `any` (at least `min_count` hits of the listed terms, counting
occurrences), each `all` entry, no `none` entry, the `match` expression, and, with `weights`, a score (weight ×
occurrences, summed) of at least `threshold`. Only the rule's `fields` are searched (default: title, summary,
content, categories); `field:` in an expression overrides that for its operand. Rules scoped to `feeds`, `tags`
or `languages` only see items from those.

NEAR. `A NEAR/n B` holds when a hit of A and a hit of B lie in the same field with at most n tokens between them
(NEAR/0: adjacent; order does not matter; overlapping hits count as distance 0). `A NEAR/sentence B` holds when
they lie in the same sentence of the same field.

Actors. An actor mention is a hit of one of its names or roles, or of an alias when one of the actor's context
terms (or a name or role) also occurs in the item. A mention overlapping an `exclude` hit ("Trump Jr.") is
dropped, and so is a mention in a sentence that contains an `exclude_context` hit. A mention by a case-sensitive
term that starts a sentence (a title starts one) is dropped when the item has an `exclude_context` hit anywhere,
because there its capital says nothing ("Путина на Камчатке" with "горбуша" in the summary is the fishing season).

Cost. All terms of all rules are compiled into one index: a dictionary of folded forms and name forms, one
dictionary of stems per language (built on first use) and one of prefixes. The matcher keeps a lexicon per item
language: for each distinct token seen so far, its stem and the terms it may start (found by those dictionaries
once, when the token is first seen). Per field, the tokens are reduced to a set, new ones are learned, and one
set intersection with the lexicon's hitting tokens finds the candidates; only those are verified, and only rules
that use a found term are evaluated. So the cost per item grows with the item and the number of hits, not with the
number of rules or terms. Regular expression terms are the exception: each is run on every item.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from monitor.analysis import NO_ACTORS, ActorMentions, Analysis
from monitor.rules.expr import ActorNode, AndNode, NearNode, Node, NotNode, OrNode, TermNode
from monitor.rules.schema import Actor, Rule
from monitor.rules.terms import Pattern, PatternKind, Term, compile_regex
from monitor.text import Tokens, detect_language, stem_words, stemmer_language, tokenize
from monitor.types import Hit, Item, Match

__all__ = ["FIELD_ORDER", "RuleSet"]

FIELD_ORDER = ("title", "summary", "content", "categories", "link", "feed")
_FIELD_RANK = {name: rank for rank, name in enumerate(FIELD_ORDER)}


class _HitRec(NamedTuple):
    term: int  # index into _Index.terms
    field: str
    first: int  # first and last token index (inclusive)
    last: int
    start: int  # character offsets into the field text
    end: int
    actor: str | None = None


# Compiled condition nodes: plain tuples, evaluated by _Evaluation.
#   ("term", term_id, fields) ("actor", name, fields) ("and", children) ("not", child)
#   ("near", left, right, distance|None)
#   ("or", children, terms) ("atleast", children, minimum, terms): `terms` maps the term ids of direct term
#   children to their field sets, so that only the ones with hits are visited (a rule's `any` list can hold
#   hundreds of terms, of which an item hits one or two); `children` holds the other children.
_CNode = tuple[Any, ...]


def _split_terms(children: tuple[_CNode, ...]) -> tuple[tuple[_CNode, ...], dict[int, tuple[Any, ...]]]:
    terms: dict[int, tuple[Any, ...]] = {}
    others: list[_CNode] = []
    for child in children:
        if child[0] == "term":
            terms[child[1]] = (*terms.get(child[1], ()), child[2])
        else:
            others.append(child)
    return tuple(others), terms


def _structure(node: _CNode) -> tuple[Any, ...]:
    """A hashable key for a compiled node whose children are already shared: equal keys, equal conditions."""
    kind = node[0]
    if kind in ("term", "actor"):
        return node
    if kind == "and":
        return (kind, tuple(id(child) for child in node[1]))
    if kind == "not":
        return (kind, id(node[1]))
    if kind == "near":
        return (kind, id(node[1]), id(node[2]), node[3])
    if kind == "or":
        return (kind, tuple(id(child) for child in node[1]), tuple(node[2].items()))
    return (kind, tuple(id(child) for child in node[1]), node[2], tuple(node[3].items()))


class _Lexicon:
    """What the index knows about every distinct token seen so far in items of one language.

    News vocabulary repeats, so each distinct folded token is stemmed and looked up once and remembered: per item,
    only tokens never seen before cost Python work; the rest is set arithmetic in C.
    """

    __slots__ = ("candidates", "hitting", "stems")

    def __init__(self) -> None:
        self.stems: dict[str, tuple[str | None, str | None]] = {}  # norm -> (stemmer language, stem)
        self.candidates: dict[str, tuple[int, ...]] = {}  # norm -> ids of terms whose first token it may be
        self.hitting: set[str] = set()  # the keys of `candidates`, as a set for fast intersection


# Distinct tokens remembered per language before the lexicon starts afresh (bounds memory on endless vocabulary:
# numbers, names, typos). Measured about 23 MB per language at the limit; a few days of one language's news stay
# below it, and starting afresh costs only re-learning (the "cold" rate of bench/bench_rules.py) for a while.
_LEXICON_LIMIT = 100_000


class _Index:
    """Every distinct term of a rule set, indexed by what a token can be looked up by."""

    def __init__(self, terms: list[Term]) -> None:
        self.terms = terms
        self.exact: dict[str, list[int]] = {}
        self.word_anchors: list[tuple[str, int]] = []  # (folded first word, term id) for stem lookup
        self.prefixes: dict[str, list[int]] = {}
        self.regexes: list[tuple[int, Any]] = []
        for term_id, term in enumerate(terms):
            if term.regex is not None:
                self.regexes.append((term_id, compile_regex(term.regex)))
                continue
            first = term.patterns[0]
            if first.kind is PatternKind.PREFIX:
                self.prefixes.setdefault(first.norm, []).append(term_id)
            elif first.kind is PatternKind.NAME:
                for form in first.forms:
                    self.exact.setdefault(form, []).append(term_id)
            else:
                self.exact.setdefault(first.norm, []).append(term_id)
                if first.kind is PatternKind.WORD:
                    self.word_anchors.append((first.norm, term_id))
        self.prefix_lengths = sorted({len(prefix) for prefix in self.prefixes})
        self.uses_stems = any(p.kind is PatternKind.WORD for term in terms for p in term.patterns)
        self._stem_indexes: dict[str, dict[str, tuple[int, ...]]] = {}
        self._stems: dict[tuple[str, str], str] = {}
        self._lexicons: dict[str | None, _Lexicon] = {}
        self._lock = threading.Lock()

    def stem_index(self, language: str) -> dict[str, tuple[int, ...]]:
        """Term ids by the stem (in `language`) of their first word; built on first use, then shared."""
        found = self._stem_indexes.get(language)
        if found is not None:
            return found
        with self._lock:
            found = self._stem_indexes.get(language)
            if found is None:
                words = [norm for norm, _ in self.word_anchors]
                grouped: dict[str, list[int]] = {}
                for stem, (_, term_id) in zip(stem_words(words, language), self.word_anchors, strict=True):
                    grouped.setdefault(stem, []).append(term_id)
                found = {stem: tuple(ids) for stem, ids in grouped.items()}
                self._stem_indexes[language] = found
        return found

    def stem_of(self, norm: str, language: str) -> str:
        key = (language, norm)
        stem = self._stems.get(key)
        if stem is None:
            stem = stem_words([norm], language)[0]
            self._stems[key] = stem  # racing writers store the same value
        return stem

    def lexicon(self, language: str | None, distinct: set[str]) -> _Lexicon:
        """The lexicon for items in `language`, knowing every token in `distinct` (learning the new ones).

        Thread-safe without a lock: a token's candidates are stored before its stem, and `distinct - stems` decides
        what is new, so a reader never sees a token as known but its candidates missing; racing writers store the
        same values. A full lexicon is replaced, not cleared, so a scan in progress keeps a consistent one.
        """
        lexicon = self._lexicons.get(language)
        if lexicon is None or len(lexicon.stems) > _LEXICON_LIMIT:
            lexicon = self._lexicons[language] = _Lexicon()
        new = distinct.difference(lexicon.stems)
        if new:
            self._learn(lexicon, new, language)
        return lexicon

    def _learn(self, lexicon: _Lexicon, new: set[str], language: str | None) -> None:
        # Most new tokens start no term, so each test is a comprehension over all new tokens (C-speed loops)
        # and only the few that pass get Python work.
        if not self.uses_stems:
            groups: dict[str | None, list[str]] = {None: list(new)}
        elif "".join(new).isascii():
            groups = {stemmer_language("a", language): list(new)}
        else:
            groups = {}
            for norm in new:
                groups.setdefault(stemmer_language(norm, language), []).append(norm)
        exact = self.exact
        prefixes = self.prefixes
        for token_language, norms in groups.items():
            if token_language is None:
                stems: list[str | None] = [None] * len(norms)
                stem_index: dict[str, tuple[int, ...]] = {}
            else:
                stems = list(stem_words(norms, token_language))
                stem_index = self.stem_index(token_language)
            found: dict[str, list[int]] = {norm: list(exact[norm]) for norm in norms if norm in exact}
            for norm, stem in [(n, s) for n, s in zip(norms, stems, strict=True) if s in stem_index]:
                found.setdefault(norm, []).extend(stem_index[stem])
            for length in self.prefix_lengths:
                for norm in [n for n in norms if n[:length] in prefixes and len(n) >= length]:
                    found.setdefault(norm, []).extend(prefixes[norm[:length]])
            for norm, ids in found.items():
                lexicon.candidates[norm] = tuple(dict.fromkeys(ids))
                lexicon.hitting.add(norm)
            # Last: a token counts as known once it has a stem, and by then its candidates are in place.
            lexicon.stems.update(zip(norms, [(token_language, stem) for stem in stems], strict=True))


class RuleSet:
    """Rules compiled for matching. Build with monitor.rules.load_rules; immutable afterwards."""

    def __init__(self, rules: tuple[Rule, ...], actors: Mapping[str, Actor] | None = None) -> None:
        self._rules = rules
        self._by_id = {rule.id: rule for rule in rules}
        self._actors = dict(actors or {})
        self._term_ids: dict[tuple[object, ...], int] = {}
        terms: list[Term] = []

        def term_id(term: Term) -> int:
            found = self._term_ids.get(term.key)
            if found is None:
                found = len(terms)
                self._term_ids[term.key] = found
                terms.append(term)
            return found

        self._actor_terms: dict[str, dict[str, tuple[int, ...]]] = {}
        for name, actor in self._actors.items():
            self._actor_terms[name] = {
                kind: tuple(term_id(t) for t in getattr(actor, kind))
                for kind in ("names", "aliases", "context", "roles", "exclude", "exclude_context")
            }
        self._interned: dict[tuple[Any, ...], _CNode] = {}
        self._conditions: list[_CNode] = []
        self._weights: list[tuple[tuple[int, float], ...]] = []
        term_rules: dict[int, set[int]] = {}
        fields_used: set[str] = set()
        for rule_index, rule in enumerate(rules):
            used_terms: set[int] = set()
            self._conditions.append(self._compile(rule.condition, term_id, used_terms, fields_used))
            weights = tuple((term_id(term), weight) for term, weight in rule.weights)
            self._weights.append(weights)
            used_terms.update(tid for tid, _ in weights)
            fields_used.update(rule.fields)
            for tid in used_terms:
                term_rules.setdefault(tid, set()).add(rule_index)
        self._term_rules = {tid: tuple(sorted(ids)) for tid, ids in term_rules.items()}
        self._fields_used = tuple(name for name in FIELD_ORDER if name in fields_used)
        self._index = _Index(terms)

    def _compile(self, node: Node, term_id: Any, used: set[int], fields_used: set[str]) -> _CNode:
        # Equal subexpressions (the default rules repeat "@putin OR $russia" and "$peace-strong NEAR/sentence
        # $other-conflicts" many times) compile to one shared node, so an item's _Evaluation computes each once.
        compiled = self._compile_node(node, term_id, used, fields_used)
        return self._interned.setdefault(_structure(compiled), compiled)

    def _compile_node(self, node: Node, term_id: Any, used: set[int], fields_used: set[str]) -> _CNode:
        if isinstance(node, TermNode):
            tid = term_id(node.term)
            used.add(tid)
            fields_used.update(node.fields)
            return ("term", tid, node.fields)
        if isinstance(node, ActorNode):
            for ids in self._actor_terms[node.actor].values():
                used.update(ids)
            fields_used.update(node.fields)
            return ("actor", node.actor, node.fields)
        if isinstance(node, AndNode):
            return ("and", tuple(self._compile(c, term_id, used, fields_used) for c in node.children))
        if isinstance(node, OrNode):
            return (
                "or",
                *_split_terms(tuple(self._compile(c, term_id, used, fields_used) for c in node.children)),
            )
        if isinstance(node, NotNode):
            return ("not", self._compile(node.child, term_id, used, fields_used))
        if isinstance(node, NearNode):
            left = self._compile(node.left, term_id, used, fields_used)
            right = self._compile(node.right, term_id, used, fields_used)
            return ("near", left, right, node.distance)
        others, terms = _split_terms(
            tuple(self._compile(c, term_id, used, fields_used) for c in node.children)
        )
        return ("atleast", others, node.minimum, terms)

    # --- public surface -------------------------------------------------------------------------------------

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(rule.id for rule in self._rules)

    @property
    def actors(self) -> Mapping[str, Actor]:
        return dict(self._actors)

    def get(self, rule_id: str) -> Rule:
        """The rule with this id; KeyError naming it when there is none."""
        try:
            return self._by_id[rule_id]
        except KeyError:
            raise KeyError(f"no rule with id {rule_id!r}") from None

    def __len__(self) -> int:
        return len(self._rules)

    def match(self, item: Item, analysis: Analysis | None = None) -> list[Match]:
        """Every rule that fires on `item`, in rule order, each with its hits. With `analysis` (the item's
        `monitor.analysis.Analysis`), its tokens and language are used instead of tokenizing again."""
        return self._match(item, None, analysis)[0]

    def match_with_actors(
        self, item: Item, analysis: Analysis | None = None
    ) -> tuple[list[Match], ActorMentions]:
        """`match`, and the actors the item mentions in its title or summary (by the same rules as `@actor`
        terms: names, roles, confirmed aliases, exclusions), whether or not a rule fired. The story index uses
        the actor ids as language-independent evidence: Путин, Putin and Wladimir Putin are one id."""
        return self._match(item, None, analysis, with_actors=True)

    def match_text(self, rule_id: str, text: str, language: str | None = None) -> Match | None:
        """Check one rule against a text: its first line is the title, the rest the summary (see module doc)."""
        rule_index = self._rules.index(self.get(rule_id))
        title, _, summary = text.strip().partition("\n")
        item = Item(
            key="text",
            feed_url="",
            feed_title="",
            guid=None,
            link=None,
            url=None,
            title=title.strip(),
            summary=summary.strip(),
            content="",
            categories=(),
            language=language,
            published=None,
            content_hash="",
        )
        found = self._match(item, rule_index, None)[0]
        return found[0] if found else None

    # --- matching -------------------------------------------------------------------------------------------

    def _field_texts(self, item: Item) -> Iterable[tuple[str, str]]:
        for name in self._fields_used:
            if name == "title":
                yield name, item.title
            elif name == "summary":
                yield name, item.summary
            elif name == "content":
                yield name, item.content
            elif name == "categories":
                yield name, "\n".join(item.categories)
            elif name == "link":
                yield name, item.link or ""
            else:
                yield name, "\n".join(part for part in (item.feed_title, item.feed_url) if part)

    def _match(
        self, item: Item, only: int | None, analysis: Analysis | None, *, with_actors: bool = False
    ) -> tuple[list[Match], ActorMentions]:
        if analysis is not None:
            language = analysis.language
        else:
            language = item.language
            if language is None and self._index.uses_stems:
                language = detect_language(f"{item.title}\n{item.summary}\n{item.content[:2000]}")
        hits: dict[int, list[_HitRec]] = {}
        texts = dict(self._field_texts(item))
        if with_actors:
            for field, text in (("title", item.title), ("summary", item.summary)):
                texts.setdefault(field, text)
        field_tokens: dict[str, Tokens] = {}
        for field, text in texts.items():
            if text:
                shared = (
                    analysis.tokens(field) if analysis is not None and analysis.covers(field, text) else None
                )
                tokens, records = self._scan(field, text, language, shared)
                field_tokens[field] = tokens
                for rec in records:
                    hits.setdefault(rec.term, []).append(rec)
        if only is not None:
            candidates: Iterable[int] = (only,)
        else:
            found: set[int] = set()
            for tid in hits:
                found.update(self._term_rules.get(tid, ()))
            candidates = sorted(found)
        evaluation = _Evaluation(hits, self._actor_terms, texts, field_tokens, self._index)
        matches: list[Match] = []
        for rule_index in candidates:
            rule = self._rules[rule_index]
            if not _in_scope(rule, item, language):
                continue
            match = evaluation.rule(
                rule, self._conditions[rule_index], self._weights[rule_index], self._index
            )
            if match is not None:
                matches.append(match)
        actors = NO_ACTORS
        if with_actors and hits:
            mentions = [
                (name, m)
                for name in self._actor_terms
                for m in evaluation.actor(name)
                if m.field in ("title", "summary")
            ]
            actors = ActorMentions(
                frozenset(name for name, _ in mentions), tuple((m.field, m.start, m.end) for _, m in mentions)
            )
        return matches, actors

    def _scan(
        self, field: str, text: str, language: str | None, tokens: Tokens | None = None
    ) -> tuple[Tokens, list[_HitRec]]:
        # Hot path: per token only C-level work (tokenizing, one set, one intersection); Python loops touch only
        # tokens never seen before (see _Lexicon) and tokens that may start a term.
        index = self._index
        if tokens is None:
            tokens = tokenize(text)
        norms = tokens.norms
        count = len(norms)
        if not count:
            return tokens, []
        distinct = set(norms)
        lexicon = index.lexicon(language, distinct)
        candidates: list[tuple[int, int]] = []
        found = distinct & lexicon.hitting
        if found:
            known = lexicon.candidates
            for position in [i for i, norm in enumerate(norms) if norm in found]:
                candidates.extend((tid, position) for tid in known[norms[position]])
        records: list[_HitRec] = []
        for tid, position in candidates:
            patterns = index.terms[tid].patterns
            last = position + len(patterns) - 1
            if last < count and all(
                _pattern_ok(pattern, tokens, position + offset, lexicon, index)
                for offset, pattern in enumerate(patterns)
            ):
                records.append(_HitRec(tid, field, position, last, tokens.start(position), tokens.end(last)))
        for tid, regex in index.regexes:
            for found_regex in regex.finditer(text):
                if found_regex.end() <= found_regex.start():
                    continue
                first = min(tokens.token_at(found_regex.start()), count - 1)
                last = max(first, min(tokens.token_at(found_regex.end() - 1), count - 1))
                records.append(_HitRec(tid, field, first, last, found_regex.start(), found_regex.end()))
        return tokens, records


def _pattern_ok(pattern: Pattern, tokens: Tokens, position: int, lexicon: _Lexicon, index: _Index) -> bool:
    norm = tokens.norms[position]
    kind = pattern.kind
    if kind is PatternKind.EXACT:
        ok = norm == pattern.norm
    elif kind is PatternKind.NAME:
        ok = norm in pattern.forms
    elif kind is PatternKind.PREFIX:
        ok = norm.startswith(pattern.norm)
    else:
        ok = norm == pattern.norm
        if not ok:
            token_language, stem = lexicon.stems[norm]
            ok = (
                stem is not None
                and token_language is not None
                and stem == index.stem_of(pattern.norm, token_language)
            )
    return ok and (pattern.surface is None or pattern.case_ok(tokens.surface(position)))


def _in_scope(rule: Rule, item: Item, language: str | None) -> bool:
    if rule.languages and language not in rule.languages:
        return False
    if rule.tags and not any(tag in rule.tags for tag in item.feed_tags):
        return False
    return not rule.feeds or any(
        pattern == item.feed_url or fnmatch.fnmatchcase(item.feed_url, pattern) for pattern in rule.feeds
    )


class _Evaluation:
    """Evaluates compiled conditions against one item's hits; caches actor mentions for the item."""

    def __init__(
        self,
        hits: dict[int, list[_HitRec]],
        actor_terms: dict[str, dict[str, tuple[int, ...]]],
        texts: dict[str, str],
        tokens: dict[str, Tokens],
        index: _Index,
    ) -> None:
        self.hits = hits
        self.index = index
        self.texts = texts
        self.tokens = tokens
        self.actor_terms = actor_terms
        self.mentions: dict[str, list[_HitRec]] = {}
        # Results of compound nodes by node identity (compiled nodes are shared, see RuleSet._compile); a
        # result list is never changed once returned.
        self.results: dict[int, list[_HitRec] | None] = {}
        self.sentences: dict[tuple[str, int], int] = {}

    def rule(
        self, rule: Rule, condition: _CNode, weights: tuple[tuple[int, float], ...], index: _Index
    ) -> Match | None:
        evidence = self.node(condition)
        if evidence is None:
            return None
        score: float | None = None
        if weights:
            score = 0.0
            for tid, weight in weights:
                scored = [rec for rec in self.hits.get(tid, ()) if rec.field in rule.fields]
                score += weight * len(scored)
                if weight > 0:
                    evidence = [*evidence, *scored]
            if rule.threshold is not None and score < rule.threshold:
                return None
        if not evidence:
            return None
        return Match(
            rule_id=rule.id,
            rule_title=rule.title,
            hits=_to_hits(evidence, index, self.texts),
            notify=rule.notify,
            score=score,
        )

    def node(self, node: _CNode) -> list[_HitRec] | None:
        """The hits that make `node` true ([] for a true NOT), or None when it is false."""
        kind = node[0]
        if kind == "term":
            fields = node[2]
            found = [rec for rec in self.hits.get(node[1], ()) if rec.field in fields]
            return found or None
        if kind == "actor":
            fields = node[2]
            found = [rec for rec in self.actor(node[1]) if rec.field in fields]
            return found or None
        results = self.results
        key = id(node)
        if key in results:
            return results[key]
        result = results[key] = self.compound(node)
        return result

    def compound(self, node: _CNode) -> list[_HitRec] | None:
        kind = node[0]
        hits = self.hits
        if kind == "and":
            collected: list[_HitRec] = []
            for child in node[1]:
                if child[0] == "term" and child[1] not in hits:
                    return None  # shortcut, as for "or" and "atleast" below: most terms have no hit
                result = self.node(child)
                if result is None:
                    return None
                collected.extend(result)
            return collected
        if kind == "or":
            collected = self.term_hits(node[2])
            any_true = bool(collected)
            for child in node[1]:
                result = self.node(child)
                if result is not None:
                    any_true = True
                    collected.extend(result)
            return collected if any_true else None
        if kind == "not":
            return [] if self.node(node[1]) is None else None
        if kind == "near":
            return self.near(node[1], node[2], node[3])
        collected = self.term_hits(node[3])
        for child in node[1]:
            result = self.node(child)
            if result:
                collected.extend(result)
        distinct = {(rec.field, rec.start, rec.end) for rec in collected}
        return collected if collected and len(distinct) >= node[2] else None

    def term_hits(self, terms: dict[int, tuple[Any, ...]]) -> list[_HitRec]:
        """The hits of the given terms (id -> field sets it is searched in), visiting only terms that hit."""
        collected: list[_HitRec] = []
        hits = self.hits
        for tid in hits.keys() & terms.keys():
            for fields in terms[tid]:
                collected.extend(rec for rec in hits[tid] if rec.field in fields)
        return collected

    def near(self, left_node: _CNode, right_node: _CNode, distance: int | None) -> list[_HitRec] | None:
        left = self.node(left_node)
        right = self.node(right_node) if left else None
        if not left or not right:
            return None
        used: dict[_HitRec, None] = {}
        if distance is None:
            # Same sentence: group the right side by (field, sentence) once; the order of `used` is that of the
            # pairwise loop below (each left hit, then its close right hits in their order).
            by_sentence: dict[tuple[str, int], list[_HitRec]] = {}
            for b in right:
                by_sentence.setdefault((b.field, self.sentence(b)), []).append(b)
            for a in left:
                close_hits = by_sentence.get((a.field, self.sentence(a)))
                if close_hits:
                    used[a] = None
                    for b in close_hits:
                        used[b] = None
            return list(used) or None
        for a in left:
            for b in right:
                if a.field != b.field:
                    continue
                gap = max(b.first - a.last - 1, a.first - b.last - 1, 0)
                if gap <= distance:
                    used[a] = None
                    used[b] = None
        return list(used) or None

    def uninformative_capital(self, rec: _HitRec) -> bool:
        """True for a case-sensitive hit at the start of a sentence, where a capital says nothing about the word
        ("Путина на Камчатке …": the fishing season, capitalized as the first word)."""
        patterns = self.index.terms[rec.term].patterns
        if not patterns or patterns[0].surface is None:
            return False
        return rec.first == 0 or self.sentence(rec) != self.tokens[rec.field].sentence_of(rec.first - 1)

    def sentence(self, rec: _HitRec) -> int:
        # Sentence boundaries are found only for fields where a rule asks about them, and each hit's sentence
        # once per item (NEAR/sentence and the actors' exclude_context ask about the same hits again and again).
        key = (rec.field, rec.first)
        found = self.sentences.get(key)
        if found is None:
            found = self.sentences[key] = self.tokens[rec.field].sentence_of(rec.first)
        return found

    def actor(self, name: str) -> list[_HitRec]:
        cached = self.mentions.get(name)
        if cached is not None:
            return cached
        terms = self.actor_terms[name]

        def found(kind: str) -> list[_HitRec]:
            return [rec for tid in terms[kind] for rec in self.hits.get(tid, ())]

        mentions = found("names") + found("roles")
        if terms["aliases"] and (mentions or found("context")):
            mentions += found("aliases")
        excluded = found("exclude")
        if excluded:
            mentions = [
                m
                for m in mentions
                if not any(x.field == m.field and x.start < m.end and m.start < x.end for x in excluded)
            ]
        context_hits = found("exclude_context")
        if context_hits:
            blocked = {(x.field, self.sentence(x)) for x in context_hits}
            mentions = [
                m
                for m in mentions
                if (m.field, self.sentence(m)) not in blocked and not self.uninformative_capital(m)
            ]
        result = [m._replace(actor=name) for m in mentions]
        self.mentions[name] = result
        return result


def _to_hits(records: Iterable[_HitRec], index: _Index, texts: dict[str, str]) -> tuple[Hit, ...]:
    # The actor is part of the key: the same term on the same span, found directly and as an actor's name, must
    # come out in one order in every process (a set's order of str follows the process's hash seed).
    ordered = sorted(
        set(records), key=lambda r: (_FIELD_RANK.get(r.field, 99), r.start, r.end, r.term, r.actor or "")
    )
    hits: list[Hit] = []
    seen: set[tuple[str, int, int]] = set()
    for rec in ordered:
        source = index.terms[rec.term].source
        label = f"@{rec.actor}: {source}" if rec.actor else source
        key = (rec.field, rec.start, rec.end)
        if key in seen:  # several terms on the same span (forms of one phrase): show the first
            continue
        seen.add(key)
        hits.append(
            Hit(
                term=label,
                field=rec.field,
                start=rec.start,
                end=rec.end,
                text=texts[rec.field][rec.start : rec.end],
            )
        )
    return tuple(hits)
