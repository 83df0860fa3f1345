"""Child process of the torture crash loop: a seeded random workload until it is killed.

Usage: ``python torture_child.py PATH LAYOUT DURABILITY SEED EXPECTED_LOG``

The child opens ``PATH`` with :func:`torture_config.open_store` (background mover and GC
running, a finite history retention) and loops over a random mix of multi-table commits
(``tx.set`` / ``tx.set_many`` / ``tx.remove``, savepoints rolled back or released),
``store.erase``, ``store.pin`` / ``store.unpin``, ``store.gc``, ``store.flush``,
``store.demote``, ``store.compact`` and close + reopen.

It keeps the expected state outside the store, in ``EXPECTED_LOG`` (JSON lines, see
:mod:`torture_oracle`): before an operation whose outcome the parent cannot otherwise
know it appends an ``*-intent`` record, and after the operation *returns* it appends the
outcome (``commit`` with the version and the effective writes, ``erase`` with the version
it happened at, ``pin``, ``unpin``) and fsyncs the log. The parent SIGKILLs the child at
random moments and checks the reopened store against that log.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from torture_config import KEYS, TABLES, open_store

import engine


class ExpectedLog:
    """Append-only JSON-lines log; ``done`` records are fsynced before the next step."""

    def __init__(self, path: str) -> None:
        self.f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the child

    def write(self, rec: dict, sync: bool) -> None:
        self.f.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self.f.flush()
        if sync:
            os.fsync(self.f.fileno())


def random_value(rng: random.Random, tag: str) -> str:
    return tag + "#" * rng.choice((0, 1, 7, 60, 400, 3000))


def do_commit(store: engine.Store, rng: random.Random, elog: ExpectedLog, tag: str) -> None:
    """One transaction with random writes and savepoints; log intent, then the outcome."""
    tx = store.begin()
    writes: dict[tuple[str, str], str | None] = {}
    stack: list[tuple[object, dict[tuple[str, str], str | None]]] = []
    n_ops = rng.randint(1, 8)
    for i in range(n_ops):
        r = rng.random()
        if r < 0.12 and len(stack) < 3:
            stack.append((tx.savepoint(), dict(writes)))
            continue
        if r < 0.22 and stack:
            j = rng.randrange(len(stack))
            sp, saved = stack[j]
            if rng.random() < 0.6:
                tx.rollback_to(sp)  # sp stays, later ones go
                writes = dict(saved)
                del stack[j + 1:]
            else:
                tx.release(sp)      # sp and later ones go, writes stay
                del stack[j:]
            continue
        t = rng.choice(list(TABLES))
        if r < 0.40:
            items = {}
            for _ in range(rng.randint(1, 5)):
                k = rng.choice(KEYS)
                items[k] = random_value(rng, f"{tag}.{i}")
            tx.set_many(TABLES[t], {k.encode(): v.encode() for k, v in items.items()})
            for k, v in items.items():
                writes[(t, k)] = v
        elif r < 0.60:
            k = rng.choice(KEYS)
            tx.remove(TABLES[t], k.encode())
            writes[(t, k)] = None
        else:
            k = rng.choice(KEYS)
            v = random_value(rng, f"{tag}.{i}")
            tx.set(TABLES[t], k.encode(), v.encode())
            writes[(t, k)] = v
        if rng.random() < 0.1:  # read-your-writes after savepoint games
            t2, k2 = rng.choice(list(writes)) if writes else (t, rng.choice(KEYS))
            if (t2, k2) in writes:
                got = tx.get(TABLES[t2], k2.encode())
                want = writes[(t2, k2)]
                assert got == (None if want is None else want.encode()), (t2, k2, got, want)
    if rng.random() < 0.03 or not writes:
        tx.rollback()  # an empty transaction commits no version
        return
    wlist = [[t, k, v] for (t, k), v in sorted(writes.items())]
    elog.write({"op": "intent", "writes": wlist}, sync=False)
    v = tx.commit()
    elog.write({"op": "commit", "v": v, "writes": wlist}, sync=True)


def step(store: engine.Store, rng: random.Random, elog: ExpectedLog, tag: str,
         reopen: object) -> engine.Store:
    """One random operation; returns the store (a new one after close + reopen)."""
    r = rng.random()
    if r < 0.80:
        do_commit(store, rng, elog, tag)
    elif r < 0.83:
        t, k = rng.choice(list(TABLES)), rng.choice(KEYS)
        elog.write({"op": "erase-intent", "t": t, "k": k}, sync=False)
        store.erase(TABLES[t], k.encode())
        elog.write({"op": "erase", "t": t, "k": k, "at": store.version}, sync=True)
    elif r < 0.86:
        if store.version:
            floor = max(1, store.history_floor())
            v = rng.randint(floor, store.version)
            name = f"p{rng.randrange(6)}"
            elog.write({"op": "pin-intent", "name": name, "v": v}, sync=False)
            store.pin(v, name)
            elog.write({"op": "pin", "name": name, "v": v}, sync=True)
    elif r < 0.88:
        name = f"p{rng.randrange(6)}"
        elog.write({"op": "unpin-intent", "name": name}, sync=False)
        store.unpin(name)
        elog.write({"op": "unpin", "name": name}, sync=True)
    elif r < 0.91:
        store.gc()
    elif r < 0.94:
        store.flush()
    elif r < 0.97:
        store.demote(policy=rng.choice(("history", "age")))
    elif r < 0.98:
        store.compact()
    else:
        store.close()
        store = reopen()  # type: ignore[operator]
    return store


def main() -> None:
    path, layout, durability, seed, explog = sys.argv[1:6]
    rng = random.Random(int(seed))
    elog = ExpectedLog(explog)
    store = open_store(path, layout, durability)
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        store = step(store, rng, elog, f"{seed}.{n}", lambda: open_store(path, layout, durability))


if __name__ == "__main__":
    main()
