"""Soak (``pytest -m stress tests/backup``; also runnable as a script): backups and clones
taken over and over from a store whose background mover flushes and demotes and whose
background GC trims history while a writer commits. A model of every commit (the oracle)
checks each restored store and each clone at every version it must still answer.

    python tests/backup/test_backup_soak.py [--seconds 20] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from pathlib import Path

import pytest

import engine

T = engine.EntryKind.MULTI
KEYS = [b"k%03d" % i for i in range(200)]
HISTORY = 40


class Model:
    """Every committed version's full state (the writer records it after each commit)."""

    def __init__(self) -> None:
        self.states: dict[int, dict[bytes, bytes]] = {0: {}}
        self.lock = threading.Lock()

    def commit(self, version: int, writes: dict[bytes, bytes | None]) -> None:
        with self.lock:
            prev = self.states[max(self.states)]
            state = dict(prev)
            for k, v in writes.items():
                if v is None:
                    state.pop(k, None)
                else:
                    state[k] = v
            self.states[version] = state

    def at(self, version: int) -> list[tuple[bytes, bytes]]:
        with self.lock:
            return sorted(self.states[version].items())


def soak(root: Path, seconds: float, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    layout = engine.Layout.parse("hot+warm+cold", flush_interval=0.05, demote_interval=0.1,
                                 demotion_age_versions=5, hot_bytes="1MiB")
    retention = engine.Retention(history_versions=HISTORY)
    s = engine.open(root / "src", layout=layout, retention=retention, gc_interval=0.05)
    model = Model()
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        wr = random.Random(seed + 1)
        try:
            while not stop.is_set():
                writes: dict[bytes, bytes | None] = {}
                tx = s.begin()
                for k in wr.sample(KEYS, 10):
                    if wr.random() < 0.1:
                        tx.remove(T, k)
                        writes[k] = None
                    else:
                        v = b"%d-" % wr.randrange(10**6) + k
                        tx.set(T, k, v)
                        writes[k] = v
                version = tx.commit()
                model.commit(version, writes)
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)

    th = threading.Thread(target=writer)
    th.start()
    done = {"backups": 0, "clones": 0, "versions_checked": 0}
    deadline = time.monotonic() + seconds
    try:
        n = 0
        while time.monotonic() < deadline and not errors:
            n += 1
            time.sleep(rng.random() * 0.2)
            if rng.random() < 0.5:
                r = s.backup(root / f"bk{n}")
                engine.restore_backup(root / f"bk{n}", root / f"r{n}")
                check_at(root / f"r{n}", r["version"], model, retention, done)
                done["backups"] += 1
            else:
                top = s.version
                v = rng.randrange(max(1, top - HISTORY), top + 1)
                try:
                    r = s.clone(root / f"c{n}", version=v)
                except engine.HistoryUnavailable:
                    continue  # the floor moved past v meanwhile: the right answer
                check_at(root / f"c{n}", r["version"], model, retention, done)
                done["clones"] += 1
    finally:
        stop.set()
        th.join()
        s.close()
    if errors:
        raise errors[0]
    return done


def check_at(path: Path, version: int, model: Model, retention: engine.Retention,
             done: dict[str, int]) -> None:
    with engine.open(path, retention=retention, gc_interval=0) as r:
        assert r.version == version
        floor = r.history_floor()
        for u in range(max(floor, 0), version + 1):
            assert list(r.range(T, version=u)) == model.at(u), (path, u)
            done["versions_checked"] += 1
        r.check()


@pytest.mark.stress
def test_backups_and_clones_under_movement_gc_and_commits(tmp_path: Path) -> None:
    done = soak(tmp_path, 20.0, 1)
    assert done["backups"] and done["clones"]


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        print(soak(Path(d), a.seconds, a.seed))
