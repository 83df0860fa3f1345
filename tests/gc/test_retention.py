"""Retention, pins, snapshots and GC: the reference scenarios 5-14 and tierdb's corrections."""

from __future__ import annotations

import pytest

import engine
from engine import EntryKind, HistoryUnavailable, Retention
from engine.drop_worker.planner import ReadPointSet, explicit_drop_candidates, removable_versions

T = EntryKind.MULTI


def commit(store, key=b"k", value=b"v", table=T):
    with store.begin() as tx:
        if value is None:
            tx.remove(table, key)
        else:
            tx.set(table, key, value)
    return tx.version


def versions_of(store, key=b"k", table=T):
    return [v for v, _ in store.history(table, key)]


# -- the planner, pure ------------------------------------------------------------------


def test_planner_gc_test_scenario_14():
    vs = [(v, False) for v in range(100, 0, -1)]
    gone = removable_versions(vs, ReadPointSet.of(50, []))
    assert gone == set(range(1, 50))


def test_planner_gc_hazard_scenario_13():
    vs = [(100, False), (1, False)]
    # a retained reader at 60 needs v1 (1 <= 60 < 100)
    assert removable_versions(vs, ReadPointSet.of(100, [60])) == set()
    assert removable_versions(vs, ReadPointSet.of(100, [])) == {1}
    # the floor itself is a read point: floor 50 lies in [1, 100)
    assert removable_versions(vs, ReadPointSet.of(50, [])) == set()


def test_planner_explicit_rules_scenarios_5_6_7():
    vs = [100, 20, 10, 5, 1]
    assert explicit_drop_candidates(vs, 15, 3) == {1, 5}
    assert 10 not in explicit_drop_candidates(vs, 10, None)
    assert 10 in explicit_drop_candidates(vs, 11, None)
    assert explicit_drop_candidates(vs, None, 0) == set(vs)
    assert explicit_drop_candidates(vs, None, None) == set(vs)


def test_planner_bottom_tombstones_go():
    # value@1, tombstone@2 with the floor above both: v1 unneeded, then the tombstone has
    # nothing beneath it and reads exactly like "absent".
    assert removable_versions([(2, True), (1, False)], ReadPointSet.of(3, [])) == {1, 2}
    # a retained reader at 1 keeps v1, so the tombstone above it must stay too
    assert removable_versions([(2, True), (1, False)], ReadPointSet.of(3, [1])) == set()
    # a tombstone that hides an older value needed by nobody else but the floor stays
    assert removable_versions([(5, False), (2, True), (1, False)], ReadPointSet.of(3, [])) == {1, 2}
    # v1 is unneeded at floor 2, which leaves the tombstone at the bottom; but it is at the
    # floor, the retained history still records the delete (test_tombstones.py)
    assert removable_versions([(5, False), (2, True), (1, False)], ReadPointSet.of(2, [])) == {1}
    assert removable_versions([(5, False), (2, True), (1, False)], ReadPointSet.of(2, []), {1, 2}) == {1, 2}
    # but a reader at 1 keeps v1 and so the tombstone that hides it from readers at 2..4
    assert removable_versions([(5, False), (2, True), (1, False)], ReadPointSet.of(2, [1])) == set()


# -- explicit drops through the store (scenarios 5-12) ---------------------------------


@pytest.fixture
def latest_only():
    s = engine.open(None, retention=Retention(history_versions=1))
    yield s
    s.close()


def _five_versions(store, pin_at=None):
    # versions 1, 5, 10, 20, 100 of one key: fill the gaps with another key
    for v in range(1, 101):
        commit(store, b"k" if v in (1, 5, 10, 20, 100) else b"filler", b"%d" % v)
        if v == pin_at:
            store.pin(v, "pin-%d" % v)
    assert versions_of(store) == [100, 20, 10, 5, 1]


def test_scenario_5_drop_up_to_and_keep(latest_only):
    _five_versions(latest_only)
    with latest_only.begin() as tx:
        tx.drop(T, b"k", up_to_version=15, keep_last_versions=3)
    assert versions_of(latest_only) == [100, 20, 10]


def test_scenario_6_up_to_is_exclusive(latest_only):
    _five_versions(latest_only)
    with latest_only.begin() as tx:
        tx.drop(T, b"k", up_to_version=10)
    assert versions_of(latest_only) == [100, 20, 10]
    with latest_only.begin() as tx:
        tx.drop(T, b"k", up_to_version=11)
    assert versions_of(latest_only) == [100, 20]


def test_scenario_7_and_9_keep_zero_after_remove_then_set_again(latest_only):
    _five_versions(latest_only)
    commit(latest_only, b"k", None)
    with latest_only.begin() as tx:
        tx.drop(T, b"k", keep_last_versions=0)
    assert versions_of(latest_only) == []
    assert latest_only.get(T, b"k") is None
    v = commit(latest_only, b"k", b"again")
    assert latest_only.history(T, b"k") == [(v, b"again")]


def test_live_newest_version_survives_keep_zero(latest_only):
    _five_versions(latest_only)
    with latest_only.begin() as tx:
        tx.drop(T, b"k", keep_last_versions=0)
    assert versions_of(latest_only) == [100]
    assert latest_only.get(T, b"k") == b"100"


def test_scenario_8_drop_after_remove_clears_tombstone(latest_only):
    commit(latest_only, b"k", b"1")
    commit(latest_only, b"k", None)
    with latest_only.begin() as tx:
        tx.drop(T, b"k")
    assert latest_only.history(T, b"k") == []


def test_scenario_11_sizes(latest_only):
    commit(latest_only, b"a", b"x")
    commit(latest_only, b"b", b"y")
    keys = latest_only.stats()["tiers"]["hot"]["keys"]
    assert keys == 2
    commit(latest_only, b"a", None)
    assert latest_only.stats()["tiers"]["hot"]["keys"] == 2  # the tombstone still counts
    with latest_only.begin() as tx:
        tx.drop(T, b"a")
    assert latest_only.stats()["tiers"]["hot"]["keys"] == 1


def test_scenario_12_pin_keeps_needed_version(latest_only):
    _five_versions(latest_only, pin_at=7)
    with latest_only.begin() as tx:
        tx.drop(T, b"k", up_to_version=15, keep_last_versions=3)
    assert versions_of(latest_only) == [100, 20, 10, 5]  # v5 is what a read at 7 sees
    assert latest_only.get(T, b"k", version=7) == b"5"


def test_force_ignores_read_points(latest_only):
    _five_versions(latest_only, pin_at=7)
    with latest_only.begin() as tx:
        tx.drop(T, b"k", up_to_version=15, force=True)
    assert versions_of(latest_only) == [100, 20]  # v5 went although the pin at 7 needed it


def test_drop_respects_open_snapshot():
    s = engine.open(None, retention=Retention(history_versions=1))
    commit(s, b"k", b"old")
    snap = s.snapshot()
    commit(s, b"k", b"new")
    with s.begin() as tx:
        tx.drop(T, b"k", keep_last_versions=1)
    assert snap.get(T, b"k") == b"old"
    snap.close()
    with s.begin() as tx:
        tx.drop(T, b"k", keep_last_versions=1)
    assert s.history(T, b"k") == [(2, b"new")]


def test_drop_arguments_validated():
    s = engine.open(None)
    commit(s)
    with s.begin() as tx:
        with pytest.raises(ValueError):
            tx.drop(T, b"k", up_to_version=-1)
        with pytest.raises(ValueError):
            tx.drop(T, b"k", keep_last_versions=1.5)
        with pytest.raises(TypeError):
            tx.drop("multi", b"k")
    assert s.history(T, b"k") == [(1, b"v")]


# -- retention floor ---------------------------------------------------------------------


def test_history_versions_floor_and_gc():
    s = engine.open(None, retention=Retention(history_versions=10))
    for i in range(1, 101):
        commit(s, b"k", b"%d" % i)
    assert s.history_floor() == 91
    result = s.gc()
    assert result["removed_versions"] == 90
    assert versions_of(s) == list(range(100, 90, -1))
    assert s.get(T, b"k", version=91) == b"91"
    with pytest.raises(HistoryUnavailable, match="floor 91"):
        s.get(T, b"k", version=90)
    with pytest.raises(HistoryUnavailable):
        list(s.range(T, version=50))
    with pytest.raises(HistoryUnavailable):
        s.snapshot(version=3)
    with pytest.raises(HistoryUnavailable):
        s.pin(3, "too-late")


def test_gc_hazard_reader_above_floor_keeps_older_version():
    s = engine.open(None, retention=Retention(history_versions=50))
    commit(s, b"k", b"one")            # v1
    for i in range(2, 100):
        commit(s, b"other", b"%d" % i)
    commit(s, b"k", b"hundred")        # v100
    s.gc()
    # floor is 51; a read at 60 needs v1 (1 <= 60 < 100)
    assert s.get(T, b"k", version=60) == b"one"
    assert versions_of(s) == [100, 1]


def test_pins_survive_gc_and_go_after_unpin():
    s = engine.open(None, retention=Retention(history_versions=1))
    for i in range(1, 21):
        commit(s, b"k", b"%d" % i)
        if i == 5:
            s.pin(5, "checkpoint")
    s.gc()
    assert versions_of(s) == [20, 5]
    assert s.get(T, b"k", version=5) == b"5"
    with pytest.raises(HistoryUnavailable):
        s.get(T, b"k", version=6)
    assert s.unpin("checkpoint") is True
    assert s.unpin("checkpoint") is False
    commit(s, b"k", b"21")
    s.gc()
    assert versions_of(s) == [21]


def test_open_snapshot_is_retained_until_closed():
    s = engine.open(None, retention=Retention(history_versions=1))
    commit(s, b"k", b"1")
    with s.snapshot() as snap:
        for i in range(2, 10):
            commit(s, b"k", b"%d" % i)
        s.gc()
        assert snap.get(T, b"k") == b"1"
        assert s.get(T, b"k", version=1) == b"1"
        assert list(snap.range(T)) == [(b"k", b"1")]
    s.gc()
    assert versions_of(s) == [9]


def test_history_seconds_uses_time_index(monkeypatch):
    import engine.store as store_mod

    clock = [1_000_000.0]
    monkeypatch.setattr(store_mod.time, "time", lambda: clock[0])
    monkeypatch.setattr("engine.drop_worker.retention.time.time", lambda: clock[0])
    s = engine.open(None, retention=Retention(history_seconds=60))
    for i in range(1, 11):
        clock[0] += 10
        commit(s, b"k", b"%d" % i)
    # now = 1_000_100; the version current 60 s ago (at 1_000_040) is 4
    assert s.version_at(1_000_040.0) == 4
    assert s.version_at(1_000_040.5) == 4
    assert s.version_at(999_000.0) == 0
    assert s.history_floor() == 4
    assert s.commit_time(4) == pytest.approx(1_000_040.0)
    s.gc()
    assert versions_of(s) == list(range(10, 3, -1))
    with pytest.raises(HistoryUnavailable):
        s.get(T, b"k", version=3)


def test_table_policy_keep_last_one_is_eager():
    s = engine.open(None)
    op = EntryKind.operator(3)
    s.set_table_policy(op, keep_last_versions=1)
    for i in range(5):
        commit(s, b"state", b"%d" % i, table=op)
        commit(s, b"row", b"%d" % i, table=T)
    assert len(s.history(op, b"state")) == 1
    assert len(s.history(T, b"row")) == 5  # other tables keep everything
    with pytest.raises(HistoryUnavailable, match="keeps only its latest"):
        s.get(op, b"state", version=1)
    assert s.table_policies() == {"operator:3": 1}
    s.set_table_policy(op, keep_last_versions=None)
    assert s.table_policies() == {}


def test_table_policy_persists(tmp_path):
    s = engine.open(tmp_path / "db", layout="memory")
    s.set_table_policy(EntryKind.operator(1), keep_last_versions=2)
    s.close()
    s = engine.open(tmp_path / "db")
    assert s.table_policies() == {"operator:1": 2}
    s.close()


def test_gc_revisits_keys_when_the_floor_passes_them():
    s = engine.open(None, retention=Retention(history_versions=10))
    for i in range(1, 6):
        commit(s, b"k", b"%d" % i)
    s.gc()
    assert versions_of(s) == [5, 4, 3, 2, 1]  # all still above the floor
    for i in range(6, 40):
        commit(s, b"other", b"%d" % i)  # k itself is never written again
    s.gc()
    assert versions_of(s) == [5]
