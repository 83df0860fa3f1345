"""Issue 10's peer comparison: tierdb layouts beside versioned RocksDB, LMDB, SQLite, ...

Run (a few minutes at 100k keys on 2 cores)::

    .venv/bin/python benches/bench_peers.py                     # --keys 100000 --rounds 3
    .venv/bin/python benches/bench_peers.py --keys 1000000      # the 1M-key table
    .venv/bin/python benches/bench_peers.py --layouts hot+warm+cold,memory --peers rocksdb,lmdb

Workload (``engine.bench.workloads.aged``): 16-byte keys, 100-byte values, commits of 100
writes; pass 1 writes every key, pass 2 overwrites or removes (1 in 5) a seeded half of the
keys; load writes/s is timed with tierdb's background movement running (default layout,
durability ``normal``). Then the store ages: tierdb ``store.flush()`` + ``store.demote(latest)``
(every superseded version goes to cold), RocksDB flushes and compacts, SlateDB flushes, SQLite
checkpoints its WAL. Then random gets (``get_many`` chunks of 100; tierdb uses
``store.get_many`` when it exists) at the latest version and at the version that ended
pass 1, 1000-row scans from random keys at both versions, full scans; disk bytes after
close, RSS added (peak RSS minus RSS just before the target opened; every target runs in
its own fresh child process). ``sync``: 8 threads committing 100-write commits with
``durability="sync"`` against the fsync floor (one thread appending a commit-sized record
+ fsync) and RocksDB synced writes.

Targets run interleaved per round (order rotated each round); every figure is the median
of the rounds with its spread (± half of (max - min) / median). Every target's answers are
checked against the dict reference first; a wrong target is reported WRONG, with no
figures. SlateDB (async binding, ~150 us per call) runs a tenth of the gets and scans.
Exit status: 0 when every target verified, 1 otherwise (goals do not change it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.bench.data import Params
from engine.bench.peers import PEERS, unavailable
from engine.bench.report import (
    figure_table,
    fmt_value,
    ratio,
    ratio_table,
    status_lines,
    table,
)
from engine.bench.runner import Cell, run_matrix
from engine.bench.tierdb_target import parse_layout

COLUMNS = ["load writes/s", "get latest/s", "get old/s", "scan latest rows/s", "scan old rows/s",
           "full scan rows/s", "disk MB", "RSS added MB"]
LABELS = {"load writes/s": "load w/s", "get latest/s": "get latest/s", "get old/s": "get old/s",
          "scan latest rows/s": "scan rows/s", "scan old rows/s": "scan old rows/s",
          "full scan rows/s": "full scan rows/s", "disk MB": "disk MB", "RSS added MB": "RSS+ MB"}
DEFAULT_PEERS = ["rocksdb", "lmdb", "sqlite", "rocksdb-raw", "dict", "slatedb"]


# Bytes the hot tier accounts per clean copy beyond key and value (engine/tiers/hot.py:
# _VERSION_OVERHEAD + _KEY_OVERHEAD), to tell whether a run's latest values fit its cache.
CLEAN_COPY_OVERHEAD = 184


def goals(tier: Cell, cells: dict[str, Cell], sync: dict[str, Cell], layout: str,
          keys: int = 0, key_size: int = 16, value_size: int = 100) -> list[tuple[str, str, bool | None]]:
    """Issue 10's goals for one tierdb layout: (goal, measured, met or None = not measured)."""
    rocks, sqlite = cells.get("peer:rocksdb"), cells.get("peer:sqlite")
    out: list[tuple[str, str, bool | None]] = []

    def vs(name: str, peer: Cell | None, peer_label: str, want: float, lower: bool = False) -> None:
        label = f"{name} {'<=' if lower else '>='} {want}x {peer_label}"
        r = ratio(tier, peer, name) if peer is not None else None
        if r is None:
            out.append((label, "not measured", None))
        else:
            out.append((label, f"{r:.2f}x", r <= want if lower else r >= want))

    vs("get old/s", rocks, "versioned RocksDB", 1.0)
    vs("get old/s", sqlite, "SQLite", 1.5)
    vs("get latest/s", rocks, "versioned RocksDB", 1.0)
    lay = parse_layout(layout)
    working_set = keys * (key_size + value_size + CLEAN_COPY_OVERHEAD)
    fits = "hot" in lay.tiers and 0 < working_set <= lay.hot_cache_bytes
    if fits and rocks is not None:
        vs("get latest/s", rocks, "versioned RocksDB (the working set fits the hot cache)", 1.5)
    else:
        out.append(("get latest/s >= 1.5x versioned RocksDB when the working set fits the hot budget",
                    f"not measured at this size (latest values {working_set / 1e6:.0f} MB > hot cache "
                    f"{lay.hot_cache_bytes / 1e6:.0f} MB)", None))
    vs("scan latest rows/s", rocks, "versioned RocksDB", 1.0)
    vs("scan old rows/s", rocks, "versioned RocksDB", 0.7)
    vs("full scan rows/s", rocks, "versioned RocksDB", 1.0)
    vs("load writes/s", rocks, "versioned RocksDB", 0.75)
    vs("load writes/s", sqlite, "SQLite", 8.0)
    vs("disk MB", rocks, "versioned RocksDB", 0.8, lower=True)
    ts, fl = sync.get("tierdb:" + layout), sync.get("fsync-floor")
    r = ratio(ts, fl, "sync commits/s") if ts is not None and fl is not None else None
    out.append(("sync commits/s (8 threads) >= 4x the fsync floor", "not measured" if r is None else f"{r:.2f}x",
                None if r is None else r >= 4.0))
    budget = (lay.hot_bytes + lay.hot_cache_bytes + lay.warm_cache_bytes + lay.cold_cache_bytes) / 1e6 + 100
    rss = tier.median("RSS added MB")
    out.append((f"RSS added <= hot budget + caches + 100 MB ({budget:.0f} MB)",
                "not measured" if rss is None else f"{rss:.0f} MB", None if rss is None else rss <= budget))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--layouts", default="hot+warm+cold", help="comma-separated tierdb layouts")
    ap.add_argument("--peers", default=",".join(DEFAULT_PEERS), help=f"comma-separated, of {', '.join(PEERS)}")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--gets", type=int, default=20_000)
    ap.add_argument("--no-sync", action="store_true", help="skip the sync-durability comparison")
    ap.add_argument("--sync-seconds", type=float, default=1.5)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="rates in wall-clock seconds (default) or process CPU seconds (all threads of "
                    "the target's process; steadier when other work shares the machine)")
    args = ap.parse_args(argv)
    if args.keys <= 0 or args.rounds <= 0 or args.gets <= 0:
        ap.error("--keys, --rounds and --gets must be positive")
    layouts = [x.strip() for x in args.layouts.split(",") if x.strip()]
    for lay in layouts:
        try:
            parse_layout(lay)
        except ValueError as e:
            ap.error(str(e))
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    for p in peers:
        if p not in PEERS:
            ap.error(f"unknown peer {p!r}; peers: {', '.join(PEERS)}")
    skipped = []
    for p in list(peers):
        reason = unavailable(p)
        if reason:
            skipped.append(reason)
            peers.remove(p)
    targets = [f"tierdb:{lay}" for lay in layouts] + [f"peer:{p}" for p in peers]
    params = Params(keys=args.keys, seed=args.seed, gets=args.gets, clock=args.clock)

    def params_for(workload: str, target: str) -> Params:
        if target == "peer:slatedb":
            p = Params.from_json(params.to_json())
            p.gets, p.scans, p.latency_samples = max(100, p.gets // 10), max(10, p.scans // 10), 200
            return p
        return params

    t0 = time.perf_counter()

    def progress(label: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f}s] {label}", file=sys.stderr, flush=True)

    cells = run_matrix(targets, ["aged"], params, args.rounds, progress=progress, params_for=params_for)
    by_target = {c.target: c for c in cells}
    sync_cells: list[Cell] = []
    if not args.no_sync:
        sync_targets = [f"tierdb:{lay}" for lay in layouts] + ["fsync-floor"]
        if "rocksdb" in peers:
            sync_targets.append("peer:rocksdb")
        sp = Params(keys=args.keys, seed=args.seed, durability="sync", seconds=args.sync_seconds)
        sync_cells = run_matrix(sync_targets, ["sync"], sp, args.rounds, reference=False, progress=progress)
    sync = {c.target: c for c in sync_cells}
    elapsed = time.perf_counter() - t0

    print(f"tierdb peer benchmark (issue 10): {args.keys:,} keys x 16 B, {params.value_size} B values, "
          f"commits of {params.batch}; pass 2 rewrites/removes half; {args.rounds} interleaved rounds, "
          f"median ± half-spread; seed {args.seed}; {args.clock} clock; {elapsed:.0f} s")
    print()
    print(figure_table(cells, COLUMNS, labels=LABELS))
    for line in skipped + status_lines(cells):
        print("  " + line)
    print()
    tiers = [c for c in cells if c.target.startswith("tierdb:")]
    others = [c for c in cells if not c.target.startswith("tierdb:") and c.has_figures]
    print("ratios, tierdb / peer (higher is better for rates; lower for disk and RSS):")
    print(ratio_table(tiers, others, COLUMNS, labels=LABELS))
    if sync_cells:
        print()
        print(f"sync durability: {Params().threads} threads committing {params.batch}-write commits, "
              f"{args.sync_seconds}s per run")
        rows = []
        floor = sync.get("fsync-floor")
        for c in sync_cells:
            v = c.median("sync commits/s") if c.has_figures else None
            r = ratio(c, floor, "sync commits/s") if floor is not None and c is not floor else None
            f = c.figures.get("sync commits/s")
            spread = f" ±{100 * f['spread'] / 2:.0f}%" if f and len(f["values"]) > 1 else ""
            rows.append([c.target, (fmt_value(v, "/s") + spread) if v is not None else c.status.upper(),
                         "-" if r is None else f"{r:.2f}x"])
        print(table(["target", "commits/s", "vs fsync floor"], rows))
    for t in tiers:
        print()
        print(f"issue-10 goals for {t.target}:")
        for label, measured, met in goals(t, by_target, sync, t.target[len('tierdb:'):], args.keys,
                                          value_size=params.value_size):
            mark = "n/a    " if met is None else ("met    " if met else "NOT MET")
            print(f"  {mark} {label}: {measured}")
    ok = all(c.status in ("ok", "skipped") for c in cells)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
