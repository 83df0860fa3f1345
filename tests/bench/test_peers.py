"""Every benchmark target answers like the dict reference (tiny sizes, in process).

The peers implement a versioned store on another library; these tests pin their semantics
(latest and old versions, tombstones, keys holding 0x00, scans from a key) to the oracle,
so a benchmark never reports speed for a target that answers wrongly because of a bug here.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from engine.bench.child import run_spec
from engine.bench.data import Params, key_of
from engine.bench.peers import PEERS, DictReference, make_peer, unavailable
from engine.bench.tierdb_target import TierdbTarget

INSTALLED = [p for p in PEERS if unavailable(p) is None and p != "dict"]
VERSIONED = [p for p in INSTALLED if PEERS[p][1].versioned]
LAYOUTS = ["memory", "warm", "hot+warm", "hot+warm+cold", "warm+cold"]


def _history(seed: int = 3) -> list[tuple[list[tuple[bytes, bytes]], list[bytes]]]:
    """Commits over awkward keys: empty-ish, 0x00 inside and at the end, 0xff, prefixes."""
    rng = random.Random(seed)
    keys = [b"a", b"a\x00", b"a\x00\x00", b"a\x00\xff", b"a\x01", b"\x00", b"\xff" * 3, b"ab", b"abc"]
    keys += [key_of(i) for i in range(40)]
    commits = []
    for c in range(30):
        sets, removes = [], []
        for k in rng.sample(keys, 12):
            if c > 3 and rng.random() < 0.25:
                removes.append(k)
            else:
                sets.append((k, b"%d:" % c + k))
        commits.append((sets, removes))
    return commits


def _same_answers(target, ref: DictReference, versions: list[int | None]) -> None:  # type: ignore[no-untyped-def]
    keys = list(ref.versions) + [b"missing", b"a\x00\x01"]
    for v in versions:
        assert target.get_many(keys, v) == ref.get_many(keys, v), f"get_many at {v}"
        assert [target.get(k, v) for k in keys[:5]] == ref.get_many(keys[:5], v)
        for start in (b"", b"a", b"a\x00", b"a\x00\xff", key_of(7), b"\xff" * 4):
            for limit in (1, 3, 1000):
                assert target.scan(start, limit, v) == ref.scan(start, limit, v), f"scan {start!r} {limit} at {v}"
        assert target.count(v) == ref.count(v)
        assert list(target.iter_all(v)) == list(ref.iter_all(v))


@pytest.mark.parametrize("name", VERSIONED)
def test_versioned_peer_matches_reference(name: str, tmp_path: Path) -> None:
    target = make_peer(name, tmp_path / name)
    ref = DictReference()
    for sets, removes in _history():
        assert target.commit(sets, removes) == ref.commit(sets, removes)
    _same_answers(target, ref, [None, 1, 5, 17, 29])
    target.age()
    _same_answers(target, ref, [None, 3, 30])
    target.close()
    assert target.disk_bytes() > 0
    target.reopen()
    assert target.get_many(list(ref.versions), None) == ref.get_many(list(ref.versions), None)
    target.close()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_tierdb_target_matches_reference(layout: str, tmp_path: Path) -> None:
    target = TierdbTarget(tmp_path / "t", layout)
    ref = DictReference()
    for sets, removes in _history():
        assert target.commit(sets, removes) == ref.commit(sets, removes)
    _same_answers(target, ref, [None, 2, 11, 30])
    target.age()
    _same_answers(target, ref, [None, 2, 11, 30])
    target.close()


@pytest.mark.skipif("rocksdb-raw" not in INSTALLED, reason="rocksdict not installed")
def test_raw_rocksdb_answers_latest_only(tmp_path: Path) -> None:
    target = make_peer("rocksdb-raw", tmp_path / "raw")
    ref = DictReference()
    for sets, removes in _history():
        target.commit(sets, removes)
        ref.commit(sets, removes)
    keys = list(ref.versions)
    assert target.get_many(keys) == ref.get_many(keys)
    assert target.scan(b"a", 5) == ref.scan(b"a", 5)
    with pytest.raises(NotImplementedError):
        target.get(keys[0], 1)
    target.close()


def test_unknown_peer_gives_a_one_line_reason() -> None:
    reason = unavailable("nope")
    assert reason is not None and "\n" not in reason and "nope" in reason


def test_missing_peer_library_is_skipped_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.bench import peers

    monkeypatch.setitem(peers.PEERS, "ghost", ("no_such_module_for_tierdb_tests", DictReference))
    reason = peers.unavailable("ghost")
    assert reason is not None and "skipped" in reason and "\n" not in reason
    res = run_spec({"target": "peer:ghost", "workload": "load", "round": 0,
                    "params": Params(keys=100).to_json(), "dir": "/nonexistent/x"})
    assert res.get("skipped") and res["error"].startswith("skipped:") and not res["figures"]


@pytest.mark.parametrize("workload", ["aged", "load", "ycsb-a", "ycsb-e", "ycsb-f", "time-travel",
                                      "history-heavy", "graph-checkpoints", "scan"])
def test_workload_digests_agree_between_tierdb_and_reference(workload: str, tmp_path: Path) -> None:
    p = Params(keys=400, gets=200, ops=300, scans=5, scan_rows=50, latency_samples=20).to_json()
    got = {}
    for t in ("tierdb:hot+warm+cold", "peer:dict"):
        res = run_spec({"target": t, "workload": workload, "round": 0, "params": p,
                        "dir": str(tmp_path / t.replace(":", "_"))})
        assert res["error"] is None, res["error"]
        assert res["checks"], "a workload must hand its answers to rec.check"
        got[t] = res["checks"]
    assert got["tierdb:hot+warm+cold"] == got["peer:dict"]
