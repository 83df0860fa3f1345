"""Built-in workloads. A workload is ``fn(target, rec, params) -> None``.

It drives a :class:`~engine.bench.peers.Target` (commit / get_many / scan / count / age ...),
times what it measures with ``rec.timed`` and hands every answer it got to ``rec.check`` so
the runner can compare it with the dict reference. Everything random comes from
``params.seed``, so every target sees the same operations.

A user workload is the same kind of function in a Python file, named ``workload`` (see
benches/README.md)::

    def workload(target, rec, params):
        sets = [(b"k%015d" % i, b"v" * params.value_size) for i in range(params.batch)]
        with rec.timed("my commits/s", ops=100):
            for _ in range(100):
                target.commit(sets)
        rec.check("my read", target.get_many([k for k, _ in sets]))

Notes: thread safety - a workload runs in one process and owns its target; ``sync`` starts
its own committing threads.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .data import Params, ValueMaker, key_of
from .record import Recorder

__all__ = ["WORKLOADS", "Workload", "aged", "sync_commits", "FsyncFloor", "build_load"]

Workload = Callable[[Any, Recorder, Params], None]
Commit = tuple[list[tuple[bytes, bytes]], list[bytes]]


def build_load(params: Params, *, second_pass: float = 0.5, remove_fraction: float = 0.2) -> tuple[list[Commit], int]:
    """The issue-10 load: pass 1 writes every key; pass 2 visits a seeded ``second_pass``
    share of the keys, removing ``remove_fraction`` of them and overwriting the rest.

    Returns the commits (``batch`` writes each) and the number of commits in pass 1.
    """
    n, b = params.keys, params.batch
    rng = random.Random(params.seed)
    value = ValueMaker(params.value_size, params.seed + 1)
    commits: list[Commit] = []
    for s in range(0, n, b):
        commits.append(([(key_of(i), value()) for i in range(s, min(n, s + b))], []))
    pass1 = len(commits)
    chosen = rng.sample(range(n), int(n * second_pass))
    for s in range(0, len(chosen), b):
        sets: list[tuple[bytes, bytes]] = []
        removes: list[bytes] = []
        for i in chosen[s:s + b]:
            if rng.random() < remove_fraction:
                removes.append(key_of(i))
            else:
                sets.append((key_of(i), value()))
        commits.append((sets, removes))
    return commits, pass1


def _load(target: Any, rec: Recorder, commits: Sequence[Commit], name: str = "load writes/s") -> None:
    writes = sum(len(s) + len(r) for s, r in commits)
    commit = target.commit
    first = target.version if hasattr(target, "version") else 0
    t0 = time.perf_counter()
    for sets, removes in commits:
        last = commit(sets, removes)
    rec.rate(name, writes, time.perf_counter() - t0, "writes/s")
    if commits and last != first + len(commits):
        raise AssertionError(f"{target.name}: {len(commits)} commits after version {first} ended at "
                             f"version {last}, not {first + len(commits)}")


def _gets(target: Any, rec: Recorder, name: str, keys: list[bytes], version: int | None) -> None:
    many = target.get_many
    out: list[Any] = []
    t0 = time.perf_counter()
    for s in range(0, len(keys), 100):
        out.append(many(keys[s:s + 100], version))
    rec.rate(name, len(keys), time.perf_counter() - t0, "gets/s")
    rec.check(name, out)


def _single_get_latency(target: Any, rec: Recorder, name: str, keys: list[bytes], version: int | None) -> None:
    get = target.get
    clock = time.perf_counter_ns
    samples = []
    for k in keys:
        t0 = clock()
        get(k, version)
        samples.append(clock() - t0)
    rec.latencies(name, samples)


def _scans(target: Any, rec: Recorder, name: str, starts: list[bytes], rows: int, version: int | None) -> None:
    scan = target.scan
    out = []
    n = 0
    t0 = time.perf_counter()
    for k in starts:
        r = scan(k, rows, version)
        n += len(r)
        out.append(r)
    rec.rate(name, n, time.perf_counter() - t0, "rows/s")
    rec.check(name, out)


def _full_scan(target: Any, rec: Recorder, name: str, version: int | None) -> None:
    t0 = time.perf_counter()
    n = target.count(version)
    rec.rate(name, n, time.perf_counter() - t0, "rows/s")
    rec.check(name + " (rows)", n)


def _reopen(target: Any, rec: Recorder, probe: list[bytes]) -> None:
    target.close()
    rec.put("disk MB", target.disk_bytes() / 1e6, "MB")
    t0 = time.perf_counter()
    target.reopen()
    answers = target.get_many(probe, None)  # the first read is part of reopening
    rec.put("reopen s", time.perf_counter() - t0, "s")
    rec.check("get after reopen", answers)


def aged(target: Any, rec: Recorder, params: Params) -> None:
    """Issue 10's comparison: load (two passes), age, then reads at latest and old versions.

    Load: pass 1 writes every key, pass 2 overwrites/removes a seeded half (``build_load``),
    commits of ``batch`` writes, timed with whatever background work the target runs.
    Age: ``target.age()`` (tierdb: flush + demote every superseded version to cold).
    Reads: ``gets`` random gets via ``get_many`` chunks of 100 at the latest version and at
    the version that ended pass 1; single-get p50/p99; ``scans`` scans of ``scan_rows`` rows
    from random keys at both versions; full scans at both. Then close (disk bytes) and
    reopen (time to the first answers).
    """
    commits, pass1 = build_load(params)
    n = params.keys
    rng = random.Random(params.seed + 2)  # one stream per list: a shorter run reads a prefix
    sample = [key_of(rng.randrange(n)) for _ in range(params.gets)]
    rng = random.Random(params.seed + 3)
    starts = [key_of(rng.randrange(n)) for _ in range(params.scans)]
    lat = sample[: params.latency_samples]
    _load(target, rec, commits)  # commits stay alive: freed input would hide RSS growth
    t0 = time.perf_counter()
    target.age()
    rec.put("age s", time.perf_counter() - t0, "s")
    old = pass1
    _gets(target, rec, "get latest/s", sample, None)
    if target.versioned:
        _gets(target, rec, "get old/s", sample, old)
    _single_get_latency(target, rec, "get latest", lat, None)
    if target.versioned:
        _single_get_latency(target, rec, "get old", lat, old)
    _scans(target, rec, "scan latest rows/s", starts, params.scan_rows, None)
    if target.versioned:
        _scans(target, rec, "scan old rows/s", starts, params.scan_rows, old)
    _full_scan(target, rec, "full scan rows/s", None)
    if target.versioned:
        _full_scan(target, rec, "full scan old rows/s", old)
    if params.verify_full:
        rec.check("full content latest", target.iter_all(None))
        if target.versioned:
            rec.check("full content old", target.iter_all(old))
    _reopen(target, rec, sample[:100])


class FsyncFloor:
    """The durability floor: one thread appending a record of a commit's size + ``fsync``.

    Only :meth:`commit` is meaningful; it is what ``sync`` compares group commit against.
    """

    versioned = False

    def __init__(self, path: Path, record_bytes: int = 12_600) -> None:
        self.name = "fsync-floor"
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.record = b"\x5a" * record_bytes
        self.fd = os.open(self.path / "log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.version = 0
        self._lock = threading.Lock()

    def commit(self, sets: Any, removes: Any = ()) -> int:
        with self._lock:  # one appender: the floor is a single fsync'd log, no grouping
            os.write(self.fd, self.record)
            os.fsync(self.fd)
            self.version += 1
            return self.version

    def close(self) -> None:
        os.close(self.fd)


def sync_commits(target: Any, rec: Recorder, params: Params) -> None:
    """``params.threads`` threads committing ``batch``-write commits for ``params.seconds``.

    The target must be opened with durable commits (tierdb ``durability="sync"``, RocksDB
    synced writes, the fsync floor). Records commits/s over all threads.
    """
    value = ValueMaker(params.value_size, params.seed)
    vals = [value() for _ in range(params.batch)]
    stop = time.perf_counter() + params.seconds
    counts = [0] * params.threads
    errors: list[BaseException] = []
    start = threading.Barrier(params.threads + 1)

    commit = target.commit  # opens the target here, before any thread needs it

    def worker(t: int) -> None:
        base = (t + 1) * 10 ** 9
        j = 0
        try:
            start.wait()
            while time.perf_counter() < stop:
                sets = [(key_of(base + j + i), vals[i]) for i in range(params.batch)]
                j += params.batch
                commit(sets, ())
                counts[t] += 1
        except BaseException as e:  # reported by the main thread
            errors.append(e)
            start.abort()

    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(params.threads)]
    for th in threads:
        th.start()
    t0 = time.perf_counter()
    stop = t0 + params.seconds
    try:
        start.wait()
    except threading.BrokenBarrierError:
        pass
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    rec.rate("sync commits/s", sum(counts), elapsed, "commits/s")


WORKLOADS: dict[str, Workload] = {
    "aged": aged,
    "sync": sync_commits,
}
