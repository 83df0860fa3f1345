"""Change-feed overhead (issue 14): commit throughput with ``changefeed=True`` against
``changefeed=False`` and against versioned RocksDB (``engine.bench.peers.rocks``), one run.

Run: ``.venv/bin/python benches/bench_changefeed.py [--commits N] [--rounds R] [--out FILE]``

Workloads: ``single`` (one 16-byte key / 100-byte value per commit: the per-commit cost
shows most) and ``batch100`` (100 writes per commit). Targets per workload: tierdb's default
layout (hot+warm+cold) and the warm-first layout ("warm"), each with and without the feed,
durability ``"normal"``; the peer writes the same rows as versioned keys in RocksDB
(unsynced WriteBatch per commit). Every target starts from an empty directory each round;
rounds are interleaved with the order rotated; figures are medians of the rounds. The
timed part ends with ``close()`` (the feed's buffered tail is written then). A check at the
end reads the feed back and asserts it holds every commit.

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


def run_tierdb(path: Path, commits: list[list[tuple[bytes, bytes]]], layout: str, feed: bool) -> float:
    store = engine.open(path, layout=layout, changefeed=feed)
    t0 = time.perf_counter()
    for rows in commits:
        with store.begin() as tx:
            for k, v in rows:
                tx.set(T, k, v)
    store.close()
    dt = time.perf_counter() - t0
    if feed:  # the feed holds every commit, in order
        store = engine.open(path)
        assert sum(1 for _ in store.changes()) == len(commits) == store.version
        store.close()
    return len(commits) / dt


def run_rocks(path: Path, commits: list[list[tuple[bytes, bytes]]]) -> float:
    db = VersionedRocksDB(path)
    t0 = time.perf_counter()
    for rows in commits:
        db.commit(rows)
    db.close()
    return len(commits) / (time.perf_counter() - t0)


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
    root = Path(tempfile.mkdtemp(prefix="bench-changefeed-"))
    try:
        for r in range(args.rounds):
            for w, commits in workloads.items():
                order = targets[r % len(targets):] + targets[:r % len(targets)]
                for name, fn in order:
                    d = root / "t"
                    shutil.rmtree(d, ignore_errors=True)
                    results[w][name].append(fn(d, commits))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out: dict[str, Any] = {}
    for w, per in results.items():
        med = {name: statistics.median(v) for name, v in per.items()}
        spread = {name: (max(v) - min(v)) / 2 / statistics.median(v) for name, v in per.items()}
        out[w] = {"commits_per_s": med, "spread": spread, "ratios": {
            "hot+warm+cold: feed / no feed": med["tierdb hot+warm+cold changefeed"] / med["tierdb hot+warm+cold"],
            "warm: feed / no feed": med["tierdb warm changefeed"] / med["tierdb warm"],
            "hot+warm+cold feed / rocksdb": med["tierdb hot+warm+cold changefeed"] / med["peer:rocksdb (versioned)"],
            "hot+warm+cold / rocksdb": med["tierdb hot+warm+cold"] / med["peer:rocksdb (versioned)"],
            "warm feed / rocksdb": med["tierdb warm changefeed"] / med["peer:rocksdb (versioned)"],
        }}
        print(f"\n{w} ({len(workloads[w])} commits x {len(workloads[w][0])} writes, median of {args.rounds}):")
        for name, rate in med.items():
            print(f"  {name:34s} {rate:10.0f} commits/s  ±{spread[name] * 100:.0f}%")
        for k, v in out[w]["ratios"].items():
            print(f"  {k:34s} {v:.3f}")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
