"""Reading the past: ``time-travel`` (random retained versions) and ``history-heavy`` (pins + GC)."""

from __future__ import annotations

import random
import time
from typing import Any

from ..data import Params, ValueMaker, key_of
from ..record import Recorder
from .common import (
    Commit,
    now,
    pair_latency,
    timed_gets,
    timed_load,
)

__all__ = ['history_heavy', 'time_travel']


def time_travel(target: Any, rec: Recorder, params: Params) -> None:
    """Gets and 100-row scans at random retained past versions of an aged store.

    Pass 1 writes every key; ``extra["passes"]`` (default 4) more passes each rewrite a
    seeded quarter of the keys; then the store ages. Figures: get past/s, scan past rows/s,
    and single-get p50/p99 at past versions.
    """
    if not target.versioned:
        rec.notes.append("time-travel needs versions; this target keeps only the latest")
        return
    passes = int(params.extra.get("passes", 4))
    rng = random.Random(params.seed + 20)
    value = ValueMaker(params.value_size, params.seed + 21)
    n, b = params.keys, params.batch
    commits: list[Commit] = [([(key_of(i), value()) for i in range(s, min(n, s + b))], [])
                             for s in range(0, n, b)]
    for _ in range(passes):
        chosen = rng.sample(range(n), max(1, n // 4))
        commits += [([(key_of(i), value()) for i in chosen[s:s + b]], []) for s in range(0, len(chosen), b)]
    timed_load(target, rec, commits)
    target.age()
    top = len(commits)
    qs = [(key_of(rng.randrange(n)), rng.randint(1, top)) for _ in range(params.ops)]
    get, scan = target.get, target.scan
    out: list[Any] = []
    t0 = now()
    for k, v in qs:
        out.append(get(k, v))
    rec.rate("get past/s", len(qs), now() - t0, "gets/s")
    rec.check("get past", out)
    pair_latency(target, rec, "get past", qs[: params.latency_samples])
    scans = qs[: params.scans]
    rows = 0
    res = []
    t0 = now()
    for k, v in scans:
        r = scan(k, 100, v)
        rows += len(r)
        res.append(r)
    rec.rate("scan past rows/s", rows, now() - t0, "rows/s")
    rec.check("scan past", res)


def history_heavy(target: Any, rec: Recorder, params: Params) -> None:
    """A small set of keys rewritten many times; retention + GC; reads at pinned versions.

    ``max(10, keys // 100)`` hot keys are rewritten in rounds until ``keys`` writes are
    done; every ``extra["pin_every"]`` (default 20) rounds the version is pinned. tierdb is
    opened with ``Retention(history_versions=extra["history_versions"])`` (default 50), pins
    every pinned version and runs flush + demote + GC ("gc s"); peers keep every version
    (they have no GC). Then gets at random pinned versions and at the latest, and disk
    bytes after close (where GC pays off).
    """
    if not target.versioned:
        rec.notes.append("history-heavy reads pinned versions; this target keeps only the latest")
        return
    hot = max(10, params.keys // 100)
    rounds = max(2, params.keys // hot)
    pin_every = int(params.extra.get("pin_every", 20))
    value = ValueMaker(params.value_size, params.seed + 31)
    b = min(params.batch, hot)
    commits: list[Commit] = []
    pin_at: list[int] = []
    for r in range(rounds):
        commits += [([(key_of(i), value()) for i in range(s, min(hot, s + b))], []) for s in range(0, hot, b)]
        if r % pin_every == 0:
            pin_at.append(len(commits))
    store = getattr(target, "store", None) if target.name.startswith("tierdb:") else None
    commit = target.commit
    t0 = now()
    for i, (sets, removes) in enumerate(commits, 1):
        commit(sets, removes)
        if store is not None and pin_at and i in pin_at:
            store.pin(i, f"bench-{i}")
    rec.rate("write writes/s", sum(len(s) for s, _ in commits), now() - t0, "writes/s")
    t0 = time.perf_counter()
    if store is not None:
        target.age()
        store.gc()
    rec.put("gc s", time.perf_counter() - t0, "s")
    rng = random.Random(params.seed + 32)
    qs = [(key_of(rng.randrange(hot)), rng.choice(pin_at)) for _ in range(params.ops)]
    get = target.get
    out = []
    t0 = now()
    for k, v in qs:
        out.append(get(k, v))
    rec.rate("get pinned/s", len(qs), now() - t0, "gets/s")
    rec.check("get pinned", out)
    pair_latency(target, rec, "get pinned", qs[: params.latency_samples])
    timed_gets(target, rec, "get latest/s", [k for k, _ in qs], None)
    target.close()
    rec.put("disk MB", target.disk_bytes() / 1e6, "MB")
    target.reopen()
