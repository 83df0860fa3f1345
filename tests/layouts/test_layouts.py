"""Every layout keeps the same MVCC answers through flush, demotion, GC and reopen."""

from __future__ import annotations

import random
import threading

import pytest
from layout_params import COLD_LAYOUTS, layout_name, layout_spec

import engine
from engine import Bound, EntryKind, Retention

T = EntryKind.source(1)


def model_read(model, key, version):
    vis = [(v, val) for v, val in model.get(key, []) if v <= version]
    return vis[-1][1] if vis else None


def model_scan(model, version, reverse=False):
    out = []
    for key in sorted(model):
        val = model_read(model, key, version)
        if val is not None:
            out.append((key, val))
    return out[::-1] if reverse else out


def fill(store, rng, model, commits=60, keys=30):
    for _ in range(commits):
        with store.begin() as tx:
            for _ in range(rng.randrange(1, 6)):
                k = b"key%03d" % rng.randrange(keys)
                if rng.random() < 0.2:
                    tx.remove(T, k)
                    val = None
                else:
                    val = b"val%d" % rng.randrange(10**6)
                    tx.set(T, k, val)
                pending = model.setdefault(k, [])
                if pending and pending[-1][0] == -1:
                    pending.pop()
                pending.append((-1, val))
        for chain in model.values():
            if chain and chain[-1][0] == -1:
                chain[-1] = (tx.version, chain[-1][1])


def verify(store, model, rng, samples=40):
    top = store.version
    for _ in range(samples):
        v = rng.randrange(0, top + 1)
        assert list(store.range(T, version=v)) == model_scan(model, v)
        assert list(store.range(T, version=v, reverse=True, batch_size=3)) == model_scan(model, v, True)
        for key in rng.sample(sorted(model), min(5, len(model))):
            assert store.get(T, key, version=v) == model_read(model, key, v), (key, v)
    for key in model:
        assert store.history(T, key) == sorted(model[key], reverse=True)


def test_layout_basic_time_travel(tmp_path, layout, open_store):
    rng = random.Random(1)
    model: dict = {}
    with open_store(tmp_path, layout) as s:
        assert s.layout.name == layout_name(layout)
        fill(s, rng, model)
        verify(s, model, rng)
        s.flush()
        verify(s, model, rng)
        s.demote()
        verify(s, model, rng)
        fill(s, rng, model, commits=20)
        s.flush()
        s.demote(policy="age")
        fill(s, rng, model, commits=10)
        verify(s, model, rng)
        s.check()
        version = s.version
    with open_store(tmp_path, layout) as s:
        assert s.version == version
        verify(s, model, rng)
        s.check()
        fill(s, rng, model, commits=5)
        assert s.version == version + 5
        verify(s, model, rng)


@pytest.mark.parametrize("layout", COLD_LAYOUTS)
def test_history_demotion_leaves_latest_in_upper_tiers(tmp_path, layout, open_store):
    with open_store(tmp_path, layout) as s:
        for i in range(10):
            with s.begin() as tx:
                tx.set(T, b"k", b"%d" % i)
                tx.set(T, b"once", b"x") if i == 0 else None
        s.flush()
        s.demote()
        cold = s._tiers[-1]
        assert cold.get_all_versions(T, b"k") == [(v, b"%d" % (v - 1)) for v in range(9, 0, -1)]
        assert cold.get_all_versions(T, b"once") == []  # never superseded: stays warm
        assert s.get(T, b"k") == b"9"
        assert s.get(T, b"k", version=3) == b"2"
        s.check()


def test_paging_across_tiers_never_loses_or_repeats(tmp_path, layout, open_store):
    with open_store(tmp_path, layout) as s:
        for batch in range(3):
            with s.begin() as tx:
                for i in range(batch, 90, 3):
                    tx.set(T, b"%03d" % i, b"b%d" % batch)
            if batch == 0:
                s.flush(); s.demote(policy="age")
            elif batch == 1:
                s.flush()
        want = [b"%03d" % i for i in range(90)]
        for bs in (1, 4, 89, 90, 200):
            for reverse in (False, True):
                cur = engine.RangeCursor()
                keys = []
                while True:
                    page = s.range_next(T, cur, batch_size=bs, reverse=reverse)
                    keys += [e.key for e in page.entries]
                    if not page.has_more:
                        break
                assert keys == (want[::-1] if reverse else want)


def test_gc_reclaims_in_every_tier(tmp_path, layout, open_store):
    with open_store(tmp_path, layout, retention=Retention(history_versions=1)) as s:
        for r in range(20):
            with s.begin() as tx:
                for i in range(200):
                    tx.set(T, b"key%04d" % i, (b"%02d" % r) * 50)
            if r % 5 == 4:
                s.flush(); s.demote(policy="history")
        before = {n: st.get("versions", 0) for n, st in s.stats()["tiers"].items()}
        result = s.gc()
        assert result["removed_versions"] == 200 * 19
        after = {n: st.get("versions", 0) for n, st in s.stats()["tiers"].items()}
        assert sum(after.values()) == 200
        assert sum(before.values()) > sum(after.values())
        for i in range(0, 200, 37):
            assert s.get(T, b"key%04d" % i) == b"19" * 50
        s.check()


def test_snapshot_readers_stable_during_background_movement(tmp_path, layout, open_store):
    lay = engine.Layout.parse(layout_spec(layout, tmp_path), flush_interval=0.01, demote_interval=0.01,
                              demotion_age_versions=0, background=True)
    with engine.open(tmp_path / "db", layout=lay) as s:
        rng = random.Random(5)
        model: dict = {}
        fill(s, rng, model, commits=40)
        stop = threading.Event()
        errors: list[BaseException] = []

        def writer():
            i = 0
            while not stop.is_set():
                with s.begin() as tx:
                    tx.set(EntryKind.source(2), b"w%05d" % i, b"x")
                i += 1

        def reader(version):
            try:
                with s.snapshot(version) as snap:
                    first = list(snap.range(T))
                    firsts = {k: snap.get(T, k) for k in list(model)[:10]}
                    for _ in range(30):
                        assert list(snap.range(T)) == first
                        assert {k: snap.get(T, k) for k in firsts} == firsts
            except BaseException as exc:  # reported to the main thread
                errors.append(exc)

        wt = threading.Thread(target=writer)
        wt.start()
        readers = [threading.Thread(target=reader, args=(v,)) for v in (5, 20, 40)]
        for t in readers:
            t.start()
        for t in readers:
            t.join()
        stop.set()
        wt.join()
        assert not errors, errors[0]
        s.flush(); s.demote()
        verify(s, model, rng, samples=10)
        s.check()


@pytest.mark.parametrize("layout", COLD_LAYOUTS)
def test_latest_reads_skip_cold_after_history_demotion(tmp_path, layout, open_store):
    with open_store(tmp_path, layout) as s:
        for i in range(6):
            with s.begin() as tx:
                tx.set(T, b"k", b"%d" % i)
                tx.set(T, b"j%d" % i, b"x")
        s.flush()
        s.demote(policy="history")
        cold = s._tiers[-1]

        def touched():
            st = cold.stats()
            return st["cache_hits"] + st["cache_misses"]

        cutoff = s.version
        before = touched()
        assert s.get(T, b"k") == b"5"
        assert s.get(T, b"k", version=cutoff) == b"5"
        assert len(list(s.range(T))) == 7
        assert touched() == before  # the archive of the past is not consulted for current reads
        assert s.get(T, b"k", version=2) == b"1"
        assert touched() > before  # but old reads do reach it
    with open_store(tmp_path, layout) as s:  # the shortcut survives a reopen...
        assert s._router.cold_skip_from == cutoff
        s.demote(policy="age")
        assert s._router.cold_skip_from is None  # ...and an age demotion turns it off for good
        assert s.get(T, b"k") == b"5"
    with open_store(tmp_path, layout) as s:
        assert s._router.cold_skip_from is None
        assert s.get(T, b"j0") == b"x"


@pytest.mark.parametrize("layout", COLD_LAYOUTS)
def test_scan_open_across_movement_and_close(tmp_path, layout, open_store):
    """A scan still open when the store closes leaves a moved band's upper copy in place;
    closing and reopening stays correct and the next movement settles it."""
    import gc

    s = open_store(tmp_path, layout)
    for r in range(3):
        with s.begin() as tx:
            for i in range(40):
                tx.set(T, b"k%02d" % i, b"%d" % r)
    it = s.range(T)
    assert next(it) == (b"k00", b"2")
    s.flush()
    s.demote(policy="history")
    assert s._router.epochs.pending() >= 1  # removal waits for the open scan
    s.close()
    del it
    gc.collect()
    with open_store(tmp_path, layout) as s:
        s.check()  # identical copies in two adjacent tiers are accepted
        assert [v for _, v in s.range(T)] == [b"2"] * 40
        assert s.get(T, b"k05", version=1) == b"0"
        s.flush()
        s.demote(policy="history")
        s.check()
        upper, lower = s._tiers[-2], s._tiers[-1]
        assert upper.get_all_versions(T, b"k05") == [(3, b"2")]
        assert lower.get_all_versions(T, b"k05") == [(2, b"1"), (1, b"0")]
