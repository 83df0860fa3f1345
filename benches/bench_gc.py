"""Garbage-collection benchmarks.

    python benches/bench_gc.py [--keys 20000] [--rewrites 10]

1. GC throughput per tier: an overwrite-heavy store (each key rewritten ``rewrites`` times)
   with ``Retention(history_versions=1)``; the history is placed in one tier (hot, warm or
   cold) and one ``store.gc(compact=False)`` pass is timed: versions removed per second.
2. Commit throughput while GC runs: the same commit loop (100 writes per commit, keys
   rewritten over and over, ``history_versions=100``) with the background GC worker off, and
   with it on (``gc_interval=0.05``: a pass every 50 ms, capped by the worker's duty cycle),
   while it removes versions; the slowdown is printed against the 20% target. Both runs happen in this process,
   one after the other, so compare the ratio, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import engine
from engine import EntryKind, Retention

T = EntryKind.source(1)


def _load(store, keys: int, rewrites: int) -> None:
    for r in range(rewrites):
        for start in range(0, keys, 100):
            with store.begin() as tx:
                for i in range(start, min(keys, start + 100)):
                    tx.set(T, b"key%08d" % i, b"%04d" % r * 25)


def gc_throughput(root: Path, tier: str, keys: int, rewrites: int) -> dict[str, float]:
    layout = {"hot": "memory", "warm": "hot+warm", "cold": "hot+warm+cold"}[tier]
    store = engine.open(root / f"gc-{tier}", layout=engine.Layout.parse(layout, background=False),
                        retention=Retention(history_versions=1), gc_interval=0)
    _load(store, keys, rewrites)
    if tier != "hot":
        store.flush()
    if tier == "cold":
        store.demote(policy="history")
    t0 = time.perf_counter()
    res = store.gc(compact=False)
    dt = time.perf_counter() - t0
    store.close()
    return {"removed": res["removed_versions"], "seconds": dt, "per_s": res["removed_versions"] / dt,
            "by_tier": res["removed_bytes"]}


def commit_rate(root: Path, name: str, keys: int, seconds: float, gc_on: bool) -> tuple[float, int]:
    store = engine.open(root / name, layout=engine.Layout.parse("hot+warm+cold", background=False),
                        retention=Retention(history_versions=100), gc_interval=0.05 if gc_on else 0)
    n = 0
    t0 = time.perf_counter()
    i = 0
    while time.perf_counter() - t0 < seconds:
        with store.begin() as tx:
            for _ in range(100):
                tx.set(T, b"key%08d" % (i % keys), b"v%d" % i)
                i += 1
        n += 100
    rate = n / (time.perf_counter() - t0)
    removed = store.stats()["gc"]["removed_versions"]
    store.close()
    return rate, removed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=20_000)
    ap.add_argument("--rewrites", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="tierdb-gcbench-"))
    try:
        print(f"GC throughput ({args.keys} keys x {args.rewrites} rewrites, history_versions=1):")
        for tier in ("hot", "warm", "cold"):
            r = gc_throughput(root, tier, args.keys, args.rewrites)
            print(f"  {tier:5s} removed {r['removed']:>8,} versions in {r['seconds']:6.2f}s = "
                  f"{r['per_s']:>10,.0f} versions/s  (bytes by tier {r['by_tier']})")
        rates = []
        for rep in range(2):  # interleave to spread the machine's noise over both
            off, _ = commit_rate(root, f"off{rep}", 5000, args.seconds, gc_on=False)
            on, removed = commit_rate(root, f"on{rep}", 5000, args.seconds, gc_on=True)
            rates.append((off, on, removed))
        off = max(r[0] for r in rates)
        on = max(r[1] for r in rates)
        removed = max(r[2] for r in rates)
        slowdown = 1 - on / off
        print(f"commit throughput without GC {off:,.0f} writes/s, with the background GC worker "
              f"{on:,.0f} writes/s ({removed:,} versions removed meanwhile): "
              f"slowdown {slowdown:.1%} (target <= 20%) {'OK' if slowdown <= 0.2 else 'MISSED'}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
