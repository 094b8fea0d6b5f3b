"""Every kind of bad rule file gives a RuleError that names file, line, column and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import ConfigError, RuleError
from monitor.rules import load_rules

BAD = Path(__file__).parent / "data" / "rules" / "bad"

# file, line, column, a fragment of the message
CASES = [
    ("unknown_vocabulary.yaml", 3, 11, "unknown vocabulary '$nope'"),
    ("unbalanced_open.yaml", 3, 13, "'(' is never closed"),
    ("unbalanced_close.yaml", 3, 27, "')' without a matching '('"),
    ("unknown_field_expr.yaml", 3, 12, "unknown field 'headline'"),
    ("unknown_field_list.yaml", 4, 21, "Input should be 'title'"),
    ("unknown_key.yaml", 4, 5, "unknown key"),  # the key itself, not its value
    ("bad_regex.yaml", 3, 13, "missing )"),
    ("unsafe_regex.yaml", 3, 13, "google-re2"),
    ("unknown_actor.yaml", 3, 12, "unknown actor '@nobody'"),
    ("duplicate_id.yaml", 4, 9, "duplicate rule id 'a'"),
    ("missing_operator.yaml", 3, 18, "missing operator before 'Trump'"),
    ("bad_near.yaml", 3, 18, "NEAR needs a word count"),
    ("not_in_near.yaml", 3, 25, "NOT cannot be an operand of NEAR"),
    ("only_negative.yaml", 2, 5, "looks for nothing"),
    ("bad_duration.yaml", 4, 14, "not a duration"),
    ("short_prefix.yaml", 3, 11, "at least 3 letters"),
    ("bad_language.yaml", 4, 17, "not an ISO 639-1 language code"),
    ("weights_without_threshold.yaml", 3, 14, "threshold"),
    ("vocabulary_cycle.yaml", 2, 6, "cycle"),
    ("aliases_without_context.yaml", 4, 14, "context"),
    ("yaml_syntax.yaml", 4, 1, "invalid YAML"),
    ("no_terms.yaml", 2, 5, "looks for nothing"),
    ("escalate_outlets.yaml", 4, 25, "greater than or equal to 2"),
    ("escalate_within.yaml", 6, 15, "not a duration"),
    ("escalate_severity.yaml", 7, 17, "Input should be 'low', 'normal', 'high' or 'critical'"),
]


@pytest.mark.parametrize(("name", "line", "column", "fragment"), CASES)
def test_bad_rule_file_is_located(name: str, line: int, column: int, fragment: str) -> None:
    path = BAD / name
    with pytest.raises(RuleError) as caught:
        load_rules(path)
    error = caught.value
    assert isinstance(error, ConfigError) and isinstance(error, ValueError)
    assert fragment in error.message, error.message
    assert (error.file, error.line, error.column) == (str(path), line, column), str(error)
    assert str(error).startswith(f"{path}:{line}:{column}: ")


def test_every_bad_file_has_a_case() -> None:
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(case[0] for case in CASES)


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="no such rule file"):
        load_rules(tmp_path / "absent.yaml")


def test_directory_is_loaded_recursively_in_sorted_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "second.yml").write_text("id: second\nany: [Trump]\n", encoding="utf-8")
    (tmp_path / "a.yaml").write_text("- id: first\n  any: [$names]\n", encoding="utf-8")
    (tmp_path / "z.yaml").write_text("vocabularies:\n  names: [Putin]\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a rule file", encoding="utf-8")
    ruleset = load_rules(tmp_path)
    assert ruleset.ids == ("first", "second")
    assert ruleset.get("second").file == str(tmp_path / "b" / "second.yml")
    assert ruleset.get("first").line == 1


def test_single_rule_file_errors_point_into_the_document(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text("id: x\nany: [Putin]\nextra: 1\n", encoding="utf-8")
    with pytest.raises(RuleError) as caught:
        load_rules(path)
    assert (caught.value.line, caught.value.field) == (3, "rules.0.extra")


def test_duplicate_vocabulary_across_files_names_both(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("vocabularies:\n  v: [x]\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text("vocabularies:\n  v: [y]\n", encoding="utf-8")
    with pytest.raises(RuleError, match=r"duplicate vocabulary 'v' \(first defined at .*a\.yaml:2\)"):
        load_rules(tmp_path)
