"""Seeded keys and values shared by every workload, and the run parameters.

Keys are 16 bytes (``user`` + 12 digits) spread over the key space by a bijective
multiplicative scramble of their index, so load order is not key order. Values are
``value_size`` bytes, half random and half a repeat of it (about 2:1 compressible, like
db_bench's default), different for every (key, write).
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Params", "ValueMaker", "key_of", "zipfian_sampler"]

_SPACE = 10 ** 12
_MUL = 0x9E3779B97F4A7C15 % _SPACE
while math.gcd(_MUL, _SPACE) != 1:
    _MUL += 1


def key_of(i: int) -> bytes:
    """The 16-byte key of index ``i`` (0 <= i < 10**12); distinct indexes give distinct keys."""
    return b"user%012d" % (i * _MUL % _SPACE)


class ValueMaker:
    """Seeded values of one size: half random bytes, then a repeat of them."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.rng = random.Random(seed)
        self._half = max(1, (size + 1) // 2)

    def __call__(self) -> bytes:
        r = self.rng.randbytes(self._half)
        return (r + r)[: self.size]


@dataclass
class Params:
    """Sizes and seeds of a run; every workload reads what it needs.

    Attributes:
        keys: distinct keys the workload writes.
        value_size: bytes per value.
        batch: writes per commit.
        seed: seeds every random choice (keys sampled, values, removes).
        gets: point reads per timed get figure.
        ops: operations of the mixed workloads (YCSB, time-travel, history-heavy reads).
        scans: scans per timed scan figure, each of ``scan_rows`` rows.
        latency_samples: single operations timed one by one for p50/p99.
        threads: committing threads in the ``sync`` workload.
        seconds: duration of time-bounded workloads (``sync``).
        durability: tierdb durability for the load.
        clock: ``"wall"`` or ``"cpu"`` (process CPU seconds, steadier on a shared machine).
        verify_full: also digest full scans (the first round does it).
        extra: workload-specific options (``--param key=value``).
    """

    keys: int = 100_000
    value_size: int = 100
    batch: int = 100
    seed: int = 42
    gets: int = 20_000
    ops: int = 20_000
    scans: int = 100
    scan_rows: int = 1000
    latency_samples: int = 2000
    threads: int = 8
    seconds: float = 1.5
    durability: str = "normal"
    clock: str = "wall"
    verify_full: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Params:
        return cls(**d)


def zipfian_sampler(n: int, theta: float, rng: random.Random) -> Any:
    """A function drawing indexes in [0, n) with YCSB's zipfian distribution (theta 0.99).

    Gray et al.'s rejection-free method, as YCSB's ZipfianGenerator; index 0 is the most
    popular, so callers map indexes through :func:`key_of` (already scrambled).
    """
    zetan = sum(1.0 / (i + 1) ** theta for i in range(n)) if n < 2_000_000 else _zeta_approx(n, theta)
    zeta2 = 1.0 + 0.5 ** theta
    alpha = 1.0 / (1.0 - theta)
    eta = (1 - (2.0 / n) ** (1 - theta)) / (1 - zeta2 / zetan)
    rand = rng.random

    def draw() -> int:
        u = rand()
        uz = u * zetan
        if uz < 1.0:
            return 0
        if uz < 1.0 + 0.5 ** theta:
            return 1 if n > 1 else 0
        return min(n - 1, int(n * (eta * u - eta + 1) ** alpha))

    return draw


def _zeta_approx(n: int, theta: float) -> float:
    # Euler-Maclaurin: exact head, integral tail.
    head = 100_000
    s = sum(1.0 / (i + 1) ** theta for i in range(head))
    return s + ((n ** (1 - theta)) - (head ** (1 - theta))) / (1 - theta)
