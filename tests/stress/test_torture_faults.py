"""Torture harness, I/O faults (issue 12): EIO / ENOSPC on tierdb's own write, fsync,
fdatasync and rename calls, and a real full disk (a 3 MiB tmpfs).

Injected faults: the random workload of ``torture_child.step`` (commits, erase, pins, gc,
flush, demote, compact, reopen) runs in this process on a fresh store with the background
threads off, so the calls are counted deterministically. A dry run counts tierdb's calls
of each kind (only calls made from ``engine.*`` code are counted and failed; RocksDB's
C++ I/O is out of reach of ``unittest.mock``); then for each fault point (kind, N, errno,
one-shot or sticky = every later call fails too, like a full disk) the workload runs again
with the N-th call raising ``OSError``. After the fault:

* the error that surfaced is an ``OSError`` (``StorageIOError`` is one) or another typed
  ``EngineError``;
* the open store is still readable, and shows the interrupted commit entirely or not at all;
* a failed close still releases the store; a reopen recovers every acknowledged commit,
  erase and pin, and the interrupted commit is there entirely or not at all (the crash-loop
  oracle, ``torture_oracle.verify``), ``check()`` passes and a new commit lands right above.

Full disk: the same workload runs on a 3 MiB tmpfs until writes fail, then space is
added and the store is reopened and verified the same way (skipped where mount is refused).

    TIERDB_TORTURE_FAULTS=0 .venv/bin/python -m pytest -m stress tests/stress/test_torture_faults.py -s

(``TIERDB_TORTURE_FAULTS=0`` tries every call index; a number caps the points per kind.)
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import subprocess
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from unittest import mock

import pytest
from torture_child import ExpectedLog, step
from torture_config import KEYS, TABLES, open_store
from torture_oracle import Figures, Oracle, parent_commit, verify

from engine.errors import EngineError

KINDS = ("write", "fsync", "fdatasync", "replace")
REAL = {k: getattr(os, k) for k in KINDS}
STEPS = 70


def _frames(f, n: int):
    while f is not None and n:
        yield f
        f, n = f.f_back, n - 1


class Injector:
    """Counts tierdb's calls of each kind; fails the N-th one (and later ones if sticky)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.kind: str | None = None
        self.n = 0
        self.err = errno.EIO
        self.sticky = False
        self.fired = 0
        self.where = ""

    def arm(self, kind: str, n: int, err: int, sticky: bool) -> None:
        self.counts.clear()
        self.kind, self.n, self.err, self.sticky, self.fired = kind, n, err, sticky, 0
        self.where = ""

    def disarm(self) -> None:
        self.kind = None

    def wrap(self, kind: str):
        real = REAL[kind]

        def call(*args, **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.startswith("engine."):
                self.counts[kind] += 1
                c = self.counts[kind]
                if kind == self.kind and (c == self.n or (self.sticky and c > self.n)):
                    self.fired += 1
                    if self.fired == 1:
                        f = sys._getframe(1)
                        self.where = " <- ".join(
                            f"{g.f_code.co_name}@{Path(g.f_code.co_filename).name}:{g.f_lineno}"
                            for g in _frames(f, 6))
                    raise OSError(self.err, f"injected {errno.errorcode[self.err]} on os.{kind} #{c}")
            return real(*args, **kwargs)
        return call

    @contextlib.contextmanager
    def installed(self):
        with contextlib.ExitStack() as stack:
            for k in KINDS:
                stack.enter_context(mock.patch.object(os, k, new=self.wrap(k)))
            yield self


def run_workload(path: Path, layout: str, durability: str, seed: int, explog: Path,
                 inj: Injector | None) -> tuple[object, BaseException | None, int]:
    """Run STEPS random steps; stop at the first exception. Returns (store, error, steps)."""
    rng = random.Random(seed)
    elog = ExpectedLog(str(explog))
    store = None
    err: BaseException | None = None
    i = 0
    try:
        store = open_store(path, layout, durability, background=False)
        for i in range(STEPS):
            store = step(store, rng, elog, f"{seed}.{i}",
                         lambda: open_store(path, layout, durability, background=False))
    except Exception as exc:  # noqa: BLE001 - the fault under test, examined by the caller
        err = exc
    finally:
        elog.f.close()
    return store, err, i


def readable_after_fault(store, oracle: Oracle, figs: Figures, context: str) -> None:
    """The store that saw the fault still answers reads, all-or-nothing for the commit."""
    oracle.read_new()
    intent = oracle.pending.get("intent")
    try:
        v = store.version
        rows = {(t, k): store.get(TABLES[t], k.encode()) for t in TABLES for k in KEYS}
    except EngineError as exc:
        figs.failures.append(f"{context}: store unreadable after the fault: {exc!r}")
        return
    if intent is not None and v == oracle.top + 1:
        applied = [rows[(t, k)] == (None if val is None else val.encode())
                   for t, k, val in intent["writes"]]
        if not all(applied):
            # entries written before the fault show, but not all of them
            for (t, k, val), ok in zip(intent["writes"], applied):
                if not ok and oracle.value_at((t, k), v) != val:
                    figs.partial += 1
                    figs.failures.append(f"{context}: in-process view shows commit {v} partially")
                    return


def fault_trial(tmp: Path, layout: str, durability: str, seed: int, inj: Injector,
                kind: str, n: int, err: int, sticky: bool, figs: Figures, tally: Counter) -> None:
    path, explog = tmp / "db", tmp / "expected.jsonl"
    context = f"seed={seed} layout={layout} durability={durability} fault={kind}#{n} {errno.errorcode[err]}{' sticky' if sticky else ''}"
    inj.arm(kind, n, err, sticky)
    with inj.installed():
        store, exc, _ = run_workload(path, layout, durability, seed, explog, inj)
        fired = inj.fired
        context += f" (hit in {inj.where}; surfaced {exc!r:.300})"
        oracle = Oracle(explog)
        if exc is not None:
            tally["faults_surfaced"] += 1
            if not isinstance(exc, (OSError, EngineError)):
                tally["untyped_errors"] += 1
                figs.failures.append(f"{context}: untyped {type(exc).__name__}: {exc}")
            inj.disarm()
            if store is not None and not store.closed:
                readable_after_fault(store, oracle, figs, context)
        elif fired:
            tally["faults_absorbed"] += 1  # e.g. a retried or best-effort call
        inj.disarm()
        try:
            if store is not None:
                store.close()
        except EngineError as e:
            tally["close_failed"] += 1
            tally[f"close_failed:{type(e).__name__}"] += 1
        except OSError:
            tally["close_failed_untyped"] += 1
    if not fired:
        tally["points_not_reached"] += 1
        return
    tally["fault_points"] += 1
    try:
        reopened = open_store(path, layout, durability, background=False)
    except EngineError as e:
        known = known_defect(store, inj.where, e)
        if known:
            tally[f"known_defect:{known}"] += 1
            return
        tally["failures_to_recover"] += 1
        figs.failures.append(f"{context}: reopen after the fault failed: {e!r}")
        return
    try:
        before = len(figs.failures)
        verify(reopened, oracle, random.Random(seed), durability, 0, figs, context)
        if len(figs.failures) == before:
            parent_commit(reopened, oracle, random.Random(seed), context, figs)
        if len(figs.failures) != before:
            tally["failures_to_recover"] += 1
    finally:
        reopened.close()


def count_calls(tmp: Path, layout: str, durability: str, seed: int) -> Counter[str]:
    inj = Injector()
    inj.arm("none", 0, errno.EIO, False)
    with inj.installed():
        store, exc, _ = run_workload(tmp / "db", layout, durability, seed, tmp / "expected.jsonl", inj)
        store.close()
    assert exc is None, f"the dry run failed: {exc!r}"
    return Counter(inj.counts)


def fault_run(tmp_path: Path, layout: str, durability: str, seed: int, per_kind: int) -> tuple[Figures, Counter]:
    (tmp_path / "dry").mkdir()
    counts = count_calls(tmp_path / "dry", layout, durability, seed)
    rng = random.Random(seed)
    figs, tally = Figures(), Counter()
    tally.update({f"calls:{k}": v for k, v in counts.items()})
    inj = Injector()
    trial = 0
    for kind in KINDS:
        total = counts.get(kind, 0)
        if not total:
            continue
        points = list(range(1, total + 1))
        if per_kind and len(points) > per_kind:
            points = sorted(rng.sample(points, per_kind))
        for n in points:
            trial += 1
            tmp = tmp_path / f"t{trial}"
            tmp.mkdir()
            fault_trial(tmp, layout, durability, seed, inj, kind, n,
                        rng.choice((errno.EIO, errno.ENOSPC)), rng.random() < 0.4, figs, tally)
            if len(figs.failures) >= 10:
                return figs, tally
            subprocess.run(["rm", "-rf", str(tmp)], check=False)
    return figs, tally


def known_defect(store: object, where: str, reopen_error: BaseException,
                 surfaced: BaseException | None = None) -> str | None:
    """Name a known, still open engine defect (each with an xfail(strict=True) test) that
    explains a failed reopen, or None: then it is a failure. None are open today; the
    defects this harness found are regression tests in this directory."""
    return None


FAULT_LAYOUTS = ["memory", "warm", "hot+warm", "hot+warm+cold", "warm+cold"]


@pytest.mark.parametrize("layout,durability,per_kind", [("hot+warm+cold", "sync", 1), ("memory", "normal", 2)])
def test_io_faults_quick(tmp_path, layout, durability, per_kind):
    started = time.monotonic()
    figs, tally = fault_run(tmp_path, layout, durability, seed=77, per_kind=per_kind)
    print(f"\n[torture] faults {layout}/{durability}: {dict(tally)} in {time.monotonic() - started:.1f}s")
    assert not figs.failures, "\n".join(figs.failures[:10])
    assert tally["fault_points"] > 0 and tally["failures_to_recover"] == 0


@pytest.mark.stress
@pytest.mark.parametrize("durability", ["sync", "normal"])
@pytest.mark.parametrize("layout", FAULT_LAYOUTS)
def test_io_faults_stress(tmp_path, layout, durability):
    seed = int(os.environ.get("TIERDB_TORTURE_SEED", random.randrange(1 << 30)))
    per_kind = int(os.environ.get("TIERDB_TORTURE_FAULTS", "25"))
    started = time.monotonic()
    figs, tally = fault_run(tmp_path, layout, durability, seed, per_kind)
    print(f"\n[torture] faults {layout}/{durability} seed={seed}: {dict(tally)} in {time.monotonic() - started:.1f}s")
    assert not figs.failures, "\n".join(figs.failures[:10])
    assert tally["failures_to_recover"] == 0


@pytest.mark.parametrize("marker", ["TIERDB", "TIERDB_WARM"])
def test_failed_create_leaves_an_openable_store(tmp_path, marker):
    import engine
    from engine.errors import StorageIOError

    path = tmp_path / "db"
    real_replace = os.replace

    def failing_replace(src, dst, *args, **kwargs):
        if Path(dst).name == marker:
            raise OSError(errno.EIO, "injected EIO")
        return real_replace(src, dst, *args, **kwargs)

    with mock.patch.object(os, "replace", new=failing_replace), pytest.raises(StorageIOError):
        engine.open(path, layout="hot+warm")
    with engine.open(path, layout="hot+warm") as s:   # the disk is fine again
        assert s.version == 0
        with s.begin() as tx:
            tx.set(TABLES["a"], b"k", b"v")
        assert tx.version == 1


def test_failed_dir_fsync_after_manifest_rename_keeps_the_store_openable(tmp_path):
    import engine
    from engine.errors import StorageIOError

    path = tmp_path / "db"
    table = TABLES["a"]
    s = engine.open(path, layout=engine.Layout.parse("hot+warm+cold", background=False))
    for i in range(20):
        with s.begin() as tx:
            tx.set(table, b"k%02d" % i, b"v%d" % i)
    s.flush()

    def failing_fsync_dir(directory):
        raise StorageIOError(f"injected: cannot fsync directory {directory}")

    with mock.patch("engine.tiers.cold.manifest.fsync_dir", failing_fsync_dir), \
            pytest.raises(StorageIOError):
        s.demote(policy="age")
    s.close()
    with engine.open(path) as s:
        assert s.get_many(table, [b"k%02d" % i for i in range(20)]) == [b"v%d" % i for i in range(20)]
        s.check()


def test_failed_open_releases_the_warm_tier(tmp_path):
    import engine
    from engine.errors import StorageIOError

    path = tmp_path / "db"
    with mock.patch("engine.tiers.cold.ColdTier.__init__",
                    side_effect=StorageIOError("injected: cold tier cannot open")), \
            pytest.raises(StorageIOError):
        engine.open(path, layout="hot+warm+cold")
    with engine.open(path, layout="hot+warm+cold") as s:
        assert s.version == 0


# -- a real full disk ----------------------------------------------------------------------

def mount_small(mnt: Path, size: str = "3m") -> None:
    mnt.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")


def big_commit(store, rng: random.Random, elog: ExpectedLog, tag: str) -> None:
    """A commit of a few large values, so the disk fills in a few hundred commits."""
    writes = sorted({(rng.choice(list(TABLES)), rng.choice(KEYS)): tag + "@" * rng.randrange(5_000, 40_000)
                     for _ in range(rng.randint(1, 3))}.items())
    wlist = [[t, k, v] for (t, k), v in writes]
    tx = store.begin()
    for t, k, v in wlist:
        tx.set(TABLES[t], k.encode(), v.encode())
    elog.write({"op": "intent", "writes": wlist}, sync=False)
    v = tx.commit()
    elog.write({"op": "commit", "v": v, "writes": wlist}, sync=True)


class _MessagesOnly(logging.Handler):
    """Keeps tierdb's log messages as text only (see full_disk_round)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def tierdb_logs_as_text():
    """Count tierdb's log messages (background mover / GC failures on the full disk). The
    records still propagate to pytest's log capture, which keeps them: that once kept RocksDB
    open after close (test_background_error_logged_to_a_keeping_handler_...)."""
    logger = logging.getLogger("tierdb")
    handler = _MessagesOnly()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def full_disk_round(tmp: Path, layout: str, durability: str, seed: int, figs: Figures,
                    tally: Counter, size: str = "3m") -> None:
    with tierdb_logs_as_text() as logs:
        _full_disk_round(tmp, layout, durability, seed, figs, tally, size)
    tally["full_disk_background_warnings"] += len(logs.messages)


def _full_disk_round(tmp: Path, layout: str, durability: str, seed: int, figs: Figures,
                     tally: Counter, size: str) -> None:
    mnt = tmp / "mnt"
    mount_small(mnt, size)
    try:
        path, explog = mnt / "db", tmp / "expected.jsonl"
        context = f"full disk seed={seed} layout={layout} durability={durability}"
        rng = random.Random(seed)
        elog = ExpectedLog(str(explog))
        store = None
        exc: BaseException | None = None
        try:
            store = open_store(path, layout, durability, background=True)
            for i in range(5_000):
                if rng.random() < 0.5:
                    big_commit(store, rng, elog, f"{seed}.{i}.big")
                else:
                    store = step(store, rng, elog, f"{seed}.{i}",
                                 lambda: open_store(path, layout, durability, background=True))
        except Exception as e:  # noqa: BLE001 - the full disk, examined below
            exc = e
        finally:
            elog.f.close()
        if exc is None:
            figs.failures.append(f"{context}: 5000 steps never filled 3 MiB")
            return
        tally["full_disk_rounds"] += 1
        tally[f"full_disk_error:{type(exc).__name__}"] += 1
        engine_frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/engine/" in f.filename]
        if engine_frames:
            tally[f"full_disk_hit:{engine_frames[0].name}>{engine_frames[-1].name}"] += 1
        if not isinstance(exc, (OSError, EngineError)):
            figs.failures.append(f"{context}: untyped {type(exc).__name__}: {exc}")
        oracle = Oracle(explog)
        subprocess.run(["mount", "-o", "remount,size=256m", str(mnt)], check=True)
        if store is not None and not store.closed:
            readable_after_fault(store, oracle, figs, context)
        try:
            if store is not None:
                store.close()
        except EngineError:
            tally["full_disk_close_failed"] += 1
        try:
            reopened = open_store(path, layout, durability, background=False)
        except EngineError as e:
            known = known_defect(store, "", e, exc)
            if known:
                tally[f"known_defect:{known}"] += 1
                return
            tally["failures_to_recover"] += 1
            figs.failures.append(f"{context}: reopen after the full disk failed: {e!r} (error was {exc!r:.300})")
            return
        try:
            before = len(figs.failures)
            verify(reopened, oracle, random.Random(seed), durability, 0, figs, context)
            if len(figs.failures) == before:
                parent_commit(reopened, oracle, random.Random(seed), context, figs)
            if len(figs.failures) != before:
                tally["failures_to_recover"] += 1
        finally:
            reopened.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_quick(tmp_path):
    started = time.monotonic()
    figs, tally = Figures(), Counter()
    full_disk_round(tmp_path, "hot+warm+cold", "normal", 5, figs, tally, size="1m")
    print(f"\n[torture] full disk hot+warm+cold: {dict(tally)} {figs.as_dict()} in {time.monotonic() - started:.1f}s")
    assert not figs.failures, "\n".join(figs.failures[:10])
    assert tally["full_disk_rounds"] == 1


@pytest.mark.stress
@pytest.mark.parametrize("layout", FAULT_LAYOUTS)
def test_full_disk_stress(tmp_path, layout):
    seed = int(os.environ.get("TIERDB_TORTURE_SEED", random.randrange(1 << 30)))
    rounds = int(os.environ.get("TIERDB_TORTURE_DISK_ROUNDS", "4"))
    started = time.monotonic()
    figs, tally = Figures(), Counter()
    for r in range(rounds):
        sub = tmp_path / f"r{r}"
        sub.mkdir()
        full_disk_round(sub, layout, ("sync", "normal")[r % 2], seed + r, figs, tally)
        if figs.failures:
            break
    print(f"\n[torture] full disk {layout} seed={seed}: {dict(tally)} {figs.as_dict()} in {time.monotonic() - started:.1f}s")
    assert not figs.failures, "\n".join(figs.failures[:10])


@pytest.mark.parametrize("op", ["erase", "gc", "flush"])
def test_error_from_erase_or_gc_on_a_full_disk_does_not_keep_the_store_locked(tmp_path, op):
    import engine
    from engine.errors import StorageIOError

    mnt = tmp_path / "mnt"
    mount_small(mnt)
    try:
        path = mnt / "db"
        table = TABLES["a"]
        s = engine.open(path, layout=engine.Layout.parse("warm", background=False),
                        retention=engine.Retention(history_versions=5))
        with pytest.raises(StorageIOError):
            for i in range(100_000):
                with s.begin() as tx:
                    tx.set(table, b"k%03d" % (i % 50), os.urandom(20_000))
        held = []
        try:
            {"erase": lambda: s.erase(table, b"k001"), "gc": s.gc, "flush": s.flush}[op]()
        except StorageIOError as exc:
            held.append(exc)  # kept, as a log or a retry loop would
        assert held, f"{op} did not fail on the full disk"
        with contextlib.suppress(StorageIOError):
            s.close()
        subprocess.run(["mount", "-o", "remount,size=256m", str(mnt)], check=True)
        with engine.open(path) as s2:  # LockedError today
            assert s2.version > 0
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_background_error_logged_to_a_keeping_handler_does_not_keep_the_store_locked(tmp_path):
    import engine
    from engine.errors import StorageIOError

    kept: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(record)

    mnt = tmp_path / "mnt"
    mount_small(mnt)
    logger = logging.getLogger("tierdb")
    handler = Keep()
    logger.addHandler(handler)
    try:
        path = mnt / "db"
        table = TABLES["a"]
        # No timer flush and a 4 MiB hot budget: the mover's first flush starts past 2 MiB
        # of hot data, which cannot fit beside the commit log on the 3 MiB disk - so it
        # fails, and keeps failing (hot stays over half its budget), every time it retries.
        s = engine.open(path, layout=engine.Layout.parse("hot+warm", hot_bytes=4 << 20,
                                                         flush_interval=0))
        with pytest.raises(StorageIOError):
            for i in range(100_000):
                with s.begin() as tx:
                    tx.set(table, b"k%03d" % (i % 50), os.urandom(20_000))
        deadline = time.monotonic() + 10
        while not any("failed (will retry)" in r.getMessage() for r in kept) and time.monotonic() < deadline:
            time.sleep(0.05)   # the background flush fails on the full disk and logs it
        assert any("failed (will retry)" in r.getMessage() for r in kept)
        with contextlib.suppress(StorageIOError):
            s.close()
        subprocess.run(["mount", "-o", "remount,size=256m", str(mnt)], check=True)
        with engine.open(path) as s2:   # LockedError today, while `kept` holds the records
            assert s2.version > 0
    finally:
        logger.removeHandler(handler)
        subprocess.run(["umount", "-l", str(mnt)], check=False)
