"""The direction of imports (docs/design.md): nothing outside monitor/cli imports the CLI, and the pure stages
import neither the store nor delivery. Read from the source, so a new import that breaks it fails here."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "monitor"
PURE = ("parse", "normalize", "identify", "text", "htmltext", "rules", "stories", "cachehints", "adaptive")


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def modules(under: Path) -> list[Path]:
    return sorted(under.rglob("*.py"))


def test_nothing_outside_the_cli_imports_it() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in modules(PACKAGE)
        if "cli" not in path.relative_to(PACKAGE).parts[:1]
        and path.name != "__main__.py"
        and any(name == "monitor.cli" or name.startswith("monitor.cli.") for name in imports_of(path))
    ]
    assert offenders == []


def test_pure_stages_import_neither_the_store_nor_delivery() -> None:
    offenders = []
    for stage in PURE:
        paths = modules(PACKAGE / stage) if (PACKAGE / stage).is_dir() else [PACKAGE / f"{stage}.py"]
        for path in paths:
            bad = {
                name
                for name in imports_of(path)
                if name.startswith(("monitor.store", "monitor.notify", "monitor.service", "monitor.pipeline"))
            }
            if bad:
                offenders.append((str(path.relative_to(PACKAGE)), sorted(bad)))
    assert offenders == []
