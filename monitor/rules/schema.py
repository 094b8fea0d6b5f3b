"""The shape of a rule file (pydantic, for validation with located errors) and the compiled Rule and Actor.

A rule file is a mapping with any of `vocabularies`, `actors` and `rules`; a file may also hold one rule (a
mapping with `id`) or a list of rules. Names of vocabularies and actors are global to the loaded rule set.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from monitor.rules.expr import ALL_FIELDS, Node
from monitor.rules.terms import Term
from monitor.types import Severity

__all__ = [
    "DEFAULT_FIELDS",
    "Actor",
    "ActorModel",
    "Escalation",
    "EscalationModel",
    "Rule",
    "RuleFileModel",
    "RuleModel",
]

# Fields a rule searches unless it says otherwise: link and feed hold URLs and names, searched only on request.
DEFAULT_FIELDS = ("title", "summary", "content", "categories")

FieldName = Literal["title", "summary", "content", "categories", "link", "feed"]
assert set(ALL_FIELDS) == set(get_args(FieldName))  # the two lists must not drift apart

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class ActorModel(_Strict):
    """One actor: who or what, under every name the news uses."""

    description: str | None = None
    names: list[str] = Field(min_length=1)  # each is enough on its own
    aliases: list[str] = []  # enough only when a `context` term (or a name or role) is in the item too
    context: list[str] = []
    roles: list[str] = []  # role phrases that stand for the actor ("Kremlchef")
    exclude: list[str] = []  # a mention overlapping one of these is dropped ("Trump Jr.")
    exclude_context: list[str] = []  # a mention in a sentence with one of these is dropped


class EscalationModel(_Strict):
    """`escalate: {outlets: 5, within: 30m, severity: high}`: tell the channels once more, as an escalation,
    when a story this rule alerted is reported by that many distinct outlets within that window."""

    outlets: int = Field(ge=2, le=10_000)
    within: str | int | float
    severity: Severity = "high"


class RuleModel(_Strict):
    id: str = Field(pattern=_NAME)
    title: str | None = None
    description: str | None = None
    enabled: bool = True
    any: list[str] = []
    all: list[str] = []
    none: list[str] = []
    match: str | None = None
    min_count: int = Field(default=1, ge=1)
    weights: dict[str, float] = {}
    threshold: float | None = None
    fields: list[FieldName] | None = Field(default=None, min_length=1)
    feeds: list[str] = []
    tags: list[str] = []
    languages: list[str] = []
    notify: list[str] | None = None
    realert: str | int | float | None = None
    group_wait: str | int | float | None = None
    severity: Severity = "normal"
    escalate: EscalationModel | None = None


class RuleFileModel(_Strict):
    vocabularies: dict[str, list[str]] = {}
    actors: dict[str, ActorModel] = {}
    rules: list[RuleModel] = []


@dataclass(frozen=True, slots=True)
class Actor:
    """A compiled actor (see ActorModel for the meaning of each list)."""

    name: str
    names: tuple[Term, ...]
    aliases: tuple[Term, ...]
    context: tuple[Term, ...]
    roles: tuple[Term, ...]
    exclude: tuple[Term, ...]
    exclude_context: tuple[Term, ...]
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class Escalation:
    """A compiled `escalate`: `outlets` distinct outlets within `within` raise one escalation of `severity`."""

    outlets: int
    within: timedelta
    severity: Severity
    within_text: str  # as written ("30m"), for the notification


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled rule: what it looks for (`condition`, `weights`) and where (`fields`, scoping)."""

    id: str
    title: str
    description: str | None
    condition: Node
    weights: tuple[tuple[Term, float], ...]
    threshold: float | None
    fields: frozenset[str]
    feeds: tuple[str, ...]  # feed URLs or shell-style patterns (fnmatch); empty: every feed
    tags: tuple[str, ...]  # feed tags; empty: every feed
    languages: tuple[str, ...]  # ISO 639-1; empty: every language
    notify: tuple[str, ...] | None  # channel names; None: every channel
    realert: timedelta | None
    group_wait: timedelta | None
    file: str
    line: int
    severity: Severity = "normal"
    escalate: Escalation | None = None
