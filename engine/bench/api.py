"""``engine.bench.run``: the benchmark as a Python call (what ``tierdb bench`` runs).

    import engine.bench
    result = engine.bench.run(workloads=["ycsb-c", "time-travel"], layouts=["hot+warm+cold", "warm"],
                              peers=["rocksdb", "lmdb"], keys=[10_000, 100_000], rounds=3)
    result.cells[100_000]          # Cell per (workload, target): medians, spread, p50/p99
    result.out                     # results.json, report.md and the PNG plots

Notes: thread safety - one run at a time per process (children run sequentially).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import BenchConfig, BenchConfigError
from .peers import unavailable
from .runner import REFERENCE, Cell, run_matrix

__all__ = ["BenchResult", "run"]


@dataclass
class BenchResult:
    """Everything one run produced. ``cells[keys]`` lists one :class:`Cell` per
    (workload, target); ``ok`` is False when any target answered wrongly or failed."""

    config: BenchConfig
    cells: dict[int, list[Cell]]
    skipped: list[str]
    out: Path
    command: list[str]
    started: str
    seconds: float
    files: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status not in ("WRONG", "failed") for cs in self.cells.values() for c in cs)

    def wrong(self) -> list[Cell]:
        return [c for cs in self.cells.values() for c in cs if c.status == "WRONG"]


def _slow_params(cfg: BenchConfig, keys: int) -> Callable[[str, str], Any]:
    base = cfg.params(keys)

    def params_for(workload: str, target: str) -> Any:
        if target == "peer:slatedb":  # ~150 us per async call: a tenth of the reads
            p = type(base).from_json(base.to_json())
            p.gets, p.ops = max(100, p.gets // 10), max(100, p.ops // 10)
            p.scans, p.latency_samples = max(10, p.scans // 10), min(p.latency_samples, 200)
            return p
        if workload == "sync":
            p = type(base).from_json(base.to_json())
            p.durability = "sync"
            return p
        return base
    return params_for


def run(config: BenchConfig | None = None, *, progress: Callable[[str], None] | None = None,
        command: Sequence[str] | None = None, write: bool = True, **options: Any) -> BenchResult:
    """Run a benchmark and (``write=True``) write results.json, report.md and the plots.

    ``options`` are :class:`BenchConfig` fields (``workloads=[...]``, ``layouts=[...]``,
    ``peers=[...]``, ``keys=[...]``, ``rounds=3``, ``quick=True`` ...), used when
    ``config`` is None.

    Raises:
        BenchConfigError: a bad option (nothing runs).
    """
    if config is None:
        config = BenchConfig()
        if options.pop("quick", False):
            config.apply_quick()  # first: the options given explicitly win
        try:
            config = dataclasses.replace(config, **options)
        except TypeError as e:
            raise BenchConfigError(str(e)) from None
    config.validate()
    started = datetime.now(UTC)
    out = Path(config.out) if config.out is not None else Path("bench-results") / started.strftime("%Y%m%d-%H%M%S")
    skipped = []
    peers = []
    for p in config.peers:
        reason = unavailable(p)
        if reason:
            skipped.append(reason)
        else:
            peers.append(p)
    targets = [f"tierdb:{lay}" for lay in config.layouts] + [f"peer:{p}" for p in peers] + list(config.targets)
    cells: dict[int, list[Cell]] = {}
    t0 = time.perf_counter()
    reads = [w for w in config.workloads if w != "sync"]
    for n in config.keys:
        params_for = _slow_params(config, n)
        got: list[Cell] = []
        if reads:
            got += run_matrix(targets, reads, config.params(n), config.rounds, knobs=config.knobs,
                              workload_file=config.workload_file, progress=progress, params_for=params_for,
                              group=config.quick)
        if "sync" in config.workloads:
            sync_targets = [t for t in targets if t.startswith("tierdb:") or t == "peer:rocksdb"] + ["fsync-floor"]
            got += run_matrix(sync_targets, ["sync"], config.params(n), config.rounds, knobs=config.knobs,
                              reference=False, progress=progress, params_for=params_for)
        cells[n] = got
    result = BenchResult(config, cells, skipped, out, list(command or []), started.isoformat(timespec="seconds"),
                         time.perf_counter() - t0)
    if write:
        from .output import write_all

        result.files = write_all(result)
    return result


def count_runs(config: BenchConfig) -> int:
    """Child processes a run will start (for a progress bar)."""
    n_targets = len(config.all_targets()) + (0 if f"{REFERENCE}" in config.all_targets() else 1)
    reads = [w for w in config.workloads if w != "sync"]
    if config.quick and reads:
        reads = ["all"]  # one child per target and round runs every workload
    sync = 1 if "sync" in config.workloads else 0
    sync_targets = len([t for t in config.all_targets() if t.startswith("tierdb:") or t == "peer:rocksdb"]) + 1
    return len(config.keys) * config.rounds * (len(reads) * n_targets + sync * sync_targets)
