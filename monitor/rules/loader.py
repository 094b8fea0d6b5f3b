"""Load rule files into a compiled RuleSet; every problem becomes a RuleError with file:line:column.

Loading runs in three passes over the sorted files: validate each file's shape (pydantic), collect the
vocabularies and actors of all files (names are global, duplicates are errors), then parse every term and
expression of every rule. Nothing is compiled until everything parsed, so one bad file never leaves half a rule
set behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from monitor.errors import ConfigError, RuleError
from monitor.rules.expr import (
    ActorNode,
    AndNode,
    AtLeastNode,
    ExprSyntaxError,
    Node,
    NotNode,
    OrNode,
    TermNode,
    parse_expression,
)
from monitor.rules.matcher import RuleSet
from monitor.rules.schema import (
    DEFAULT_FIELDS,
    Actor,
    ActorModel,
    Escalation,
    Rule,
    RuleFileModel,
    RuleModel,
)
from monitor.rules.terms import Term, TermSyntaxError, parse_term
from monitor.timeutil import format_duration, parse_duration
from monitor.yamlsource import MAX_YAML_BYTES, LocatedYaml, load_yaml, validation_error

__all__ = ["load_rules", "rule_files"]

PathKey = tuple[str | int, ...]


def rule_files(path: Path) -> list[Path]:
    """The rule files at `path`: the file itself, or every *.yaml / *.yml below the directory, sorted."""
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    raise RuleError("no such rule file or directory", file=str(path))


def load_rules(path: Path) -> RuleSet:
    """Load, validate and compile the rules at `path` (a .yaml file or a directory of them).

    Raises RuleError naming the file, line, column and field of the first problem.
    """
    files = [_SourceFile.read(p) for p in rule_files(Path(path))]
    loader = _Loader(files)
    return loader.build()


@dataclass(frozen=True, slots=True)
class _SourceFile:
    doc: LocatedYaml
    lines: tuple[str, ...]
    model: RuleFileModel

    @classmethod
    def read(cls, path: Path) -> _SourceFile:
        try:
            if path.stat().st_size > MAX_YAML_BYTES:
                raise RuleError(
                    f"larger than {MAX_YAML_BYTES // 1024} KiB; refusing to read it", file=str(path)
                )
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise RuleError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=str(path)) from exc
        except OSError as exc:
            raise RuleError(f"cannot read: {exc.strerror or exc}", file=str(path)) from exc
        try:
            doc = load_yaml(text, str(path))
        except RuleError:
            raise
        except ConfigError as exc:
            raise RuleError(exc.message, file=exc.file, line=exc.line, column=exc.column) from exc
        data: Any = doc.data
        prefix: PathKey = ()
        if data is None:
            data = {}
        elif isinstance(data, list):
            data, prefix = {"rules": data}, ("rules",)
        elif isinstance(data, dict) and "id" in data:
            data, prefix = {"rules": [data]}, ("rules", 0)
        if not isinstance(data, dict):
            raise RuleError(
                "a rule file holds a mapping with vocabularies, actors and rules (or one rule, or a list of rules)",
                file=str(path),
                line=1,
                column=1,
            )
        if prefix:
            # The document was wrapped in {"rules": ...}: key its positions the way the wrapped data is keyed.
            positions = {(*prefix, *key): position for key, position in doc.positions.items()}
            key_positions = {(*prefix, *key): position for key, position in doc.key_positions.items()}
            doc = LocatedYaml(data, doc.file, positions, key_positions)
        try:
            model = RuleFileModel.model_validate(data)
        except ValidationError as exc:
            raise validation_error(exc, doc, error_type=RuleError) from exc
        return cls(doc, tuple(text.splitlines()), model)

    def error(self, path: PathKey, message: str, offset: int | None = None) -> RuleError:
        """A RuleError at `path` (a model path); `offset` points inside a string scalar when given."""
        position = self.doc.locate(path)
        column = position.column
        if offset is not None:
            line_text = self.lines[position.line - 1] if 0 < position.line <= len(self.lines) else ""
            opener = line_text[column - 1 : column]
            if opener in ("'", '"'):
                column += 1 + offset
            elif opener not in ("|", ">"):
                column += offset
        field = ".".join(str(part) for part in path)
        return RuleError(message, file=self.doc.file, line=position.line, column=column, field=field)


@dataclass(frozen=True, slots=True)
class _Named:
    source: _SourceFile
    path: PathKey


class _Loader:
    def __init__(self, files: list[_SourceFile]) -> None:
        self.files = files
        self.vocab_sources: dict[str, _Named] = {}
        self.actor_sources: dict[str, _Named] = {}
        self.vocab_terms: dict[str, tuple[Term, ...]] = {}
        self.actors: dict[str, Actor] = {}

    def build(self) -> RuleSet:
        for source in self.files:
            for name in source.model.vocabularies:
                self._declare(self.vocab_sources, "vocabulary", name, source, ("vocabularies", name))
            for name in source.model.actors:
                self._declare(self.actor_sources, "actor", name, source, ("actors", name))
        for name in self.vocab_sources:
            self._vocabulary(name, ())
        for name, named in self.actor_sources.items():
            self.actors[name] = self._actor(name, named)
        rules: list[Rule] = []
        seen: dict[str, _Named] = {}
        for source in self.files:
            for index, model in enumerate(source.model.rules):
                path: PathKey = ("rules", index)
                if model.id in seen:
                    earlier = seen[model.id]
                    where = earlier.source.doc.locate(earlier.path)
                    raise source.error(
                        (*path, "id"),
                        f"duplicate rule id {model.id!r} (first defined at {where.file}:{where.line})",
                    )
                seen[model.id] = _Named(source, path)
                if model.enabled:
                    rules.append(self._rule(model, source, path))
        return RuleSet(tuple(rules), self.actors)

    def _declare(
        self, table: dict[str, _Named], kind: str, name: str, source: _SourceFile, path: PathKey
    ) -> None:
        if name in table:
            earlier = table[name]
            where = earlier.source.doc.locate(earlier.path)
            raise source.error(
                path, f"duplicate {kind} {name!r} (first defined at {where.file}:{where.line})"
            )
        if not name or name[0] in "$@" or any(c.isspace() for c in name):
            raise source.error(path, f"invalid {kind} name {name!r}: use letters, digits, '-', '_' or '.'")
        table[name] = _Named(source, path)

    def _vocabulary(self, name: str, chain: tuple[str, ...]) -> tuple[Term, ...]:
        if name in self.vocab_terms:
            return self.vocab_terms[name]
        named = self.vocab_sources[name]
        if name in chain:
            cycle = " → ".join((*chain, name))
            raise named.source.error(named.path, f"vocabularies refer to each other in a cycle: {cycle}")
        entries = named.source.model.vocabularies[name]
        terms = self._term_list(entries, named.source, named.path, chain=(*chain, name))
        self.vocab_terms[name] = terms
        return terms

    def _term_list(
        self,
        entries: list[str],
        source: _SourceFile,
        path: PathKey,
        *,
        name_mode: bool = False,
        chain: tuple[str, ...] = (),
    ) -> tuple[Term, ...]:
        """Parse a list of terms; `$vocabulary` entries are expanded in place."""
        terms: list[Term] = []
        for index, entry in enumerate(entries):
            entry_path = (*path, index)
            if entry.startswith("$"):
                ref = entry[1:]
                if ref not in self.vocab_sources:
                    raise source.error(entry_path, f"unknown vocabulary {entry!r}", 0)
                terms.extend(self._vocabulary(ref, chain))
                continue
            if entry.startswith("@"):
                raise source.error(entry_path, "an actor cannot be used inside a vocabulary or actor list", 0)
            terms.append(self._term(entry, source, entry_path, name_mode=name_mode))
        return tuple(terms)

    def _term(self, entry: str, source: _SourceFile, path: PathKey, *, name_mode: bool = False) -> Term:
        try:
            return parse_term(entry, name=name_mode)
        except TermSyntaxError as exc:
            raise source.error(path, str(exc), exc.offset) from None

    def _actor(self, name: str, named: _Named) -> Actor:
        model: ActorModel = named.source.model.actors[name]
        source, path = named.source, named.path

        def terms(key: str, name_mode: bool = False) -> tuple[Term, ...]:
            return self._term_list(getattr(model, key), source, (*path, key), name_mode=name_mode)

        if model.aliases and not model.context:
            raise source.error(
                (*path, "aliases"), "aliases need a `context` list (terms that confirm the actor)"
            )
        position = source.doc.locate(path)
        return Actor(
            name=name,
            names=terms("names", True),
            aliases=terms("aliases", True),
            context=terms("context"),
            roles=terms("roles"),
            exclude=terms("exclude"),
            exclude_context=terms("exclude_context"),
            file=position.file,
            line=position.line,
        )

    def _entry_node(self, entry: str, source: _SourceFile, path: PathKey, fields: frozenset[str]) -> Node:
        if entry.startswith("$"):
            if entry[1:] not in self.vocab_sources:
                raise source.error(path, f"unknown vocabulary {entry!r}", 0)
            return OrNode(tuple(TermNode(term, fields) for term in self._vocabulary(entry[1:], ())))
        if entry.startswith("@"):
            if entry[1:] not in self.actors:
                raise source.error(path, f"unknown actor {entry!r}", 0)
            return ActorNode(entry[1:], fields)
        return TermNode(self._term(entry, source, path), fields)

    def _rule(self, model: RuleModel, source: _SourceFile, path: PathKey) -> Rule:
        fields = frozenset(model.fields or DEFAULT_FIELDS)
        parts: list[Node] = []
        if model.any:
            children = tuple(
                self._entry_node(entry, source, (*path, "any", i), fields)
                for i, entry in enumerate(model.any)
            )
            parts.append(AtLeastNode(children, model.min_count))
        elif model.min_count != 1:
            raise source.error(
                (*path, "min_count"), "min_count counts the hits of `any`, which this rule lacks"
            )
        parts.extend(
            self._entry_node(entry, source, (*path, "all", i), fields) for i, entry in enumerate(model.all)
        )
        if model.match is not None:
            try:
                parts.append(
                    parse_expression(
                        model.match,
                        fields=fields,
                        vocabularies=self._resolve_vocabulary,
                        actors=frozenset(self.actors),
                    )
                )
            except ExprSyntaxError as exc:
                raise source.error((*path, "match"), str(exc), exc.offset) from None
        weights = tuple(
            (self._term(term, source, (*path, "weights", term)), weight)
            for term, weight in model.weights.items()
        )
        if weights and model.threshold is None:
            raise source.error(
                (*path, "weights"), "weights need a `threshold` (the score at which the rule fires)"
            )
        if model.threshold is not None and not weights:
            raise source.error((*path, "threshold"), "threshold needs `weights` to score")
        if model.threshold is not None and model.threshold <= 0:
            raise source.error((*path, "threshold"), "threshold must be above 0")
        if not parts and not weights:
            raise source.error(path, "rule looks for nothing: give it any, all, match or weights")
        if parts and not _positive(AndNode(tuple(parts))) and not weights:
            raise source.error(path, "rule can fire on the absence of terms alone: add a term it must find")
        parts.extend(
            NotNode(self._entry_node(entry, source, (*path, "none", i), fields))
            for i, entry in enumerate(model.none)
        )
        for index, language in enumerate(model.languages):
            if not (language.isalpha() and language.islower() and 2 <= len(language) <= 3):
                raise source.error(
                    (*path, "languages", index), f"not an ISO 639-1 language code: {language!r}"
                )
        position = source.doc.locate(path)
        condition: Node = parts[0] if len(parts) == 1 else AndNode(tuple(parts))
        return Rule(
            id=model.id,
            title=model.title or model.id,
            description=model.description,
            condition=condition if parts else AndNode(()),
            weights=weights,
            threshold=model.threshold,
            fields=fields,
            feeds=tuple(model.feeds),
            tags=tuple(model.tags),
            languages=tuple(model.languages),
            notify=tuple(model.notify) if model.notify is not None else None,
            realert=self._duration(model.realert, source, (*path, "realert")),
            group_wait=self._duration(model.group_wait, source, (*path, "group_wait")),
            file=position.file,
            line=position.line,
            severity=model.severity,
            escalate=self._escalation(model, source, path),
        )

    def _escalation(self, model: RuleModel, source: _SourceFile, path: PathKey) -> Escalation | None:
        if model.escalate is None:
            return None
        within = self._duration(model.escalate.within, source, (*path, "escalate", "within"))
        if within <= timedelta(0):
            raise source.error((*path, "escalate", "within"), "the window must be longer than 0s")
        return Escalation(
            outlets=model.escalate.outlets,
            within=within,
            severity=model.escalate.severity,
            within_text=format_duration(within),
        )

    def _resolve_vocabulary(self, name: str) -> tuple[Term, ...]:
        if name not in self.vocab_sources:
            raise KeyError(name)
        return self._vocabulary(name, ())

    @staticmethod
    def _duration(value: str | float | None, source: _SourceFile, path: PathKey) -> Any:
        if value is None:
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise source.error(path, str(exc)) from None


def _positive(node: Node) -> bool:
    """True when the node can only be true if some term was found (not by absences alone)."""
    if isinstance(node, TermNode | ActorNode):
        return True
    if isinstance(node, AndNode):
        return any(_positive(child) for child in node.children)
    if isinstance(node, OrNode | AtLeastNode):
        return bool(node.children) and all(_positive(child) for child in node.children)
    return not isinstance(node, NotNode)  # NEAR needs hits on both sides; NOT needs none
