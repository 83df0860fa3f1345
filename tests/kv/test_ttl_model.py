"""Seeded randomized oracle test of local TTL semantics on a fake wall clock.

A reference model (key -> value and expiry) runs beside a ``LocalConnection`` whose clock the
test owns. After every step the reads (``get``, ``entry``, ``keys``, ``scan``) equal the
model's live keys, whether or not the reaper has run; ``create``/``update`` succeed exactly
when the model says they must; at the end a watch opened before the first write, folded,
equals the model (every expiry arrived as a Purge), and no expiry index row is left.
"""

from __future__ import annotations

import random

import pytest

import engine
from engine.kv import (
    AlreadyExists,
    Delete,
    LocalConnection,
    Purge,
    Put,
    RevisionMismatch,
    StoreConfig,
    VersionToken,
)
from engine.kv.ttl import TTL_PREFIX

KEYS = [f"k.{i}" for i in range(6)]
SECOND = 1_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000 * SECOND

    def __call__(self) -> int:
        return self.now


class Model:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.data: dict[str, tuple[bytes, int | None, VersionToken]] = {}

    def live(self) -> dict[str, bytes]:
        now = self.clock.now
        return {k: v for k, (v, exp, _) in self.data.items() if exp is None or now < exp}

    def version(self, key: str) -> VersionToken | None:
        return self.data[key][2] if key in self.live() else None


def _check_reads(b, model: Model) -> None:
    live = model.live()
    assert b.keys() == sorted(live)
    assert {e.key: e.value for e in b.scan()} == live
    for k in KEYS:
        got = b.get(k)
        assert (got.value if got else None) == live.get(k), k
        ent = b.entry(k)
        assert (ent.version if ent else None) == model.version(k), k


@pytest.mark.parametrize("max_history", [1, 3])
@pytest.mark.parametrize("seed", range(4))
def test_ttl_against_the_model(seed: int, max_history: int) -> None:
    rng = random.Random(seed)
    clock = Clock()
    store = engine.open(None)
    conn = LocalConnection(store, clock=clock)
    conn.connect()
    conn._reaper.start = lambda: None        # reaping happens only where the test says
    b = conn.store_with_config(StoreConfig(f"m{seed}", max_history=max_history))
    model = Model(clock)
    watch = b.watch_all()
    stale: dict[str, VersionToken] = {}
    try:
        for step in range(250):
            op = rng.choice(["put", "ttl", "ttl", "delete", "purge", "create", "update",
                             "advance", "advance", "reap"])
            k = rng.choice(KEYS)
            v = b"%d-%d" % (step, rng.randrange(1000))
            if op == "put":
                model.data[k] = (v, None, b.put(k, v))
            elif op == "ttl":
                ttl = rng.choice([0.5, 1.0, 2.5])
                model.data[k] = (v, clock.now + int(ttl * SECOND), b.put_with_ttl(k, v, ttl))
            elif op in ("delete", "purge"):
                getattr(b, op)(k)
                model.data.pop(k, None)
            elif op == "create":
                if k in model.live():
                    with pytest.raises(AlreadyExists):
                        b.create(k, v)
                else:
                    model.data[k] = (v, None, b.create(k, v))
            elif op == "update":
                token = rng.choice([t for t in (model.data.get(k, (b"", None, None))[2],
                                                stale.get(k)) if t is not None] or [VersionToken.from_u64(1)])
                if model.version(k) == token:
                    model.data[k] = (v, None, b.update(k, v, token))
                else:
                    with pytest.raises(RevisionMismatch):
                        b.update(k, v, token)
            elif op == "advance":
                clock.now += rng.randrange(0, 2 * SECOND)
            else:
                conn.reap_expired()
            if k in model.data:
                stale[k] = model.data[k][2]
            _check_reads(b, model)
        clock.now += 10 * SECOND                  # everything with a TTL has expired
        _check_reads(b, model)
        conn.reap_expired()
        _check_reads(b, model)
        assert [k for k, _ in store.range(conn.meta_table, prefix=TTL_PREFIX)] == []
        folded: dict[str, bytes] = {}
        purged: set[str] = set()
        while (u := watch.next(0.2)) is not None:
            if isinstance(u, Put):
                folded[u.key] = u.entry.value
            else:
                assert isinstance(u, (Delete, Purge))
                folded.pop(u.key, None)
                if isinstance(u, Purge):
                    purged.add(u.key)
        assert folded == model.live()
        for k in KEYS:                            # a reaped expiry left exactly its marker
            if k in model.data and k not in model.live():
                assert isinstance(b.history(k)[-1], Purge) and k in purged
    finally:
        watch.close()
        conn.shutdown()
        store.close()
