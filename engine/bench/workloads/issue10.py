"""Issue 10's comparison (``aged``) and group commit against the fsync floor (``sync``).

Notes: thread safety - ``sync`` starts its own committing threads; the rest is single-threaded."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path
from typing import Any

from ..data import Params, ValueMaker, key_of
from ..record import Recorder
from .common import (
    Commit,
    close_reopen,
    get_latency,
    timed_full_scan,
    timed_gets,
    timed_load,
    timed_scans,
)

__all__ = ['FsyncFloor', 'aged', 'build_load', 'sync_commits']


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
    timed_load(target, rec, commits)  # commits stay alive: freed input would hide RSS growth
    t0 = time.perf_counter()
    target.age()
    rec.put("age s", time.perf_counter() - t0, "s")
    old = pass1
    timed_gets(target, rec, "get latest/s", sample, None)
    if target.versioned:
        timed_gets(target, rec, "get old/s", sample, old)
    get_latency(target, rec, "get latest", lat, None)
    if target.versioned:
        get_latency(target, rec, "get old", lat, old)
    timed_scans(target, rec, "scan latest rows/s", starts, params.scan_rows, None)
    if target.versioned:
        timed_scans(target, rec, "scan old rows/s", starts, params.scan_rows, old)
    timed_full_scan(target, rec, "full scan rows/s", None)
    if target.versioned:
        timed_full_scan(target, rec, "full scan old rows/s", old)
    if params.verify_full:
        rec.check("full content latest", target.iter_all(None))
        if target.versioned:
            rec.check("full content old", target.iter_all(old))
    close_reopen(target, rec, sample[:100])


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
