"""A benchmark run's configuration, validated before anything runs.

Notes: thread safety - immutable after :meth:`BenchConfig.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EngineError
from .data import Params
from .peers import PEERS

__all__ = ["ALL_WORKLOADS", "DEFAULT_PEERS", "DURABILITY", "BenchConfig", "BenchConfigError"]

ALL_WORKLOADS = ("load", "ycsb-a", "ycsb-b", "ycsb-c", "ycsb-e", "ycsb-f", "time-travel",
                 "history-heavy", "graph-checkpoints", "scan")
EXTRA_WORKLOADS = ("aged", "sync")  # issue 10's comparison and the group-commit measure
DEFAULT_PEERS = ("rocksdb", "lmdb", "sqlite")
DURABILITY = ("none", "normal", "sync")


class BenchConfigError(EngineError, ValueError):
    """A bad benchmark option (unknown workload, layout, knob or peer; a non-positive size)."""


@dataclass
class BenchConfig:
    """What to run. See ``tierdb bench --help`` for the meaning of each field.

    ``keys`` lists key counts (several = a scale run); ``targets`` adds user targets
    (``file.py:factory``) to the tierdb layouts and peers.
    """

    workloads: list[str] = field(default_factory=lambda: list(ALL_WORKLOADS))
    layouts: list[str] = field(default_factory=lambda: ["hot+warm+cold"])
    knobs: dict[str, str] = field(default_factory=dict)
    peers: list[str] = field(default_factory=lambda: list(DEFAULT_PEERS))
    targets: list[str] = field(default_factory=list)
    keys: list[int] = field(default_factory=lambda: [20_000])
    value_size: int = 100
    rounds: int = 3
    seed: int = 42
    ops: int = 10_000
    out: Path | None = None
    baseline: str | None = None
    durability: str = "normal"
    clock: str = "wall"
    workload_file: str | None = None
    quick: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def apply_quick(self) -> None:
        """``--quick``: 5,000 keys, 2,000 ops, one round, one child per target (under 3
        minutes on 2 cores). Options given explicitly are applied after this and win."""
        self.quick = True
        self.keys = [5000]
        self.rounds = 1
        self.ops = 2000

    def validate(self) -> None:
        """Raise :class:`BenchConfigError` naming the first bad option."""
        from .tierdb_target import parse_layout

        if not self.workloads:
            raise BenchConfigError("no workload given")
        known = ALL_WORKLOADS + EXTRA_WORKLOADS
        if self.workload_file is not None:
            path = Path(self.workload_file)
            if not path.is_file():
                raise BenchConfigError(f"--workload-file {self.workload_file}: no such file")
        else:
            for w in self.workloads:
                if w not in known:
                    raise BenchConfigError(f"unknown workload {w!r}; workloads: {', '.join(known)}")
        for lay in self.layouts:
            try:
                parse_layout(lay, self.knobs)
            except (ValueError, TypeError) as e:
                raise BenchConfigError(f"layout {lay!r}: {e}") from None
        for p in self.peers:
            if p not in PEERS:
                raise BenchConfigError(f"unknown peer {p!r}; peers: {', '.join(PEERS)}")
        for t in self.targets:
            file, sep, fn = t.rpartition(":")
            if not (sep and file.endswith(".py") and fn and Path(file).is_file()):
                raise BenchConfigError(f"target {t!r}: give an existing file.py:factory")
        for name, v in (("--value-size", self.value_size), ("--rounds", self.rounds), ("--ops", self.ops)):
            if not isinstance(v, int) or v <= 0:
                raise BenchConfigError(f"{name} must be a positive integer, got {v!r}")
        if not self.keys or any(not isinstance(k, int) or k <= 0 for k in self.keys):
            raise BenchConfigError(f"--keys must be positive integers, got {self.keys!r}")
        if self.clock not in ("wall", "cpu"):
            raise BenchConfigError(f"--clock must be wall or cpu, got {self.clock!r}")
        if self.durability not in DURABILITY:
            raise BenchConfigError(f"--durability must be one of {', '.join(DURABILITY)}, got {self.durability!r}")
        if not self.all_targets():
            raise BenchConfigError("no target: give --layout, --peers or --target")
        if self.baseline is not None and self.baseline not in self.all_targets():
            raise BenchConfigError(f"--baseline {self.baseline!r} is not a target of this run; "
                                   f"targets: {', '.join(self.all_targets())}")

    def all_targets(self) -> list[str]:
        return [f"tierdb:{lay}" for lay in self.layouts] + [f"peer:{p}" for p in self.peers] + list(self.targets)

    def chosen_baseline(self) -> str:
        if self.baseline:
            return self.baseline
        ts = self.all_targets()
        for t in ("peer:rocksdb", *[x for x in ts if x.startswith("peer:") and x != "peer:dict"]):
            if t in ts:
                return t
        return ts[0]

    def params(self, keys: int) -> Params:
        p = Params(keys=keys, value_size=self.value_size, seed=self.seed, ops=self.ops,
                   durability=self.durability, clock=self.clock, extra=dict(self.extra))
        if self.quick:
            p.gets, p.scans, p.latency_samples, p.seconds = 2000, 20, 500, 0.5
        else:
            p.gets = max(1000, min(20_000, self.ops * 2))
        return p
