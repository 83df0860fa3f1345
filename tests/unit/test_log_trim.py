"""The commit log holds only what is not flushed yet (issue 10 disk goal, issue 12 erase)."""

from __future__ import annotations

import pytest

import engine
from engine import EntryKind

T = EntryKind.source(1)


def _log_bytes(path) -> int:
    return sum(p.stat().st_size for p in (path / "log").glob("commit-*.log"))


@pytest.mark.parametrize("durability", ["normal", "sync", "none"])
def test_flush_retires_the_active_log_file(tmp_path, durability):
    s = engine.open(tmp_path / "db", durability=durability)
    for b in range(50):
        with s.begin() as tx:
            tx.set_many(T, [(b"k%05d" % (b * 20 + i), b"secret-%05d" % i * 10) for i in range(20)])
    if durability != "none":  # "none" buffers records in memory first
        assert _log_bytes(tmp_path / "db") > 50 * 20 * 100
    s.flush()
    assert _log_bytes(tmp_path / "db") < 1024          # one fresh, near-empty file
    with s.begin() as tx:                               # commits after the flush are logged
        tx.set(T, b"after", b"flush")
    v = tx.version
    s.close()
    s = engine.open(tmp_path / "db", durability=durability)
    assert s.version == v
    assert s.get(T, b"after") == b"flush"
    assert s.get(T, b"k00999") == b"secret-00019" * 10
    s.check()
    s.close()


def test_flush_below_the_newest_commit_keeps_the_unflushed_records(tmp_path):
    s = engine.open(tmp_path / "db")
    for i in range(10):
        with s.begin() as tx:
            tx.set(T, b"k%d" % i, b"v%d" % i)
    s.flush(watermark=5)   # records 6..10 are only in hot and in the log
    s.close()
    s = engine.open(tmp_path / "db")
    assert [s.get(T, b"k%d" % i) for i in range(10)] == [b"v%d" % i for i in range(10)]
    assert s.recovery["replayed"] == 5
    s.close()
