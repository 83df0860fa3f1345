"""Fixtures for the tier conformance suite: one factory per TierStorage implementation.

A factory takes a directory and returns a fresh (or, given the same directory, reopened)
tier. ``persistent`` says whether a reopen keeps the data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.tiers import HotTier
from engine.tiers.base import TierStorage


@dataclass
class TierFactory:
    name: str
    make: Callable[[Path], TierStorage]
    persistent: bool


def _factories() -> list[TierFactory]:
    out = [TierFactory("hot", lambda p: HotTier(), False)]
    try:
        from engine.tiers import WarmTier  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - the warm tier lands in its own issue
        pass
    else:
        out.append(TierFactory("warm", lambda p: WarmTier(p / "warm"), True))
    try:
        from engine.tiers import ColdTier  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - the cold tier lands in its own issue
        pass
    else:
        out.append(TierFactory("cold", lambda p: ColdTier(p / "cold"), True))
        # The same tier with its segments and manifest in an object store (cold-cache/ is
        # the local range cache): memory:// private to the test's directory, and file://.
        out.append(TierFactory(
            "cold-memory",
            lambda p: ColdTier(p / "cold-cache", url="memory://contract" + str(p).replace("/", "_")),
            True))
        out.append(TierFactory("cold-file",
                               lambda p: ColdTier(p / "cold-cache", url=f"file://{p}/bucket"), True))
    return out


FACTORIES = _factories()


@pytest.fixture(params=FACTORIES, ids=[f.name for f in FACTORIES])
def factory(request: pytest.FixtureRequest) -> TierFactory:
    return request.param


@pytest.fixture
def tier(factory: TierFactory, tmp_path: Path) -> Iterator[TierStorage]:
    t = factory.make(tmp_path)
    try:
        yield t
    finally:
        t.close()


PERSISTENT = [f for f in FACTORIES if f.persistent]


@pytest.fixture(params=PERSISTENT, ids=[f.name for f in PERSISTENT])
def persistent_factory(request: pytest.FixtureRequest) -> TierFactory:
    return request.param
