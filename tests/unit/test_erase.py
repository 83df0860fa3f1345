"""store.erase: every version of a key leaves every tier and, after compact(), every file
(issue 12). Also: forced drops of versions still in the hot tier do not come back from the
commit log on reopen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import engine
from engine import EntryKind

T = EntryKind.source(1)
LAYOUTS = ["memory", "warm", "hot+warm", "hot+warm+cold", "warm+cold"]


def _files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            if needle in p.read_bytes():
                hits.append(str(p.relative_to(root)))
    return hits


@pytest.mark.parametrize("layout", LAYOUTS)
def test_erase_removes_every_version_from_every_file(tmp_path, layout):
    root = tmp_path / "db"
    s = engine.open(root, layout=engine.Layout.parse(layout, background=False))
    secret = [b"SECRET-%d-" % i + os.urandom(8).hex().encode() for i in range(4)]
    with s.begin() as tx:
        tx.set(T, b"keep", b"kept-value")
    for i, val in enumerate(secret):
        with s.begin() as tx:
            tx.set(T, b"gone", val)
            tx.set(T, b"other%d" % i, b"x" * 50)
        if i == 1:
            s.flush()
            s.demote()
    old = tx.version
    with s.snapshot(version=old) as snap:           # an open snapshot does not stop an erase
        assert snap.get(T, b"gone") == secret[-1]
        assert s.erase(T, b"gone") == len(secret)
        assert snap.get(T, b"gone") is None
    assert s.get(T, b"gone") is None and s.history(T, b"gone") == []
    assert s.get(T, b"keep") == b"kept-value"
    s.compact()
    for val in secret:
        assert _files_containing(root, val) == [], (layout, val)
    s.check()
    s.close()
    s = engine.open(root, layout=layout)
    assert s.history(T, b"gone") == [] and s.get(T, b"other3") == b"x" * 50
    with s.begin() as tx:                           # the key can be written again
        tx.set(T, b"gone", b"new")
    assert s.history(T, b"gone")[0][1] == b"new"
    s.close()


@pytest.mark.parametrize("layout", ["memory", "hot+warm+cold"])
def test_forced_drop_in_the_hot_tier_survives_reopen(tmp_path, layout):
    root = tmp_path / "db"
    s = engine.open(root, layout=engine.Layout.parse(layout, background=False))
    with s.begin() as tx:
        tx.set(T, b"k", b"v1")
    with s.begin() as tx:
        tx.set(T, b"k", b"v2")
    with s.begin() as tx:
        tx.drop(T, b"k", up_to_version=2, force=True)
    assert s.history(T, b"k") == [(2, b"v2")]
    s.close()
    s = engine.open(root, layout=layout)
    assert s.history(T, b"k") == [(2, b"v2")]
    s.close()


def test_erase_bad_input(tmp_path):
    s = engine.open(tmp_path / "db")
    with pytest.raises(engine.InvalidKeyError):
        s.erase(T, "text")  # type: ignore[arg-type]
    with pytest.raises(engine.InvalidKeyError):
        s.erase("table", b"k")  # type: ignore[arg-type]
    assert s.erase(T, b"never-written") == 0
    s.close()
