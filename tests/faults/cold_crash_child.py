"""Child process for tests/faults/test_cold_crash.py (also the shared op schedule and model).

Run as ``python cold_crash_child.py DIR FIRST_OP``: opens a ColdTier at DIR and applies ops
FIRST_OP, FIRST_OP + 1, ... forever, printing ``B <n>`` before and ``D <n>`` after op n
(flushed; auto compaction runs inside set/write_entries/drop), until
the parent kills it with SIGKILL. The ops are a pure function of n, so the parent can replay
them into a dict model: after a kill the tier must equal the model after the last reported
op, or after the one in flight (every op is atomic), and ``check()`` must pass.
"""

from __future__ import annotations

import sys

from engine.tiers import ColdTier
from engine.types import EntryKind, RawEntry

T = EntryKind.MULTI
S1 = EntryKind.source(1)
KEYS = [b"k%03d" % i for i in range(40)]
OPTIONS = {"block_size": 1024, "compact_trigger": 4, "dictionary": True}

Model = dict[tuple[EntryKind, bytes], dict[int, "bytes | None"]]


def op(n: int) -> tuple[str, object]:
    """The n-th operation (n >= 1): (kind, argument)."""
    if n % 11 == 0:
        return "compact", None
    if n % 13 == 0:
        return "clear", S1
    if n % 7 == 0:
        return "drop", {T: [(KEYS[m % 40], m) for m in range(max(1, n - 9), n - 3)]}
    if n % 3 == 1:
        rows = [RawEntry(KEYS[(n * 7 + j) % 40], 100_000 + n * 16 + j, None if j % 5 == 0 else b"we%d-%d" % (n, j) * 8)
                for j in range(12)]
        return "write_entries", {T: rows, S1: rows[:3]}
    rows = [(KEYS[(n + j * 3) % 40], None if (n + j) % 9 == 0 else b"set%d-%d" % (n, j) * (1 + j % 20)) for j in range(20)]
    return "set", (n, {T: rows, S1: rows[::4]})


def apply(t: ColdTier, n: int) -> None:
    kind, arg = op(n)
    if kind == "compact":
        t.compact(full=True)
    elif kind == "clear":
        t.clear_table(arg)  # type: ignore[arg-type]
    elif kind == "drop":
        t.drop(arg)  # type: ignore[arg-type]
    elif kind == "write_entries":
        t.write_entries(arg)  # type: ignore[arg-type]
    else:
        version, batches = arg  # type: ignore[misc]
        t.set(version, batches)


def apply_model(model: Model, n: int) -> None:
    kind, arg = op(n)
    if kind == "clear":
        for key in [k for k in model if k[0] == arg]:
            del model[key]
    elif kind == "drop":
        for table, items in arg.items():  # type: ignore[union-attr]
            for k, v in items:
                chain = model.get((table, k))
                if chain is not None and v in chain:
                    del chain[v]
                    if not chain:
                        del model[(table, k)]
    elif kind == "write_entries":
        for table, rows in arg.items():  # type: ignore[union-attr]
            for e in rows:
                model.setdefault((table, e.key), {})[e.version] = e.value
    elif kind == "set":
        version, batches = arg  # type: ignore[misc]
        for table, rows in batches.items():
            for k, val in rows:
                model.setdefault((table, k), {})[version] = val


def main() -> None:
    path, first = sys.argv[1], int(sys.argv[2])
    t = ColdTier(path, **OPTIONS)
    n = first
    while True:
        sys.stdout.write(f"B {n}\n")
        sys.stdout.flush()
        apply(t, n)
        sys.stdout.write(f"D {n}\n")
        sys.stdout.flush()
        n += 1


if __name__ == "__main__":
    main()
