"""Space is really reclaimed: after GC, every tier is within 1.5x of a store that only ever
held the retained versions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import engine
from engine import EntryKind, Retention

T = EntryKind.source(1)
NKEYS = 400
REWRITES = 20


def _value(key: int, round_no: int) -> bytes:
    return (b"%04d-%02d|" % (key, round_no)) * 12


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _physical(store) -> dict[str, int]:
    out = {}
    for tier in store._tiers:
        if tier.name == "hot":
            out["hot"] = tier.stats()["bytes"]
        elif tier.name == "warm":
            tier.flush_wal(sync=True)
            props = tier.stats(exact=False)["rocksdb"]
            out["warm"] = props["total_sst_files_size"] + props["cur_size_all_mem_tables"]
        else:
            out["cold"] = tier.stats()["bytes"]
    return out


def _load(store, rounds, movement):
    for r in rounds:
        with store.begin() as tx:
            for k in range(NKEYS):
                tx.set(T, b"key%05d" % k, _value(k, r))
        if movement and r % 4 == 3:
            store.flush()
            store.demote(policy="history")


@pytest.mark.parametrize("layout", ["memory", "warm", "hot+warm", "hot+warm+cold"])
def test_overwrite_heavy_space_reclaimed(tmp_path, layout):
    lay = engine.Layout.parse(layout, background=False)
    heavy = engine.open(tmp_path / "heavy", layout=lay, retention=Retention(history_versions=1))
    _load(heavy, range(REWRITES), movement=True)
    heavy.flush()
    before = _physical(heavy)
    result = heavy.gc()
    assert result["removed_versions"] == NKEYS * (REWRITES - 1)
    heavy.compact()
    after = _physical(heavy)

    lean = engine.open(tmp_path / "lean", layout=lay)
    _load(lean, [REWRITES - 1], movement=False)
    lean.flush()
    lean.demote(policy="history")
    lean.compact()
    reference = _physical(lean)

    total_after, total_ref = sum(after.values()), sum(reference.values())
    # GC removes REWRITES - 1 of every REWRITES versions. (Warm is already compacted after
    # each demotion, so "before" holds no deleted-but-unreclaimed RocksDB data: 2x, not more.)
    assert sum(before.values()) > 2 * total_after, (before, after)
    assert total_after <= 1.5 * total_ref + 4096, (after, reference)
    for tier, nbytes in after.items():
        # every tier fell to within 1.5x of the same tier of the lean store
        assert nbytes <= 1.5 * reference[tier] + 4096, (tier, after, reference)
    for k in range(0, NKEYS, 53):
        assert heavy.get(T, b"key%05d" % k) == _value(k, REWRITES - 1)
    heavy.check()
    heavy.close()
    lean.close()
