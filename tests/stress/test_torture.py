"""Torture harness, crash loop (issue 12): SIGKILL a random workload, reopen, verify.

A child (``torture_child.py``) runs a seeded random workload with the background mover
and GC running; it records each returned commit, erase and pin in an expected-state log
outside the store. The parent SIGKILLs it at a random moment, reopens the store and checks
it against the oracle rebuilt from that log (``torture_oracle.verify``): every acknowledged
commit is there entirely at its version, the interrupted one entirely or not at all, the
latest state and random retained past versions (and pinned ones) read exactly as the oracle
says, ``history`` keeps every retained version, ``check()`` passes, a new commit lands at
version + 1. Then the next child continues on the same store.

The quick variant runs in the default suite; the full one is behind ``-m stress``:

    TIERDB_TORTURE_TRIALS=200 .venv/bin/python -m pytest -m stress tests/stress/test_torture.py -s

(``TIERDB_TORTURE_SEED`` fixes the seed; figures are printed per layout with ``-s``.)
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from torture_config import DURABILITIES, LAYOUTS, open_store
from torture_oracle import Figures, Oracle, parent_commit, verify

CHILD = Path(__file__).with_name("torture_child.py")
ROOT = Path(__file__).resolve().parents[2]


def run_child_and_kill(path: Path, layout: str, durability: str, explog: Path,
                       rng: random.Random, max_delay: float) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(CHILD), str(path), layout, durability,
                             str(rng.randrange(1 << 30)), str(explog)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        if rng.random() < 0.1:
            time.sleep(rng.uniform(0.0, 0.5))  # sometimes during start-up / recovery
        else:
            line = proc.stdout.readline()
            if line != b"ready\n":
                proc.wait(timeout=30)
                raise AssertionError(f"child did not start: {proc.stderr.read().decode()[-3000:]}")
            time.sleep(rng.uniform(0.0, max_delay))
        if proc.poll() is not None:
            raise AssertionError(f"child exited by itself ({proc.returncode}): "
                                 f"{proc.stderr.read().decode()[-3000:]}")
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"child died otherwise: {err.decode()[-3000:]}"


def crash_loop(tmp_path: Path, layout: str, durability: str, trials: int, seed: int,
               max_delay: float = 0.8) -> Figures:
    rng = random.Random(seed)
    path = tmp_path / "db"
    explog = tmp_path / "expected.jsonl"
    oracle = Oracle(explog)
    figs = Figures()
    prev_top = 0
    for trial in range(trials):
        context = f"seed={seed} trial={trial} layout={layout} durability={durability}"
        run_child_and_kill(path, layout, durability, explog, rng, max_delay)
        figs.trials += 1
        store = open_store(path, layout, durability, background=False)
        try:
            verify(store, oracle, rng, durability, prev_top, figs, context)
            if figs.failures:
                break
            parent_commit(store, oracle, rng, context, figs)
            prev_top = oracle.top
        finally:
            store.close()
    return figs


def report(name: str, figs: Figures, started: float) -> None:
    print(f"\n[torture] {name}: {figs.as_dict()} in {time.monotonic() - started:.1f}s")


def assert_clean(figs: Figures) -> None:
    assert not figs.failures, "\n".join(figs.failures[:20])
    assert figs.lost == figs.partial == figs.wrong_reads == 0, figs.as_dict()


# -- quick variant (default suite) --------------------------------------------------------

QUICK = [("hot+warm+cold", "normal", 5), ("memory", "sync", 3), ("warm+cold", "none", 3)]


@pytest.mark.parametrize("layout,durability,trials", QUICK)
def test_torture_crash_loop_quick(tmp_path, layout, durability, trials):
    started = time.monotonic()
    figs = crash_loop(tmp_path, layout, durability, trials, seed=1201, max_delay=0.5)
    report(f"{layout}/{durability}", figs, started)
    assert_clean(figs)
    assert figs.commits_acked > 0 and figs.commits_verified > 0


# -- stress variant (-m stress) ----------------------------------------------------------

@pytest.mark.stress
@pytest.mark.parametrize("durability", DURABILITIES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_torture_crash_loop(tmp_path, layout, durability):
    seed = int(os.environ.get("TIERDB_TORTURE_SEED", random.randrange(1 << 30)))
    trials = int(os.environ.get("TIERDB_TORTURE_TRIALS", "40"))
    started = time.monotonic()
    figs = crash_loop(tmp_path, layout, durability, trials, seed)
    report(f"{layout}/{durability} seed={seed}", figs, started)
    assert_clean(figs)
    assert figs.commits_acked > 0


LAGGING_FLUSH_CHILD = """
import os, signal, sys
import engine
from engine import EntryKind
T = EntryKind.source(1)
s = engine.open(sys.argv[1], layout=engine.Layout.parse("hot+warm", background=False))
for i in range(1, 11):
    with s.begin() as tx:
        tx.set(T, b"k%02d" % i, b"v%d" % i)
s.flush()             # 1..10 to warm; the commit log forgets them
s.flush(watermark=5)  # a lagging flush, as the background timer's flush_lag_versions makes
print(s.version, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_lagging_flush_does_not_move_the_recovered_version_back(tmp_path):
    import engine
    from engine import EntryKind

    path = tmp_path / "db"
    proc = subprocess.run([sys.executable, "-c", LAGGING_FLUSH_CHILD, str(path)], capture_output=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL and proc.stdout == b"10\n", proc.stderr.decode()[-2000:]
    with engine.open(path) as s:
        assert s.version == 10
        assert s.get(EntryKind.source(1), b"k10") == b"v10"


NONE_FLUSH_CHILD = """
import os, signal, sys
import engine
from engine import EntryKind
A, B = EntryKind.source(1), EntryKind.source(2)
s = engine.open(sys.argv[1], layout=engine.Layout.parse("hot+warm", background=False), durability="none")
for i in range(1, 11):
    with s.begin() as tx:
        tx.set(A, b"k", b"a%d" % i)
        tx.set(B, b"k", b"b%d" % i)
warm = s._warm()
real = warm.write_entries
def write_entries(batches, **kw):
    if kw.get("meta"):              # the synced watermark write that ends a flush
        warm.flush_wal(sync=True)   # RocksDB may persist its memtables at any moment before it
        os.kill(os.getpid(), signal.SIGKILL)
    return real(batches, **kw)
warm.write_entries = write_entries
s._mover.flush()                    # what the background flush runs (it does not write the log first)
"""


def test_none_durability_flush_does_not_outlive_the_recovered_version(tmp_path):
    import engine
    from engine import EntryKind

    a, b = EntryKind.source(1), EntryKind.source(2)
    path = tmp_path / "db"
    proc = subprocess.run([sys.executable, "-c", NONE_FLUSH_CHILD, str(path)], capture_output=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    with engine.open(path) as s:
        recovered = s.version   # "none" may lose commits: any prefix is fine
        before = s.get(b, b"k", version=recovered) if recovered else None
        with s.begin() as tx:
            tx.set(a, b"k", b"new")
        # the new commit wrote only table a: table b at its version is what it was before
        assert s.get(b, b"k", version=tx.version) == before


NONE_GC_CHILD = """
import os, signal, sys
import engine
from engine import EntryKind
T = EntryKind.source(1)
s = engine.open(sys.argv[1], layout=engine.Layout.parse("hot+warm", background=False),
                durability="none", retention=engine.Retention(history_versions=5))
for i in range(1, 13):
    with s.begin() as tx:
        tx.set(T, b"k", b"%d" % i)
s.flush()        # versions 1..12 durable in warm, the commit log written
for i in range(13, 21):
    with s.begin() as tx:
        tx.set(T, b"k", b"%d" % i)   # "none": only in hot and in the log's buffer
s.gc()           # floor 16: warm's 1..12 are superseded by 13..20, which are not durable
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_none_durability_gc_does_not_remove_what_recovery_needs(tmp_path):
    import engine
    from engine import EntryKind

    path = tmp_path / "db"
    proc = subprocess.run([sys.executable, "-c", NONE_GC_CHILD, str(path)], capture_output=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    with engine.open(path) as s:
        v = s.version
        assert v >= 12   # the flushed prefix survives
        assert s.get(EntryKind.source(1), b"k") == b"%d" % v
