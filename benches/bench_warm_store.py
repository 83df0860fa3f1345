"""Store-level reads and writes that reach the warm tier, against a versioned-RocksDB peer.

    python benches/bench_warm_store.py [--keys 100000] [--rounds 5] [--layouts warm,default]

Workload (issue 10's, every engine alike): ``keys`` keys of 16 bytes, 100-byte values,
commits of 100 writes; a first pass writing every key (its last version is the "old" read
version), a second pass of overwrites and removes over about half the keys (one remove per
four writes). tierdb stores are opened with ``layout="warm"`` (every commit writes RocksDB)
or the default layout followed by ``store.flush()`` and ``store.demote()`` (an aged store:
latest versions in warm, superseded ones in cold).

The peer is versioned RocksDB as a user would write it: rocksdict raw mode, key =
escaped key + 00 00 + inverted big-endian version, value = tag + bytes, one WriteBatch per
commit, gets by ``seek`` on a reused iterator, scans by ``items(from_key)`` with per-key
de-duplication. It gets the same block cache as the warm tier.

Operations (rates in ops/s or rows/s, wall clock; rounds interleaved engine by engine,
the median and spread of the tierdb/peer ratio reported):
  get latest   ``store.get(T, k)`` on random keys
  get old      ``store.get(T, k, version=first_pass_end)``
  get_many     ``store.get_many`` (when the store has it) in batches of 100, latest
  scan latest  1000-row ``store.range`` from random start keys at the latest version
  scan old     the same at the old version
  full scan    one ``store.range(T)`` over everything, latest
  load         writes/s of the two passes (measured once, while loading)
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rocksdict

import engine
from engine.types import EntryKind

T = EntryKind.MULTI
MAXV = (1 << 64) - 1
_INV = struct.Struct(">Q").pack
VALUE = b"v" * 100
BATCH = 100


def workload(nkeys: int, seed: int = 7) -> tuple[list[bytes], list[list[tuple[bytes, bytes | None]]]]:
    """(keys, commits): the two passes as a list of commits of (key, value or None)."""
    rng = random.Random(seed)
    keys = [b"key:%012d" % i for i in range(nkeys)]
    rng.shuffle(keys)
    commits: list[list[tuple[bytes, bytes | None]]] = []
    for i in range(0, nkeys, BATCH):
        commits.append([(k, VALUE) for k in keys[i:i + BATCH]])
    second = rng.sample(keys, nkeys // 2)
    for i in range(0, len(second), BATCH):
        commits.append([(k, None if rng.random() < 0.25 else VALUE) for k in second[i:i + BATCH]])
    return keys, commits


class Peer:
    """Versioned RocksDB, best practice from Python."""

    def __init__(self, path: Path) -> None:
        o = rocksdict.Options(raw_mode=True)
        o.create_if_missing(True)
        bbo = rocksdict.BlockBasedOptions()
        bbo.set_block_cache(rocksdict.Cache(64 << 20))
        o.set_block_based_table_factory(bbo)
        o.set_compression_type(rocksdict.DBCompressionType.lz4())
        o.set_write_buffer_size(64 << 20)
        self.db = rocksdict.Rdict(str(path), o)
        self.version = 0
        self._it: Any = None

    @staticmethod
    def _prefix(k: bytes) -> bytes:
        return (k.replace(b"\x00", b"\x00\xff") if 0 in k else k) + b"\x00\x00"

    def commit(self, rows: list[tuple[bytes, bytes | None]]) -> None:
        self.version += 1
        inv = _INV(MAXV - self.version)
        wb = rocksdict.WriteBatch(raw_mode=True)
        put = wb.put
        for k, v in rows:
            put((k.replace(b"\x00", b"\x00\xff") if 0 in k else k) + b"\x00\x00" + inv,
                b"\x02" if v is None else b"\x01" + v)
        self.db.write(wb)
        self._it = None

    def get(self, key: bytes, version: int | None = None) -> bytes | None:
        it = self._it
        if it is None:
            it = self._it = self.db.iter()
        p = (key.replace(b"\x00", b"\x00\xff") if 0 in key else key) + b"\x00\x00"
        it.seek(p + _INV(MAXV - (self.version if version is None else version)))
        k = it.key()
        if k is None or k[:-8] != p:
            return None
        v = it.value()
        return v[1:] if v[0] == 1 else None

    def scan(self, start: bytes | None, limit: int, version: int | None = None) -> int:
        """Live rows from ``start``: each key's newest version <= the read version, decoded to
        ``(key, value)`` as a user needs them (tombstoned keys left out)."""
        inv = _INV(MAXV - (self.version if version is None else version))
        n = 0
        last = None
        for k, v in self.db.items(from_key=None if start is None else self._prefix(start)):
            p = k[:-8]
            if p == last or k[-8:] < inv:
                continue
            last = p
            if v[0] == 1:
                key = k[:-10]
                _row = (key.replace(b"\x00\xff", b"\x00") if 0 in key else key, v[1:])
                n += 1
                if n == limit:
                    break
        return n


def run(nkeys: int, rounds: int, layouts: list[str]) -> None:
    keys, commits = workload(nkeys)
    first_pass_end = (nkeys + BATCH - 1) // BATCH
    root = Path(tempfile.mkdtemp(prefix="tierdb-bench-warmstore-", dir="/tmp"))
    rng = random.Random(11)
    sample = [rng.choice(keys) for _ in range(20000)]
    starts = [rng.choice(keys) for _ in range(40)]
    try:
        peer = Peer(root / "peer")
        t = time.perf_counter()
        for c in commits:
            peer.commit(c)
        peer_load = len(commits) * BATCH / (time.perf_counter() - t)
        stores: dict[str, Any] = {}
        loads: dict[str, float] = {}
        for name in layouts:
            s = engine.open(root / name, layout="warm") if name == "warm" else engine.open(root / name)
            t = time.perf_counter()
            for c in commits:
                with s.begin() as tx:
                    for k, v in c:
                        if v is None:
                            tx.remove(T, k)
                        else:
                            tx.set(T, k, v)
            loads[name] = len(commits) * BATCH / (time.perf_counter() - t)
            s.flush()
            if name != "warm":
                s.demote()
            stores[name] = s
        # sanity: same answers
        for k in sample[:2000]:
            for s in stores.values():
                assert s.get(T, k) == peer.get(k), k
                assert s.get(T, k, version=first_pass_end) == peer.get(k, first_pass_end), k

        def ops(s: Any | None) -> dict[str, Callable[[], int]]:
            def get_latest() -> int:
                if s is None:
                    g = peer.get
                    for k in sample:
                        g(k)
                else:
                    g = s.get
                    for k in sample:
                        g(T, k)
                return len(sample)

            def get_old() -> int:
                v = first_pass_end
                if s is None:
                    g = peer.get
                    for k in sample:
                        g(k, v)
                else:
                    g = s.get
                    for k in sample:
                        g(T, k, version=v)
                return len(sample)

            def scan(version: int | None) -> Callable[[], int]:
                def f() -> int:
                    n = 0
                    for st in starts:
                        if s is None:
                            n += peer.scan(st, 1000, version)
                        else:
                            for i, _ in enumerate(s.range(T, st, version=version), 1):
                                if i == 1000:
                                    break
                            n += i
                    return n
                return f

            def full() -> int:
                if s is None:
                    return peer.scan(None, 1 << 62)
                n = 0
                for _ in s.range(T):
                    n += 1
                return n

            out = {"get latest": get_latest, "get old": get_old, "scan latest": scan(None),
                   "scan old": scan(first_pass_end), "full scan": full}
            gm = getattr(s, "get_many", None) if s is not None else None
            if s is None or gm is not None:
                def get_many() -> int:
                    if s is None:
                        g = peer.get
                        for k in sample:
                            g(k)
                    else:
                        assert gm is not None
                        for i in range(0, len(sample), 100):
                            gm(T, sample[i:i + 100])
                    return len(sample)
                out["get_many"] = get_many
            return out

        peer_ops = ops(None)
        store_ops = {n: ops(s) for n, s in stores.items()}
        ratios: dict[tuple[str, str], list[float]] = {}
        rates: dict[tuple[str, str], list[float]] = {}
        for _ in range(rounds):
            for op in peer_ops:
                t = time.perf_counter()
                n = peer_ops[op]()
                pr = n / (time.perf_counter() - t)
                rates.setdefault(("peer", op), []).append(pr)
                for name, so in store_ops.items():
                    if op not in so:
                        continue
                    t = time.perf_counter()
                    n = so[op]()
                    r = n / (time.perf_counter() - t)
                    rates.setdefault((name, op), []).append(r)
                    ratios.setdefault((name, op), []).append(r / pr)
        print(f"keys={nkeys} rounds={rounds}  (ratio = tierdb / versioned RocksDB; median [min-max])")
        print(f"{'op':<12} {'peer/s':>10} " + " ".join(f"{n + '/s':>10} {'ratio':>18}" for n in stores))
        for op in peer_ops:
            line = f"{op:<12} {statistics.median(rates[('peer', op)]):>10.0f} "
            for name in stores:
                if (name, op) not in ratios:
                    line += f"{'-':>10} {'-':>18} "
                    continue
                rs = ratios[(name, op)]
                line += (f"{statistics.median(rates[(name, op)]):>10.0f} "
                         f"{statistics.median(rs):>6.2f} [{min(rs):.2f}-{max(rs):.2f}] ")
            print(line)
        print(f"{'load':<12} {peer_load:>10.0f} " + " ".join(
            f"{loads[n]:>10.0f} {loads[n] / peer_load:>6.2f}{'':>12}" for n in stores))
        for s in stores.values():
            s.close()
        peer.db.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--layouts", default="warm,default")
    a = ap.parse_args(argv)
    run(a.keys, a.rounds, a.layouts.split(","))
    return 0


if __name__ == "__main__":
    sys.exit(main())
