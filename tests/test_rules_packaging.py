"""The default rule set ships inside the package: pyproject maps rules/ to monitor.default_rules, and the package
list (explicit, because a mapped package cannot be discovered) names every directory of the package.

Building the wheel itself needs the build backend from PyPI, so it is checked by hand (see docs/design/rules.md);
these tests pin the configuration that makes it work."""

from __future__ import annotations

import tomllib
from pathlib import Path

from monitor.config import DEFAULT_RULES
from monitor.rules import load_rules

REPO = Path(__file__).resolve().parents[1]


def setuptools_config() -> dict[str, object]:
    with (REPO / "pyproject.toml").open("rb") as handle:
        config: dict[str, object] = tomllib.load(handle)["tool"]["setuptools"]
    return config


def test_packages_list_names_every_directory_of_the_package() -> None:
    # A directory missing from the list is left out of the wheel (code) or warned about (data): add it there.
    directories = [REPO / "monitor", *(REPO / "monitor").rglob("*")]
    on_disk = {
        ".".join(path.relative_to(REPO).parts)
        for path in directories
        if path.is_dir() and path.name != "__pycache__"
    }
    listed = set(setuptools_config()["packages"])  # type: ignore[call-overload]
    assert listed == on_disk | {"monitor.default_rules"}


def test_default_rules_are_mapped_into_the_package_with_their_yaml_files() -> None:
    config = setuptools_config()
    assert config["package-dir"] == {"monitor.default_rules": "rules"}
    assert config["package-data"]["monitor.default_rules"] == ["*.yaml"]  # type: ignore[index]
    shipped = sorted(path.name for path in (REPO / "rules").glob("*.yaml"))
    assert shipped == ["actors.yaml", "topics.yaml", "vocabularies.yaml"]
    assert not (REPO / "rules" / "__init__.py").exists()  # data only: nothing to import


def test_default_rules_resolve_to_the_checkout_and_load() -> None:
    assert DEFAULT_RULES == REPO / "rules"
    assert len(load_rules(DEFAULT_RULES)) == 8
