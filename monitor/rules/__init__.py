"""The multilingual rule language: load rule files, compile them once, match items.

    ruleset = load_rules(Path("rules"))       # a file or a directory; RuleError with file:line:column
    ruleset.match(item) -> list[Match]        # pure, thread-safe
    ruleset.match_text("actor-putin", "Путин заявил ...") -> Match | None

The semantics (normalization, what a term matches, how NEAR counts) are in monitor.rules.matcher; the rule
file format in monitor.rules.schema and the README ("Writing rules").
"""

from monitor.rules.loader import load_rules
from monitor.rules.matcher import RuleSet
from monitor.rules.schema import Actor, Rule

__all__ = ["Actor", "Rule", "RuleSet", "load_rules"]
