"""Child process for crash tests: commits, flushes and demotes until killed.

Prints ``<version>`` after each commit returns (flushed line by line). Each commit v writes
``c<v>`` = ``x``, ``counter`` = ``<v>`` and ``slot<v % 10>`` = ``<v>``, all in one transaction.
"""

from __future__ import annotations

import sys

import engine
from engine import EntryKind

T = EntryKind.source(9)


def main() -> None:
    path, layout, durability = sys.argv[1], sys.argv[2], sys.argv[3]
    lay = engine.Layout.parse(layout, background=False, hot_bytes=1 << 20)
    store = engine.open(path, layout=lay, durability=durability)
    i = 0
    while True:
        with store.begin() as tx:
            v = store.version + 1
            tx.set(T, b"c%06d" % v, b"x")
            tx.set(T, b"counter", b"%d" % v)
            tx.set(T, b"slot%d" % (v % 10), b"%d" % v)
        assert tx.version == v
        sys.stdout.write(f"{tx.version}\n")
        sys.stdout.flush()
        i += 1
        if i % 7 == 0:
            store.flush()
        if i % 17 == 0:
            store.demote(policy="age" if i % 34 == 0 else "history")


if __name__ == "__main__":
    main()
