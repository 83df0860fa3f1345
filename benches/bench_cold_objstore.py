"""Cold tier on an object store vs on local disk: point gets and scans, cache hit rates and
object-store requests per read (issue 13).

    python benches/bench_cold_objstore.py [--keys 20000] [--versions 4] [--gets 2000] [--repeat 3]

One workload (``keys`` keys x ``versions`` versions, ~120-byte values, written with
``write_entries`` as the demotion path does, 4 segments) is stored three ways in the same
run: a local cold directory, ``file://`` through obstore, and S3 on moto's
ThreadedMotoServer on loopback. For each, interleaved and best of ``repeat``:

  get cold     old-version point gets right after opening with an EMPTY range cache and
               empty block cache (a cold start on another machine)
  get disk     the same gets after reopening: block cache empty, range cache full
  get mem      the same gets again in the same process (block cache warm)
  scan cold    a full scan at an old version from an empty cache
  scan warm    the same scan again

and reports each as a ratio to local's same phase, plus object-store ranged GETs per read
and the phase's cache hit rate (segment reads answered by the block cache or the range cache
without a GET).
The machine is shared: compare ratios within one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import sys
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.tiers import ColdTier
from engine.types import Bound, EntryKind, RangeCursor, RawEntry

T = EntryKind.source(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def workload(keys: int, versions: int) -> list[list[RawEntry]]:
    rng = random.Random(7)
    segs = []
    for r in range(versions):
        rows = []
        for i in range(keys):
            val = (b'{"id":%d,"name":"user%d","score":%d,"city":"%s","tags":["a","b%d"]}'
                   % (i, i, rng.randrange(10_000), rng.choice([b"Oslo", b"Lima", b"Pune", b"Kyiv"]),
                      rng.randrange(50)))
            rows.append(RawEntry(b"user:%08d" % i, r * 10 + 1, val + b" " * rng.randrange(40)))
        segs.append(rows)
    return segs


def open_tier(kind: str, root: Path, cache: str, ctx: dict[str, Any]) -> ColdTier:
    opts: dict[str, Any] = {"cache_bytes": 64 << 20}
    if kind == "local":
        return ColdTier(root / "local", **opts)
    if kind == "file":
        return ColdTier(root / cache, url=f"file://{root}/bucket", **opts)
    return ColdTier(root / cache, url=ctx["s3_url"], storage_options=ctx["s3_opts"], **opts)


def timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_gets(t: ColdTier, keys: list[bytes], version: int) -> None:
    for k in keys:
        if t.get(T, k, version) is None:
            raise AssertionError(k)


def run_scan(t: ColdTier, version: int, expect: int) -> None:
    cur = RangeCursor()
    n = 0
    while not cur.exhausted:
        n += len(t.range_next(T, cur, Bound.UNBOUNDED, Bound.UNBOUNDED, version, 1024).entries)
    if n != expect:
        raise AssertionError((n, expect))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=20_000)
    ap.add_argument("--versions", type=int, default=4)
    ap.add_argument("--gets", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    root = Path(tempfile.mkdtemp(prefix="bench-cold-objstore-"))
    tiers: list[ColdTier] = []
    try:
        endpoint = f"http://127.0.0.1:{port}"
        bucket = "bench-" + uuid.uuid4().hex[:8]
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="k",
                     region_name="us-east-1").create_bucket(Bucket=bucket)
        ctx = {"s3_url": f"s3://{bucket}/cold",
               "s3_opts": {"endpoint": endpoint, "access_key_id": "k", "secret_access_key": "k",
                           "region": "us-east-1", "allow_http": True}}
        kinds = ["local", "file", "s3"]
        segs = workload(args.keys, args.versions)
        for kind in kinds:
            with open_tier(kind, root, "cache-w", ctx) as t:
                for rows in segs:
                    t.write_entries({T: rows})
        rng = random.Random(11)
        gkeys = [b"user:%08d" % rng.randrange(args.keys) for _ in range(args.gets)]
        old = 2  # the first version band: an old-version read
        best: dict[tuple[str, str], float] = {}
        extra: dict[tuple[str, str], dict[str, float]] = {}

        def note(kind: str, phase: str, secs: float, t: ColdTier, before: dict[str, Any], reads: int) -> None:
            key = (kind, phase)
            best[key] = min(best.get(key, secs), secs)
            st = t.io_stats()

            def d(k: str) -> int:
                return int(st.get(k, 0) - before.get(k, 0))

            served = d("cache_hits") + d("disk_cache_hits")
            asked = served + d("disk_cache_misses")
            extra[key] = {"req_per_read": d("objstore_range_gets") / reads,
                          "hit_rate": served / asked if asked else float("nan")}

        for rep in range(args.repeat):
            for kind in kinds:
                cache = f"cache-{rep}"
                shutil.rmtree(root / cache, ignore_errors=True)
                t = open_tier(kind, root, cache, ctx)
                b = t.io_stats()
                note(kind, "get cold", timed(partial(run_gets, t, gkeys, old)), t, b, len(gkeys))
                b = t.io_stats()
                note(kind, "get mem", timed(partial(run_gets, t, gkeys, old)), t, b, len(gkeys))
                t.close()
                t = open_tier(kind, root, cache, ctx)
                b = t.io_stats()
                note(kind, "get disk", timed(partial(run_gets, t, gkeys, old)), t, b, len(gkeys))
                t.close()
                shutil.rmtree(root / cache, ignore_errors=True)
                t = open_tier(kind, root, cache + "s", ctx)
                b = t.io_stats()
                note(kind, "scan cold", timed(partial(run_scan, t, old, args.keys)), t, b, args.keys)
                b = t.io_stats()
                note(kind, "scan warm", timed(partial(run_scan, t, old, args.keys)), t, b, args.keys)
                t.close()
                shutil.rmtree(root / (cache + "s"), ignore_errors=True)
        phases = ["get cold", "get disk", "get mem", "scan cold", "scan warm"]
        print(f"workload: {args.keys} keys x {args.versions} versions, {args.gets} gets, "
              f"best of {args.repeat}; ratio = time / local's time in the same phase")
        print(f"{'phase':<10} {'backend':<6} {'ops/s':>10} {'x local':>8} {'GETs/read':>10} {'hit rate':>9}")
        for ph in phases:
            n = args.gets if ph.startswith("get") else args.keys
            for kind in kinds:
                secs = best[(kind, ph)]
                ratio = secs / best[("local", ph)]
                e = extra[(kind, ph)]
                hr = "-" if kind == "local" else f"{e['hit_rate']:.3f}"
                print(f"{ph:<10} {kind:<6} {n / secs:>10.0f} {ratio:>8.2f} {e['req_per_read']:>10.4f} {hr:>9}")
    finally:
        for t in tiers:
            t.close()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
