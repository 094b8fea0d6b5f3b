"""The Store protocol is the whole surface callers use: each backend's public methods are exactly the
protocol's (a method added to one backend must be declared in monitor/store/base.py and implemented by every
backend), and no module outside monitor/store/ names a backend class."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from monitor.store import SQLiteStore
from monitor.store.base import Store

REPO = Path(__file__).resolve().parents[1]
# Backend-specific and not part of the contract: SQLite's raw transaction handle, its sqlite-utils view, its
# path (tests and tools that inspect the file use them).
BACKEND_ONLY = {SQLiteStore: {"transaction", "db", "path"}}


def public_members(cls: type) -> set[str]:
    return {
        name
        for name, value in inspect.getmembers(cls)
        if not name.startswith("_") and (callable(value) or isinstance(value, property))
    }


def protocol_members() -> set[str]:
    return {name for name in vars(Store) if not name.startswith("_")}


def backends() -> list[type]:
    found: list[type] = [SQLiteStore]
    try:
        from monitor.store.postgres import PostgresStore
    except ImportError:
        return found
    # Its raw transaction handle, its URL and the round-trip counter the benchmark reads.
    BACKEND_ONLY.setdefault(PostgresStore, {"transaction", "url", "round_trips"})
    return [*found, PostgresStore]


@pytest.mark.parametrize("backend", backends(), ids=lambda cls: cls.__name__)
def test_each_backend_offers_exactly_the_protocol(backend: type) -> None:
    declared = protocol_members()
    offered = public_members(backend) - BACKEND_ONLY.get(backend, set())
    assert offered - declared == set(), (
        "public methods missing from the Store protocol (monitor/store/base.py)"
    )
    assert declared - offered == set(), f"protocol methods {backend.__name__} does not implement"


@pytest.mark.parametrize("backend", backends(), ids=lambda cls: cls.__name__)
def test_signatures_match_the_protocol(backend: type) -> None:
    for name in protocol_members():
        declared = getattr(Store, name)
        offered = getattr(backend, name)
        if isinstance(declared, property):
            assert isinstance(offered, property), name
            continue
        want = inspect.signature(declared)
        got = inspect.signature(offered)
        assert list(got.parameters) == list(want.parameters), name
        for param in want.parameters.values():
            assert got.parameters[param.name].kind == param.kind, f"{name}({param.name})"
            assert got.parameters[param.name].default == param.default, f"{name}({param.name}) default"


def test_no_caller_names_a_backend_class() -> None:
    offenders = []
    for path in sorted((REPO / "monitor").rglob("*.py")):
        if path.is_relative_to(REPO / "monitor" / "store"):
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(r"\b(SQLiteStore|PostgresStore)\b", text):
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == [], "callers are typed against monitor.store.Store and open it with open_store"
