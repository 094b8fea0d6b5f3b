"""Hostile YAML in monitor.yaml and rule files: alias bombs, deep nesting, tags, oversized files, deep rule
expressions. Each is a located ConfigError / RuleError, never a hang, a RecursionError or a traceback.

The loaders run in a subprocess (`monitor check`, `monitor rules list`) with a generous hang guard, so a
regression shows as a failed test, not as a stuck suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.errors import ConfigError, RuleError
from monitor.rules import load_rules
from monitor.yamlsource import MAX_YAML_BYTES, MAX_YAML_DEPTH, MAX_YAML_VALUES, load_yaml

RULES = "rules:\n  - id: r\n    any: [word]\n"


def alias_bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for n in range(1, levels):
        lines.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def check(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,  # hang guard only: the refusal itself takes milliseconds
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")},
    )


def write(tmp_path: Path, config: str, rules: str = RULES) -> Path:
    (tmp_path / "rules.yaml").write_text(rules, encoding="utf-8")
    path = tmp_path / "monitor.yaml"
    path.write_text("rules: rules.yaml\n" + config, encoding="utf-8")
    return path


def assert_one_located_error(
    result: subprocess.CompletedProcess[str], where: str, what: str, *alternatives: str
) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert where in result.stderr, result.stderr
    assert any(text in result.stderr for text in (what, *alternatives)), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_an_alias_bomb_in_the_config_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, alias_bomb())
    assert_one_located_error(check(path, "check"), f"{path}:", "aliases expand to more than")


def test_an_alias_bomb_in_a_rule_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "", rules=RULES + alias_bomb())
    assert_one_located_error(check(path, "check"), "rules.yaml:", "aliases expand to more than")


def test_a_few_aliases_still_work() -> None:
    doc = load_yaml("base: &b {x: 1}\nother: *b\n", "f.yaml")
    assert doc.data == {"base": {"x": 1}, "other": {"x": 1}}


@pytest.mark.parametrize(
    "nested",
    [
        "x: " + "[" * 5000 + "]" * 5000 + "\n",
        "x: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
        "".join("  " * n + "a:\n" for n in range(200)) + "  " * 200 + "a: 1\n",
    ],
    ids=["flow-lists", "flow-maps", "block-maps"],
)
def test_deep_nesting_is_a_located_error_not_a_recursion_error(tmp_path: Path, nested: str) -> None:
    path = write(tmp_path, nested)
    # libyaml's scanner reads a flow collection ahead and refuses 1,000 flow levels itself, before our check
    # of the event stream sees level 65: also a located error, in its words.
    assert_one_located_error(
        check(path, "check"),
        f"{path}:",
        f"nested deeper than {MAX_YAML_DEPTH}",
        "exceeded maximum nesting depth",
    )


def test_nesting_at_the_limit_is_read() -> None:
    depth = MAX_YAML_DEPTH - 1
    doc = load_yaml("x: " + "[" * depth + "]" * depth + "\n", "f.yaml")
    assert doc.data is not None


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        ("!!timestamp 2001-12-14", "!!timestamp"),
        ("!!binary aGVsbG8=", "!!binary"),
        ("!!python/object:os.system x", "!!python/object:os.system"),
        ("!custom x", "!custom"),
        ("!!set {a, b}", "!!set"),
    ],
)
def test_tags_are_located_errors(tmp_path: Path, value: str, tag: str) -> None:
    path = write(tmp_path, f"feeds:\n  - url: https://example.org/f\n    title: {value}\n")
    assert_one_located_error(check(path, "check"), f"{path}:4:12:", f"tag {tag} is not allowed")


def test_plain_core_tags_are_accepted() -> None:
    assert load_yaml("a: !!str 10\nb: !!int '3'\n", "f.yaml").data == {"a": "10", "b": 3}


def test_a_config_file_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    path = write(tmp_path, "# " + "x" * MAX_YAML_BYTES + "\n")
    assert_one_located_error(check(path, "check"), str(path), "larger than")


def test_a_rule_file_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES + "# " + "x" * MAX_YAML_BYTES + "\n", encoding="utf-8")
    with pytest.raises(RuleError, match="larger than"):
        load_rules(rules)


def test_the_values_cap_counts_expanded_aliases() -> None:
    with pytest.raises(ConfigError, match="aliases expand to more than") as caught:
        load_yaml(alias_bomb(6), "f.yaml")  # 9**6 = 531,441 values
    assert caught.value.line is not None
    assert MAX_YAML_VALUES < 9**6


@pytest.mark.parametrize(
    "expression",
    ["(" * 3000 + "a" + ")" * 3000, "NOT " * 3000 + "a", " NEAR/2 ".join(["a"] * 3000)],
    ids=["parentheses", "not-chain", "near-chain"],
)
def test_a_deep_rule_expression_is_a_located_error(tmp_path: Path, expression: str) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"rules:\n  - id: r\n    match: '{expression}'\n", encoding="utf-8")
    with pytest.raises(RuleError, match=r"nested deeper than|too many NEAR") as caught:
        load_rules(rules)
    assert caught.value.line == 3


def test_a_yaml_integer_over_4300_digits_is_a_located_error() -> None:
    # Found by tests/test_fuzz.py: PyYAML's int() raised a bare ValueError.
    with pytest.raises(ConfigError, match="cannot read the value") as caught:
        load_yaml("a: 1\nb: " + "9" * 5000 + "\n", "f.yaml")
    assert (caught.value.line, caught.value.column) == (2, 4)
