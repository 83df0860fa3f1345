"""Fixtures for the views tests: stores over every available layout, and fault injection.

``store`` runs each test over a memory-only store (``engine.open(None)``) and a durable
store (``engine.open(path, layout="memory")``: hot tier + commit log), plus the default
tiered layout (hot + warm + cold) when its tiers are importable.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import engine
from engine.errors import StorageIOError


def _tiered_available() -> bool:
    try:
        return (
            importlib.util.find_spec("engine.tiers.warm") is not None
            and importlib.util.find_spec("engine.tiers.cold") is not None
        )
    except ImportError:
        return False


TIERED = _tiered_available()
DURABLE_LAYOUTS = ["memory"] + (["hot+warm+cold"] if TIERED else [])
LAYOUT_PARAMS = ["mem"] + [f"durable:{name}" for name in DURABLE_LAYOUTS]


def open_store(kind: str, path: Path) -> engine.Store:
    """Open a store of ``kind`` (``"mem"`` or ``"durable:<layout>"``) at ``path``."""
    if kind == "mem":
        return engine.open(None)
    return engine.open(path, layout=kind.split(":", 1)[1])


@pytest.fixture(params=LAYOUT_PARAMS)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(store_kind: str, tmp_path: Path) -> Iterator[engine.Store]:
    s = open_store(store_kind, tmp_path / "db")
    try:
        yield s
    finally:
        if not s.closed:
            s.close()


@pytest.fixture(params=[f"durable:{name}" for name in DURABLE_LAYOUTS])
def durable_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class FaultyTx:
    """A transaction proxy that can fail its commit or call a hook on ``range``."""

    def __init__(self, owner: FaultyStore, tx: Any) -> None:
        self._owner = owner
        self._tx = tx

    def set(self, table: Any, key: bytes, value: bytes) -> None:
        self._tx.set(table, key, value)

    def remove(self, table: Any, key: bytes) -> None:
        self._tx.remove(table, key)

    def get(self, table: Any, key: bytes) -> bytes | None:
        return self._tx.get(table, key)

    def range(self, *args: Any, **kwargs: Any) -> Any:
        hook = self._owner.on_tx_range
        if hook is not None:
            hook()
        return self._tx.range(*args, **kwargs)

    def commit(self) -> int:
        if self._owner.fail_commits > 0:
            self._owner.fail_commits -= 1
            self._tx.rollback()
            raise StorageIOError("injected commit failure")
        self._owner.commits += 1
        return int(self._tx.commit())

    def rollback(self) -> None:
        self._tx.rollback()


class FaultyStore:
    """Wraps a real store: inject commit failures, refuse listing, hook tx reads."""

    def __init__(self, inner: engine.Store) -> None:
        self.inner = inner
        self.fail_commits = 0
        self.refuse_list = False
        self.commits = 0
        self.on_tx_range: Callable[[], None] | None = None

    @property
    def version(self) -> int:
        return self.inner.version

    def begin(self, *args: Any, **kwargs: Any) -> FaultyTx:
        return FaultyTx(self, self.inner.begin(*args, **kwargs))

    def get(self, *args: Any, **kwargs: Any) -> bytes | None:
        return self.inner.get(*args, **kwargs)

    def range(self, *args: Any, **kwargs: Any) -> Any:
        if self.refuse_list:
            raise NotImplementedError("this store cannot list")
        return self.inner.range(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def faulty(store: engine.Store) -> FaultyStore:
    return FaultyStore(store)
