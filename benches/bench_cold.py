"""Cold tier benchmarks: compression, scans, point reads, bloom filter, compaction.

Script mode prints one table per question, with the issue's targets::

    python benches/bench_cold.py [--keys 100000] [--versions 2] [--repeat 5] [--quick]

pytest-benchmark mode (smaller data; one benchmark per hot path)::

    pytest benches/bench_cold.py --benchmark-enable

Workload: ``keys`` keys ``user:%08d``, each written ``versions`` times (round r, key i at
version ``r * keys/100 + i/100 + 1``: 100 writes per commit), with JSON-ish values of
~150-210 bytes (ids, names, e-mails, scores, cities, tags, timestamps; seeded random, so
realistic redundancy: zstd -3 on the whole value stream gets ~5x). Everything is written
with ``write_entries`` (the demotion path) as one segment unless stated otherwise.

Questions and targets (issue 4):
  compression   ratio = raw value bytes / segment file bytes (keys, versions, index, bloom
                and dictionary all count against the cold tier) vs raw value bytes / zstd of
                the whole value stream at the same level: target >= 0.9x, per block size,
                with and without a dictionary
  scan          rows/s of a full scan at the latest version vs the zstd limit (the same rows
                / the time to only decompress the blocks from memory): target >= 50 %.
                Reported for ``scan_columns`` (numpy columns, no per-row objects) and for
                ``range_next`` (one RawEntry per row), cache cold
  point get     existing keys through bloom + block cache (cache warm): target >= 50k/s
  point miss    absent keys inside the key range, rejected by the bloom: target >= 500k/s
  point vs      old-version gets per block size, block cache warm and cold (1 MiB budget),
  rocksdb       against versioned RocksDB seeks on the same entries in the same run (issue
                10: cold point reads comparable to a RocksDB seek)
  bloom FP      measured false-positive rate at 5/10/16 bits per key vs theory
  compaction    write amplification and segment counts of the size-tiered policy vs
                merging everything after every ingest, and point gets with 32 unmerged
                (key-overlapping) segments vs 1

The machine these run on is shared: every figure is the best of ``repeat`` interleaved runs;
compare ratios within one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zstandard as zstd

try:
    import pytest
except ImportError:  # pragma: no cover - script mode without pytest
    pytest = None  # type: ignore[assignment]

from engine.tiers import ColdTier
from engine.tiers.cold import ColdOptions
from engine.tiers.cold.bloom import BloomFilter, hash_many
from engine.types import Bound, EntryKind, RangeCursor, RawEntry

T = EntryKind.MULTI
U = Bound.UNBOUNDED
TOP = (1 << 64) - 1
TARGETS = {"compression": 0.9, "scan": 0.5, "get": 50_000, "miss": 500_000}

_WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota",
          "kappa", "lambda", "mu"]
_CITIES = ["Paris", "Berlin", "Tokyo", "Lima", "Oslo", "Nairobi", "Quito", "Perth"]


def json_value(rng: random.Random, i: int) -> bytes:
    """A JSON-ish record of ~150-210 bytes."""
    return json.dumps({
        "id": i,
        "name": f"user_{rng.randrange(10**6)}",
        "email": f"{rng.choice(_WORDS)}.{rng.randrange(10**5)}@example.com",
        "age": rng.randrange(18, 90),
        "active": rng.random() < 0.5,
        "score": round(rng.random() * 1000, 2),
        "city": rng.choice(_CITIES),
        "tags": rng.sample(_WORDS, 2),
        "updated": f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:"
                   f"{rng.randrange(60):02d}:{rng.randrange(60):02d}Z",
    }, separators=(",", ":")).encode()


def make_entries(keys: int, versions: int, seed: int = 1) -> list[RawEntry]:
    rng = random.Random(seed)
    per = max(1, keys // 100)
    return [RawEntry(b"user:%08d" % i, r * per + i // 100 + 1, json_value(rng, i))
            for r in range(versions) for i in range(keys)]


def best(fn: Callable[[], int], repeat: int) -> float:
    """Best rate (count / second) over ``repeat`` runs of ``fn`` (which returns a count)."""
    top = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        dt = time.perf_counter() - t0
        top = max(top, n / dt if dt > 0 else float("inf"))
    return top


def build(path: Path, entries: list[RawEntry], **options: Any) -> ColdTier:
    t = ColdTier(path, compact_trigger=None, **options)
    t.write_entries({T: entries})
    return t


# -- compression ----------------------------------------------------------------------------


def compression(root: Path, entries: list[RawEntry], block_sizes: list[int], level: int) -> list[dict]:
    values = [e.value for e in entries if e.value is not None]
    raw = sum(map(len, values))
    whole = raw / len(zstd.ZstdCompressor(level=level).compress(b"".join(values)))
    rows = []
    for bs in block_sizes:
        for use_dict in (False, True):
            p = root / f"comp-{bs}-{int(use_dict)}"
            t0 = time.perf_counter()
            with build(p, entries, block_size=bs, zstd_level=level, dictionary=use_dict) as t:
                secs = time.perf_counter() - t0
                st = t.stats()
                seg = t._state.segments[0]
                blocks = seg.meta_offset - 16
            ratio = raw / st["bytes_on_disk"]
            rows.append({"block": bs, "dict": "on" if use_dict else "off",
                         "dict used": bool(st["dictionary_segments"]), "file MB": st["bytes_on_disk"] / 1e6,
                         "meta KB": (st["bytes_on_disk"] - blocks) / 1e3, "ratio": ratio,
                         "zstd whole": whole, "vs zstd": ratio / whole,
                         "write MB/s": raw / secs / 1e6})
            shutil.rmtree(p)
    return rows


# -- scans ----------------------------------------------------------------------------------


def _block_payloads(t: ColdTier) -> list[bytes]:
    seg = t._state.segments[0]
    return [os.pread(seg._fd, seg.offsets[b + 1] - seg.offsets[b], seg.offsets[b])[12:]
            for b in range(len(seg.block_entries))]


def _range_scan(t: ColdTier, version: int, batch: int = 1024) -> int:
    cur = RangeCursor()
    n = 0
    while True:
        b = t.range_next(T, cur, U, U, version, batch)
        n += len(b.entries)
        if not b.has_more:
            return n


def scans(t: ColdTier, repeat: int) -> dict[str, float]:
    seg = t._state.segments[0]
    d = zstd.ZstdDecompressor(dict_data=seg._dict) if seg._dict is not None else zstd.ZstdDecompressor()
    payloads = _block_payloads(t)
    rows = sum(len(c) for c in t.scan_columns(T, TOP))

    def decompress_only() -> int:
        for p in payloads:
            d.decompress(p)
        return rows

    def columns() -> int:
        return sum(len(c) for c in t.scan_columns(T, TOP))

    def range_cold() -> int:
        t._cache.clear()
        return _range_scan(t, TOP)

    def range_warm() -> int:
        return _range_scan(t, TOP)

    res = {"limit": 0.0, "columns": 0.0, "range cold": 0.0, "range warm": 0.0}
    fns = {"limit": decompress_only, "columns": columns, "range cold": range_cold, "range warm": range_warm}
    for _ in range(repeat):  # interleaved, so noise hits every variant alike
        for name, fn in fns.items():
            res[name] = max(res[name], best(fn, 1))
    res["rows"] = rows
    return res


# -- point reads ----------------------------------------------------------------------------


def point_reads(t: ColdTier, keys: int, repeat: int, n: int = 50_000) -> dict[str, float]:
    rng = random.Random(3)
    hits = [b"user:%08d" % rng.randrange(keys) for _ in range(n)]
    misses = [b"user:%08d~" % rng.randrange(keys) for _ in range(n)]  # inside the key range
    for k in hits:
        t.get(T, k, TOP)  # warm the block cache
    get = t.get

    def run_hits() -> int:
        for k in hits:
            get(T, k, TOP)
        return n

    def run_misses() -> int:
        for k in misses:
            get(T, k, TOP)
        return n

    t._cache.clear()  # a miss reads a block only if the bloom passes it and it is not cached
    st0 = t.stats()["cache_misses"]
    run_misses()
    probes = t.stats()["cache_misses"] - st0
    res = {"get": 0.0, "miss": 0.0}
    for _ in range(repeat):
        res["get"] = max(res["get"], best(run_hits, 1))
        res["miss"] = max(res["miss"], best(run_misses, 1))
    res["miss block reads"] = probes / n
    return res


class RocksPeer:
    """Versioned RocksDB (rocksdict raw mode): key escaped + inverted big-endian version, a
    one-byte tag before the value, point reads by ``seek`` on one reused iterator."""

    def __init__(self, path: Path, entries: list[RawEntry]) -> None:
        import rocksdict

        opts = rocksdict.Options(raw_mode=True)
        opts.create_if_missing(True)
        self.db = rocksdict.Rdict(str(path), opts)
        wb = rocksdict.WriteBatch(raw_mode=True)
        for e in entries:
            wb.put(self._k(e.key, e.version), b"\x00" if e.value is None else b"\x01" + e.value)
        self.db.write(wb)
        self.db.flush()
        self.db.compact_range(None, None)
        self.it = self.db.iter()

    @staticmethod
    def _k(key: bytes, version: int) -> bytes:
        return key.replace(b"\x00", b"\x00\xff") + b"\x00\x00" + (TOP - version).to_bytes(8, "big")

    def get(self, key: bytes, version: int) -> bytes | None:
        it = self.it
        esc = key.replace(b"\x00", b"\x00\xff") + b"\x00\x00"
        it.seek(esc + (TOP - version).to_bytes(8, "big"))
        if it.valid() and it.key()[:-8] == esc:
            val = it.value()
            return val[1:] if val[:1] == b"\x01" else None
        return None

    def close(self) -> None:
        del self.it
        self.db.close()


def point_vs_rocksdb(root: Path, entries: list[RawEntry], keys: int, block_sizes: list[int],
                     repeat: int, n: int = 30_000) -> list[dict]:
    """Old-version point gets (the version every first-round entry is visible at, below the
    second round) on one segment, cache warm (budget above the data) and cache cold (1 MiB
    budget: nearly every get reads, verifies, decompresses and parses a block), against
    versioned RocksDB seeks in the same run, interleaved."""
    rng = random.Random(4)
    sample = [b"user:%08d" % rng.randrange(keys) for _ in range(n)]
    old = max(1, keys // 100)  # every first-round version is <= keys // 100
    peer = RocksPeer(root / "rocks-points", entries)
    rows = []
    try:
        tiers = {}
        for bs in block_sizes:
            tiers[(bs, "warm")] = build(root / f"pt-{bs}-w", entries, block_size=bs, cache_bytes=1 << 30)
            tiers[(bs, "cold")] = build(root / f"pt-{bs}-c", entries, block_size=bs, cache_bytes=1 << 20)
        for k in sample[:200]:
            assert tiers[(block_sizes[0], "warm")].get(T, k, old) == peer.get(k, old)

        def run(get: Callable[..., Any], *pre: Any) -> int:
            for k in sample:
                get(*pre, k, old)
            return n

        for t in tiers.values():
            run(t.get, T)  # warm whatever the budget keeps
        rates: dict[Any, float] = {}
        for _ in range(repeat):
            rates["rocks"] = max(rates.get("rocks", 0.0), best(lambda: run(peer.get), 1))
            for key, t in tiers.items():
                rates[key] = max(rates.get(key, 0.0), best(lambda t=t: run(t.get, T), 1))
        for (bs, cache), t in tiers.items():
            st = t.stats()
            rows.append({"block": bs, "cache": cache, "get/s": rates[(bs, cache)],
                         "vs rocksdb": rates[(bs, cache)] / rates["rocks"],
                         "file MB": st["bytes_on_disk"] / 1e6})
            t.close()
        rows.append({"block": "rocksdb", "cache": "default", "get/s": rates["rocks"], "vs rocksdb": 1.0,
                     "file MB": sum(f.stat().st_size for f in (root / "rocks-points").iterdir()) / 1e6})
    finally:
        peer.close()
    return rows


def bloom_fp(n: int = 100_000) -> list[dict]:
    seed = 12345
    keys = [b"user:%08d" % i for i in range(0, 2 * n, 2)]
    absent = [b"user:%08d" % i for i in range(1, 2 * n, 2)]
    out = []
    for bits in (5, 10, 16):
        bf = BloomFilter.build(hash_many(keys, seed), bits)
        fp = float(np.mean(bf.may_contain_many(hash_many(absent, seed))))
        k = bf.k
        theory = (1 - math.exp(-k * n / bf.m)) ** k
        out.append({"bits/key": bits, "k": k, "measured FP %": 100 * fp, "theory %": 100 * theory})
    return out


# -- compaction -----------------------------------------------------------------------------


def compaction(root: Path, entries: list[RawEntry], batches: int, repeat: int) -> list[dict]:
    # Demotion batches span the whole key space, so shuffle before cutting: every segment
    # then overlaps every other in key range and reads must consult each one's bloom.
    entries = entries[:]
    random.Random(11).shuffle(entries)
    size = len(entries) // batches
    out = []
    for name, opts in (("size-tiered (trigger 8)", {"compact_trigger": 8}),
                       ("merge-all after each ingest", {"compact_trigger": None})):
        p = root / f"compact-{len(out)}"
        t0 = time.perf_counter()
        with ColdTier(p, **opts) as t:
            peak = 0
            for b in range(batches):
                t.write_entries({T: entries[b * size:(b + 1) * size]})
                if opts["compact_trigger"] is None:
                    t.compact(full=True)
                peak = max(peak, t.stats()["segments"])
            secs = time.perf_counter() - t0
            st = t.stats()
            # bytes_written counts ingested segments; compaction output comes on top.
            amp = (st["bytes_written"] + st["compaction_bytes_out"]) / max(1, st["bytes_written"])
            keys = [b"user:%08d" % i for i in random.Random(2).sample(range(len(entries) // 2), 5000)]

            def gets(t: ColdTier = t, keys: list[bytes] = keys) -> int:
                for k in keys:
                    t.get(T, k, TOP)
                return len(keys)

            gets()
            rate = best(gets, repeat)
            out.append({"policy": name, "write amp": amp, "segments end": st["segments"],
                        "segments peak": peak, "compactions": st["compactions"], "seconds": secs,
                        "get/s": rate})
        shutil.rmtree(p)
    p = root / "unmerged"
    with ColdTier(p, compact_trigger=None) as t:
        for b in range(32):
            t.write_entries({T: entries[b * (len(entries) // 32):(b + 1) * (len(entries) // 32)]})
        keys = [e.key for e in random.Random(4).sample(entries, 5000)]

        def gets32(t: ColdTier = t, keys: list[bytes] = keys) -> int:
            for k in keys:
                t.get(T, k, TOP)
            return len(keys)

        gets32()
        r32 = best(gets32, repeat)
        t.compact(full=True)
        gets32()
        r1 = best(gets32, repeat)
    shutil.rmtree(p)
    out.append({"policy": "32 unmerged segments vs 1", "get/s": r32, "get/s after full": r1})
    return out


# -- output ---------------------------------------------------------------------------------


def table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    if not rows:
        return
    cols = list(dict.fromkeys(k for r in rows for k in r))

    def fmt(v: object) -> str:
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.0f}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))


def verdict(name: str, value: float, target: float, unit: str = "") -> dict:
    return {"check": name, "measured": value, "target": f">= {target:g}{unit}",
            "result": "PASS" if value >= target else "FAIL"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--versions", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--level", type=int, default=3)
    ap.add_argument("--block-sizes", default="4096,16384,65536,262144")
    ap.add_argument("--point-block-sizes", default="4096,16384,65536")
    ap.add_argument("--quick", action="store_true", help="20k keys, 3 repeats, two block sizes")
    args = ap.parse_args(argv)
    if args.quick:
        args.keys, args.repeat, args.block_sizes = 20_000, 3, "16384,65536"
    entries = make_entries(args.keys, args.versions)
    raw = sum(len(e.value) for e in entries if e.value is not None)
    print(f"workload: {args.keys} keys x {args.versions} versions = {len(entries)} entries, "
          f"{raw / len(entries):.0f} B/value, zstd level {args.level}")
    root = Path(tempfile.mkdtemp(prefix="bench-cold-"))
    checks = []
    try:
        comp = compression(root, entries, [int(x) for x in args.block_sizes.split(",")], args.level)
        table("compression (ratio = raw value bytes / file bytes)", comp)
        default_bs = ColdOptions().block_size
        default = [r for r in comp if r["block"] == default_bs] or comp
        for r in default:
            checks.append(verdict(f"compression vs zstd, {default_bs // 1024} KiB, dict {r['dict']}", r["vs zstd"],
                                  TARGETS["compression"], "x"))
        with build(root / "main", entries) as t:
            sc = scans(t, args.repeat)
            table(f"scan at the latest version ({sc['rows']:.0f} rows, cache cold unless noted)", [
                {"path": "zstd decompress only (limit)", "rows/s": sc["limit"], "vs limit": 1.0},
                {"path": "scan_columns", "rows/s": sc["columns"], "vs limit": sc["columns"] / sc["limit"]},
                {"path": "range_next (RawEntry rows)", "rows/s": sc["range cold"],
                 "vs limit": sc["range cold"] / sc["limit"]},
                {"path": "range_next, cache warm", "rows/s": sc["range warm"],
                 "vs limit": sc["range warm"] / sc["limit"]},
            ])
            checks.append(verdict("scan_columns vs zstd limit", sc["columns"] / sc["limit"], TARGETS["scan"]))
            checks.append(verdict("range_next vs zstd limit", sc["range cold"] / sc["limit"], TARGETS["scan"]))
            pr = point_reads(t, args.keys, args.repeat)
            table("point reads", [{"op": "get (hit, cache warm)", "ops/s": pr["get"]},
                                  {"op": "get (miss in key range)", "ops/s": pr["miss"],
                                   "block reads per miss": pr["miss block reads"]}])
            checks.append(verdict("point get/s", pr["get"], TARGETS["get"]))
            checks.append(verdict("point miss/s", pr["miss"], TARGETS["miss"]))
        table("old-version point gets vs versioned RocksDB (one segment; cache warm = budget above "
              "the data, cache cold = 1 MiB)",
              point_vs_rocksdb(root, entries, args.keys, [int(x) for x in args.point_block_sizes.split(",")],
                               args.repeat))
        table("bloom filter false positives", bloom_fp())
        table("compaction (same entries, shuffled, ingested as 40 segments; get/s with warm cache)",
              compaction(root, entries, 40, args.repeat))
        table("targets", checks)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


# -- pytest-benchmark -----------------------------------------------------------------------

if pytest is not None:

    @pytest.fixture(scope="module")
    def bench_tier(tmp_path_factory: Any) -> Any:
        p = tmp_path_factory.mktemp("bench-cold") / "cold"
        t = build(p, make_entries(20_000, 2))
        yield t
        t.close()

    def test_bench_point_get(benchmark: Any, bench_tier: ColdTier) -> None:
        keys = [b"user:%08d" % i for i in random.Random(1).sample(range(20_000), 1000)]
        get = bench_tier.get
        benchmark(lambda: [get(T, k, TOP) for k in keys])
        assert get(T, keys[0], TOP) is not None

    def test_bench_point_miss(benchmark: Any, bench_tier: ColdTier) -> None:
        keys = [b"user:%08d~" % i for i in range(1000)]
        get = bench_tier.get
        benchmark(lambda: [get(T, k, TOP) for k in keys])
        assert get(T, keys[0], TOP) is None

    def test_bench_scan_columns(benchmark: Any, bench_tier: ColdTier) -> None:
        n = benchmark(lambda: sum(len(c) for c in bench_tier.scan_columns(T, TOP)))
        assert n == 20_000

    def test_bench_range_next(benchmark: Any, bench_tier: ColdTier) -> None:
        n = benchmark(lambda: _range_scan(bench_tier, TOP))
        assert n == 20_000

    def test_bench_write_segment(benchmark: Any, tmp_path: Path) -> None:
        entries = make_entries(5_000, 1, seed=9)
        counter = iter(range(10**6))

        def write() -> None:
            with ColdTier(tmp_path / str(next(counter)), compact_trigger=None) as t:
                t.write_entries({T: entries})

        benchmark.pedantic(write, rounds=3, iterations=1)


if __name__ == "__main__":
    sys.exit(main())
