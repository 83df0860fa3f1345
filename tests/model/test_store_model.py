"""Oracle test: the store against a reference model, driven by a Hypothesis state machine.

The model is ``dict[(table, key)] -> list[(version, value or None)]`` (ascending versions; a
``None`` value is a tombstone). Every rule does the same thing to the store and the model
and compares: commits of several writes and removes, rollbacks, point and range reads
(both directions, random bounds, prefixes, paging) at random past versions, history,
snapshots, read-your-writes inside an open transaction, maintenance calls and a
close/reopen of the durable store.

The layout string is the machine's only input. ``LAYOUTS`` lists the layouts exercised;
each gets its own test class (``TestStoreModel_<layout>``). Every store is durable (opened
under a temporary directory) so that reopen can be checked; movement runs only on demand
(``background=False``) so runs are reproducible.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from bisect import bisect_right

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import engine
from engine import Bound, EntryKind, RangeCursor

LAYOUTS = ["memory", "warm", "hot+warm", "hot+warm+cold", "warm+cold"]

MAX_EXAMPLES = int(os.environ.get("TIERDB_MODEL_EXAMPLES", "50"))
STEPS = int(os.environ.get("TIERDB_MODEL_STEPS", "30"))

TABLES = [EntryKind.MULTI, EntryKind.source(3), EntryKind.operator(1)]
KEYS = [b"", b"\x00", b"a", b"a\x00", b"a\xff", b"ab", b"abc", b"b", b"ba", b"bb", b"c", b"\xff", b"\xff\xff"]
PREFIXES = [b"", b"a", b"ab", b"b", b"\xff", b"z"]

tables = st.sampled_from(TABLES)
keys = st.sampled_from(KEYS)
values = st.one_of(st.none(), st.binary(max_size=12))  # None = remove (tombstone)
ops = st.lists(st.tuples(tables, keys, values), min_size=1, max_size=8)
bound = st.one_of(
    st.none(),
    keys,
    st.builds(Bound.included, keys),
    st.builds(Bound.excluded, keys),
)


def _low_ok(b: object, k: bytes) -> bool:
    if b is None:
        return True
    if isinstance(b, Bound):
        return b.admits_low(k)
    return k >= b  # a plain start key is inclusive


def _high_ok(b: object, k: bytes) -> bool:
    if b is None:
        return True
    if isinstance(b, Bound):
        return b.admits_high(k)
    return k < b  # a plain end key is exclusive


class Model:
    """The reference: every version of every key, plus the committed version counter."""

    def __init__(self) -> None:
        self.data: dict[tuple[EntryKind, bytes], list[tuple[int, bytes | None]]] = {}
        self.version = 0

    def commit(self, writes: dict[tuple[EntryKind, bytes], bytes | None]) -> int:
        self.version += 1
        for tk, value in writes.items():
            self.data.setdefault(tk, []).append((self.version, value))
        return self.version

    def get(self, table: EntryKind, key: bytes, version: int) -> bytes | None:
        chain = self.data.get((table, key), [])
        i = bisect_right([v for v, _ in chain], version)
        return chain[i - 1][1] if i else None

    def history(self, table: EntryKind, key: bytes) -> list[tuple[int, bytes | None]]:
        return list(reversed(self.data.get((table, key), [])))

    def range(self, table: EntryKind, version: int, start: object, end: object, prefix: bytes | None,
              reverse: bool, overlay: dict[tuple[EntryKind, bytes], bytes | None] | None = None
              ) -> list[tuple[bytes, bytes]]:
        ks = {k for (t, k) in self.data if t == table}
        if overlay:
            ks |= {k for (t, k) in overlay if t == table}
        out = []
        for k in sorted(ks, reverse=reverse):
            if not (_low_ok(start, k) and _high_ok(end, k)):
                continue
            if prefix is not None and not k.startswith(prefix):
                continue
            if overlay is not None and (table, k) in overlay:
                v = overlay[(table, k)]
            else:
                v = self.get(table, k, version)
            if v is not None:
                out.append((k, v))
        return out


class StoreMachine(RuleBasedStateMachine):
    """Compares a store of layout :attr:`LAYOUT` with :class:`Model`. Subclassed per layout."""

    LAYOUT = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="tierdb-model-")
        self.path = os.path.join(self.dir, "db")
        self.model = Model()
        self.store = self._open()
        self.tx = None  # an open transaction carried across steps
        self.tx_writes: dict[tuple[EntryKind, bytes], bytes | None] = {}
        self.tx_base = 0
        self.gc_ran = False

    def _open(self) -> engine.Store:
        return engine.open(self.path, layout=engine.Layout.parse(self.LAYOUT, background=False))

    def teardown(self) -> None:
        try:
            if self.tx is not None and not self.tx.closed:
                self.tx.rollback()
            self.store.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------

    def _version(self, data: st.DataObject) -> int:
        return data.draw(st.integers(0, self.model.version), label="version")

    # -- writes ------------------------------------------------------------------------

    @precondition(lambda self: self.tx is None)
    @rule(batch=ops)
    def commit(self, batch):
        writes: dict[tuple[EntryKind, bytes], bytes | None] = {}
        with self.store.begin() as tx:
            for table, key, value in batch:
                if value is None:
                    tx.remove(table, key)
                else:
                    tx.set(table, key, value)
                writes[(table, key)] = value
        expected = self.model.commit(writes)
        assert tx.version == expected

    @precondition(lambda self: self.tx is None)
    @rule(batch=ops, probe=st.tuples(tables, keys))
    def rollback(self, batch, probe):
        tx = self.store.begin()
        pending = {}
        for table, key, value in batch:
            if value is None:
                tx.remove(table, key)
            else:
                tx.set(table, key, value)
            pending[(table, key)] = value
        t, k = probe
        want = pending[(t, k)] if (t, k) in pending else self.model.get(t, k, self.model.version)
        assert tx.get(t, k) == want
        tx.rollback()
        assert self.store.version == self.model.version

    # -- a transaction kept open across steps (read-your-writes, fixed read version) ------

    @precondition(lambda self: self.tx is None)
    @rule()
    def begin(self):
        self.tx = self.store.begin()
        self.tx_writes = {}
        self.tx_base = self.model.version

    @precondition(lambda self: self.tx is not None)
    @rule(batch=ops)
    def tx_write(self, batch):
        for table, key, value in batch:
            if value is None:
                self.tx.remove(table, key)
            else:
                self.tx.set(table, key, value)
            self.tx_writes[(table, key)] = value

    @precondition(lambda self: self.tx is not None)
    @rule(table=tables, key=keys)
    def tx_get(self, table, key):
        tk = (table, key)
        want = self.tx_writes[tk] if tk in self.tx_writes else self.model.get(table, key, self.tx_base)
        assert self.tx.get(table, key) == want

    @precondition(lambda self: self.tx is not None)
    @rule(table=tables, start=bound, end=bound, prefix=st.one_of(st.none(), st.sampled_from(PREFIXES)),
          reverse=st.booleans())
    def tx_range(self, table, start, end, prefix, reverse):
        want = self.model.range(table, self.tx_base, start, end, prefix, reverse, self.tx_writes)
        assert list(self.tx.range(table, start, end, prefix=prefix, reverse=reverse)) == want

    @precondition(lambda self: self.tx is not None)
    @rule(commit=st.booleans())
    def tx_finish(self, commit):
        tx, self.tx = self.tx, None
        if not commit:
            tx.rollback()
            return
        # This machine's other commits all happen while no transaction is open, so there
        # is never a concurrent writer: the commit must succeed.
        v = tx.commit()
        if self.tx_writes:
            assert v == self.model.commit(self.tx_writes)
        else:
            assert v == self.tx_base

    # -- reads -------------------------------------------------------------------------

    @rule(table=tables, key=keys, data=st.data())
    def get(self, table, key, data):
        v = self._version(data)
        assert self.store.get(table, key, version=v) == self.model.get(table, key, v)
        assert self.store.get(table, key) == self.model.get(table, key, self.model.version)

    @rule(table=tables, start=bound, end=bound, prefix=st.one_of(st.none(), st.sampled_from(PREFIXES)),
          reverse=st.booleans(), batch_size=st.integers(1, 5), latest=st.booleans(), data=st.data())
    def scan(self, table, start, end, prefix, reverse, batch_size, latest, data):
        v = self.model.version if latest else self._version(data)
        got = list(self.store.range(table, start, end, version=None if latest else v, reverse=reverse,
                                    prefix=prefix, batch_size=batch_size))
        assert got == self.model.range(table, v, start, end, prefix, reverse)

    @rule(table=tables, start=bound, end=bound, reverse=st.booleans(), batch_size=st.integers(1, 4),
          data=st.data())
    def pages(self, table, start, end, reverse, batch_size, data):
        v = self._version(data)
        cursor = RangeCursor()
        got = []
        for _ in range(len(KEYS) + 2):
            batch = self.store.range_next(table, cursor, start, end, v, batch_size, reverse=reverse)
            assert len(batch.entries) <= batch_size
            got.extend((e.key, e.value) for e in batch.entries)
            if not batch.has_more:
                break
        assert cursor.exhausted
        assert got == self.model.range(table, v, start, end, None, reverse)

    @rule(table=tables, key=keys)
    def history(self, table, key):
        got = self.store.history(table, key)
        want = self.model.history(table, key)
        if not self.gc_ran:
            assert got == want
            return
        # GC may physically remove a tombstone that no read can tell from "absent" (one with
        # nothing older beneath it, DESIGN.md invariant 4); everything else must remain.
        it = iter(want)
        for entry in got:
            for w in it:
                if w == entry:
                    break
                assert w[1] is None, f"GC removed a value: {w} (store history {got})"
            else:
                raise AssertionError(f"store history {got} is not a subsequence of {want}")
        assert all(w[1] is None for w in it), f"GC removed a value (store history {got}, model {want})"

    @rule(table=tables, data=st.data())
    def snapshot(self, table, data):
        v = self._version(data)
        with self.store.snapshot(v) as snap:
            assert snap.version == v
            assert list(snap.range(table)) == self.model.range(table, v, None, None, None, False)
            k = data.draw(keys, label="snapshot key")
            assert snap.get(table, k) == self.model.get(table, k, v)

    # -- lifecycle ---------------------------------------------------------------------

    @precondition(lambda self: self.tx is None)
    @rule()
    def reopen(self):
        self.store.close()
        self.store = self._open()
        assert self.store.version == self.model.version
        assert self.store.recovery.get("torn_tail") is None

    @precondition(lambda self: self.tx is None)
    @rule(which=st.sampled_from(["flush", "demote", "demote_age", "gc", "compact"]))
    def maintenance(self, which):
        if which == "flush":
            self.store.flush()
        elif which == "demote":
            self.store.demote()
        elif which == "demote_age":
            self.store.demote(policy="age")
        elif which == "gc":
            self.store.gc()  # the default retention keeps all history: no read may change
            self.gc_ran = True
        else:
            self.store.compact()

    @invariant()
    def consistent(self):
        assert self.store.version == self.model.version
        self.store.check()


def _make_test_case(layout: str):
    cls = type(f"StoreMachine_{layout}", (StoreMachine,), {"LAYOUT": layout})
    case = cls.TestCase
    case.settings = settings(max_examples=MAX_EXAMPLES, stateful_step_count=STEPS, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    return case


for _layout in LAYOUTS:
    globals()["TestStoreModel_" + _layout.replace("+", "_")] = _make_test_case(_layout)
del _layout
