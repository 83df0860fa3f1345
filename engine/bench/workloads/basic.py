"""``load`` (commits of ``batch`` writes) and ``scan`` (range scans of several lengths)."""

from __future__ import annotations

import random
import time
from typing import Any

from ..data import Params, ValueMaker, key_of
from ..record import Recorder
from .common import (
    close_reopen,
    now,
    preload,
    timed_full_scan,
    timed_scans,
)

__all__ = ['load', 'scan_workload']


def load(target: Any, rec: Recorder, params: Params) -> None:
    """Commits of ``batch`` writes, every key once (``--durability`` applies to tierdb).

    Figures: load writes/s, commit p50/p99 latency, disk MB after close, reopen s.
    """
    value = ValueMaker(params.value_size, params.seed + 1)
    n, b = params.keys, params.batch
    commits = [[(key_of(i), value()) for i in range(s, min(n, s + b))] for s in range(0, n, b)]
    commit = target.commit
    clock = time.perf_counter_ns
    lat = []
    t0 = now()
    for sets in commits:
        c0 = clock()
        commit(sets, ())
        lat.append(clock() - c0)
    rec.rate("load writes/s", n, now() - t0, "writes/s")
    rec.latencies("commit", lat)
    rng = random.Random(params.seed + 2)
    sample = [key_of(rng.randrange(n)) for _ in range(min(params.gets, 1000))]
    rec.check("get after load", target.get_many(sample, None))
    timed_full_scan(target, rec, "full scan rows/s", None)
    close_reopen(target, rec, sample[:100])


def scan_workload(target: Any, rec: Recorder, params: Params) -> None:
    """Range scans on a preloaded, aged store: 10-, 100- and ``scan_rows``-row scans from
    random keys at the latest version, and a full scan."""
    preload(target, params, None, rec)
    target.age()
    rng = random.Random(params.seed + 50)
    starts = [key_of(rng.randrange(params.keys)) for _ in range(params.scans)]
    for rows in sorted({10, 100, params.scan_rows}):
        timed_scans(target, rec, f"scan {rows} rows/s", starts, rows, None)
    timed_full_scan(target, rec, "full scan rows/s", None)
