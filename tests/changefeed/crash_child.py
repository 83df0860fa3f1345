"""Child process of the change-feed crash test: commits in a loop until it is killed.

Usage: ``python crash_child.py PATH LAYOUT SEED``

Opens the store with ``changefeed=True`` (``"normal"`` durability), commits random writes
and tombstones to two tables, flushes every 40 commits (which retires commit-log files, so
the feed must be durable first) and prints each acknowledged version (flushed at once).
"""

from __future__ import annotations

import random
import sys

import engine
from engine import EntryKind

TABLES = (EntryKind.source(1), EntryKind.operator(2))
N_KEYS = 24


def main() -> None:
    path, layout, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    store = engine.open(path, layout=layout, changefeed=True)
    i = 0
    while True:
        i += 1
        with store.begin() as tx:
            for _ in range(rng.randint(1, 5)):
                t = rng.choice(TABLES)
                k = b"k%02d" % rng.randrange(N_KEYS)
                if rng.random() < 0.2:
                    tx.remove(t, k)
                else:
                    tx.set(t, k, b"%d.%d" % (seed, i) + b"#" * rng.choice((0, 5, 300)))
        print(tx.version, flush=True)
        if i % 40 == 0:
            store.flush()


if __name__ == "__main__":
    main()
