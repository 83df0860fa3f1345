"""Helpers every workload shares: the clock, timed loads, gets, scans and reopen."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from ..data import Params, ValueMaker, key_of
from ..record import Recorder

__all__ = [
    "Commit", "Workload", "close_reopen", "get_latency", "now", "pair_latency", "preload", "set_clock",
    "timed_full_scan", "timed_gets", "timed_load", "timed_scans",
]

Workload = Callable[[Any, Recorder, Params], None]
Commit = tuple[list[tuple[bytes, bytes]], list[bytes]]

_clock: Callable[[], float] = time.perf_counter


def now() -> float:
    """The clock rates are timed with (see :func:`set_clock`)."""
    return _clock()


def set_clock(clock: str) -> None:
    """``"wall"`` (default): wall-clock seconds. ``"cpu"``: this process's CPU seconds, all
    threads (a target's background threads count against it; other processes' load does
    not). The ``sync`` workload always uses the wall clock: it measures waiting for disks."""
    global _clock
    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock must be 'wall' or 'cpu', got {clock!r}")
    _clock = time.perf_counter if clock == "wall" else time.process_time


def timed_load(target: Any, rec: Recorder, commits: Sequence[Commit], name: str = "load writes/s") -> None:
    writes = sum(len(s) + len(r) for s, r in commits)
    commit = target.commit
    first = target.version if hasattr(target, "version") else 0
    t0 = now()
    for sets, removes in commits:
        last = commit(sets, removes)
    rec.rate(name, writes, now() - t0, "writes/s")
    if commits and last != first + len(commits):
        raise AssertionError(f"{target.name}: {len(commits)} commits after version {first} ended at "
                             f"version {last}, not {first + len(commits)}")


def timed_gets(target: Any, rec: Recorder, name: str, keys: list[bytes], version: int | None) -> None:
    many = target.get_many
    out: list[Any] = []
    t0 = now()
    for s in range(0, len(keys), 100):
        out.append(many(keys[s:s + 100], version))
    rec.rate(name, len(keys), now() - t0, "gets/s")
    rec.check(name, out)


def get_latency(target: Any, rec: Recorder, name: str, keys: list[bytes], version: int | None) -> None:
    get = target.get
    clock = time.perf_counter_ns
    samples = []
    for k in keys:
        t0 = clock()
        get(k, version)
        samples.append(clock() - t0)
    rec.latencies(name, samples)


def pair_latency(target: Any, rec: Recorder, name: str, pairs: Sequence[tuple[bytes, int | None]]) -> None:
    """p50/p99 of single gets of (key, version) pairs."""
    get = target.get
    clock = time.perf_counter_ns
    samples = []
    for k, v in pairs:
        t0 = clock()
        get(k, v)
        samples.append(clock() - t0)
    rec.latencies(name, samples)


def timed_scans(target: Any, rec: Recorder, name: str, starts: list[bytes], rows: int, version: int | None) -> None:
    scan = target.scan
    out = []
    n = 0
    t0 = now()
    for k in starts:
        r = scan(k, rows, version)
        n += len(r)
        out.append(r)
    rec.rate(name, n, now() - t0, "rows/s")
    rec.check(name, out)


def timed_full_scan(target: Any, rec: Recorder, name: str, version: int | None) -> None:
    t0 = now()
    n = target.count(version)
    rec.rate(name, n, now() - t0, "rows/s")
    rec.check(name + " (rows)", n)


def close_reopen(target: Any, rec: Recorder, probe: list[bytes]) -> None:
    target.close()
    rec.put("disk MB", target.disk_bytes() / 1e6, "MB")
    t0 = time.perf_counter()
    target.reopen()
    answers = target.get_many(probe, None)  # the first read is part of reopening
    rec.put("reopen s", time.perf_counter() - t0, "s")
    rec.check("get after reopen", answers)


def preload(target: Any, params: Params, name: str | None, rec: Recorder) -> int:
    """Write every key once in commits of ``batch``; time it as ``name`` when given."""
    value = ValueMaker(params.value_size, params.seed + 1)
    n, b = params.keys, params.batch
    commits: list[Commit] = [([(key_of(i), value()) for i in range(s, min(n, s + b))], [])
                             for s in range(0, n, b)]
    if name is None:
        commit = target.commit
        for sets, removes in commits:
            commit(sets, removes)
    else:
        timed_load(target, rec, commits, name)
    return len(commits)
