"""The storage-layout benchmark: every layout on one workload, beside raw peers, in one run.

Script mode (the layout runner)::

    python benches/bench_layouts.py [--keys 50000] [--rounds 3] [--layouts memory,warm,...]
    python benches/bench_layouts.py --rss [--rss-keys 2000000] [--hot-mib 64]

pytest-benchmark mode::

    pytest benches/bench_layouts.py --benchmark-enable

Workload: ``keys`` keys (``user:%08d``), 100-byte values, written ``rounds`` times in commits of
100 writes (so every key has ``rounds`` versions). Then, for tiered layouts, everything is
flushed to warm and superseded versions are demoted to cold (``history`` policy), so the
measured reads cross the real tier boundaries. Operations:

  commit      writes/s, 100 writes per commit (durability="normal")
  get latest  point gets/s at the newest version (random keys)
  get old     point gets/s at version 1 (served from cold on three-tier layouts)
  scan        rows/s of a full scan at the latest version
  scan old    rows/s of a full scan at the first round's last version

Peers in the same run: raw rocksdict (one value per key; WriteBatch puts, get, items()),
LMDB (same inverted-version key layout as the warm tier) and SQLite (``(key, version)``
WITHOUT ROWID table, WAL mode). Ratios are printed against the warm layout and the peers,
because this machine is shared and noisy: compare within a run, not across runs.

``--rss`` runs a separate child process that loads ``rss-keys`` keys into the default layout
with a ``hot-mib`` hot budget and reports peak RSS against budget + 150 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import engine
from engine import EntryKind

T = EntryKind.source(1)
LAYOUTS = ["memory", "warm", "hot+warm", "hot+warm+cold", "warm+cold"]
BATCH = 100
TARGETS = {  # (numerator, denominator, operation, minimum ratio) from the router issue
    "default get latest vs warm": ("hot+warm+cold", "warm", "get latest", 0.8),
    "default scan vs warm": ("hot+warm+cold", "warm", "scan", 0.6),
}


def key_of(i: int) -> bytes:
    return b"user:%08d" % i


def value_of(i: int, r: int) -> bytes:
    return (b"%08d-%04d|" % (i, r)) * 7 + b"x" * 16


def timed(fn: Callable[[], int], repeat: int) -> float:
    """Best ops/s over ``repeat`` runs of ``fn`` (which returns the op count)."""
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        dt = time.perf_counter() - t0
        best = max(best, n / dt if dt > 0 else float("inf"))
    return best


# -- tierdb layouts -------------------------------------------------------------------------


def bench_layout(layout: str, root: Path, keys: int, rounds: int, repeat: int, seed: int = 1) -> dict[str, float]:
    path = root / layout.replace("+", "_")
    lay = engine.Layout.parse(layout, background=False)
    store = engine.open(path, layout=lay)
    res: dict[str, float] = {}
    t0 = time.perf_counter()
    first_round_end = 0
    for r in range(rounds):
        for start in range(0, keys, BATCH):
            with store.begin() as tx:
                for i in range(start, min(keys, start + BATCH)):
                    tx.set(T, key_of(i), value_of(i, r))
        if r == 0:
            first_round_end = store.version
    res["commit"] = keys * rounds / (time.perf_counter() - t0)
    store.flush()
    store.demote(policy="history")
    rng = random.Random(seed)
    sample = [key_of(rng.randrange(keys)) for _ in range(20_000)]
    get = store.get

    def gets_latest() -> int:
        for k in sample:
            get(T, k)
        return len(sample)

    def gets_old() -> int:
        for k in sample[:5000]:
            get(T, k, version=1)
        return 5000

    def scan(version: int | None) -> Callable[[], int]:
        def run() -> int:
            n = 0
            for _ in store.range(T, version=version):
                n += 1
            assert n == keys
            return n
        return run

    res["get latest"] = timed(gets_latest, repeat)
    res["get old"] = timed(gets_old, repeat)
    res["scan"] = timed(scan(None), repeat)
    res["scan old"] = timed(scan(first_round_end), repeat)
    st = store.stats()
    res["_tiers"] = {n: {k: s.get(k) for k in ("keys", "versions", "bytes")} for n, s in st["tiers"].items()}  # type: ignore[assignment]
    store.close()
    return res


# -- peers --------------------------------------------------------------------------------


def bench_rocksdict(root: Path, keys: int, rounds: int, repeat: int) -> dict[str, float]:
    import rocksdict

    db = rocksdict.Rdict(str(root / "raw-rocksdict"))
    res: dict[str, float] = {}
    t0 = time.perf_counter()
    for r in range(rounds):
        for start in range(0, keys, BATCH):
            wb = rocksdict.WriteBatch(raw_mode=False)
            for i in range(start, min(keys, start + BATCH)):
                wb.put(key_of(i), value_of(i, r))
            db.write(wb)
    res["commit"] = keys * rounds / (time.perf_counter() - t0)
    db.flush()
    rng = random.Random(1)
    sample = [key_of(rng.randrange(keys)) for _ in range(20_000)]

    def gets() -> int:
        g = db.get
        for k in sample:
            g(k)
        return len(sample)

    def scan() -> int:
        n = 0
        for _ in db.items():
            n += 1
        return n

    res["get latest"] = timed(gets, repeat)
    res["scan"] = timed(scan, repeat)
    db.close()
    return res


def bench_lmdb(root: Path, keys: int, rounds: int, repeat: int) -> dict[str, float]:
    import lmdb

    inv = struct.Struct(">Q").pack
    maxv = (1 << 64) - 1

    def enc(k: bytes, v: int) -> bytes:
        return k.replace(b"\x00", b"\x00\xff") + b"\x00\x00" + inv(maxv - v)

    env = lmdb.open(str(root / "lmdb"), map_size=8 << 30, sync=False, metasync=False)
    res: dict[str, float] = {}
    version = 0
    t0 = time.perf_counter()
    for r in range(rounds):
        for start in range(0, keys, BATCH):
            version += 1
            with env.begin(write=True) as txn:
                for i in range(start, min(keys, start + BATCH)):
                    txn.put(enc(key_of(i), version), value_of(i, r))
    res["commit"] = keys * rounds / (time.perf_counter() - t0)
    rng = random.Random(1)
    sample = [key_of(rng.randrange(keys)) for _ in range(20_000)]

    def gets_at(v: int, n: int) -> Callable[[], int]:
        def run() -> int:
            with env.begin() as txn:
                cur = txn.cursor()
                for k in sample[:n]:
                    prefix = k + b"\x00\x00"
                    if cur.set_range(enc(k, v)) and cur.key().startswith(prefix):
                        cur.value()
            return n
        return run

    def scan() -> int:
        n = 0
        last = None
        with env.begin() as txn:
            for k, _v in txn.cursor():
                lk = k[:-10]
                if lk != last:
                    n += 1
                    last = lk
        return n

    res["get latest"] = timed(gets_at(version, 20_000), repeat)
    res["get old"] = timed(gets_at(1, 5000), repeat)
    res["scan"] = timed(scan, repeat)
    env.close()
    return res


def bench_sqlite(root: Path, keys: int, rounds: int, repeat: int) -> dict[str, float]:
    db = sqlite3.connect(str(root / "sqlite.db"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE kv (key BLOB, version INTEGER, value BLOB, PRIMARY KEY (key, version)) WITHOUT ROWID")
    res: dict[str, float] = {}
    version = 0
    t0 = time.perf_counter()
    for r in range(rounds):
        for start in range(0, keys, BATCH):
            version += 1
            db.execute("BEGIN")
            db.executemany("INSERT INTO kv VALUES (?, ?, ?)",
                           [(key_of(i), version, value_of(i, r)) for i in range(start, min(keys, start + BATCH))])
            db.execute("COMMIT")
    res["commit"] = keys * rounds / (time.perf_counter() - t0)
    rng = random.Random(1)
    sample = [key_of(rng.randrange(keys)) for _ in range(20_000)]
    q = "SELECT value FROM kv WHERE key = ? AND version <= ? ORDER BY version DESC LIMIT 1"

    def gets_at(v: int, n: int) -> Callable[[], int]:
        def run() -> int:
            ex = db.execute
            for k in sample[:n]:
                ex(q, (k, v)).fetchone()
            return n
        return run

    def scan() -> int:
        n = 0
        for _ in db.execute("SELECT key, value FROM kv k1 WHERE version = (SELECT MAX(version) FROM kv k2 "
                            "WHERE k2.key = k1.key AND version <= ?) ORDER BY key", (version,)):
            n += 1
        return n

    res["get latest"] = timed(gets_at(version, 20_000), repeat)
    res["get old"] = timed(gets_at(1, 5000), repeat)
    res["scan"] = timed(scan, repeat)
    db.close()
    return res


# -- RSS ------------------------------------------------------------------------------------


def rss_child(path: str, nkeys: int, hot_mib: int) -> None:
    lay = engine.Layout.parse("hot+warm+cold", hot_bytes=hot_mib << 20, flush_interval=1.0)
    store = engine.open(path, layout=lay)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    for start in range(0, nkeys, 1000):
        with store.begin() as tx:
            for i in range(start, min(nkeys, start + 1000)):
                tx.set(T, key_of(i), value_of(i, 0))
    load_s = time.perf_counter() - t0
    store.flush()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    hot_bytes = store.stats()["tiers"]["hot"]["bytes"]
    store.close()
    print(json.dumps({"keys": nkeys, "peak_rss": peak, "baseline_rss": baseline, "load_s": load_s,
                      "hot_after_flush": hot_bytes}))


def run_rss(nkeys: int, hot_mib: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="tierdb-rss-"))
    try:
        out = subprocess.run([sys.executable, __file__, "--rss-child", str(tmp / "db"), str(nkeys), str(hot_mib)],
                             capture_output=True, text=True, check=True)
        res: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    limit = (hot_mib << 20) + (150 << 20)
    res["limit"] = limit
    res["ok"] = res["peak_rss"] <= limit
    return res


# -- runner ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--layouts", default=",".join(LAYOUTS))
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rss", action="store_true", help="run the peak-RSS load test instead")
    ap.add_argument("--rss-keys", type=int, default=2_000_000)
    ap.add_argument("--hot-mib", type=int, default=64)
    ap.add_argument("--rss-child", nargs=3, metavar=("PATH", "KEYS", "HOT_MIB"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.rss_child:
        rss_child(args.rss_child[0], int(args.rss_child[1]), int(args.rss_child[2]))
        return 0
    if args.rss:
        res = run_rss(args.rss_keys, args.hot_mib)
        print(json.dumps(res, indent=2))
        print(f"peak RSS {res['peak_rss'] / 2**20:.0f} MiB vs limit {res['limit'] / 2**20:.0f} MiB "
              f"(hot budget {args.hot_mib} MiB + 150 MB): {'OK' if res['ok'] else 'OVER'}")
        return 0 if res["ok"] else 1
    root = Path(tempfile.mkdtemp(prefix="tierdb-layouts-"))
    results: dict[str, dict[str, Any]] = {}
    try:
        for layout in args.layouts.split(","):
            results[layout] = bench_layout(layout, root, args.keys, args.rounds, args.repeat)
            print(f"done {layout}", file=sys.stderr)
        if not args.no_peers:
            results["rocksdict (raw)"] = bench_rocksdict(root, args.keys, args.rounds, args.repeat)
            results["lmdb"] = bench_lmdb(root, args.keys, args.rounds, args.repeat)
            results["sqlite"] = bench_sqlite(root, args.keys, args.rounds, args.repeat)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    ops = ["commit", "get latest", "get old", "scan", "scan old"]
    print(f"\n{args.keys} keys x {args.rounds} versions, 100 writes per commit (ops/s; best of {args.repeat})")
    print(f"{'engine':18s}" + "".join(f"{o:>14s}" for o in ops))
    for name, res in results.items():
        print(f"{name:18s}" + "".join(f"{res[o]:14,.0f}" if o in res else f"{'-':>14s}" for o in ops))
    if "warm" in results:
        print("\nratios against the warm layout:")
        for name, res in results.items():
            print(f"{name:18s}" + "".join(
                f"{res[o] / results['warm'][o]:14.2f}" if o in res and o in results["warm"] else f"{'-':>14s}"
                for o in ops))
    print("\ntargets:")
    for label, (num, den, op, minimum) in TARGETS.items():
        if num in results and den in results:
            ratio = results[num][op] / results[den][op]
            print(f"  {label}: {ratio:.2f}x (target >= {minimum}x) {'OK' if ratio >= minimum else 'MISSED'}")
    for name in args.layouts.split(","):
        print(f"  tiers after movement, {name}: {results[name]['_tiers']}")
    return 0


# -- pytest-benchmark -----------------------------------------------------------------------

try:
    import pytest
except ImportError:  # pragma: no cover - script mode without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:
    @pytest.fixture(scope="module", params=LAYOUTS)
    def loaded(request, tmp_path_factory):  # type: ignore[no-untyped-def]
        path = tmp_path_factory.mktemp("layout")
        store = engine.open(path / "db", layout=engine.Layout.parse(request.param, background=False))
        for r in range(2):
            for start in range(0, 5000, BATCH):
                with store.begin() as tx:
                    for i in range(start, start + BATCH):
                        tx.set(T, key_of(i), value_of(i, r))
        store.flush()
        store.demote()
        yield store
        store.close()

    def test_get_latest(benchmark, loaded):  # type: ignore[no-untyped-def]
        keys = [key_of(i) for i in range(0, 5000, 7)]
        benchmark(lambda: [loaded.get(T, k) for k in keys])

    def test_get_old(benchmark, loaded):  # type: ignore[no-untyped-def]
        keys = [key_of(i) for i in range(0, 5000, 7)]
        benchmark(lambda: [loaded.get(T, k, version=1) for k in keys])

    def test_scan(benchmark, loaded):  # type: ignore[no-untyped-def]
        benchmark(lambda: sum(1 for _ in loaded.range(T)))


if __name__ == "__main__":
    sys.exit(main())
