"""Exhaustive bounded model checking of the ``engine/kv/protocol.py`` kernels.

The models import the kernels production runs and enumerate **every** interleaving of a
small configuration (depth-first over all enabled actions, memoised on the full state):

1. *applied*: a writer, a retention floor that removes superseded revisions and delete
   markers (so ``first_seq`` moves), a consumer, ``watch_applied`` flushes with a batch
   max of 2, a store failure, and crashes between any two steps with a restart from the
   persisted cursor (resume window check, resync through the reader). Properties: the
   persisted cursor never goes backwards; the fold never holds a value its key never had;
   every maximal run ends synced (fold == service state). The live floor guard turns an
   overrun live watch into a restart. Mutations (a silent start clamp,
   a degraded resync without a reader, a missing acknowledge barrier) must each produce a
   counterexample.
2. *publish pointer*: three exporters with different cursors race conditional puts of the
   pointer while a pruner deletes payloads from a possibly stale pointer read. Properties:
   the published cursor never goes backwards; the pointer's target is always downloadable.
   Mutations (last-write-wins pointer, age-only prune) must yield counterexamples.
3. *lease*: three acquirers interleave create / entry / CAS-update steps with a ticking
   clock. Property: won lease intervals never overlap; stealing without the expiry check
   is caught.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from engine.kv.protocol import (
    CORRUPT,
    LeaseDecision,
    ResumeMode,
    StoreFailureAction,
    advance_batch_high,
    floor_guard_due,
    flush_due,
    lease_after_create_failed,
    pointer_publish_allowed,
    prune_allowed,
    resume_mode,
    resume_window_ok,
    resync_deletions,
    store_failure_action,
)

# -- a tiny exhaustive explorer -----------------------------------------------------------------


class Violation(AssertionError):
    pass


def explore(init: Any, actions: Callable[[Any], Iterator[tuple[str, Any]]],
            check: Callable[[Any], None], terminal: Callable[[Any], None]) -> int:
    """Visit every reachable state; ``check`` each, ``terminal`` each with no successor."""
    seen: set[Any] = set()
    stack = [init]
    while stack:
        s = stack.pop()
        if s in seen:
            continue
        seen.add(s)
        check(s)
        succ = list(actions(s))
        if not succ:
            terminal(s)
        for _name, t in succ:
            if t not in seen:
                stack.append(t)
    return len(seen)


# -- model 1: watch_applied with crashes, retention and resync -------------------------------

KEYS = ("x", "y")
Event = tuple[int, str, int]   # (revision, key, value or 0 for a delete marker)


@dataclass(frozen=True)
class Applied:
    script: tuple[tuple[str, int], ...]   # (key, value; 0 = delete) writes still to come
    log: tuple[Event, ...]                # retained service log
    head: int                             # last revision written
    first_seq: int                        # lowest retained revision (head + 1 if empty)
    # consumer (in memory; lost on crash)
    pos: int | None                       # next revision to deliver; None = not running
    relist: tuple[Event, ...]             # pending re-list items of a full watch
    pending: tuple[Event, ...]            # received, not flushed
    high: int                             # batch high-water mark (0 = none)
    # the fold (persistent)
    fold: tuple[tuple[str, int], ...]
    cursor: int
    crashes: int
    failures: int                         # store failures left to inject
    evictions: int
    deferred: tuple[str, ...] = ()        # synthetic deletes not yet stored (no-barrier mutation)


@dataclass(frozen=True)
class Variant:
    window_check: bool = True            # mutation: silent start clamp
    reader: bool = True                  # mutation: no reader / degraded resync
    ack_barrier: bool = True             # mutation: start the full watch before the resync


def _state(log: tuple[Event, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for _r, k, v in log:
        out[k] = v
    return {k: v for k, v in out.items() if v}


def _first_seq(log: tuple[Event, ...], head: int) -> int:
    return log[0][0] if log else head + 1


def _restart(s: Applied, v: Variant) -> Applied:
    """Reopen from the persisted cursor (watch_applied's start-up)."""
    mode = resume_mode(s.cursor or None)
    if mode is ResumeMode.RESUME:
        ok = resume_window_ok(s.first_seq, s.cursor) if v.window_check else True
        if ok:
            # the server clamps a start below first_seq silently: model it
            return replace(s, pos=max(s.cursor + 1, s.first_seq), relist=(), pending=(), high=s.cursor)
        fold = dict(s.fold)
        deferred: tuple[str, ...] = ()
        if v.reader:
            deletes = resync_deletions(fold, _state(s.log))
            if v.ack_barrier:
                for k in deletes:               # stored and acknowledged before the watch starts
                    fold.pop(k, None)
            else:
                deferred = tuple(deletes)       # mutation: the watch starts, deletes land later
        relist = tuple(sorted(_last_per_key(s.log), key=lambda e: e[0]))
        return replace(s, fold=tuple(sorted(fold.items())), pos=s.head + 1, relist=relist, pending=(),
                       high=s.cursor, deferred=deferred)
    relist = tuple(sorted(_last_per_key(s.log), key=lambda e: e[0]))
    return replace(s, pos=s.head + 1, relist=relist, pending=(), high=s.cursor)


def _last_per_key(log: tuple[Event, ...]) -> list[Event]:
    last: dict[str, Event] = {}
    for e in log:
        last[e[1]] = e
    return list(last.values())


def applied_actions(s: Applied, v: Variant) -> Iterator[tuple[str, Applied]]:
    if s.pos is None:
        yield "start", _restart(s, v)
        return
    if s.script:
        (k, val), rest = s.script[0], s.script[1:]
        rev = s.head + 1
        log = s.log + ((rev, k, val),)
        yield "write", replace(s, script=rest, log=log, head=rev, first_seq=_first_seq(log, rev))
    if s.log and s.evictions > 0:
        _r0, k0, v0 = s.log[0]
        superseded = any(k == k0 for _r, k, _v in s.log[1:])
        if superseded or v0 == 0:            # retention never loses a live value
            log = s.log[1:]
            yield "evict", replace(s, log=log, first_seq=_first_seq(log, s.head), evictions=s.evictions - 1)
    if s.relist:
        e, rest = s.relist[0], s.relist[1:]
        yield "deliver-relist", replace(s, relist=rest, pending=s.pending + (e,),
                                        high=advance_batch_high(s.high or None, e[0]) or 0)
    else:
        nxt = [e for e in s.log if e[0] >= s.pos]
        frontier = s.pos - 1
        # live floor guard (All scope): a gap, or the periodic check in a quiet period
        gap = (nxt and floor_guard_due(frontier, nxt[0][0])) or (not nxt and s.pos <= s.head)
        if gap and not resume_window_ok(s.first_seq, frontier):
            # WatchError: pending updates are dropped unflushed; restart from the store's cursor
            yield "guard-trip", replace(s, pos=None, relist=(), pending=(), high=0)
        elif nxt:
            e = nxt[0]
            yield "deliver", replace(s, pos=e[0] + 1, pending=s.pending + (e,),
                                     high=advance_batch_high(s.high or None, e[0]) or 0)
        elif s.pos <= s.head:
            yield "skip-gap", replace(s, pos=s.head + 1)
    if s.pending:
        quiet = not s.script and not s.relist and not [e for e in s.log if e[0] >= s.pos]
        if flush_due(raw_count=len(s.pending), parsed_count=len(s.pending), max_batch=2,
                     window_expired=True, shutdown=False, closed=quiet):
            if s.failures > 0:
                assert store_failure_action(1) is StoreFailureAction.REQUEUE
                yield "store-fail", replace(s, failures=s.failures - 1)
            fold = dict(s.fold)
            for _r, k, val in s.pending:
                if val:
                    fold[k] = val
                else:
                    fold.pop(k, None)
            yield "flush", replace(s, fold=tuple(sorted(fold.items())), cursor=max(s.cursor, s.high),
                                   pending=())
    if s.deferred:
        fold = {k: val for k, val in s.fold if k not in s.deferred}
        yield "apply-deletes", replace(s, fold=tuple(sorted(fold.items())), deferred=())
    if s.crashes > 0:
        yield "crash", replace(s, pos=None, relist=(), pending=(), high=0, crashes=s.crashes - 1,
                               deferred=())


def applied_check(s: Applied, values: dict[str, set[int]]) -> None:
    for k, val in s.fold:
        if val not in values[k]:
            raise Violation(f"fold holds {k}={val}, a value the key never had: {s}")


def applied_terminal(s: Applied) -> None:
    if dict(s.fold) != _state(s.log):
        raise Violation(f"run ended unsynced: fold {dict(s.fold)} != service {_state(s.log)}: {s}")


def scripts() -> Iterator[tuple[tuple[str, int], ...]]:
    ops = [("x", 1), ("y", 1), ("x", 0)]
    for n in range(1, 4):
        for combo in itertools.product(ops, repeat=n):
            # values are made unique per write so "a value the key never had" is checkable
            yield tuple((k, (i + 1) if val else 0) for i, (k, val) in enumerate(combo))


def run_applied(v: Variant, *, crashes: int = 2, evictions: int = 3, failures: int = 1) -> int:
    total = 0
    for script in scripts():
        values: dict[str, set[int]] = {k: set() for k in KEYS}
        for k, val in script:
            if val:
                values[k].add(val)
        init = Applied(script=script, log=(), head=0, first_seq=1, pos=None, relist=(), pending=(),
                       high=0, fold=(), cursor=0, crashes=crashes, failures=failures,
                       evictions=evictions)

        def check(s: Applied, values: dict[str, set[int]] = values) -> None:
            applied_check(s, values)

        total += explore(init, lambda s: applied_actions(s, v), check, applied_terminal)
    return total


def test_applied_model_holds_for_production_kernels() -> None:
    states = run_applied(Variant())
    assert states > 5_000          # the exploration is real, not vacuous


def test_applied_model_monotone_cursor() -> None:
    """The persisted cursor never goes backwards along any transition."""
    for script in list(scripts())[:12]:
        init = Applied(script=script, log=(), head=0, first_seq=1, pos=None, relist=(), pending=(),
                       high=0, fold=(), cursor=0, crashes=1, failures=1, evictions=2)
        seen: set[Applied] = set()
        stack = [init]
        while stack:
            s = stack.pop()
            if s in seen:
                continue
            seen.add(s)
            for _n, t in applied_actions(s, Variant()):
                assert t.cursor >= s.cursor
                stack.append(t)


@pytest.mark.parametrize("mutation", [Variant(window_check=False), Variant(reader=False),
                                      Variant(ack_barrier=False)],
                         ids=["silent-clamp", "no-reader", "no-ack-barrier"])
def test_applied_model_mutations_are_caught(mutation: Variant) -> None:
    with pytest.raises(Violation):
        run_applied(mutation)


# -- model 2: publish pointer and prune -------------------------------------------------------


@dataclass(frozen=True)
class Pub:
    pointer: int | None                 # published cursor (None = absent)
    etag: int                           # bumps on every pointer write
    payloads: frozenset[int]            # uploaded payload ranks
    # per exporter: phase 0 upload, 1 read, 2 cas, 3 done; the value/etag it read
    phase: tuple[int, ...]
    read: tuple[tuple[int | None, int], ...]
    pruner: int | None                  # pruner's (possibly stale) pointer read; -1 = not read
    pruned: bool
    history: tuple[int, ...]            # published cursors in order


CURSORS = (1, 2, 3)


def pub_actions(s: Pub, *, lww: bool, age_only: bool) -> Iterator[tuple[str, Pub]]:
    for i, c in enumerate(CURSORS):
        ph = s.phase[i]
        if ph == 0:
            yield f"upload{i}", replace(s, payloads=s.payloads | {c}, phase=_set(s.phase, i, 1))
        elif ph == 1:
            yield f"read{i}", replace(s, read=_set(s.read, i, (s.pointer, s.etag)), phase=_set(s.phase, i, 2))
        elif ph == 2:
            cur, etag = s.read[i]
            if lww:
                yield f"put{i}", replace(s, pointer=c, etag=s.etag + 1, phase=_set(s.phase, i, 3),
                                         history=s.history + (c,))
            elif not pointer_publish_allowed(cur, c):
                yield f"superseded{i}", replace(s, phase=_set(s.phase, i, 3))
            elif etag == s.etag:        # conditional put: atomic, one winner
                yield f"cas{i}", replace(s, pointer=c, etag=s.etag + 1, phase=_set(s.phase, i, 3),
                                         history=s.history + (c,))
            else:                       # lost the race: read again
                yield f"retry{i}", replace(s, phase=_set(s.phase, i, 1))
    if s.pruner is None:
        yield "prune-read", replace(s, pruner=-1 if s.pointer is None else s.pointer)
    elif not s.pruned:
        ptr = None if s.pruner == -1 else s.pruner
        keep = set()
        for p in s.payloads:
            if age_only:
                allowed = p != ptr      # mutation: anything but the (stale) target, by age alone
            else:
                allowed = prune_allowed(name_rank=p, is_target=p == ptr, pointer_rank=ptr,
                                        age_seconds=1.0, ttl_seconds=0.0)
            if not allowed:
                keep.add(p)
        yield "prune", replace(s, payloads=frozenset(keep), pruned=True)


def _set(t: tuple[Any, ...], i: int, v: Any) -> tuple[Any, ...]:
    return t[:i] + (v,) + t[i + 1:]


def pub_check(s: Pub) -> None:
    if list(s.history) != sorted(s.history):
        raise Violation(f"published cursor went backwards: {s.history}")
    if s.pointer is not None and s.pointer not in s.payloads:
        raise Violation(f"pointer target {s.pointer} cannot be downloaded: {s}")


def run_pub(*, lww: bool = False, age_only: bool = False) -> int:
    init = Pub(pointer=None, etag=0, payloads=frozenset(), phase=(0, 0, 0), read=((None, 0),) * 3,
               pruner=None, pruned=False, history=())
    return explore(init, lambda s: pub_actions(s, lww=lww, age_only=age_only), pub_check, lambda s: None)


def test_pointer_model_holds() -> None:
    assert run_pub() > 500
    assert pointer_publish_allowed(CORRUPT, 1) and pointer_publish_allowed(3, 3)
    assert not pointer_publish_allowed(3, 2)


@pytest.mark.parametrize("kw", [{"lww": True}, {"age_only": True}], ids=["last-write-wins", "age-only-prune"])
def test_pointer_model_mutations_are_caught(kw: dict[str, bool]) -> None:
    with pytest.raises(Violation):
        run_pub(**kw)


# -- model 3: the lease -------------------------------------------------------------------------


@dataclass(frozen=True)
class Lease:
    now: int
    value: tuple[str, int] | None       # (holder, expires) or None (tombstone/absent)
    exists: bool                         # the key has a Put (a tombstone counts)
    version: int
    # per acquirer: phase 0 create, 1 read entry, 2 decide+cas, 3 done; observation
    phase: tuple[int, ...]
    seen: tuple[tuple[bool, int | None, int], ...]
    wins: tuple[tuple[str, int, int], ...]   # (holder, from, until)


TTL = 2
HOLDERS = ("a", "b", "c")


def lease_actions(s: Lease) -> Iterator[tuple[str, Lease]]:
    if s.now < 3:
        yield "tick", replace(s, now=s.now + 1)
    for i, h in enumerate(HOLDERS):
        ph = s.phase[i]
        if ph == 0:
            if not s.exists:
                yield f"create{h}", replace(s, value=(h, s.now + TTL), exists=True, version=s.version + 1,
                                            phase=_set(s.phase, i, 3), wins=s.wins + ((h, s.now, s.now + TTL),))
            else:
                yield f"exists{h}", replace(s, phase=_set(s.phase, i, 1))
        elif ph == 1:
            exp = None if s.value is None else s.value[1]
            yield f"entry{h}", replace(s, phase=_set(s.phase, i, 2), seen=_set(s.seen, i, (s.exists, exp, s.version)))
        elif ph == 2:
            obs, exp, ver = s.seen[i]
            d = lease_after_create_failed(observed_exists=obs, parsed_expires_at=exp, now_unix=s.now)
            if d is LeaseDecision.LOST or ver != s.version:
                yield f"lost{h}", replace(s, phase=_set(s.phase, i, 3))
            else:
                yield f"steal{h}", replace(s, value=(h, s.now + TTL), version=s.version + 1,
                                           phase=_set(s.phase, i, 3), wins=s.wins + ((h, s.now, s.now + TTL),))


def test_lease_model_one_holder_at_a_time() -> None:
    init = Lease(now=0, value=None, exists=False, version=0, phase=(0, 0, 0),
                 seen=((False, None, 0),) * 3, wins=())

    def strict(s: Lease) -> None:
        for (h1, f1, u1), (h2, f2, u2) in itertools.combinations(s.wins, 2):
            if f2 < u1 and f1 < u2:
                raise Violation(f"overlapping leases {h1}[{f1},{u1}) and {h2}[{f2},{u2})")

    assert explore(init, lease_actions, strict, lambda s: None) > 50


def test_lease_model_mutation_ignoring_expiry_is_caught() -> None:
    """Stealing without the expiry check (always STEAL) must produce overlapping leases."""
    import engine.kv.protocol as proto
    real = proto.lease_after_create_failed

    def always_steal(**kw: Any) -> LeaseDecision:
        return LeaseDecision.STEAL

    init = Lease(now=0, value=None, exists=False, version=0, phase=(0, 0, 0),
                 seen=((False, None, 0),) * 3, wins=())

    def strict(s: Lease) -> None:
        for (h1, f1, u1), (h2, f2, u2) in itertools.combinations(s.wins, 2):
            if f2 < u1 and f1 < u2:
                raise Violation("overlap")

    globals()["lease_after_create_failed"] = always_steal
    try:
        with pytest.raises(Violation):
            explore(init, lease_actions, strict, lambda s: None)
    finally:
        globals()["lease_after_create_failed"] = real
