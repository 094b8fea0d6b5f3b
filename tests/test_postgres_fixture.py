"""The PostgreSQL tests' fixture: without a server they are skipped with the reason, except under CI=true, where
the same missing server is a failure (CI can never pass by skipping the PostgreSQL backend)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TEST = "tests/test_store_contract.py::test_a_database_from_a_newer_monitor_is_refused"
NOWHERE = "postgresql://postgres@127.0.0.1:1/postgres"  # port 1: nothing listens


def run(repo_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "CI"}
    environment.update(env, MONITOR_TEST_POSTGRES=NOWHERE)
    return subprocess.run(
        [sys.executable, "-m", "pytest", TEST, "-p", "no:cacheprovider", "-rs"],
        cwd=repo_dir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("ci", ["", "false"])
def test_without_a_server_the_tests_are_skipped_with_the_reason(repo_dir: Path, ci: str) -> None:
    result = run(repo_dir, **({"CI": ci} if ci else {}))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout
    assert "PostgreSQL is not reachable at postgresql://postgres@127.0.0.1:1/postgres" in result.stdout


def test_under_ci_a_missing_server_fails(repo_dir: Path) -> None:
    result = run(repo_dir, CI="true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "CI=true, so this is a failure, not a skip" in result.stdout
