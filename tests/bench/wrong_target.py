"""A deliberately wrong benchmark target (tests/bench): the dict reference with a bad get."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.bench.peers import DictReference


class WrongDict(DictReference):
    """Answers every 7th point read of an existing key with a wrong value."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.name = "wrong"
        self._n = 0

    def _at(self, k: bytes, version: int | None) -> bytes | None:
        v = super()._at(k, version)
        self._n += 1
        if v is not None and self._n % 7 == 0:
            return v[::-1] + b"!"
        return v


def make(path: Path, params: Any) -> WrongDict:
    return WrongDict(path)
