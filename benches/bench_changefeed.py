"""Change-feed overhead (issue 14): commit throughput with ``changefeed=True`` against
``changefeed=False`` and against versioned RocksDB (``engine.bench.peers.rocks``), one run.

Run: ``.venv/bin/python benches/bench_changefeed.py [--commits N] [--rounds R] [--out FILE]``

Workloads: ``single`` (one 16-byte key / 100-byte value per commit: the per-commit cost
shows most) and ``batch100`` (100 writes per commit). Targets per workload: tierdb's default
layout (hot+warm+cold) and the warm-first layout ("warm"), each with and without the feed,
durability ``"normal"``; the peer writes the same rows as versioned keys in RocksDB
(unsynced WriteBatch per commit). Every target starts from an empty directory each round;
rounds are interleaved with the order rotated. The timed part ends with ``close()`` (the
feed's buffered tail is written then). A check at the end reads the feed back and asserts it
holds every commit.

Reported: commits/s (wall clock, median of the rounds) and, because a shared machine's load
swings between rounds, the median of the *per-round* ratios, both of wall-clock rates and of
process CPU time per commit (all threads of the process: RocksDB's and the mover's too).

Numbers on a shared 2-core machine are noisy: read the ratios, not the absolute rates.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import engine
from engine import EntryKind
from engine.bench.peers.rocks import VersionedRocksDB

T = EntryKind.source(1)


def make_commits(n: int, per_commit: int, seed: int = 1) -> list[list[tuple[bytes, bytes]]]:
    rng = random.Random(seed)
    keys = 50_000
    return [[(b"key:%012d" % rng.randrange(keys), rng.randbytes(100)) for _ in range(per_commit)]
            for _ in range(n)]


def run_tierdb(path: Path, commits: list[list[tuple[bytes, bytes]]], layout: str,
               feed: bool) -> tuple[float, float]:
    store = engine.open(path, layout=layout, changefeed=feed)
    c0, t0 = time.process_time(), time.perf_counter()
    for rows in commits:
        with store.begin() as tx:
            for k, v in rows:
                tx.set(T, k, v)
    store.close()
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    if feed:  # the feed holds every commit, in order
        store = engine.open(path)
        assert sum(1 for _ in store.changes()) == len(commits) == store.version
        store.close()
    return len(commits) / dt, cpu / len(commits)


def run_rocks(path: Path, commits: list[list[tuple[bytes, bytes]]]) -> tuple[float, float]:
    db = VersionedRocksDB(path)
    c0, t0 = time.process_time(), time.perf_counter()
    for rows in commits:
        db.commit(rows)
    db.close()
    return len(commits) / (time.perf_counter() - t0), (time.process_time() - c0) / len(commits)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commits", type=int, default=20_000, help="commits per target per round (single)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)
    workloads = {"single": make_commits(args.commits, 1), "batch100": make_commits(args.commits // 20, 100)}
    targets: list[tuple[str, Any]] = [
        ("tierdb hot+warm+cold", lambda p, c: run_tierdb(p, c, "hot+warm+cold", False)),
        ("tierdb hot+warm+cold changefeed", lambda p, c: run_tierdb(p, c, "hot+warm+cold", True)),
        ("tierdb warm", lambda p, c: run_tierdb(p, c, "warm", False)),
        ("tierdb warm changefeed", lambda p, c: run_tierdb(p, c, "warm", True)),
        ("peer:rocksdb (versioned)", run_rocks),
    ]
    results: dict[str, dict[str, list[float]]] = {w: {name: [] for name, _ in targets} for w in workloads}
    cpu: dict[str, dict[str, list[float]]] = {w: {name: [] for name, _ in targets} for w in workloads}
    root = Path(tempfile.mkdtemp(prefix="bench-changefeed-"))
    try:
        for r in range(args.rounds):
            for w, commits in workloads.items():
                order = targets[r % len(targets):] + targets[:r % len(targets)]
                for name, fn in order:
                    d = root / "t"
                    shutil.rmtree(d, ignore_errors=True)
                    rate, per_commit = fn(d, commits)
                    results[w][name].append(rate)
                    cpu[w][name].append(per_commit)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    pairs = {
        "hot+warm+cold: feed / no feed": ("tierdb hot+warm+cold changefeed", "tierdb hot+warm+cold"),
        "warm: feed / no feed": ("tierdb warm changefeed", "tierdb warm"),
        "hot+warm+cold feed / rocksdb": ("tierdb hot+warm+cold changefeed", "peer:rocksdb (versioned)"),
        "hot+warm+cold / rocksdb": ("tierdb hot+warm+cold", "peer:rocksdb (versioned)"),
        "warm feed / rocksdb": ("tierdb warm changefeed", "peer:rocksdb (versioned)"),
    }
    out: dict[str, Any] = {}
    for w, per in results.items():
        med = {name: statistics.median(v) for name, v in per.items()}
        spread = {name: (max(v) - min(v)) / 2 / statistics.median(v) for name, v in per.items()}
        ratios = {k: statistics.median(x / y for x, y in zip(per[a], per[b], strict=True))
                  for k, (a, b) in pairs.items()}
        # CPU per commit, inverted so that > 1 means faster, like the throughput ratios
        cpu_ratios = {k: statistics.median(y / x for x, y in zip(cpu[w][a], cpu[w][b], strict=True))
                      for k, (a, b) in pairs.items()}
        out[w] = {"commits_per_s": med, "spread": spread, "ratios_wall": ratios, "ratios_cpu": cpu_ratios,
                  "cpu_us_per_commit": {n: statistics.median(v) * 1e6 for n, v in cpu[w].items()}}
        print(f"\n{w} ({len(workloads[w])} commits x {len(workloads[w][0])} writes, median of {args.rounds}):")
        for name, rate in med.items():
            print(f"  {name:34s} {rate:10.0f} commits/s  ±{spread[name] * 100:.0f}%"
                  f"  {out[w]['cpu_us_per_commit'][name]:8.1f} us CPU/commit")
        print(f"  {'ratio (median of per-round ratios)':34s}   wall    CPU")
        for k in pairs:
            print(f"  {k:34s} {ratios[k]:6.3f} {cpu_ratios[k]:6.3f}")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
