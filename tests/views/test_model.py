"""Oracle test: random view operations (with injected commit faults) against a model.

A Hypothesis state machine drives a snapshot, a kv and an append-log view (buffered,
with ``compact_every``) plus a write-through kv over one store, and keeps a model of
the buffers and of every committed version. After every step, loads at the latest
version and at a random older version must equal the model, and ``check()`` must pass.
"""

from __future__ import annotations

import copy
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import engine
from engine.views import BackendError, append_log_storage, flush_together, kv_storage, snapshot_storage

from .conftest import FaultyStore

KEYS = st.sampled_from(["a", "b", "ns/c", "ns/d", "é"])
VALUES = st.one_of(st.integers(-3, 3), st.text(max_size=3), st.none(), st.lists(st.integers(0, 2), max_size=2))
PARTS = st.sampled_from(["p", "p/0", "p-q", "q"])


EMPTY = object()  # an empty snapshot slot (None is a legal record)


class ModelTier:
    """Buffer model of one tier: pending data plus the write-trigger counter."""

    def __init__(self, kind: str, every: int | None, write_through: bool) -> None:
        self.kind = kind
        self.every = every
        self.write_through = write_through
        self.count = 0
        self.pending: Any = self.empty()

    def empty(self) -> Any:
        return EMPTY if self.kind == "snap" else {}

    def has_pending(self) -> bool:
        return self.pending is not EMPTY and self.pending != {}

    def accept(self, n: int) -> bool:
        prev, self.count = self.count, self.count + n
        if self.every is not None and prev // self.every != self.count // self.every:
            return True
        return self.write_through


class ViewsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = engine.open(None)
        self.faulty = FaultyStore(self.store)
        s = self.faulty
        self.snap = snapshot_storage(s, "snap", debounce_ms=5, compact_every=4)
        self.kv = kv_storage(s, "kv", debounce_ms=5, compact_every=3)
        self.log = append_log_storage(s, "log", debounce_ms=5, compact_every=5, key_of=lambda e: e[0])
        self.wt = kv_storage(s, "wt")
        self.tiers = {"snap": self.snap, "kv": self.kv, "log": self.log, "wt": self.wt}
        self.model = {
            "snap": ModelTier("snap", 4, False),
            "kv": ModelTier("kv", 3, False),
            "log": ModelTier("log", 5, False),
            "wt": ModelTier("wt", None, True),
        }
        self.committed: dict[str, Any] = {"snap": None, "kv": {}, "log": {}, "wt": {}}
        self.history: dict[int, dict[str, Any]] = {0: copy.deepcopy(self.committed)}

    def teardown(self) -> None:
        self.store.close()

    # -------------------------------------------------------------- model commits

    def _apply(self, names: list[str]) -> None:
        for name in names:
            m = self.model[name]
            if name == "snap":
                if m.pending is not EMPTY:
                    self.committed["snap"] = m.pending
            elif name == "log":
                for part, items in m.pending.items():
                    self.committed["log"].setdefault(part, []).extend(items)
            else:
                self.committed[name].update(m.pending)
            m.pending = m.empty()

    def _commit(self, names: list[str], action: Any) -> None:
        """Run ``action`` (which commits the buffers of ``names``) and mirror it."""
        attempt = any(self.model[n].has_pending() for n in names)
        fault = attempt and self.faulty.fail_commits > 0
        before = self.store.version
        if fault:
            try:
                action()
            except BackendError:
                pass
            else:
                raise AssertionError("the injected fault did not surface")
            assert self.store.version == before
            return
        result = action()
        if not attempt:
            assert self.store.version == before
            return
        assert self.store.version == before + 1
        if isinstance(result, int):
            assert result == self.store.version
        self._apply(names)
        self.history[self.store.version] = copy.deepcopy(self.committed)

    def _write(self, name: str, n: int, buffer: Any, action: Any) -> None:
        m = self.model[name]
        buffer(m)
        if m.accept(n):
            self._commit([name], action)
        else:
            action()

    # -------------------------------------------------------------- rules

    @rule(value=VALUES)
    def snap_save(self, value: Any) -> None:
        def buf(m: ModelTier) -> None:
            m.pending = value

        self._write("snap", 1, buf, lambda: self.snap.save(value))

    @rule(key=KEYS, value=VALUES)
    def kv_save(self, key: str, value: Any) -> None:
        def buf(m: ModelTier) -> None:
            m.pending[key] = value

        self._write("kv", 1, buf, lambda: self.kv.save(key, value))

    @rule(key=KEYS, value=VALUES)
    def wt_save(self, key: str, value: Any) -> None:
        def buf(m: ModelTier) -> None:
            m.pending[key] = value

        self._write("wt", 1, buf, lambda: self.wt.save(key, value))

    @rule(entries=st.lists(st.tuples(PARTS, st.integers(0, 99)), min_size=1, max_size=4))
    def log_append(self, entries: list[tuple[str, int]]) -> None:
        items = [list(e) for e in entries]

        def buf(m: ModelTier) -> None:
            for e in items:
                m.pending.setdefault(e[0], []).append(e)

        self._write("log", len(items), buf, lambda: self.log.append_entries(items))

    @rule(name=st.sampled_from(["snap", "kv", "log", "wt"]))
    def flush(self, name: str) -> None:
        self._commit([name], self.tiers[name].flush)

    @rule(names=st.lists(st.sampled_from(["snap", "kv", "log", "wt"]), min_size=1, max_size=4, unique=True))
    def together(self, names: list[str]) -> None:
        self._commit(names, lambda: flush_together(*(self.tiers[n] for n in names)))

    @rule(name=st.sampled_from(["snap", "kv", "log"]))
    def rollback(self, name: str) -> None:
        self.tiers[name].rollback()
        self.model[name].pending = self.model[name].empty()

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        before = self.store.version
        if self.faulty.fail_commits > 0:
            try:
                self.kv.delete(key)
            except BackendError:
                assert self.store.version == before
                return
            raise AssertionError("the injected fault did not surface")
        assert self.kv.delete(key) == before + 1
        self.committed["kv"].pop(key, None)
        self.model["kv"].pending.pop(key, None)
        self.history[self.store.version] = copy.deepcopy(self.committed)

    @precondition(lambda self: self.faulty.fail_commits == 0)
    @rule()
    def arm_fault(self) -> None:
        self.faulty.fail_commits = 1

    # -------------------------------------------------------------- invariants

    def _observed(self, version: int) -> dict[str, Any]:
        log_entries = self.log.load_entries(version=version).entries
        log: dict[str, list] = {}
        for e in log_entries:
            log.setdefault(e[0], []).append(e)
        return {
            "snap": self.snap.load(version=version),
            "kv": {k: self.kv.load(k, version=version) for k in self.kv.list("", version=version)},
            "log": log,
            "wt": {k: self.wt.load(k, version=version) for k in self.wt.list("", version=version)},
        }

    @invariant()
    def matches_model(self) -> None:
        v = self.store.version
        assert self._observed(v) == self.history[v]
        old = (v * 7919) % (v + 1)
        assert self._observed(old) == self.history[old]
        for name, tier in self.tiers.items():
            assert tier.has_pending == self.model[name].has_pending(), name
            assert tier.write_count == self.model[name].count, name
            tier.check()
        # the append log's partitions come back in key order
        parts = list(self.history[v]["log"])
        assert self.log.partitions() == sorted(parts)


TestViewsModel = ViewsMachine.TestCase
TestViewsModel.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
