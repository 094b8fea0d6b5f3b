"""Human-readable explanations of why a rule fired: terms, fields and the matched spans of text. Pure."""

from __future__ import annotations

from monitor.types import Match

__all__ = ["format_explanation"]


def format_explanation(match: Match) -> str:
    """Several lines: the rule, its score if it has one, then one line per hit.

    rare-earths (Rare earth elements) fired on 2 hits
      title[31:44] "Seltene Erden"  ← Seltene Erden
      summary[0:9] "Dysprosium"  ← dysprosium
    """
    score = f", score {match.score:g}" if match.score is not None else ""
    noun = "hit" if len(match.hits) == 1 else "hits"
    lines = [f"{match.rule_id} ({match.rule_title}) fired on {len(match.hits)} {noun}{score}"]
    for hit in match.hits:
        text = " ".join(hit.text.split())
        lines.append(f'  {hit.field}[{hit.start}:{hit.end}] "{text}"  ← {hit.term}')
    return "\n".join(lines)
