"""Child process of the crash tests: commits in a loop until it is killed.

Usage: ``python store_crash_child.py PATH LAYOUT DURABILITY RUN THREADS SEED``

Every commit writes a manifest row ``M[b"w<RUN>.<thread>"]`` describing the whole commit
(its tag and every data item), plus the data items themselves in tables ``A`` and ``B``:
``set`` items get the value ``<tag>`` followed by ``pad`` ``#`` bytes, ``remove`` items a
tombstone. After a commit returns, the child prints one line (flushed at once)::

    <version> <manifest value>

so the parent knows which commits were acknowledged. The manifest lets the parent check
every recovered version, reported or not, for all-or-nothing application.
"""

from __future__ import annotations

import random
import sys
import threading

import engine
from engine import EntryKind
from engine.errors import ConflictError

A = EntryKind.source(1)
B = EntryKind.operator(2)
M = EntryKind.source(99)
TABLES = {"A": A, "B": B}
N_KEYS = 16


def make_commit(rng: random.Random, tag: str) -> tuple[bytes, list[tuple[str, bytes, int | None]]]:
    """Return (manifest value, items); an item is (table name, key, pad or None = remove)."""
    items: dict[tuple[str, bytes], int | None] = {}
    for _ in range(rng.randint(2, 6)):
        t = rng.choice("AB")
        k = b"k%02d" % rng.randrange(N_KEYS)
        items[(t, k)] = None if rng.random() < 0.2 else rng.choice((0, 1, 10, 200, 3000))
    desc = ",".join(f"{t}/{k.decode()}/{'-' if p is None else p}" for (t, k), p in sorted(items.items()))
    return f"{tag}|{desc}".encode(), [(t, k, p) for (t, k), p in sorted(items.items())]


def writer(store: engine.Store, run: str, tid: int, seed: int, out_lock: threading.Lock) -> None:
    rng = random.Random(seed * 1000 + tid)
    wid = f"w{run}.{tid}".encode()
    i = 0
    while True:
        i += 1
        tag = f"{run}.{tid}.{i}"
        manifest, items = make_commit(rng, tag)
        while True:
            tx = store.begin()
            tx.set(M, wid, manifest)
            for t, k, pad in items:
                if pad is None:
                    tx.remove(TABLES[t], k)
                else:
                    tx.set(TABLES[t], k, tag.encode() + b"#" * pad)
            try:
                v = tx.commit()
                break
            except ConflictError:
                continue
        with out_lock:
            sys.stdout.write(f"{v} {manifest.decode()}\n")
            sys.stdout.flush()
        if i % 97 == 0:
            store.flush()


def main() -> None:
    path, layout, durability, run, threads, seed = sys.argv[1:7]
    store = engine.open(path, layout=engine.Layout.parse(layout, background=False), durability=durability)
    lock = threading.Lock()
    n = int(threads)
    ts = [threading.Thread(target=writer, args=(store, run, t, int(seed), lock), daemon=True)
          for t in range(1, n)]
    for t in ts:
        t.start()
    writer(store, run, 0, int(seed), lock)


if __name__ == "__main__":
    main()
