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

__all__ = ["PRIMARY", "WORKLOADS", "FsyncFloor", "Workload", "aged", "build_load", "sync_commits"]

Workload = Callable[[Any, Recorder, Params], None]

_now: Callable[[], float] = time.perf_counter


def set_clock(clock: str) -> None:
    """``"wall"`` (default): wall-clock seconds. ``"cpu"``: this process's CPU seconds, all
    threads (a target's background threads count against it; other processes' load does
    not). The ``sync`` workload always uses the wall clock: it measures waiting for disks."""
    global _now
    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock must be 'wall' or 'cpu', got {clock!r}")
    _now = time.perf_counter if clock == "wall" else time.process_time
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
    t0 = _now()
    for sets, removes in commits:
        last = commit(sets, removes)
    rec.rate(name, writes, _now() - t0, "writes/s")
    if commits and last != first + len(commits):
        raise AssertionError(f"{target.name}: {len(commits)} commits after version {first} ended at "
                             f"version {last}, not {first + len(commits)}")


def _gets(target: Any, rec: Recorder, name: str, keys: list[bytes], version: int | None) -> None:
    many = target.get_many
    out: list[Any] = []
    t0 = _now()
    for s in range(0, len(keys), 100):
        out.append(many(keys[s:s + 100], version))
    rec.rate(name, len(keys), _now() - t0, "gets/s")
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


def _pair_latency(target: Any, rec: Recorder, name: str, pairs: Sequence[tuple[bytes, int | None]]) -> None:
    """p50/p99 of single gets of (key, version) pairs."""
    get = target.get
    clock = time.perf_counter_ns
    samples = []
    for k, v in pairs:
        t0 = clock()
        get(k, v)
        samples.append(clock() - t0)
    rec.latencies(name, samples)


def _scans(target: Any, rec: Recorder, name: str, starts: list[bytes], rows: int, version: int | None) -> None:
    scan = target.scan
    out = []
    n = 0
    t0 = _now()
    for k in starts:
        r = scan(k, rows, version)
        n += len(r)
        out.append(r)
    rec.rate(name, n, _now() - t0, "rows/s")
    rec.check(name, out)


def _full_scan(target: Any, rec: Recorder, name: str, version: int | None) -> None:
    t0 = _now()
    n = target.count(version)
    rec.rate(name, n, _now() - t0, "rows/s")
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


# -- the product workloads (tierdb bench) --------------------------------------------------


def _preload(target: Any, params: Params, name: str | None, rec: Recorder) -> int:
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
        _load(target, rec, commits, name)
    return len(commits)


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
    t0 = _now()
    for sets in commits:
        c0 = clock()
        commit(sets, ())
        lat.append(clock() - c0)
    rec.rate("load writes/s", n, _now() - t0, "writes/s")
    rec.latencies("commit", lat)
    rng = random.Random(params.seed + 2)
    sample = [key_of(rng.randrange(n)) for _ in range(min(params.gets, 1000))]
    rec.check("get after load", target.get_many(sample, None))
    _full_scan(target, rec, "full scan rows/s", None)
    _reopen(target, rec, sample[:100])


_YCSB = {  # read, update, scan, insert, read-modify-write proportions (the YCSB core workloads)
    "ycsb-a": (0.50, 0.50, 0.0, 0.0, 0.0),
    "ycsb-b": (0.95, 0.05, 0.0, 0.0, 0.0),
    "ycsb-c": (1.00, 0.0, 0.0, 0.0, 0.0),
    "ycsb-e": (0.0, 0.0, 0.95, 0.05, 0.0),
    "ycsb-f": (0.50, 0.0, 0.0, 0.0, 0.50),
}


def _ycsb(mix: str) -> Workload:
    read_p, update_p, scan_p, insert_p, rmw_p = _YCSB[mix]

    def run(target: Any, rec: Recorder, params: Params) -> None:
        from .data import zipfian_sampler

        _preload(target, params, None, rec)
        target.age()
        n = params.keys
        rng = random.Random(params.seed + 10)
        draw = zipfian_sampler(n, 0.99, rng)
        value = ValueMaker(params.value_size, params.seed + 11)
        kinds: list[tuple[str, bytes, Any]] = []
        c1, c2, c3, c4 = read_p, read_p + update_p, read_p + update_p + scan_p, read_p + update_p + scan_p + insert_p
        inserted = n
        for _ in range(params.ops):
            u = rng.random()
            if u < c1:
                kinds.append(("read", key_of(draw()), None))
            elif u < c2:
                kinds.append(("update", key_of(draw()), value()))
            elif u < c3:
                kinds.append(("scan", key_of(draw()), rng.randint(1, 100)))
            elif u < c4:
                kinds.append(("insert", key_of(inserted), value()))
                inserted += 1
            else:
                kinds.append(("rmw", key_of(draw()), value()))
        get, commit, scan = target.get, target.commit, target.scan
        clock = time.perf_counter_ns
        lat: dict[str, list[int]] = {"read": [], "update": [], "scan": [], "insert": [], "rmw": []}
        answers: list[Any] = []
        t0 = _now()
        for kind, k, arg in kinds:
            c0 = clock()
            if kind == "read":
                answers.append(get(k, None))
            elif kind == "scan":
                answers.append(scan(k, arg, None))
            elif kind == "rmw":
                old = get(k, None)
                commit([(k, arg if old is None else arg[: len(arg) // 2] + old[len(arg) // 2:])], ())
                answers.append(old)
            else:
                commit([(k, arg)], ())
            lat[kind].append(clock() - c0)
        rec.rate("ops/s", len(kinds), _now() - t0, "ops/s")
        for kind, xs in lat.items():
            if xs:
                rec.latencies(kind, xs)
        rec.check(f"{mix} answers", answers)
        probe = [key_of(i) for i in range(0, n, max(1, n // 500))]
        # named by the op count: a run with fewer ops (a slow peer's) ends in another state
        rec.check(f"state after {len(kinds)} ops", target.get_many(probe, None))

    run.__doc__ = (f"YCSB {mix[-1].upper()}: zipfian (0.99) keys over a preloaded store; reads "
                   f"{read_p:.0%}, updates {update_p:.0%}, short scans {scan_p:.0%}, inserts "
                   f"{insert_p:.0%}, read-modify-writes {rmw_p:.0%}; one commit per write.")
    return run


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
    _load(target, rec, commits)
    target.age()
    top = len(commits)
    qs = [(key_of(rng.randrange(n)), rng.randint(1, top)) for _ in range(params.ops)]
    get, scan = target.get, target.scan
    out: list[Any] = []
    t0 = _now()
    for k, v in qs:
        out.append(get(k, v))
    rec.rate("get past/s", len(qs), _now() - t0, "gets/s")
    rec.check("get past", out)
    _pair_latency(target, rec, "get past", qs[: params.latency_samples])
    scans = qs[: params.scans]
    rows = 0
    res = []
    t0 = _now()
    for k, v in scans:
        r = scan(k, 100, v)
        rows += len(r)
        res.append(r)
    rec.rate("scan past rows/s", rows, _now() - t0, "rows/s")
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
    t0 = _now()
    for i, (sets, removes) in enumerate(commits, 1):
        commit(sets, removes)
        if store is not None and pin_at and i in pin_at:
            store.pin(i, f"bench-{i}")
    rec.rate("write writes/s", sum(len(s) for s, _ in commits), _now() - t0, "writes/s")
    t0 = time.perf_counter()
    if store is not None:
        target.age()
        store.gc()
    rec.put("gc s", time.perf_counter() - t0, "s")
    rng = random.Random(params.seed + 32)
    qs = [(key_of(rng.randrange(hot)), rng.choice(pin_at)) for _ in range(params.ops)]
    get = target.get
    out = []
    t0 = _now()
    for k, v in qs:
        out.append(get(k, v))
    rec.rate("get pinned/s", len(qs), _now() - t0, "gets/s")
    rec.check("get pinned", out)
    _pair_latency(target, rec, "get pinned", qs[: params.latency_samples])
    _gets(target, rec, "get latest/s", [k for k, _ in qs], None)
    target.close()
    rec.put("disk MB", target.disk_bytes() / 1e6, "MB")
    target.reopen()


def graph_checkpoints(target: Any, rec: Recorder, params: Params) -> None:
    """Waves of the reference ``Graph`` checkpointed, then restores at random old versions.

    A graph of ``keys // 10`` state nodes (10..200); each wave sets 10 seeded nodes in one
    ``graph.batch()`` (``keys // 20`` waves, 10..1000). tierdb checkpoints through ``engine.views``
    (``graph_storage`` + ``attach_snapshot_storage``: one commit per wave, a baseline every
    10 emissions, WAL frames between) and restores with ``restore_snapshot(version=v)``.
    A peer stores each node's canonical JSON under ``g/<node>`` (one commit per wave) and
    restores by a range read at ``v``. The restored values of every target are compared.
    """
    import json

    from ..views import (
        Graph,
        RestoreOptions,
        attach_snapshot_storage,
        graph_storage,
        restore_snapshot,
    )

    if not target.versioned:
        rec.notes.append("graph-checkpoints restores old versions; this target keeps only the latest")
        return
    nodes = [f"n{i:05d}" for i in range(max(10, min(200, params.keys // 10)))]
    waves = max(10, min(1000, params.keys // 20))
    rng = random.Random(params.seed + 40)
    plan = [[(rng.choice(nodes), rng.randrange(1_000_000)) for _ in range(10)] for _ in range(waves)]

    def fresh() -> Any:
        g = Graph("g")
        for name in nodes:
            g.state(name, 0)
        return g

    graph = fresh()
    tier = target.name.startswith("tierdb:")
    versions: list[int] = []
    if tier:
        store = target.store
        snap, wal = graph_storage(store, "g")
        handle = attach_snapshot_storage(graph, [(snap, wal)])
        t0 = _now()
        for wave in plan:
            with graph.batch():
                for name, v in wave:
                    graph.set(name, v)
            versions.append(int(store.version))
        elapsed = _now() - t0
        handle.dispose()
    else:
        t0 = _now()
        for wave in plan:
            with graph.batch():
                for name, v in wave:
                    graph.set(name, v)
            changed = {name: graph.get(name) for name, _ in wave}
            versions.append(target.commit([(b"g/" + k.encode(), json.dumps(val, separators=(",", ":")).encode())
                                           for k, val in sorted(changed.items())], ()))
        elapsed = _now() - t0
    rec.rate("checkpoint waves/s", waves, elapsed, "waves/s")
    target.age()
    picks = [rng.randrange(waves) for _ in range(max(5, min(params.scans, 50)))]
    restored = []
    clock = time.perf_counter_ns
    lat = []
    t0 = _now()
    for w in picks:
        c0 = clock()
        past = fresh()
        if tier:
            restore_snapshot(past, snap, wal, RestoreOptions(version=versions[w]))
            vals = past.values()
        else:
            vals = {n: 0 for n in nodes}
            for k, v in target.scan(b"g/", len(nodes), versions[w]):
                vals[k[2:].decode()] = json.loads(v)
        lat.append(clock() - c0)
        restored.append(json.dumps(vals, sort_keys=True).encode())
    rec.rate("restores/s", len(picks), _now() - t0, "restores/s")
    rec.latencies("restore", lat)
    rec.check("restored graphs", restored)


def scan_workload(target: Any, rec: Recorder, params: Params) -> None:
    """Range scans on a preloaded, aged store: 10-, 100- and ``scan_rows``-row scans from
    random keys at the latest version, and a full scan."""
    _preload(target, params, None, rec)
    target.age()
    rng = random.Random(params.seed + 50)
    starts = [key_of(rng.randrange(params.keys)) for _ in range(params.scans)]
    for rows in sorted({10, 100, params.scan_rows}):
        _scans(target, rec, f"scan {rows} rows/s", starts, rows, None)
    _full_scan(target, rec, "full scan rows/s", None)


WORKLOADS.update({
    "load": load,
    "ycsb-a": _ycsb("ycsb-a"),
    "ycsb-b": _ycsb("ycsb-b"),
    "ycsb-c": _ycsb("ycsb-c"),
    "ycsb-e": _ycsb("ycsb-e"),
    "ycsb-f": _ycsb("ycsb-f"),
    "time-travel": time_travel,
    "history-heavy": history_heavy,
    "graph-checkpoints": graph_checkpoints,
    "scan": scan_workload,
})

# The figure each workload is ranked by in plots and the summary table.
PRIMARY: dict[str, str] = {
    "aged": "get old/s", "sync": "sync commits/s", "load": "load writes/s",
    "ycsb-a": "ops/s", "ycsb-b": "ops/s", "ycsb-c": "ops/s", "ycsb-e": "ops/s", "ycsb-f": "ops/s",
    "time-travel": "get past/s", "history-heavy": "get pinned/s",
    "graph-checkpoints": "restores/s", "scan": "full scan rows/s",
}
