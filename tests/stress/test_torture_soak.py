"""Torture harness, soak (issue 12): 8 threads of bank transfers with movement and GC running.

Each thread moves money between random accounts in serializable transactions (retrying on
``ConflictError``), writes a transfer record in a second table in the same commit, and now
and then reads a random retained past version (``get_many`` or a snapshot ``range``) and
checks the bank invariant there: the sum over accounts is the same at every version. At the
end, the balances at the latest and at random retained versions equal the replay of the
acknowledged transfers (the oracle), every transfer record is there, ``check()`` passes, and
the process RSS grew by less than a bound after warm-up (memory stays bounded).

    TIERDB_TORTURE_SOAK_SECONDS=300 .venv/bin/python -m pytest -m stress tests/stress/test_torture_soak.py -s
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest

import engine
from engine import EntryKind
from engine.errors import ConflictError, HistoryUnavailable

ACCOUNTS = 40
START = 1000
BANK = EntryKind.source(11)
RECORDS = EntryKind.operator(12)
THREADS = 8


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def acct(i: int) -> bytes:
    return b"acct%03d" % i


def soak(path: Path, layout: str, seconds: float, seed: int) -> dict[str, int]:
    lay = engine.Layout.parse(layout, hot_bytes=256 << 10, flush_interval=0.05,
                              demotion_age_versions=50, demote_interval=0.2)
    store = engine.open(path, layout=lay, durability="normal",
                        retention=engine.Retention(history_versions=400), gc_interval=0.2)
    with store.begin() as tx:
        tx.set_many(BANK, {acct(i): b"%d" % START for i in range(ACCOUNTS)})
    base = tx.version
    transfers: list[tuple[int, int, int, int]] = []   # (version, from, to, amount)
    lock = threading.Lock()
    errors: list[str] = []
    stop = threading.Event()
    counts = {"commits": 0, "conflicts": 0, "invariant_checks": 0, "pinned_checks": 0,
              "floor_races": 0}

    def check_sum(v: int, how: str) -> None:
        if how == "snapshot":
            with store.snapshot(version=v) as snap:
                total = sum(int(val) for _, val in snap.range(BANK))
        else:
            total = sum(int(x) for x in store.get_many(BANK, [acct(i) for i in range(ACCOUNTS)], version=v))
        if total != ACCOUNTS * START:
            errors.append(f"bank invariant broken at version {v} ({how}): sum {total}")

    def worker(tid: int) -> None:
        rng = random.Random(seed * 100 + tid)
        n = 0
        try:
            while not stop.is_set():
                n += 1
                a, b = rng.sample(range(ACCOUNTS), 2)
                amt = rng.randint(1, 50)
                while True:
                    tx = store.begin()
                    try:
                        ba, bb = int(tx.get(BANK, acct(a))), int(tx.get(BANK, acct(b)))
                        if ba < amt:
                            tx.rollback()
                            v = None
                            break
                        sp = tx.savepoint()
                        tx.set(BANK, acct(a), b"%d" % (ba - amt))
                        if rng.random() < 0.1:  # a change of mind, rolled back
                            tx.rollback_to(sp)
                            tx.set(BANK, acct(a), b"%d" % (ba - amt))
                        tx.set(BANK, acct(b), b"%d" % (bb + amt))
                        tx.set(RECORDS, b"t%d.%d" % (tid, n), b"%d>%d:%d" % (a, b, amt))
                        v = tx.commit()
                        break
                    except ConflictError:
                        with lock:
                            counts["conflicts"] += 1
                if v is not None:
                    with lock:
                        transfers.append((v, a, b, amt))
                        counts["commits"] += 1
                if rng.random() < 0.05:
                    top = store.version
                    lo = max(base, store.history_floor())
                    v = rng.randint(lo, top)
                    try:
                        check_sum(v, rng.choice(("get_many", "snapshot")))
                    except HistoryUnavailable:
                        # other threads' commits moved the floor past v since it was picked:
                        # right, as long as v is below the floor now
                        if v >= store.history_floor():
                            raise
                        with lock:
                            counts["floor_races"] += 1
                        continue
                    with lock:
                        counts["invariant_checks"] += 1
                if tid == 0 and rng.random() < 0.01:
                    store.pin(store.version, f"soak{rng.randrange(3)}")
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(f"thread {tid}: {type(exc).__name__}: {exc}")
            stop.set()

    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(THREADS)]
    started = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(seconds / 4)
    rss_warm = rss_bytes()
    time.sleep(max(0.0, seconds - (time.monotonic() - started)))
    stop.set()
    for t in threads:
        t.join(timeout=120)
    rss_end = rss_bytes()
    try:
        assert not errors, "\n".join(errors[:10])
        # the oracle: balances at a version = the replay of the transfers up to it
        transfers.sort()
        assert len({v for v, *_ in transfers}) == len(transfers), "two transfers at one version"

        def balances_at(v: int) -> list[int]:
            bal = [START] * ACCOUNTS
            for tv, a, b, amt in transfers:
                if tv > v:
                    break
                bal[a] -= amt
                bal[b] += amt
            return bal

        keys = [acct(i) for i in range(ACCOUNTS)]
        rng = random.Random(seed)
        top = store.version
        floor = max(base, store.history_floor())
        for v in [top, *rng.sample(range(floor, top + 1), min(20, top - floor + 1))]:
            got = [int(x) for x in store.get_many(BANK, keys, version=v)]
            assert got == balances_at(v), f"balances at version {v} differ from the replayed transfers"
        for name, v in store.pins().items():
            got = [int(x) for x in store.get_many(BANK, keys, version=v)]
            assert got == balances_at(v), f"balances at pinned version {v} ({name}) differ"
            counts["pinned_checks"] += 1
        assert sum(1 for _ in store.range(RECORDS)) == len(transfers)
        store.check()
        counts["rss_growth_mib"] = (rss_end - rss_warm) >> 20
        counts["stats_versions"] = top
    finally:
        store.close()
    return counts


def test_soak_quick(tmp_path):
    counts = soak(tmp_path / "db", "hot+warm+cold", seconds=4.0, seed=3)
    print(f"\n[torture] soak hot+warm+cold: {counts}")
    assert counts["commits"] > 0 and counts["invariant_checks"] > 0


@pytest.mark.stress
@pytest.mark.parametrize("layout", ["memory", "warm", "hot+warm", "hot+warm+cold", "warm+cold"])
def test_soak_stress(tmp_path, layout):
    seconds = float(os.environ.get("TIERDB_TORTURE_SOAK_SECONDS", "60"))
    seed = int(os.environ.get("TIERDB_TORTURE_SEED", random.randrange(1 << 30)))
    counts = soak(tmp_path / "db", layout, seconds=seconds, seed=seed)
    print(f"\n[torture] soak {layout} seed={seed} {seconds:.0f}s: {counts}")
    assert counts["commits"] > 0
    # bounded memory: hot_bytes is 256 KiB and history 400 versions; the growth after
    # warm-up stays far below what keeping every commit would take
    assert counts["rss_growth_mib"] < 256, counts
