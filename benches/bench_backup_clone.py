"""Backup and clone against a full copy of the store directory (issue 13 figures).

    python benches/bench_backup_clone.py [--keys 100000] [--rounds 3] [--repeats 3]

Builds an aged store: ``--keys`` keys loaded, then ``--rounds`` rounds rewriting a third of
them, flushed and demoted (``history`` policy: cold holds the superseded versions, warm the
current ones). Then, interleaved and rotated each repeat so no contender always runs first
with a warm page cache, with the store open and idle:

* ``copy``: ``shutil.copytree`` of the store directory (the baseline: what a user would do
  with the store closed; not consistent while it is open), and ``copy+fsync``, the same
  made durable (every file and directory fsynced, as backup and restore do);
* ``backup``: ``store.backup(dir)`` (consistent, every file hashed, manifest last);
* ``restore``: ``engine.restore_backup`` of that backup (every byte verified, opened once);
* ``clone``: ``store.clone(dir)`` at the latest version (shares by hard link);
* ``clone-old``: ``store.clone(dir, version=...)`` at the version before the last round
  (trims the versions above it from warm and cold).

With ``--object-store`` the cold tier lives at a ``file://`` cold_url: ``copy`` also copies
that prefix, ``backup`` and ``clone`` download it, and ``clone-ref``/``clone-ref-old`` give
the clone a prefix of its own that references the source's objects (``BASE`` + refs).

Prints per contender the median seconds, bytes written (new bytes on disk: copies, not
links) and the ratio to ``copy``. One process, one run: compare ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import engine

T = engine.EntryKind.source(1)


def build(path: Path, keys: int, rounds: int, cold_url: str | None = None) -> tuple[engine.Store, int]:
    store = engine.open(path, layout=engine.Layout.parse("hot+warm+cold", background=False,
                                                         cold_url=cold_url))
    rng = random.Random(42)
    # 100-byte values, half of them random bytes: compressible like real records, not a
    # constant that zstd and RocksDB shrink to nothing.
    value = b"v" * 50
    for start in range(0, keys, 1000):
        with store.begin() as tx:
            for i in range(start, min(keys, start + 1000)):
                tx.set(T, b"key%08d" % i, rng.randbytes(50) + value)
    before_last = store.version
    for r in range(rounds):
        before_last = store.version
        for start in range(r % 3, keys, 3 * 1000):
            with store.begin() as tx:
                for i in range(start, min(keys, start + 3000), 3):
                    tx.set(T, b"key%08d" % i, rng.randbytes(50) + b"r%d" % r + value)
        store.flush()
        store.demote()
    store.flush()
    return store, before_last


def dir_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def new_bytes(root: Path) -> int:
    """Bytes under ``root`` in files with no other name (hard-linked files cost nothing)."""
    total = 0
    for p in root.rglob("*"):
        if p.is_file():
            st = p.stat()
            if st.st_nlink == 1:
                total += st.st_size
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    ap.add_argument("--object-store", action="store_true",
                    help="keep the cold tier in a file:// object store (cold_url) and add a "
                         "clone sharing it by reference")
    args = ap.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="bench-backup-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        cold_dir = root / "src-cold"
        store, old = build(root / "src", args.keys, args.rounds,
                           f"file://{cold_dir}" if args.object_store else None)
        print(f"aged store: {args.keys} keys, version {store.version}, {dir_bytes(root / 'src') / 1e6:.1f} MB "
              f"on disk (built in {time.perf_counter() - t0:.1f} s); tiers: "
              + ", ".join(f"{n} {s.get('bytes', 0) / 1e6:.1f} MB" for n, s in store.stats()["tiers"].items()))
        times: dict[str, list[float]] = {}
        written: dict[str, int] = {}
        extra: dict[str, Any] = {}

        def run_copy(i: int) -> None:
            dest = root / f"copy{i}"
            t = time.perf_counter()
            shutil.copytree(root / "src", dest, ignore=shutil.ignore_patterns("LOCK"))
            if args.object_store:
                shutil.copytree(cold_dir, root / f"copy-cold{i}")
            times.setdefault("copy", []).append(time.perf_counter() - t)
            written["copy"] = dir_bytes(dest) + (dir_bytes(root / f"copy-cold{i}") if args.object_store else 0)
            shutil.rmtree(dest)
            shutil.rmtree(root / f"copy-cold{i}", ignore_errors=True)

        def run_copy_sync(i: int) -> None:
            dest = root / f"copys{i}"
            t = time.perf_counter()
            shutil.copytree(root / "src", dest, ignore=shutil.ignore_patterns("LOCK"))
            if args.object_store:
                shutil.copytree(cold_dir, dest / "object-store-copy")
            for d, _dirs, files in os.walk(dest):
                for f in files:
                    fd = os.open(os.path.join(d, f), os.O_RDONLY)
                    os.fsync(fd)
                    os.close(fd)
                fd = os.open(d, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
            times.setdefault("copy+fsync", []).append(time.perf_counter() - t)
            written["copy+fsync"] = dir_bytes(dest)
            shutil.rmtree(dest)

        def run_backup(i: int) -> None:
            dest = root / f"bk{i}"
            t = time.perf_counter()
            r = store.backup(dest)
            times.setdefault("backup", []).append(time.perf_counter() - t)
            written["backup"] = dir_bytes(dest)
            extra["backup capture s"] = r["capture_seconds"]
            t = time.perf_counter()
            engine.restore_backup(dest, root / f"rs{i}")
            times.setdefault("restore", []).append(time.perf_counter() - t)
            written["restore"] = dir_bytes(root / f"rs{i}")
            shutil.rmtree(dest)
            shutil.rmtree(root / f"rs{i}")

        def run_clone(i: int) -> None:
            runs: list[tuple[str, int | None, str | None]] = [("clone", None, None), ("clone-old", old, None)]
            if args.object_store:
                runs += [("clone-ref", None, f"file://{root}/ref{i}"),
                         ("clone-ref-old", old, f"file://{root}/refold{i}")]
            for name, version, url in runs:
                dest = root / f"{name}{i}"
                t = time.perf_counter()
                r = store.clone(dest, version=version, cold_url=url)
                times.setdefault(name, []).append(time.perf_counter() - t)
                prefix = Path(url[len("file://"):]) if url else None
                written[name] = new_bytes(dest) + (dir_bytes(prefix) if prefix else 0)
                extra[f"{name} shared MB"] = round(r["linked_bytes"] / 1e6, 2)
                extra[f"{name} trimmed"] = r["trimmed_versions"]
                shutil.rmtree(dest)
                if prefix is not None:
                    shutil.rmtree(prefix)

        order = [run_copy, run_copy_sync, run_backup, run_clone]
        for i in range(args.repeats):
            for fn in order[i % 4:] + order[:i % 4]:
                fn(i)
        base_t = statistics.median(times["copy"])
        base_b = written["copy"]
        print(f"\n{'contender':14s} {'median s':>9s} {'x copy':>7s} {'MB written':>11s} {'x copy':>7s}")
        names = ["copy", "copy+fsync", "backup", "restore", "clone", "clone-old"]
        if args.object_store:
            names += ["clone-ref", "clone-ref-old"]
        for name in names:
            med = statistics.median(times[name])
            print(f"{name:14s} {med:9.3f} {med / base_t:7.2f} {written[name] / 1e6:11.2f} "
                  f"{written[name] / base_b:7.3f}")
        for k, v in extra.items():
            print(f"  {k}: {v}")
        store.close()
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
