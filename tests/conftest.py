"""Fixtures shared by every test module."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MONITOR_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's ../shared folder (eval set, real-feed corpus). CI always has it; a user's clone may not."""
    if not SHARED.is_dir():
        pytest.skip(
            f"{SHARED} is absent: the shared eval set and feed corpus live beside the project checkout"
        )
    return SHARED


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO
