"""Isolation anomalies (SEMANTICS section 9, scenarios 29, 30 and 33).

Under the default ``isolation="serializable"`` every classic anomaly must end with the
second committer failing with :class:`ConflictError`; under ``"snapshot"`` write skew is
allowed. Threaded runs check that optimistic retries keep invariants (money is conserved,
a counter equals the number of successful increments).
"""

from __future__ import annotations

import random
import sys
import threading
import time

import pytest

import engine
from engine import Bound, EntryKind
from engine.errors import ConflictError, TransactionTooOld

T = EntryKind.MULTI
DOCTORS = EntryKind.source(1)
DOTS = EntryKind.source(2)
ACCOUNTS = EntryKind.source(3)
MYTAB = EntryKind.source(4)


def num(b: bytes | None) -> int:
    return 0 if b is None else int(b)


def enc(n: int) -> bytes:
    return b"%d" % n


@pytest.fixture(params=["memory", "durable"])
def store(request, tmp_path):
    s = engine.open(None) if request.param == "memory" else engine.open(tmp_path / "db", layout="memory")
    yield s
    s.close()


@pytest.fixture
def fast_switching():
    """Make CPython switch threads often, so concurrent transactions really interleave."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def load(store, table, rows):
    with store.begin() as tx:
        for k, v in rows.items():
            tx.set(table, k, v)


def table_state(store, table):
    return dict(store.range(table))


# -- lost update ---------------------------------------------------------------------------


@pytest.mark.parametrize("isolation", ["serializable", "snapshot"])
def test_lost_update(store, isolation):
    load(store, T, {b"counter": enc(10)})
    t1 = store.begin(isolation)
    t2 = store.begin(isolation)
    t1.set(T, b"counter", enc(num(t1.get(T, b"counter")) + 1))
    t2.set(T, b"counter", enc(num(t2.get(T, b"counter")) + 5))
    v = t1.commit()
    with pytest.raises(ConflictError) as ei:
        t2.commit()
    assert ei.value.key == b"counter" and ei.value.table == T
    assert store.version == v == 2
    assert store.get(T, b"counter") == enc(11)
    assert t2.closed


def test_blind_writes_conflict_write_write(store):
    """Two transactions that write the same key without reading it still conflict."""
    t1, t2 = store.begin(), store.begin()
    t1.set(T, b"k", b"1")
    t2.set(T, b"k", b"2")
    t1.commit()
    with pytest.raises(ConflictError):
        t2.commit()
    assert store.get(T, b"k") == b"1"


# -- write skew --------------------------------------------------------------------------------


def _on_call_write_skew(store, isolation):
    """Two doctors on call; each checks that two are on call, then goes off call."""
    load(store, DOCTORS, {b"alice": b"on", b"bob": b"on"})
    t1, t2 = store.begin(isolation), store.begin(isolation)
    for tx, me in ((t1, b"alice"), (t2, b"bob")):
        on_call = [k for k, v in tx.range(DOCTORS) if v == b"on"]
        assert len(on_call) == 2
        tx.set(DOCTORS, me, b"off")
    t1.commit()
    return t2


def test_write_skew_fails_under_serializable(store):
    t2 = _on_call_write_skew(store, "serializable")
    with pytest.raises(ConflictError):
        t2.commit()
    assert table_state(store, DOCTORS) == {b"alice": b"off", b"bob": b"on"}


def test_write_skew_with_point_reads_fails_under_serializable(store):
    load(store, T, {b"x": enc(50), b"y": enc(50)})  # constraint: x + y >= 0
    t1, t2 = store.begin(), store.begin()
    assert num(t1.get(T, b"x")) + num(t1.get(T, b"y")) >= 100
    t1.set(T, b"x", enc(num(t1.get(T, b"x")) - 100))
    assert num(t2.get(T, b"x")) + num(t2.get(T, b"y")) >= 100
    t2.set(T, b"y", enc(num(t2.get(T, b"y")) - 100))
    t1.commit()
    with pytest.raises(ConflictError):
        t2.commit()
    assert num(store.get(T, b"x")) + num(store.get(T, b"y")) >= 0


def test_write_skew_commits_under_snapshot_isolation(store):
    t2 = _on_call_write_skew(store, "snapshot")
    t2.commit()  # snapshot isolation checks write-write conflicts only
    assert table_state(store, DOCTORS) == {b"alice": b"off", b"bob": b"off"}  # the anomaly


# -- the read-only anomaly (Fekete, O'Neil, O'Neil 2004) -----------------------------------


def test_read_only_anomaly(store):
    """Checking X, savings Y. T2 withdraws 10 from X, charging 1 if X + Y would go negative;
    T3 deposits 20 into Y; read-only T1 reports X, Y after T3 and before T2 commits.

    Every serial order needs T2 < T3 (T2 did not see the deposit), T3 < T1 (T1 saw it) and
    T1 < T2 (T1 did not see the withdrawal): a cycle, so T2 must not commit.
    """
    load(store, ACCOUNTS, {b"X": enc(0), b"Y": enc(0)})
    t2 = store.begin()
    x, y = num(t2.get(ACCOUNTS, b"X")), num(t2.get(ACCOUNTS, b"Y"))
    t2.set(ACCOUNTS, b"X", enc(x - 10 - (1 if x + y - 10 < 0 else 0)))

    t3 = store.begin()
    t3.set(ACCOUNTS, b"Y", enc(num(t3.get(ACCOUNTS, b"Y")) + 20))
    t3.commit()

    t1 = store.begin()
    report = (num(t1.get(ACCOUNTS, b"X")), num(t1.get(ACCOUNTS, b"Y")))
    t1.commit()
    assert report == (0, 20)

    with pytest.raises(ConflictError):
        t2.commit()
    # Had T2 committed, X would be -11 although the report promised no overdraft fee.
    assert table_state(store, ACCOUNTS) == {b"X": enc(0), b"Y": enc(20)}


# -- phantoms ----------------------------------------------------------------------------------


@pytest.mark.parametrize("change", ["insert", "delete", "update"])
def test_phantom_range_read_then_concurrent_change(store, change):
    load(store, T, {b"order:1": b"10", b"order:2": b"20", b"other": b"x"})
    t1 = store.begin()
    total = sum(num(v) for _, v in t1.range(T, prefix=b"order:"))
    assert total == 30
    t2 = store.begin()
    if change == "insert":
        t2.set(T, b"order:15", b"5")
    elif change == "delete":
        t2.remove(T, b"order:2")
    else:
        t2.set(T, b"order:1", b"11")
    t2.commit()
    t1.set(T, b"total", enc(total))  # writes a key nobody else touched
    with pytest.raises(ConflictError):
        t1.commit()
    assert store.get(T, b"total") is None


def test_phantom_in_reverse_and_paged_scan(store):
    load(store, T, {b"a%02d" % i: b"1" for i in range(0, 40, 2)})
    t1 = store.begin()
    seen = [k for k, _ in t1.range(T, b"a10", b"a30", reverse=True)]
    assert seen[0] == b"a28" and seen[-1] == b"a10"
    t2 = store.begin()
    t2.set(T, b"a29", b"new")  # inside [a10, a30)
    t2.commit()
    t1.set(T, b"count", enc(len(seen)))
    with pytest.raises(ConflictError):
        t1.commit()


@pytest.mark.parametrize("key,conflict", [
    (b"b", True), (b"c", True), (b"cz", True), (b"d", False), (b"a", False), (b"dd", False)])
def test_range_conflicts_respect_bounds(store, key, conflict):
    """A scan of [b, d) conflicts with writes inside it and only those."""
    load(store, T, {b"b": b"1"})
    t1 = store.begin()
    list(t1.range(T, b"b", b"d"))
    t2 = store.begin()
    t2.set(T, key, b"w")
    t2.commit()
    t1.set(T, b"out", b"1")
    if conflict:
        with pytest.raises(ConflictError):
            t1.commit()
    else:
        t1.commit()
        assert store.get(T, b"out") == b"1"


def test_inclusive_and_exclusive_bounds_in_conflicts(store):
    t1 = store.begin()
    list(t1.range(T, Bound.excluded(b"b"), Bound.included(b"d")))
    t2 = store.begin()
    t2.set(T, b"b", b"x")  # excluded start: no conflict
    t2.commit()
    t1.set(T, b"z", b"1")
    t1.commit()
    t3 = store.begin()
    list(t3.range(T, Bound.excluded(b"b"), Bound.included(b"d")))
    t4 = store.begin()
    t4.set(T, b"d", b"x")  # included end: conflict
    t4.commit()
    t3.set(T, b"z", b"2")
    with pytest.raises(ConflictError):
        t3.commit()


def test_no_false_conflicts(store):
    load(store, T, {b"a": b"1", b"b": b"1"})
    load(store, DOTS, {b"a": b"1"})
    t1, t2 = store.begin(), store.begin()
    t1.get(T, b"a")
    list(t1.range(T, b"a", b"b"))           # [a, b) does not cover b
    t1.set(T, b"a", b"2")
    t2.get(T, b"b")
    list(t2.range(DOTS))                    # another table
    t2.set(T, b"b", b"2")
    t2.set(DOTS, b"zz", b"2")               # not in anything t1 read
    t1.commit()
    t2.commit()
    assert store.get(T, b"a") == b"2" and store.get(T, b"b") == b"2"
    # a read of a key written before the transaction began is not a conflict
    load(store, T, {b"c": b"1"})
    t3 = store.begin()
    assert t3.get(T, b"c") == b"1"
    t3.set(T, b"c", b"2")
    t3.commit()


def test_phantoms_are_allowed_under_snapshot_isolation(store):
    load(store, T, {b"order:1": b"10"})
    t1 = store.begin("snapshot")
    total = sum(num(v) for _, v in t1.range(T, prefix=b"order:"))
    t2 = store.begin("snapshot")
    t2.set(T, b"order:2", b"5")
    t2.commit()
    t1.set(T, b"total", enc(total))
    t1.commit()
    assert store.get(T, b"total") == b"10"


def test_many_ranges_escalate_to_read_everything(store):
    t1 = store.begin()
    for i in range(70):  # beyond the tracked-range cap
        list(t1.range(T, b"r%03d" % i, b"r%03d~" % i))
    t2 = store.begin()
    t2.set(T, b"zzz-unrelated", b"1")
    t2.commit()
    t1.set(T, b"out", b"1")
    with pytest.raises(ConflictError):  # a coarser read set, never a missed conflict
        t1.commit()


# -- PostgreSQL SSI wiki scenarios -------------------------------------------------------------


def test_ssi_black_and_white(store):
    """One transaction turns every white dot black, the other every black dot white."""
    load(store, DOTS, {b"%02d" % i: (b"black" if i % 2 else b"white") for i in range(10)})
    t1, t2 = store.begin(), store.begin()
    for k, v in list(t1.range(DOTS)):
        if v == b"white":
            t1.set(DOTS, k, b"black")
    for k, v in list(t2.range(DOTS)):
        if v == b"black":
            t2.set(DOTS, k, b"white")
    t1.commit()
    with pytest.raises(ConflictError):
        t2.commit()
    assert set(table_state(store, DOTS).values()) == {b"black"}  # a serial outcome


def test_ssi_overdraft_protection(store):
    """Two withdrawals from different accounts of one person, each checking the combined balance."""
    load(store, ACCOUNTS, {b"kevin/checking": enc(500), b"kevin/saving": enc(500)})

    def withdraw(tx, account, amount):
        total = sum(num(v) for _, v in tx.range(ACCOUNTS, prefix=b"kevin/"))
        if total >= amount:
            tx.set(ACCOUNTS, account, enc(num(tx.get(ACCOUNTS, account)) - amount))

    t1, t2 = store.begin(), store.begin()
    withdraw(t1, b"kevin/checking", 900)
    withdraw(t2, b"kevin/saving", 900)
    t1.commit()
    with pytest.raises(ConflictError):
        t2.commit()
    assert sum(num(v) for _, v in store.range(ACCOUNTS, prefix=b"kevin/")) == 100


def test_ssi_primary_colors(store):
    """Three transactions recolor red->yellow, yellow->blue, blue->red: a cycle."""
    colors = [b"red", b"yellow", b"blue"]
    load(store, DOTS, {b"%02d" % i: colors[i % 3] for i in range(12)})
    txs = [store.begin() for _ in range(3)]
    for tx, (frm, to) in zip(txs, [(b"red", b"yellow"), (b"yellow", b"blue"), (b"blue", b"red")]):
        for k, v in list(tx.range(DOTS)):
            if v == frm:
                tx.set(DOTS, k, to)
    txs[0].commit()
    for tx in txs[1:]:
        with pytest.raises(ConflictError):
            tx.commit()
    state = table_state(store, DOTS)
    assert sorted(state.values()) == sorted([b"yellow"] * 8 + [b"blue"] * 4)


def test_ssi_primary_colors_any_commit_order(store):
    """Whatever order they commit in, not all three recolorings may succeed."""
    colors = [b"red", b"yellow", b"blue"]
    moves = [(b"red", b"yellow"), (b"yellow", b"blue"), (b"blue", b"red")]
    import itertools

    for order in itertools.permutations(range(3)):
        base = {b"%s/%02d" % (bytes(order), i): colors[i % 3] for i in range(6)}
        prefix = b"%s/" % bytes(order)
        load(store, DOTS, base)
        txs = [store.begin() for _ in range(3)]
        for tx, (frm, to) in zip(txs, moves):
            for k, v in list(tx.range(DOTS, prefix=prefix)):
                if v == frm:
                    tx.set(DOTS, k, to)
        ok = 0
        for i in order:
            try:
                txs[i].commit()
                ok += 1
            except ConflictError:
                pass
        assert ok == 1, order


def test_ssi_intersecting_data(store):
    """Each transaction sums the rows of one class and inserts the sum into the other class."""
    load(store, MYTAB, {b"1/a": enc(10), b"1/b": enc(20), b"2/a": enc(100), b"2/b": enc(200)})
    t1, t2 = store.begin(), store.begin()
    s1 = sum(num(v) for _, v in t1.range(MYTAB, prefix=b"1/"))
    t1.set(MYTAB, b"2/sum", enc(s1))
    s2 = sum(num(v) for _, v in t2.range(MYTAB, prefix=b"2/"))
    t2.set(MYTAB, b"1/sum", enc(s2))
    t1.commit()
    with pytest.raises(ConflictError):
        t2.commit()
    assert store.get(MYTAB, b"2/sum") == enc(30)
    assert store.get(MYTAB, b"1/sum") is None


def test_ssi_intersecting_data_commits_under_snapshot(store):
    load(store, MYTAB, {b"1/a": enc(10), b"2/a": enc(100)})
    t1, t2 = store.begin("snapshot"), store.begin("snapshot")
    t1.set(MYTAB, b"2/sum", enc(sum(num(v) for _, v in t1.range(MYTAB, prefix=b"1/"))))
    t2.set(MYTAB, b"1/sum", enc(sum(num(v) for _, v in t2.range(MYTAB, prefix=b"2/"))))
    t1.commit()
    t2.commit()
    assert store.get(MYTAB, b"1/sum") == enc(100) and store.get(MYTAB, b"2/sum") == enc(10)


# -- threads -----------------------------------------------------------------------------------


def run_threads(n, fn):
    errors: list[BaseException] = []

    def wrap(i):
        try:
            fn(i)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [], errors[:3]


def test_bank_transfers_keep_the_total(store, fast_switching):
    n_accounts, n_threads, n_transfers = 20, 8, 500
    load(store, ACCOUNTS, {b"acct%02d" % i: enc(1000) for i in range(n_accounts)})
    retries = [0] * n_threads
    done = [0] * n_threads

    def worker(tid):
        rng = random.Random(tid)
        for _ in range(n_transfers):
            a, b = rng.sample(range(n_accounts), 2)
            amount = rng.randint(1, 50)
            while True:
                tx = store.begin()
                try:
                    ka, kb = b"acct%02d" % a, b"acct%02d" % b
                    va, vb = num(tx.get(ACCOUNTS, ka)), num(tx.get(ACCOUNTS, kb))
                    time.sleep(0)  # let other threads commit between our read and write
                    if va >= amount:
                        tx.set(ACCOUNTS, ka, enc(va - amount))
                        tx.set(ACCOUNTS, kb, enc(vb + amount))
                    tx.commit()
                    done[tid] += 1
                    break
                except ConflictError:  # anything else fails the test
                    retries[tid] += 1

    run_threads(n_threads, worker)
    assert sum(done) == n_threads * n_transfers
    balances = table_state(store, ACCOUNTS)
    assert len(balances) == n_accounts
    assert sum(num(v) for v in balances.values()) == n_accounts * 1000
    assert all(num(v) >= 0 for v in balances.values())
    # every version is one committed transfer (or the initial load): no lost or extra commits
    assert store.version <= 1 + sum(done)
    # a snapshot audit at a random past version also balances
    v = random.Random(1).randint(1, store.version)
    assert sum(num(x) for _, x in store.range(ACCOUNTS, version=v)) == n_accounts * 1000


def test_concurrent_increments_of_one_key(store, fast_switching):
    """SEMANTICS scenario 29: 16 threads x N read-increment-write rounds on one key."""
    n_threads, rounds = 16, 500
    load(store, T, {b"counter": enc(0)})
    ok = [0] * n_threads
    failed = [0] * n_threads

    def worker(tid):
        for _ in range(rounds):
            tx = store.begin()
            value = num(tx.get(T, b"counter"))
            time.sleep(0)  # let other threads commit between our read and write
            tx.set(T, b"counter", enc(value + 1))
            try:
                tx.commit()
                ok[tid] += 1
            except ConflictError:
                failed[tid] += 1

    run_threads(n_threads, worker)
    assert sum(ok) + sum(failed) == n_threads * rounds
    assert num(store.get(T, b"counter")) == sum(ok)
    assert store.version == 1 + sum(ok)
    hist = store.history(T, b"counter")
    assert [num(v) for _, v in hist] == list(range(sum(ok), -1, -1))  # no value ever skipped


def test_concurrent_snapshot_isolation_increments_still_serialize_writes(store, fast_switching):
    load(store, T, {b"counter": enc(0)})
    ok = [0] * 8

    def worker(tid):
        for _ in range(200):
            tx = store.begin("snapshot")
            value = num(tx.get(T, b"counter"))
            time.sleep(0)
            tx.set(T, b"counter", enc(value + 1))
            try:
                tx.commit()
                ok[tid] += 1
            except ConflictError:
                pass

    run_threads(8, worker)
    assert num(store.get(T, b"counter")) == sum(ok)


# -- TransactionTooOld ---------------------------------------------------------------------


def test_transaction_too_old(tmp_path):
    s = engine.open(None, conflict_window=5)
    try:
        for i in range(4):
            load(s, T, {b"k%d" % i: b"v"})
        old = s.begin()           # reads at 4
        old.get(T, b"k0")
        old.set(T, b"mine-old", b"1")
        edge = s.begin()          # reads at 5 after the next commit
        edge.rollback()
        load(s, T, {b"k4": b"v"})
        at_floor = s.begin()      # reads at 5
        at_floor.set(T, b"mine-floor", b"1")
        for i in range(5, 10):
            load(s, T, {b"k%d" % i: b"v"})
        assert s.version == 10    # window holds versions 6..10; the floor is 5
        with pytest.raises(TransactionTooOld) as ei:
            old.commit()
        assert isinstance(ei.value, ConflictError)  # retryable like any conflict
        assert "retry" in str(ei.value)
        at_floor.commit()         # saw everything up to 5: still checkable
        assert s.get(T, b"mine-old") is None and s.get(T, b"mine-floor") == b"1"
        # a retry of the old transaction works
        with s.begin() as retry:
            retry.get(T, b"k0")
            retry.set(T, b"mine-old", b"1")
        assert s.get(T, b"mine-old") == b"1"
    finally:
        s.close()


@pytest.mark.parametrize("isolation", ["serializable", "snapshot"])
def test_too_old_applies_to_both_isolation_levels_and_read_only(isolation):
    s = engine.open(None, conflict_window=3)
    try:
        load(s, T, {b"a": b"1"})
        tx = s.begin(isolation)
        ro = s.begin(isolation)
        assert ro.get(T, b"a") == b"1"
        tx.set(T, b"b", b"1")
        for i in range(6):
            load(s, T, {b"x%d" % i: b"1"})
        with pytest.raises(TransactionTooOld):
            tx.commit()
        if isolation == "serializable":
            with pytest.raises(TransactionTooOld):
                ro.commit()  # its reads can no longer be validated
        else:
            assert ro.commit() == 1
    finally:
        s.close()


def test_conflict_window_is_wired_and_default_is_large():
    s = engine.open(None)
    try:
        load(s, T, {b"a": b"1"})
        tx = s.begin()
        tx.get(T, b"a")
        tx.set(T, b"b", b"1")
        for i in range(300):
            load(s, T, {b"x%d" % i: b"1"})
        tx.commit()  # 300 commits are well inside the default window
    finally:
        s.close()
