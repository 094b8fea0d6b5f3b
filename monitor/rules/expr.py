"""The boolean expression language of `match:` and its syntax tree. Pure.

    expr    := or
    or      := and ("OR" and)*
    and     := not ("AND" not)*
    not     := "NOT" not | near
    near    := scoped (("NEAR/" n | "NEAR/sentence") scoped)*
    scoped  := FIELD ":" primary | primary
    primary := "(" expr ")" | term

Operators are upper case (a lower-case "and" is a word to look for). A term is one word (`Putin`, `Seltenerd*`,
`=REE`), an exact phrase in double quotes, an inflected phrase in single quotes ('rare earth'), a regular
expression in slashes, `$vocabulary` or `@actor`. Two terms with no operator between them are an error rather
than a guess. FIELD is one of title, summary, content, categories, link, feed; an inner scope replaces an outer one.
NOT may not appear inside a NEAR operand (the distance to an absence means nothing).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from monitor.rules.terms import Term, TermSyntaxError, parse_term

__all__ = [
    "ALL_FIELDS",
    "ActorNode",
    "AndNode",
    "AtLeastNode",
    "ExprSyntaxError",
    "NearNode",
    "Node",
    "NotNode",
    "OrNode",
    "TermNode",
    "parse_expression",
]

ALL_FIELDS = ("title", "summary", "content", "categories", "link", "feed")


class ExprSyntaxError(ValueError):
    """A malformed expression; `offset` is the character offset of the problem in the expression text."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass(frozen=True, slots=True)
class TermNode:
    term: Term
    fields: frozenset[str]


@dataclass(frozen=True, slots=True)
class ActorNode:
    actor: str
    fields: frozenset[str]


@dataclass(frozen=True, slots=True)
class AndNode:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class OrNode:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class NotNode:
    child: Node


@dataclass(frozen=True, slots=True)
class NearNode:
    left: Node
    right: Node
    distance: int | None  # words allowed between the two; None means "in the same sentence"


@dataclass(frozen=True, slots=True)
class AtLeastNode:
    """True when the children together have at least `minimum` hits (occurrences); a rule's `any` + `min_count`."""

    children: tuple[Node, ...]
    minimum: int


Node = TermNode | ActorNode | AndNode | OrNode | NotNode | NearNode | AtLeastNode

# Resolves "$name" to the vocabulary's terms; raises KeyError for an unknown name.
VocabularyResolver = Callable[[str], tuple[Term, ...]]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "(" ")" AND OR NOT NEAR TERM FIELD
    text: str
    offset: int
    distance: int | None = None


_LEXEME = re.compile(
    r"""\s*(?:
        (?P<open>\() | (?P<close>\)) |
        (?P<near>NEAR/(?P<n>\S*?)(?=[\s()]|$)) |
        (?P<op>AND|OR|NOT)(?=[\s()]|$) |
        (?P<field>[a-z]+):(?=\S) |
        (?P<term>=?"[^"]*"? | '[^']*'? | /(?:\\.|[^/\\])*/? | [^\s()"']+)
    )""",
    re.VERBOSE,
)


def _lex(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        found = _LEXEME.match(text, position)
        if found is None or found.end() == position:
            offset = position + len(text[position:]) - len(text[position:].lstrip())
            raise ExprSyntaxError(f"unexpected character {text[offset]!r}", offset)
        start = found.start(found.lastgroup) if found.lastgroup else position
        if found.group("open"):
            tokens.append(_Token("(", "(", start))
        elif found.group("close"):
            tokens.append(_Token(")", ")", start))
        elif found.group("near"):
            value = found.group("n")
            if value == "sentence":
                distance = None
            elif value.isdigit() and int(value) <= 1000:
                distance = int(value)
            else:
                raise ExprSyntaxError(
                    f"NEAR needs a word count or 'sentence' (NEAR/5, NEAR/sentence), got {value!r}", start
                )
            tokens.append(_Token("NEAR", found.group("near"), start, distance))
        elif found.group("op"):
            tokens.append(_Token(found.group("op"), found.group("op"), start))
        elif found.group("field"):
            tokens.append(_Token("FIELD", found.group("field"), start))
        else:
            term = found.group("term")
            if (
                term.startswith(('"', '="'))
                and (len(term) < 2 or not term.endswith('"') or term in ('"', '="'))
            ) or (term.startswith("'") and (len(term) < 2 or not term.endswith("'"))):
                raise ExprSyntaxError("unterminated quote", start)
            tokens.append(_Token("TERM", term, start))
        position = found.end()
    return tokens


# No real rule nests more than a handful of levels; parsing and matching recurse once per level.
MAX_EXPRESSION_DEPTH = 50
MAX_NEAR_CHAIN = 20


class _Parser:
    def __init__(
        self,
        text: str,
        fields: frozenset[str],
        vocabularies: VocabularyResolver,
        actors: frozenset[str],
    ) -> None:
        self.text = text
        self.tokens = _lex(text)
        self.index = 0
        self.fields = fields
        self.vocabularies = vocabularies
        self.actors = actors
        self.depth = 0  # open parentheses and NOTs: bounded, because parsing and matching recurse on them

    def deeper(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_EXPRESSION_DEPTH:
            raise ExprSyntaxError(
                f"expression nested deeper than {MAX_EXPRESSION_DEPTH} levels", token.offset
            )

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def parse(self) -> Node:
        if not self.tokens:
            raise ExprSyntaxError("empty expression", 0)
        node = self.parse_or(self.fields)
        extra = self.peek()
        if extra is not None:
            if extra.kind == ")":
                raise ExprSyntaxError("unbalanced parentheses: ')' without a matching '('", extra.offset)
            raise ExprSyntaxError(
                f"missing operator before {extra.text!r}: join terms with AND, OR, NEAR/n, or quote a phrase",
                extra.offset,
            )
        return node

    def parse_or(self, fields: frozenset[str]) -> Node:
        children = [self.parse_and(fields)]
        while (token := self.peek()) is not None and token.kind == "OR":
            self.take()
            children.append(self.parse_and(fields))
        return children[0] if len(children) == 1 else OrNode(tuple(children))

    def parse_and(self, fields: frozenset[str]) -> Node:
        children = [self.parse_not(fields)]
        while (token := self.peek()) is not None and token.kind == "AND":
            self.take()
            children.append(self.parse_not(fields))
        return children[0] if len(children) == 1 else AndNode(tuple(children))

    def parse_not(self, fields: frozenset[str]) -> Node:
        token = self.peek()
        if token is not None and token.kind == "NOT":
            self.take()
            self.deeper(token)
            node = NotNode(self.parse_not(fields))
            self.depth -= 1
            return node
        return self.parse_near(fields)

    def parse_near(self, fields: frozenset[str]) -> Node:
        start = self.peek()
        node = self.parse_scoped(fields)
        chained = 0
        while (token := self.peek()) is not None and token.kind == "NEAR":
            self.take()
            chained += 1
            if chained > MAX_NEAR_CHAIN:
                # A NEAR chain nests (((a NEAR b) NEAR c) ...): matching recurses once per link.
                raise ExprSyntaxError(f"too many NEAR in a row (at most {MAX_NEAR_CHAIN})", token.offset)
            operand_start = self.peek()
            right = self.parse_scoped(fields)
            for operand, at in ((node, start), (right, operand_start)):
                if _contains_not(operand):
                    raise ExprSyntaxError(
                        "NOT cannot be an operand of NEAR", at.offset if at else token.offset
                    )
            node = NearNode(node, right, token.distance)
        return node

    def parse_scoped(self, fields: frozenset[str]) -> Node:
        token = self.peek()
        if token is not None and token.kind == "FIELD":
            self.take()
            if token.text not in ALL_FIELDS:
                raise ExprSyntaxError(
                    f"unknown field {token.text!r} (fields: {', '.join(ALL_FIELDS)})", token.offset
                )
            narrowed = fields & {token.text} if token.text in fields else frozenset({token.text})
            return self.parse_primary(narrowed)
        return self.parse_primary(fields)

    def parse_primary(self, fields: frozenset[str]) -> Node:
        token = self.peek()
        if token is None:
            raise ExprSyntaxError("expression ends where a term or '(' was expected", len(self.text))
        if token.kind == "(":
            self.take()
            self.deeper(token)
            node = self.parse_or(fields)
            self.depth -= 1
            closing = self.peek()
            if closing is None or closing.kind != ")":
                raise ExprSyntaxError("unbalanced parentheses: '(' is never closed", token.offset)
            self.take()
            return node
        if token.kind == "NOT":
            raise ExprSyntaxError(
                "NOT cannot be an operand of NEAR or follow a field scope: put it outside (A NEAR/3 B AND NOT C)",
                token.offset,
            )
        if token.kind != "TERM":
            raise ExprSyntaxError(f"expected a term or '(' but found {token.text!r}", token.offset)
        self.take()
        return self.term_node(token, fields)

    def term_node(self, token: _Token, fields: frozenset[str]) -> Node:
        text = token.text
        if text.startswith("$"):
            try:
                terms = self.vocabularies(text[1:])
            except KeyError:
                raise ExprSyntaxError(f"unknown vocabulary {text!r}", token.offset) from None
            return OrNode(tuple(TermNode(term, fields) for term in terms))
        if text.startswith("@"):
            if text[1:] not in self.actors:
                raise ExprSyntaxError(f"unknown actor {text!r}", token.offset)
            return ActorNode(text[1:], fields)
        if text.startswith("'"):
            text = text[1:-1]
        try:
            term = parse_term(text)
        except TermSyntaxError as exc:
            raise ExprSyntaxError(str(exc), token.offset + exc.offset) from None
        return TermNode(term, fields)


def _contains_not(node: Node) -> bool:
    if isinstance(node, NotNode):
        return True
    if isinstance(node, AndNode | OrNode | AtLeastNode):
        return any(_contains_not(child) for child in node.children)
    if isinstance(node, NearNode):
        return _contains_not(node.left) or _contains_not(node.right)
    return False


def parse_expression(
    text: str,
    *,
    fields: frozenset[str],
    vocabularies: VocabularyResolver,
    actors: frozenset[str],
) -> Node:
    """Parse a `match:` expression. `fields` are the rule's fields, which unscoped terms search.

    Raises ExprSyntaxError with the character offset of the problem.
    """
    return _Parser(text, fields, vocabularies, actors).parse()
