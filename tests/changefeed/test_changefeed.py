"""The change feed (issue 14, CDC): store.changes, durable consumers, trimming, crash safety.

The oracle is the store itself: with every version kept, ``store.history`` of every key
says exactly which rows each version wrote, so the feed must equal it version by version.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import engine
from engine import Change, ChangefeedDisabled, ChangesTrimmed, EntryKind
from engine.cli import main as cli_main
from engine.errors import CorruptionError, FutureVersionError
from engine.mvcc import changefeed as cf
from engine.mvcc import feedlog

A = EntryKind.source(1)
B = EntryKind.operator(2)
TABLES = (A, B)
N_KEYS = 24
CHILD = Path(__file__).with_name("crash_child.py")

Writes = dict[EntryKind, dict[bytes, bytes | None]]


def commit_random(store: engine.Store, rng: random.Random, tag: int) -> tuple[int, Writes]:
    writes: Writes = {}
    with store.begin() as tx:
        for _ in range(rng.randint(1, 5)):
            t = rng.choice(TABLES)
            k = b"k%02d" % rng.randrange(N_KEYS)
            v = None if rng.random() < 0.2 else b"v%d" % tag + b"#" * rng.choice((0, 7, 500))
            if v is None:
                tx.remove(t, k)
            else:
                tx.set(t, k, v)
            writes.setdefault(t, {})[k] = v
    assert tx.version is not None
    return tx.version, writes


def as_dict(change: Change) -> Writes:
    out: Writes = {}
    for t, rows in change.writes.items():
        d = out.setdefault(t, {})
        for k, v in rows:
            assert k not in d, f"version {change.version}: key {k!r} twice"
            d[k] = v
    return out


def feed_of(store: engine.Store, after: int = 0) -> dict[int, Writes]:
    out: dict[int, Writes] = {}
    last = after
    for ch in store.changes(after):
        assert isinstance(ch, Change)
        assert ch.version == last + 1, f"feed: version {ch.version} after {last}"
        last = ch.version
        out[ch.version] = as_dict(ch)
    return out


def history_by_version(store: engine.Store) -> dict[int, Writes]:
    """Which rows each version wrote, from the store's own history of every key."""
    out: dict[int, Writes] = {}
    for t in TABLES:
        for i in range(N_KEYS):
            k = b"k%02d" % i
            for v, val in store.history(t, k):
                out.setdefault(v, {}).setdefault(t, {})[k] = val
    return out


# -- every commit once, in order, with exactly its writes ----------------------------------


@pytest.mark.parametrize("layout", ["hot+warm+cold", "warm", "memory"])
def test_feed_equals_commits_across_movement_gc_and_reopen(tmp_path, layout):
    rng = random.Random(14)
    path = None if layout == "memory" else tmp_path / "s"
    store = engine.open(path, layout=layout, changefeed=True)
    expected: dict[int, Writes] = {}
    for step in range(6):
        for _ in range(60):
            v, w = commit_random(store, rng, len(expected))
            expected[v] = w
        if step == 1:
            store.flush()
        elif step == 2:
            store.flush()
            store.demote()
        elif step == 3:
            store.gc()
            store.compact()
        elif step == 4 and path is not None:
            store.close()
            store = engine.open(path)  # no flag: the store remembers its feed
            assert store.changefeed
        assert feed_of(store) == expected
        assert store.check()["changefeed"]["last"] == store.version == max(expected)
    # a reader starting mid-way, and a table filter
    mid = 123
    assert feed_of(store, mid) == {v: w for v, w in expected.items() if v > mid}
    only_a = [(ch.version, as_dict(ch)) for ch in store.changes(tables=[A])]
    assert only_a == [(v, {A: w[A]}) for v, w in sorted(expected.items()) if A in w]
    times = [ch.time for ch in store.changes()]
    assert times == sorted(times)
    if path is not None:
        assert times[-1] == pytest.approx(store.commit_time(store.version), abs=0.002)
        assert history_by_version(store) == expected
    store.close()


def test_not_opted_in_pays_nothing(tmp_path):
    store = engine.open(tmp_path / "s")
    with store.begin() as tx:
        tx.set(A, b"k", b"v")
    assert store._commit_observers == [] and not store.changefeed
    with pytest.raises(ChangefeedDisabled, match="changefeed=True"):
        store.changes()
    with pytest.raises(ChangefeedDisabled):
        store.consumer("x")
    store.flush()
    store.close()
    assert not (tmp_path / "s" / cf.FEED_DIR).exists()
    assert not list((tmp_path / "s").rglob("feed-*"))
    mem = engine.open(None)
    with pytest.raises(ChangefeedDisabled):
        list(mem.changes())


def test_opt_in_later_is_remembered_and_starts_at_the_current_version(tmp_path):
    path = tmp_path / "s"
    store = engine.open(path)
    for i in range(5):
        with store.begin() as tx:
            tx.set(A, b"k", b"%d" % i)
    store.close()
    store = engine.open(path, changefeed=True)
    with pytest.raises(ChangesTrimmed) as err:
        list(store.changes(0))
    assert err.value.floor == 5 and "5" in str(err.value)
    assert list(store.changes(5)) == []
    with pytest.raises(FutureVersionError):
        store.changes(6)
    with store.begin() as tx:
        tx.set(B, b"x", b"y")
    store.close()
    store = engine.open(path)
    assert [(c.version, c.writes) for c in store.changes(5)] == [(6, {B: [(b"x", b"y")]})]
    store.close()
    with pytest.raises(ValueError, match="change feed"):
        engine.open(path, changefeed=False)
    with pytest.raises(TypeError):
        engine.open(tmp_path / "t", changefeed="yes")


# -- live readers ---------------------------------------------------------------------------


def test_live_reader_sees_new_commits(tmp_path):
    store = engine.open(tmp_path / "s", changefeed=True)
    got: list[int] = []
    started = threading.Event()

    def reader() -> None:
        started.set()
        for ch in store.changes(0, wait=True, timeout=20):
            got.append(ch.version)
            if ch.version == 30:
                return

    t = threading.Thread(target=reader)
    t.start()
    started.wait()
    for i in range(30):
        with store.begin() as tx:
            tx.set(A, b"k%d" % i, b"v")
        if i == 10:
            time.sleep(0.05)  # let the reader catch up and wait
    t.join(30)
    assert not t.is_alive()
    assert got == list(range(1, 31))
    # the idle timeout ends an iteration; closing the store ends a waiting one
    assert list(store.changes(30, wait=True, timeout=0.05)) == []
    ended = threading.Event()

    def waiter() -> None:
        for _ in store.changes(30, wait=True):
            pass
        ended.set()

    w = threading.Thread(target=waiter)
    w.start()
    time.sleep(0.05)
    store.close()
    w.join(10)
    assert ended.is_set()


@pytest.mark.parametrize("layout", ["hot+warm+cold", "warm"])
def test_concurrent_writers_flushes_and_readers_see_each_commit_once(tmp_path, monkeypatch, layout):
    monkeypatch.setattr(cf, "SEGMENT_BYTES", 4096)
    monkeypatch.setattr(cf, "TAIL_RECORDS", 16)
    store = engine.open(tmp_path / "s", layout=layout, changefeed=True)
    seen: list[list[int]] = [[], []]
    errors: list[BaseException] = []

    def reader(i: int) -> None:
        try:
            for ch in store.changes(0, wait=True, timeout=20):
                seen[i].append(ch.version)
                if ch.version == 400:
                    return
        except (AssertionError, engine.EngineError) as exc:  # reported by the assertion below
            errors.append(exc)

    def writer(w: int) -> None:
        for i in range(100):
            with store.begin(isolation="snapshot") as tx:
                tx.set(A, b"w%d-%d" % (w, i), b"x" * (i % 50))
            if i % 25 == 0:
                store.flush()

    readers = [threading.Thread(target=reader, args=(i,)) for i in range(2)]
    writers = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in readers + writers:
        t.start()
    for t in writers + readers:
        t.join(60)
    assert not errors
    assert seen[0] == seen[1] == list(range(1, 401))
    rows = {k for ch in store.changes() for k, _ in ch.writes[A]}
    assert len(rows) == 400
    store.close()


# -- durable consumers, trimming, the floor ---------------------------------------------------


def test_consumers_resume_after_reopen_and_trimming_honours_the_lowest(tmp_path, monkeypatch):
    monkeypatch.setattr(cf, "SEGMENT_BYTES", 2048)  # many small segments
    monkeypatch.setattr(cf, "TAIL_RECORDS", 8)
    path = tmp_path / "s"
    store = engine.open(path, changefeed=True)
    rng = random.Random(3)
    expected = dict(commit_random(store, rng, i) for i in range(200))
    fast, slow = store.consumer("fast"), store.consumer("slow")
    assert store.consumers() == {"fast": 0, "slow": 0}
    fast.ack(180)
    slow.ack(40)
    store.close()

    store = engine.open(path)
    assert store.consumers() == {"fast": 180, "slow": 40}
    slow = store.consumer("slow")
    assert [c.version for c in slow.changes()] == list(range(41, 201))
    more = dict(commit_random(store, rng, 1000 + i) for i in range(100))
    expected.update(more)
    feed_dir = path / cf.FEED_DIR
    # the slow consumer holds everything above 40 (segments below may go)
    assert feed_of(store, 40) == {v: w for v, w in expected.items() if v > 40}
    floor = store.stats()["changefeed"]["floor"]
    assert floor == 40
    with pytest.raises(ChangesTrimmed) as err:
        list(store.changes(39))
    assert err.value.floor == 40
    segs_before = sorted(feed_dir.glob("feed-*.log"))
    slow.ack(250)
    assert store.stats()["changefeed"]["floor"] == 180  # now the fast one is lowest
    segs_after = sorted(feed_dir.glob("feed-*.log"))
    assert len(segs_after) < len(segs_before)
    firsts = [int(p.name[5:-4]) for p in segs_after]
    assert firsts[0] <= 181  # the segment holding 181 is kept
    assert feed_of(store, 180) == {v: w for v, w in expected.items() if v > 180}
    with pytest.raises(ChangesTrimmed, match="180"):
        store.changes(100)
    with pytest.raises(ChangesTrimmed):
        slow.ack(100)  # below the floor
    with pytest.raises(FutureVersionError):
        slow.ack(store.version + 1)
    slow.ack(200)  # moving back above the floor is allowed
    fast = store.consumer("fast")
    assert store.drop_consumer("fast") is True and store.drop_consumer("fast") is False
    assert store.stats()["changefeed"]["floor"] == 200
    with pytest.raises(engine.ConsumerRemoved, match="removed"):
        fast.ack(250)
    assert store.consumer("fast").position == 200  # a new one starts at the floor
    store.close()


def test_consumer_position_starts_at_floor_and_survives(tmp_path):
    path = tmp_path / "s"
    store = engine.open(path, changefeed=True)
    for i in range(10):
        with store.begin() as tx:
            tx.set(A, b"k", b"%d" % i)
    c = store.consumer("c")
    c.ack(7)
    assert store.consumer("c").position == 7
    assert store.consumer("d").position == 7  # new consumers start at the floor
    store.close()
    store = engine.open(path)
    assert store.consumers() == {"c": 7, "d": 7}
    with pytest.raises(engine.InvalidKeyError):
        store.consumer("")
    store.close()


def test_without_consumers_the_feed_follows_the_history_floor(tmp_path, monkeypatch):
    monkeypatch.setattr(cf, "SEGMENT_BYTES", 1024)
    monkeypatch.setattr(cf, "TAIL_RECORDS", 4)
    store = engine.open(tmp_path / "s", changefeed=True,
                        retention=engine.Retention(history_versions=50))
    rng = random.Random(9)
    expected = dict(commit_random(store, rng, i) for i in range(400))
    floor = store.stats()["changefeed"]["floor"]
    assert 0 < floor <= store.history_floor()
    with pytest.raises(ChangesTrimmed):
        list(store.changes(0))
    assert feed_of(store, floor) == {v: w for v, w in expected.items() if v > floor}
    store.close()


# -- integrity and crashes --------------------------------------------------------------------


def test_corrupt_record_fails_loudly_and_torn_tail_is_truncated(tmp_path, monkeypatch):
    monkeypatch.setattr(cf, "SEGMENT_BYTES", 256)
    path = tmp_path / "s"
    store = engine.open(path, layout="warm", changefeed=True)  # written through: on disk now
    for i in range(20):
        with store.begin() as tx:
            tx.set(A, b"k%d" % i, b"value-%d" % i)
    store.close()
    segs = sorted((path / cf.FEED_DIR).glob("feed-*.log"))
    assert len(segs) > 2
    last = segs[-1]
    data = bytearray(last.read_bytes())
    size = len(data)
    # a torn tail: half a record appended by a crash
    last.write_bytes(bytes(data) + data[16:40])
    store = engine.open(path)
    assert store.recovery["changefeed"]["torn_tail"]["offset"] == size
    assert last.stat().st_size == size
    assert len(list(store.changes())) == 20
    store.close()
    first = bytearray(segs[0].read_bytes())
    first[30] ^= 0xFF  # inside the first record of a closed segment
    segs[0].write_bytes(bytes(first))
    store = engine.open(path)  # opens: only the newest segment is scanned at open
    with pytest.raises(CorruptionError, match="feed") as err:
        list(store.changes())
    assert str(segs[0]) in str(err.value)
    assert len(list(store.changes(segs[1].name[5:-4] and int(segs[1].name[5:-4]) - 1))) > 0
    store.close()
    data[40] ^= 0xFF  # a damaged record with whole records after it in the newest segment
    last.write_bytes(bytes(data))
    with pytest.raises(CorruptionError, match="feed"):
        engine.open(path)


def _run_child(path: Path, layout: str, seed: int, min_acked: int) -> list[int]:
    proc = subprocess.Popen([sys.executable, str(CHILD), str(path), layout, str(seed)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    acked: list[int] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        stop_at = min_acked + random.Random(seed).randrange(150)
        while len(acked) < stop_at and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(int(line))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()
    assert len(acked) >= min_acked
    return acked


@pytest.mark.parametrize("layout", ["hot+warm+cold", "warm"])
def test_kill_9_mid_load_feed_equals_committed_history(tmp_path, layout):
    kill_9_trials(tmp_path, layout, 3)


@pytest.mark.stress
@pytest.mark.parametrize("layout", ["hot+warm+cold", "warm", "hot+warm", "warm+cold"])
def test_kill_9_soak(tmp_path, layout):
    kill_9_trials(tmp_path, layout, 15)


def kill_9_trials(tmp_path: Path, layout: str, trials: int) -> None:
    path = tmp_path / "s"
    acked_all: list[int] = []
    refed = 0
    for trial in range(trials):
        acked = _run_child(path, layout, seed=trial * 7 + 1, min_acked=60)
        acked_all += acked
        store = engine.open(path)  # no flag: remembered
        try:
            n = store.version
            assert n >= max(acked_all), "an acknowledged commit was lost"
            feed = feed_of(store)
            assert sorted(feed) == list(range(1, n + 1)), "feed versions are not exactly 1..version"
            assert feed == history_by_version(store), f"trial {trial}: feed != committed history"
            assert store.check()["changefeed"]["last"] == n
            refed += store.recovery["changefeed"]["disk_last"] < n
        finally:
            store.close()
    if layout == "hot+warm+cold":  # the feed buffers: a kill leaves commits only the log has
        assert refed > 0


def test_commit_log_replay_refeeds_what_the_feed_lost(tmp_path):
    """Simulate the crash window directly: the feed's buffered tail never reached disk."""
    path = tmp_path / "s"
    store = engine.open(path, changefeed=True)
    rng = random.Random(5)
    expected = dict(commit_random(store, rng, i) for i in range(30))
    store._feed._tail = []  # lost with the process (the commit log still has them)
    store._feed._closed = True
    store.close()
    store = engine.open(path)
    assert feed_of(store) == expected
    store.close()


def test_missing_newest_records_are_rebuilt_from_the_tiers(tmp_path):
    """Warm-first layouts have no commit log: the commit a kill caught between RocksDB's
    write and the feed's is rebuilt from the tiers on open."""
    path = tmp_path / "s"
    store = engine.open(path, layout="warm", changefeed=True)
    rng = random.Random(8)
    expected = dict(commit_random(store, rng, i) for i in range(30))
    store.close()
    seg = max((path / cf.FEED_DIR).glob("feed-*.log"))
    data = seg.read_bytes()
    ends = [end for _v, _p, end in feedlog.records(data, seg, feedlog.FEED_HEADER.size, len(data))]
    seg.write_bytes(data[:ends[-4]])  # versions 28..30 gone from the feed
    store = engine.open(path)
    assert store.recovery["changefeed"]["rebuilt"] == 3
    assert feed_of(store) == expected
    store.close()


def test_feed_ahead_of_the_store_is_cut_back(tmp_path):
    """Under "none" durability a crash may lose commits the feed already wrote: the feed is
    cut back to the recovered version, and the next commit continues it."""
    import shutil

    path, lost = tmp_path / "s", tmp_path / "lost"
    store = engine.open(path, changefeed=True)
    rng = random.Random(2)
    expected = dict(commit_random(store, rng, i) for i in range(20))
    store.close()
    shutil.copytree(path, lost)            # the store as a crash would leave it: version 20
    store = engine.open(path)
    for i in range(10):
        commit_random(store, rng, 100 + i)
    store.consumer("d").ack(5)
    store.consumer("c").ack(28)
    store.close()
    shutil.rmtree(lost / cf.FEED_DIR)
    shutil.copytree(path / cf.FEED_DIR, lost / cf.FEED_DIR)  # ... with a feed up to 30
    store = engine.open(lost)
    assert store.version == 20 and store.recovery["changefeed"]["dropped"] == 10
    assert feed_of(store, 5) == {v: w for v, w in expected.items() if v > 5}
    assert store.consumers() == {"c": 20, "d": 5}  # c must not skip the new commits 21..28
    v, w = commit_random(store, rng, 999)
    assert v == 21 and feed_of(store, 20) == {21: w}
    assert [c.version for c in store.consumer("c").changes()] == [21]
    store.close()


# -- CLI --------------------------------------------------------------------------------------


def test_cli_changes_prints_json_lines(tmp_path, capsys):
    path = tmp_path / "s"
    store = engine.open(path, changefeed=True)
    with store.begin() as tx:
        tx.set(A, b"k1", b"hello")
    with store.begin() as tx:
        tx.set(A, b"k2", b"\x00\xff")
        tx.remove(B, b"gone")
    store.close()
    assert cli_main(["changes", str(path), "--after", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert rec["version"] == 2 and isinstance(rec["time"], float)
    assert rec["writes"] == {"source:1": [{"key": "k2", "value": "0x00ff"}],
                             "operator:2": [{"key": "gone", "value": None}]}
    assert cli_main(["changes", str(path), "--table", "operator:2"]) == 0
    assert [json.loads(x)["version"] for x in capsys.readouterr().out.splitlines()] == [2]
    plain = tmp_path / "plain"
    engine.open(plain).close()
    assert cli_main(["changes", str(plain)]) == 2
    assert "ChangefeedDisabled" in capsys.readouterr().err


def test_erase_removes_the_key_from_the_feed(tmp_path, monkeypatch):
    monkeypatch.setattr(cf, "SEGMENT_BYTES", 512)
    monkeypatch.setattr(cf, "TAIL_RECORDS", 4)
    path = tmp_path / "s"
    store = engine.open(path, changefeed=True)
    secret = b"SECRET-VALUE-0123456789"
    for i in range(40):
        with store.begin() as tx:
            tx.set(A, b"k%d" % (i % 5), b"v%d" % i)
            if i % 3 == 0:
                tx.set(B, b"pii", secret + b"%d" % i)
    with store.begin() as tx:
        tx.set(B, b"pii", secret)  # the only row of version 41
    store.erase(B, b"pii")
    changes = list(store.changes())
    assert [c.version for c in changes] == list(range(1, 42))  # versions stay contiguous
    assert all(B not in c.writes for c in changes)
    assert changes[-1].writes == {}
    assert [c.version for c in store.changes(tables=[B])] == []
    with store.begin() as tx:
        tx.set(A, b"after", b"erase")
    assert next(iter(store.changes(41))).writes == {A: [(b"after", b"erase")]}
    store.compact()
    store.close()
    for f in (path / cf.FEED_DIR).iterdir():
        assert secret not in f.read_bytes(), f
    store = engine.open(path)
    assert len(list(store.changes())) == 42 and store.check()["changefeed"]["last"] == 42
    store.close()


def test_seal_makes_every_segment_immutable(tmp_path):
    """Backups hard-link feed segments after seal(): later commits must not change them."""
    path = tmp_path / "s"
    store = engine.open(path, changefeed=True)
    rng = random.Random(4)
    expected = dict(commit_random(store, rng, i) for i in range(20))
    store._feed.seal()
    before = {p.name: p.read_bytes() for p in (path / cf.FEED_DIR).glob("feed-*.log")}
    expected.update(commit_random(store, rng, 100 + i) for i in range(300))
    store.close()
    after = {p.name: p.read_bytes() for p in (path / cf.FEED_DIR).glob("feed-*.log")}
    assert all(after[name] == data for name, data in before.items())
    assert len(after) > len(before)
    store = engine.open(path)
    assert feed_of(store) == expected
    store.close()


@pytest.mark.parametrize("layout", ["warm", "hot+warm"])
def test_sync_durability_and_argument_checks(tmp_path, layout):
    path = tmp_path / "s"
    store = engine.open(path, layout=layout, durability="sync", changefeed=True)
    rng = random.Random(11)
    expected = dict(commit_random(store, rng, i) for i in range(25))
    assert [c.version for c in store.changes(20, tables=A)] == [
        v for v, w in sorted(expected.items()) if v > 20 and A in w]
    with pytest.raises(engine.InvalidKeyError):
        store.changes(tables=["source:1"])
    with pytest.raises(engine.InvalidKeyError):
        store.changes("0")
    with pytest.raises(ValueError):
        store.changes(timeout=-1)
    store.close()
    with pytest.raises(engine.ClosedError):
        store.changes()
    store = engine.open(path)
    assert feed_of(store) == expected
    store.close()


def test_torn_segment_header_after_rotation(tmp_path, monkeypatch):
    """A crash right after a new segment was created (its header torn) loses nothing."""
    monkeypatch.setattr(cf, "SEGMENT_BYTES", 256)
    path = tmp_path / "s"
    store = engine.open(path, layout="warm", changefeed=True)
    rng = random.Random(6)
    expected = dict(commit_random(store, rng, i) for i in range(12))
    store.close()
    segs = sorted((path / cf.FEED_DIR).glob("feed-*.log"))
    assert len(segs) > 2
    last_first = int(segs[-1].name[5:-4])
    segs[-1].unlink()
    (path / cf.FEED_DIR / segs[-1].name).write_bytes(b"TIERDB")  # a header cut short
    store = engine.open(path)
    assert store.recovery["changefeed"]["disk_last"] == last_first - 1
    assert feed_of(store) == expected  # the versions the dropped segment held are rebuilt
    store.close()


def test_feed_files_are_readable_while_another_process_has_the_store(tmp_path, capsys, monkeypatch):
    """`tierdb changes` on a store open elsewhere reads the files (no lock), and follows."""
    from engine.mvcc.feedreader import read_feed_files

    monkeypatch.setattr(cf, "SEGMENT_BYTES", 512)
    path = tmp_path / "s"
    store = engine.open(path, layout="warm", changefeed=True)  # written through: files current
    rng = random.Random(12)
    expected = dict(commit_random(store, rng, i) for i in range(30))
    assert {c.version: as_dict(c) for c in read_feed_files(path)} == expected
    assert [c.version for c in read_feed_files(path, 25)] == [26, 27, 28, 29, 30]
    got: list[int] = []
    t = threading.Thread(target=lambda: got.extend(
        c.version for c in read_feed_files(path, 30, wait=True, timeout=1.0)))
    t.start()
    more = dict(commit_random(store, rng, 100 + i) for i in range(20))
    t.join(30)
    assert got == sorted(more)
    store.erase(A, b"k01")  # segments rewritten (new inodes): a new reader sees the result
    assert all(b"k01" not in dict(c.writes.get(A, [])) for c in read_feed_files(path))
    assert cli_main(["changes", str(path), "--after", "45"]) == 0  # locked: read from files
    out = capsys.readouterr()
    assert [json.loads(x)["version"] for x in out.out.splitlines()] == [46, 47, 48, 49, 50]
    assert "another process" in out.err
    store.consumer("z").ack(40)
    with pytest.raises(ChangesTrimmed) as err:
        list(read_feed_files(path, 10))
    assert err.value.floor == 40
    store.close()
    with pytest.raises(ChangefeedDisabled):
        read_feed_files(tmp_path / "nothing")


@pytest.mark.parametrize("layout", ["hot+warm+cold", "warm"])
def test_a_version_jump_raises_the_floor(tmp_path, layout):
    """A replica that loads a snapshot applies a commit far above its version (jump): the
    feed cannot hold the versions in between, so its floor rises to just below the jump."""
    from engine.mvcc.feedreader import read_feed_files

    path = tmp_path / "s"
    store = engine.open(path, layout=layout, changefeed=True)
    rng = random.Random(13)
    for i in range(3):
        commit_random(store, rng, i)
    low = store.consumer("low")
    store._apply_replicated(10, time.time(), {A: [(b"x", b"y")]}, jump=True)
    v, w = commit_random(store, rng, 99)
    assert v == 11
    assert store.stats()["changefeed"]["floor"] == 9
    with pytest.raises(ChangesTrimmed) as err:
        list(low.changes())
    assert err.value.floor == 9
    assert feed_of(store, 9) == {10: {A: {b"x": b"y"}}, 11: w}
    store.close()
    store = engine.open(path)
    assert store.stats()["changefeed"]["floor"] == 9 and feed_of(store, 9)[11] == w
    assert store.check()["changefeed"]["last"] == 11
    store.close()
    assert [c.version for c in read_feed_files(path, 9)] == [10, 11]


@pytest.mark.parametrize("seed", [1, 2])
def test_random_operations_against_an_oracle(tmp_path, monkeypatch, seed):
    """Seeded random commits, flushes, demotions, GC, reopens, acks, consumer drops and
    erases; after every step the feed above its floor equals the oracle's commits, the floor
    never exceeds the lowest consumer, and store.check() passes."""
    monkeypatch.setattr(cf, "SEGMENT_BYTES", 1024)
    monkeypatch.setattr(cf, "TAIL_RECORDS", 8)
    rng = random.Random(seed)
    layout = rng.choice(["hot+warm+cold", "warm"])
    path = tmp_path / "s"
    store = engine.open(path, layout=layout, changefeed=True)
    oracle: dict[int, Writes] = {}
    positions: dict[str, int] = {}
    for step in range(120):
        op = rng.random()
        if op < 0.55:
            v, w = commit_random(store, rng, step)
            oracle[v] = w
        elif op < 0.62:
            store.flush()
        elif op < 0.66:
            store.demote()
        elif op < 0.70:
            store.gc()
        elif op < 0.75:
            store.close()
            store = engine.open(path)
        elif op < 0.87:
            name = rng.choice("abc")
            c = store.consumer(name)
            positions.setdefault(name, c.position)
            target = rng.randint(store.stats()["changefeed"]["floor"], store.version)
            c.ack(target)
            positions[name] = target
        elif op < 0.92 and positions:
            name = rng.choice(sorted(positions))
            assert store.drop_consumer(name)
            del positions[name]
        elif oracle:
            t, k = rng.choice(TABLES), b"k%02d" % rng.randrange(N_KEYS)
            store.erase(t, k)
            for w in oracle.values():
                w.get(t, {}).pop(k, None)
                if t in w and not w[t]:
                    del w[t]
        floor = store.stats()["changefeed"]["floor"]
        assert store.consumers() == positions
        if positions:
            assert floor <= min(positions.values())
        got = {c.version: as_dict(c) for c in store.changes(floor)}
        assert got == {v: w for v, w in oracle.items() if v > floor}, f"step {step}"
        store.check()
    store.close()
