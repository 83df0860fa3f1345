"""Warm tier vs raw rocksdict vs LMDB (same inverted-version key layout), in one run.

Script mode prints the ratios the warm-tier issue sets targets for::

    python benches/bench_warm.py [--keys 20000] [--versions 3] [--repeat 5]

pytest-benchmark mode (one benchmark per operation and engine)::

    pytest benches/bench_warm.py --benchmark-enable

Workload (all engines): ``keys`` keys of 16 bytes, 100-byte values, written ``versions`` times
(versions 1..V) in batches of 100 keys per commit; then everything is compacted into SST
files so reads come from the block cache, as on a warm store. Raw rocksdict holds one value
per key (it has no versions), LMDB and the warm tier hold every version.

Operations:
  writes      100 entries per commit (warm ``set``; raw one WriteBatch of 100 puts; LMDB one
              write txn of 100 puts)
  get latest  newest version (warm ``get(table, key, MAX)`` vs raw ``get``)
  get old     the oldest version (version 1) vs raw ``get``
  get_many    ``get_many`` in batches of 100 at the latest version vs raw ``get`` per key
  scan        rows/s of a full table scan at the latest version through ``range_next``
              pages of 1024 vs raw ``items()``
  scan_items  the same through ``scan_items`` (live ``(key, value)`` pairs, no RawEntry)
Each operation reports the best of ``repeat`` rounds timed in thread CPU seconds, engines
interleaved round by round so that background load hits them alike. ``--compare-latest`` adds the latest-read
design comparison of docs/FORMATS.md (current-value CF vs fresh vs cached iterators).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rocksdict

from engine.tiers.warm import WarmTier
from engine.types import Bound, EntryKind, RangeCursor, RawEntry

T = EntryKind.MULTI
MAXV = (1 << 64) - 1
_INV = struct.Struct(">Q").pack
VALUE = b"v" * 100
BATCH = 100

TARGETS = {"writes": 0.7, "get latest": 0.8, "get old": 0.6, "get_many": 0.8, "scan": 0.5,
           "scan_items": 0.5}


def _lmdb_key(key: bytes, version: int) -> bytes:
    return key.replace(b"\x00", b"\x00\xff") + b"\x00\x00" + _INV(MAXV - version)


@dataclass
class Workload:
    keys: list[bytes]
    versions: int
    sample: list[bytes]

    @classmethod
    def make(cls, nkeys: int, versions: int, nsample: int = 10000, seed: int = 7) -> Workload:
        rng = random.Random(seed)
        keys = [b"user:%011d" % i for i in range(nkeys)]
        rng.shuffle(keys)
        return cls(keys, versions, [rng.choice(keys) for _ in range(nsample)])


class Engines:
    """The three engines loaded with the same workload under one temp directory."""

    def __init__(self, root: Path, wl: Workload) -> None:
        self.root = root
        self.wl = wl
        self.warm = WarmTier(root / "warm")
        o = rocksdict.Options(raw_mode=True)
        o.create_if_missing(True)
        bbo = rocksdict.BlockBasedOptions()
        bbo.set_block_cache(rocksdict.Cache(64 << 20))
        bbo.set_bloom_filter(10, False)  # raw point gets get their best case: a bloom filter
        o.set_block_based_table_factory(bbo)
        o.set_compression_type(rocksdict.DBCompressionType.lz4())
        o.set_write_buffer_size(64 << 20)
        self.raw = rocksdict.Rdict(str(root / "raw"), o)
        import lmdb

        self.lmdb = lmdb.open(str(root / "lmdb"), map_size=4 << 30, sync=False, metasync=False)
        self.next_version = 1
        self._load()

    def _load(self) -> None:
        keys = self.wl.keys
        for v in range(1, self.wl.versions + 1):
            for i in range(0, len(keys), BATCH):
                chunk = keys[i:i + BATCH]
                self.warm.set(v, {T: [(k, VALUE) for k in chunk]})
                wb = rocksdict.WriteBatch(raw_mode=True)
                for k in chunk:
                    wb.put(k, VALUE)
                self.raw.write(wb)
                with self.lmdb.begin(write=True) as txn:
                    for k in chunk:
                        txn.put(_lmdb_key(k, v), b"\x01" + VALUE)
        self.next_version = self.wl.versions + 1
        self.warm.compact()
        self.raw.compact_range(None, None)

    def close(self) -> None:
        self.warm.close()
        self.raw.close()
        self.lmdb.close()


# --- operations: each returns (callable, ops per call) ------------------------------------


def warm_writes(e: Engines) -> Callable[[], int]:
    keys = e.wl.keys

    def run() -> int:
        v = e.next_version
        e.next_version += 1
        for i in range(0, 2000, BATCH):
            e.warm.set(v, {T: [(k, VALUE) for k in keys[i:i + BATCH]]})
        return 2000
    return run


def raw_writes(e: Engines) -> Callable[[], int]:
    keys = e.wl.keys
    db = e.raw

    def run() -> int:
        for i in range(0, 2000, BATCH):
            wb = rocksdict.WriteBatch(raw_mode=True)
            for k in keys[i:i + BATCH]:
                wb.put(k, VALUE)
            db.write(wb)
        return 2000
    return run


def lmdb_writes(e: Engines) -> Callable[[], int]:
    keys = e.wl.keys

    def run() -> int:
        v = e.next_version
        e.next_version += 1
        for i in range(0, 2000, BATCH):
            with e.lmdb.begin(write=True) as txn:
                put = txn.put
                for k in keys[i:i + BATCH]:
                    put(_lmdb_key(k, v), b"\x01" + VALUE)
        return 2000
    return run


def warm_get(e: Engines, version: int | None) -> Callable[[], int]:
    sample = e.wl.sample
    get = e.warm.get
    ver = MAXV if version is None else version

    def run() -> int:
        for k in sample:
            get(T, k, ver)
        return len(sample)
    return run


def warm_get_many(e: Engines) -> Callable[[], int]:
    sample = e.wl.sample
    get_many = e.warm.get_many

    def run() -> int:
        for i in range(0, len(sample), 100):
            get_many(T, sample[i:i + 100], MAXV)
        return len(sample)
    return run


def raw_get(e: Engines) -> Callable[[], int]:
    sample = e.wl.sample
    get = e.raw.get

    def run() -> int:
        for k in sample:
            get(k)
        return len(sample)
    return run


def lmdb_get(e: Engines, version: int | None) -> Callable[[], int]:
    sample = e.wl.sample
    ver = MAXV if version is None else version
    inv = _INV(MAXV - ver)

    def run() -> int:
        with e.lmdb.begin() as txn:
            cur = txn.cursor()
            for k in sample:
                p = k.replace(b"\x00", b"\x00\xff") + b"\x00\x00"
                if cur.set_range(p + inv):
                    ck = cur.key()
                    if ck[:-8] == p:
                        v = cur.value()
                        _ = v[1:] if v[:1] == b"\x01" else None
        return len(sample)
    return run


def warm_scan(e: Engines) -> Callable[[], int]:
    def run() -> int:
        cur = RangeCursor()
        n = 0
        while True:
            b = e.warm.range_next(T, cur, Bound.UNBOUNDED, Bound.UNBOUNDED, MAXV, 1024)
            n += len(b.entries)
            if not b.has_more:
                return n
    return run


def warm_scan_items(e: Engines) -> Callable[[], int]:
    def run() -> int:
        n = 0
        for _ in e.warm.scan_items(T, Bound.UNBOUNDED, Bound.UNBOUNDED, MAXV):
            n += 1
        return n
    return run


def raw_scan(e: Engines) -> Callable[[], int]:
    def run() -> int:
        n = 0
        for _k, _v in e.raw.items():
            n += 1
        return n
    return run


def lmdb_scan(e: Engines) -> Callable[[], int]:
    def run() -> int:
        n = 0
        last = None
        with e.lmdb.begin() as txn:
            for k, v in txn.cursor().iternext():
                p = k[:-8]
                if p != last:
                    last = p
                    n += 1
        return n
    return run


def best_rate(fn: Callable[[], int], repeat: int) -> float:
    """Best ops/s over ``repeat`` rounds, timed in CPU seconds of the calling thread.

    Thread CPU time rather than wall time: on a shared machine other processes (and RocksDB's
    own background flushes and compactions, which every engine here defers alike) otherwise
    swamp the differences being measured.
    """
    best = 0.0
    for _ in range(repeat):
        t = time.thread_time()
        n = fn()
        dt = max(time.thread_time() - t, 1e-9)
        best = max(best, n / dt)
    return best


def run_all(nkeys: int, versions: int, repeat: int) -> list[tuple[str, float, float, float]]:
    """Rows of (operation, warm ops/s, raw ops/s, lmdb ops/s)."""
    root = Path(tempfile.mkdtemp(prefix="tierdb-bench-warm-", dir="/tmp"))
    try:
        e = Engines(root, Workload.make(nkeys, versions))
        try:
            ops: list[tuple[str, Callable[[], int], Callable[[], int], Callable[[], int]]] = [
                ("get latest", warm_get(e, None), raw_get(e), lmdb_get(e, None)),
                ("get old", warm_get(e, 1), raw_get(e), lmdb_get(e, 1)),
                ("get_many", warm_get_many(e), raw_get(e), lmdb_get(e, None)),
                ("scan", warm_scan(e), raw_scan(e), lmdb_scan(e)),
                ("scan_items", warm_scan_items(e), raw_scan(e), lmdb_scan(e)),
                ("writes", warm_writes(e), raw_writes(e), lmdb_writes(e)),
            ]
            rows = []
            for name, w, r, lm in ops:
                # interleave engines round by round so that background noise hits all alike
                bw = br = bl = 0.0
                for _ in range(repeat):
                    bw = max(bw, best_rate(w, 1))
                    br = max(br, best_rate(r, 1))
                    bl = max(bl, best_rate(lm, 1))
                rows.append((name, bw, br, bl))
            return rows
        finally:
            e.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def compare_latest_strategies(nkeys: int, versions: int, repeat: int) -> list[tuple[str, float, float, float]]:
    """The latest-read designs considered for the warm tier, on raw rocksdict with its layout.

    Rows of (strategy, latest get ops/s, old get ops/s, write entries/s), plus a "raw" row
    (unversioned get / WriteBatch put). Strategies:
      current-cf   a second CF key -> (tag, version, value) kept in the same WriteBatch: latest
                   get = one point get; old get = that get, then a seek; two puts per entry
      fresh-iter   versioned CF only; every read creates an iterator and seeks
      cached-iter  versioned CF only; a per-thread iterator reused until the next write (kept)
    """
    root = Path(tempfile.mkdtemp(prefix="tierdb-bench-latest-", dir="/tmp"))
    wl = Workload.make(nkeys, versions)
    try:
        o = rocksdict.Options(raw_mode=True)
        o.create_if_missing(True)
        o.create_missing_column_families(True)
        cache = rocksdict.Cache(64 << 20)

        def cf_opts(bloom: bool) -> Any:
            c = rocksdict.Options(raw_mode=True)
            bbo = rocksdict.BlockBasedOptions()
            bbo.set_block_cache(cache)
            if bloom:
                bbo.set_bloom_filter(10, False)
            c.set_block_based_table_factory(bbo)
            return c

        db = rocksdict.Rdict(str(root / "db"), o, column_families={
            "raw": cf_opts(True), "ver": cf_opts(False), "cur": cf_opts(True), "ver2": cf_opts(False),
            "ver3": cf_opts(False), "cur3": cf_opts(True)})
        raw, ver, cur = (db.get_column_family(n) for n in ("raw", "ver", "cur"))
        h_raw, h_ver, h_cur, h_ver2, h_ver3, h_cur3 = (
            db.get_column_family_handle(n) for n in ("raw", "ver", "cur", "ver2", "ver3", "cur3"))
        for v in range(1, versions + 1):
            for i in range(0, nkeys, BATCH):
                wb = rocksdict.WriteBatch(raw_mode=True)
                for k in wl.keys[i:i + BATCH]:
                    wb.put(k, VALUE, h_raw)
                    wb.put(_lmdb_key(k, v), b"\x01" + VALUE, h_ver)
                    wb.put(k, b"\x01" + _INV(v) + VALUE, h_cur)
                db.write(wb)
        for c in (raw, ver, cur):
            c.compact_range(None, None)
        sample = wl.sample
        ro = rocksdict.ReadOptions()
        state = {"v": versions + 1}

        def raw_get() -> int:
            g = raw.get
            for k in sample:
                g(k)
            return len(sample)

        def cur_get(old: bool) -> Callable[[], int]:
            def run() -> int:
                g = cur.get
                for k in sample:
                    x = g(k)
                    if x is not None and (not old or int.from_bytes(x[1:9], "big") <= 1):
                        continue
                    p = k + b"\x00\x00"
                    it = ver.iter(ro)
                    it.seek(p + _INV(MAXV - 1))
                    kk = it.key()
                    if kk is not None and kk[:-8] == p:
                        it.value()
                return len(sample)
            return run

        def iter_get(cached: bool, old: bool) -> Callable[[], int]:
            inv = _INV(MAXV - (1 if old else MAXV))

            def run() -> int:
                it = ver.iter(ro)
                for k in sample:
                    if not cached:
                        it = ver.iter(ro)
                    p = k + b"\x00\x00"
                    it.seek(p + inv)
                    kk = it.key()
                    if kk is not None and kk[:-8] == p:
                        it.value()
                return len(sample)
            return run

        def writes(two_puts: bool, unversioned: bool = False) -> Callable[[], int]:
            def run() -> int:
                v = state["v"]
                state["v"] += 1
                for i in range(0, 2000, BATCH):
                    wb = rocksdict.WriteBatch(raw_mode=True)
                    put = wb.put
                    suffix = b"\x00\x00" + _INV(MAXV - v)
                    cv = b"\x01" + _INV(v) + VALUE
                    for k in wl.keys[i:i + BATCH]:
                        if unversioned:
                            put(k, VALUE, h_raw)
                            continue
                        if two_puts:  # own CFs: every design writes into a memtable of equal size
                            put(k + suffix, b"\x01" + VALUE, h_ver3)
                            put(k, cv, h_cur3)
                        else:
                            put(k + suffix, b"\x01" + VALUE, h_ver2)
                    db.write(wb)
                return 2000
            return run

        one_put = writes(False)  # both iterator designs write exactly the same way
        plans = [
            ("raw", raw_get, raw_get, writes(False, True)),
            ("current-cf", cur_get(False), cur_get(True), writes(True)),
            ("fresh-iter", iter_get(False, False), iter_get(False, True), one_put),
            ("cached-iter", iter_get(True, False), iter_get(True, True), None),
        ]
        best = {name: [0.0, 0.0, 0.0] for name, *_ in plans}
        for _ in range(repeat):
            for name, a, b, c in plans:
                for j, fn in enumerate((a, b, c)):
                    if fn is not None:
                        best[name][j] = max(best[name][j], best_rate(fn, 1))
        best["cached-iter"][2] = best["fresh-iter"][2]
        db.close()
        return [(name, *best[name]) for name, *_ in plans]  # type: ignore[misc]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def compare_flush_writes(nkeys: int, repeat: int) -> list[tuple[str, float, float]]:
    """Flush-shaped writes (hot -> warm): ``nkeys`` entries of mixed versions in chunks of 5000,
    then one synced metadata write, as ``Movement.flush`` does. Rows of (variant, entries/s in
    process CPU seconds - RocksDB's background threads included -, entries/s wall). Every
    variant ends with the data in SST files (a memtable flush is forced where RocksDB would
    run it later), so the figures compare the whole work per entry:

      logged     write_entries(sync=False) through RocksDB's WAL (before issue 10)
      unlogged   write_entries(sync=False, logged=False): no WAL record; the synced write
                 flushes the memtable first (kept)
      ingest     SstFileWriter per chunk (sorted) + ingest_external_file (measured, dropped:
                 see docs/FORMATS.md)
    """
    root = Path(tempfile.mkdtemp(prefix="tierdb-bench-flush-", dir="/tmp"))
    rng = random.Random(3)
    keys = sorted({b"user:%011d" % rng.randrange(nkeys * 10) for _ in range(nkeys)})
    try:
        tiers = {name: WarmTier(root / name) for name in ("logged", "unlogged", "ingest")}
        version = [0]
        rates: dict[str, list[tuple[float, float]]] = {name: [] for name in tiers}
        opts = rocksdict.Options(raw_mode=True)

        def run(name: str) -> None:
            t = tiers[name]
            version[0] += 1
            v = version[0]
            rows = [RawEntry(k, v, VALUE) for k in keys]
            cpu, wall = time.process_time(), time.perf_counter()
            for i in range(0, len(rows), 5000):
                chunk = rows[i:i + 5000]
                if name == "ingest":
                    t.ensure_table(T)
                    path = str(root / f"chunk-{v}-{i}.sst")
                    w = rocksdict.SstFileWriter(opts)
                    w.open(path)
                    for e in chunk:
                        w[e.key + b"\x00\x00" + _INV(MAXV - e.version)] = b"\x01" + e.value
                    w.finish()
                    t._cfs[T].ingest_external_file([path])
                else:
                    t.write_entries({T: chunk}, sync=False, logged=name == "logged")
            t.write_entries({}, sync=True, meta={b"flushed": b"%d" % v})
            if name == "logged":
                t._cfs[T].flush(True)  # the memtable flush RocksDB runs later anyway
            rates[name].append((len(rows) / (time.process_time() - cpu),
                                len(rows) / (time.perf_counter() - wall)))

        for _ in range(repeat):
            for name in tiers:
                run(name)
        for t in tiers.values():
            t.close()
        return [(name, max(r[0] for r in rs), max(r[1] for r in rs)) for name, rs in rates.items()]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=20000)
    ap.add_argument("--versions", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--compare-latest", action="store_true",
                    help="also measure the latest-read designs considered (docs/FORMATS.md)")
    ap.add_argument("--flush", action="store_true",
                    help="also compare flush-shaped write paths (logged, unlogged, SST ingest)")
    args = ap.parse_args(argv)
    print(f"warm tier bench: {args.keys} keys x {args.versions} versions, 100-byte values, "
          f"best of {args.repeat}, python {sys.version.split()[0]}, rocksdict, pid {os.getpid()}")
    print(f"{'operation':12s} {'warm ops/s':>12s} {'raw ops/s':>12s} {'lmdb ops/s':>12s} "
          f"{'warm/raw':>9s} {'target':>7s} {'lmdb/raw':>9s}")
    ok = True
    for name, w, r, lm in run_all(args.keys, args.versions, args.repeat):
        ratio = w / r
        target = TARGETS[name]
        ok &= ratio >= target
        print(f"{name:12s} {w:12,.0f} {r:12,.0f} {lm:12,.0f} {ratio:9.2f} {target:7.2f} {lm / r:9.2f}"
              + ("" if ratio >= target else "  (below target)"))
    if args.compare_latest:
        rows = compare_latest_strategies(args.keys, args.versions, args.repeat)
        base = rows[0]
        print("\nlatest-read designs (raw rocksdict, warm key layout); ratios vs raw get / raw put")
        print(f"{'design':12s} {'latest get':>11s} {'old get':>9s} {'writes':>8s}")
        for name, latest, old, w in rows[1:]:
            print(f"{name:12s} {latest / base[1]:11.2f} {old / base[2]:9.2f} {w / base[3]:8.2f}")
    if args.flush:
        rows2 = compare_flush_writes(max(args.keys, 20000), args.repeat)
        print("\nflush writes (entries/s; process CPU incl. RocksDB threads, and wall)")
        for name, cpu, wall in rows2:
            print(f"{name:12s} {cpu:12,.0f} cpu {wall:12,.0f} wall   x{cpu / rows2[0][1]:.2f} cpu vs logged")
    return 0 if ok else 1


# --- pytest-benchmark mode --------------------------------------------------------------------

try:
    import pytest
except ImportError:  # pragma: no cover - script mode works without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="module")
    def engines() -> Iterator[Engines]:
        root = Path(tempfile.mkdtemp(prefix="tierdb-bench-warm-", dir="/tmp"))
        e = Engines(root, Workload.make(5000, 3, nsample=2000))
        try:
            yield e
        finally:
            e.close()
            shutil.rmtree(root, ignore_errors=True)

    OPS: dict[str, Callable[[Engines], Callable[[], int]]] = {
        "warm-writes": warm_writes, "raw-writes": raw_writes, "lmdb-writes": lmdb_writes,
        "warm-get-latest": lambda e: warm_get(e, None), "raw-get": raw_get,
        "lmdb-get-latest": lambda e: lmdb_get(e, None),
        "warm-get-old": lambda e: warm_get(e, 1), "lmdb-get-old": lambda e: lmdb_get(e, 1),
        "warm-get-many": warm_get_many,
        "warm-scan": warm_scan, "warm-scan-items": warm_scan_items, "raw-scan": raw_scan, "lmdb-scan": lmdb_scan,
    }

    @pytest.mark.parametrize("op", list(OPS))
    def test_bench(benchmark: Any, engines: Engines, op: str) -> None:
        fn = OPS[op](engines)
        n = benchmark(fn)
        assert n > 0


if __name__ == "__main__":
    sys.exit(main())
