"""Oracle model test for retention + GC across layouts (Hypothesis state machine).

Random retention, pins, open snapshots, GC passes, flushes, demotions and reopens are
interleaved with commits. Every read at a retained read point must equal the reference model
(which never forgets), and every read below the floor that nothing retains must raise
HistoryUnavailable.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import engine
from engine import EntryKind, HistoryUnavailable, Retention

T = EntryKind.source(4)
KEYS = [b"a", b"b", b"c", b"d"]


class GCMachine(RuleBasedStateMachine):
    layout = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="tierdb-gcmodel-"))
        self.model: dict[bytes, list[tuple[int, bytes | None]]] = {k: [] for k in KEYS}
        self.pins: dict[str, int] = {}
        self.snaps: list = []
        self.store = None

    def _open(self):
        lay = engine.Layout.parse(self.layout, background=False)
        return engine.open(self.dir / "db", layout=lay, retention=self.retention, gc_interval=0)

    @initialize(n=st.sampled_from([1, 2, 3, 8]))
    def start(self, n):
        self.retention = Retention(history_versions=n)
        self.store = self._open()

    def teardown(self) -> None:
        for s in self.snaps:
            s.close()
        if self.store is not None:
            self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------------------

    def floor(self) -> int:
        return max(0, self.store.version - self.retention.history_versions + 1)

    def retained(self, v: int) -> bool:
        return v >= self.floor() or v in self.pins.values() or any(s.version == v for s in self.snaps)

    def expect(self, key: bytes, v: int) -> bytes | None:
        vis = [(ver, val) for ver, val in self.model[key] if ver <= v]
        return vis[-1][1] if vis else None

    # -- rules -------------------------------------------------------------------------------

    @rule(writes=st.lists(st.tuples(st.sampled_from(KEYS), st.one_of(st.none(), st.binary(max_size=3))),
                          min_size=1, max_size=4))
    def commit(self, writes):
        with self.store.begin() as tx:
            final = {}
            for k, v in writes:
                if v is None:
                    tx.remove(T, k)
                else:
                    tx.set(T, k, v)
                final[k] = v
        for k, v in final.items():
            self.model[k].append((tx.version, v))

    @rule(name=st.sampled_from(["p1", "p2", "p3"]))
    def pin_latest(self, name):
        v = self.store.version
        self.store.pin(v, name)
        self.pins[name] = v

    @rule(name=st.sampled_from(["p1", "p2", "p3"]))
    def unpin(self, name):
        assert self.store.unpin(name) == (name in self.pins)
        self.pins.pop(name, None)

    @rule()
    def open_snapshot(self):
        self.snaps.append(self.store.snapshot())

    @precondition(lambda self: self.snaps)
    @rule(i=st.integers(0, 10))
    def close_snapshot(self, i):
        self.snaps.pop(i % len(self.snaps)).close()

    @rule()
    def gc(self):
        self.store.gc()

    @rule()
    def flush(self):
        self.store.flush()

    @rule(policy=st.sampled_from(["history", "age"]))
    def demote(self, policy):
        self.store.demote(policy=policy)

    @precondition(lambda self: self.layout != "memory-only")
    @rule()
    def reopen(self):
        for s in self.snaps:
            s.close()
        self.snaps = []
        self.store.close()
        self.store = self._open()
        assert self.store.pins() == self.pins

    @rule(data=st.data())
    def read(self, data):
        v = data.draw(st.integers(0, self.store.version))
        key = data.draw(st.sampled_from(KEYS))
        if self.retained(v):
            assert self.store.get(T, key, version=v) == self.expect(key, v)
            want = [(k, self.expect(k, v)) for k in KEYS if self.expect(k, v) is not None]
            assert list(self.store.range(T, version=v)) == want
            assert list(self.store.range(T, version=v, reverse=True, batch_size=1)) == want[::-1]
        else:
            with pytest.raises(HistoryUnavailable):
                self.store.get(T, key, version=v)

    @invariant()
    def snapshots_answer_from_the_model(self):
        for s in self.snaps:
            for key in KEYS:
                assert s.get(T, key) == self.expect(key, s.version)

    @invariant()
    def latest_matches(self):
        if self.store is not None:
            for key in KEYS:
                assert self.store.get(T, key) == self.expect(key, self.store.version)


SETTINGS = settings(max_examples=25, stateful_step_count=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _machine_for(layout: str):
    cls = type(f"GCMachine_{layout.replace('+', '_')}", (GCMachine,), {"layout": layout})
    return cls


@pytest.mark.parametrize("layout", ["memory", "warm", "hot+warm", "hot+warm+cold", "warm+cold"])
def test_gc_model(layout):
    machine = _machine_for(layout)
    machine.TestCase.settings = SETTINGS
    machine.TestCase().runTest()


def test_model_check_after_gc_is_clean(tmp_path):
    """check() stays clean after GC removed versions across all three tiers."""
    s = engine.open(tmp_path / "db", layout=engine.Layout.parse("hot+warm+cold", background=False),
                    retention=Retention(history_versions=2))
    for i in range(30):
        with s.begin() as tx:
            tx.set(T, KEYS[i % 4], b"%d" % i)
            if i % 7 == 0:
                tx.remove(T, KEYS[(i + 1) % 4])
        if i % 5 == 0:
            s.flush()
        if i % 9 == 0:
            s.demote(policy="age")
    s.gc()
    s.check()
    s.close()
