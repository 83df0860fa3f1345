"""The cold tier on an object store: a real S3 HTTP endpoint (moto's ThreadedMotoServer on
loopback, always stopped), memory:// and file://.

Covers: two writers racing to replace one manifest (exactly one wins, the loser gets
ManifestConflictError, nothing the winner references is lost); injected 503s (retried,
then a typed StorageIOError naming the object) through a tiny loopback proxy, including a
manifest put that reaches the server but whose answer is lost; the S3 server stopped
mid-demotion and a manifest put failing mid-compaction, then everything acknowledged
readable and ``check()`` clean after a restart; a cold start from a copy of warm with an
empty range cache; the range cache's byte budget and recovery from a damaged cache file.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import engine
from engine import EntryKind, ManifestConflictError, StorageIOError
from engine.tiers import ColdTier
from engine.types import RawEntry

T = EntryKind.source(3)
KEY = "tierdb-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Moto:
    """A ThreadedMotoServer on a free loopback port that can be stopped and restarted on the
    same port (moto keeps its buckets in process memory across restarts)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server: Any = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def bucket(self) -> str:
        import boto3

        name = "tdb-" + uuid.uuid4().hex[:12]
        boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=KEY,
                     aws_secret_access_key=KEY, region_name="us-east-1").create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    m = Moto()
    m.start()
    try:
        yield m
    finally:
        m.stop()


def s3_options(endpoint: str, **extra: Any) -> dict[str, Any]:
    return {"endpoint": endpoint, "access_key_id": KEY, "secret_access_key": KEY,
            "region": "us-east-1", "allow_http": True, "retry_backoff": 0.01, **extra}


class FaultProxy:
    """A loopback HTTP proxy in front of an S3 endpoint that can fail requests.

    ``fail(n, status=503, match=None, forward=False)``: the next ``n`` requests whose
    "METHOD path" matches ``match`` (a regex; None = all) get ``status`` with no body. With
    ``forward=True`` the request is forwarded first and only its answer is replaced (the
    server acted; the client never learns it).
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.lock = threading.Lock()
        self.rules: list[list[Any]] = []
        self.seen: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                what = f"{self.command} {self.path}"
                rule = proxy._take(what)
                if rule is not None and not rule[3]:
                    return self._reply(rule[1], {}, b"")
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
                try:
                    conn.request(self.command, self.path, body=body or None,
                                 headers={k: v for k, v in self.headers.items()})
                    resp = conn.getresponse()
                    data = resp.read()
                    headers = {k: v for k, v in resp.getheaders()
                               if k.lower() not in ("transfer-encoding", "connection", "content-length")}
                    status = resp.status
                finally:
                    conn.close()
                if rule is not None:
                    return self._reply(rule[1], {}, b"")
                self._reply(status, headers, data)

            def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, n: int, status: int = 503, match: str | None = None, forward: bool = False) -> None:
        with self.lock:
            self.rules.append([n, status, re.compile(match) if match else None, forward])

    def heal(self) -> None:
        with self.lock:
            self.rules.clear()

    def _take(self, what: str) -> list[Any] | None:
        with self.lock:
            self.seen.append(what)
            for r in self.rules:
                if r[0] > 0 and (r[2] is None or r[2].search(what)):
                    r[0] -= 1
                    return r
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(moto: Moto) -> Iterator[FaultProxy]:
    p = FaultProxy(moto.port)
    try:
        yield p
    finally:
        p.close()


def _url(kind: str, tmp_path: Path, moto: Moto | None = None) -> tuple[str, dict[str, Any]]:
    if kind == "memory":
        return "memory://objtest" + str(tmp_path).replace("/", "_"), {}
    if kind == "file":
        return f"file://{tmp_path}/bucket", {}
    assert moto is not None
    return f"s3://{moto.bucket()}/db", s3_options(moto.endpoint)


def _fill(s: engine.Store, n_commits: int, n_keys: int,
          before: dict[int, dict[bytes, bytes | None]] | None = None) -> dict[int, dict[bytes, bytes | None]]:
    """Commit, returning the full state after each version (the oracle), continuing from
    the newest state in ``before``."""
    states: dict[int, dict[bytes, bytes | None]] = {}
    cur: dict[bytes, bytes | None] = dict(before[max(before)]) if before else {}
    for i in range(s.version, s.version + n_commits):
        with s.begin() as tx:
            for j in range(5):
                k = b"key%04d" % ((i * 7 + j * 13) % n_keys)
                if (i + j) % 11 == 0:
                    tx.remove(T, k)
                    cur[k] = None
                else:
                    v = b"v%d-%d-" % (i, j) + b"x" * (i % 40)
                    tx.set(T, k, v)
                    cur[k] = v
        states[tx.version] = dict(cur)
    return states


def _verify(s: engine.Store, states: dict[int, dict[bytes, bytes | None]], every: int = 1) -> None:
    for v in sorted(states)[::every]:
        want = {k: val for k, val in states[v].items() if val is not None}
        assert dict(s.range(T, version=v)) == want, v
        for k, val in list(states[v].items())[::5]:
            assert s.get(T, k, version=v) == val, (v, k)


def _layout(url: str, **kw: Any) -> engine.Layout:
    kw.setdefault("demotion_age_versions", 0)
    return engine.Layout.parse("hot+warm+cold", cold_url=url, background=False, **kw)


# --- cold start --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "file", "s3"])
def test_cold_start_from_warm_copy_with_empty_cache(tmp_path, kind, request):
    moto = request.getfixturevalue("moto") if kind == "s3" else None
    url, opts = _url(kind, tmp_path, moto)
    a = tmp_path / "a"
    with engine.open(a, layout=_layout(url), storage_options=opts) as s:
        states = _fill(s, 60, 40)
        s.flush()
        s.demote()
        s.compact()
        states.update(_fill(s, 20, 40, states))  # a second band of history
        s.flush()
        s.demote()
        st = s.stats()["tiers"]["cold"]
        assert st["versions"] > 0 and st["segments"] >= 1 and st["objstore_puts"] >= 2
        assert not (a / "cold").exists()
        s.check()
    # "Another machine": a copy of everything but the cache, same cold_url.
    b = tmp_path / "b"
    shutil.copytree(a, b, ignore=shutil.ignore_patterns("cold-cache", "LOCK"))
    with engine.open(b, storage_options=opts) as s2:  # the layout and cold_url are remembered
        assert s2.layout.cold_url == url
        _verify(s2, states)
        cold = s2.stats()["tiers"]["cold"]
        assert cold["objstore_range_gets"] > 0 and cold["objstore_bytes_read"] > 0
        assert 0.0 <= cold["cache_hit_rate"] <= 1.0
        s2.check()
    # The credentials are never written down; the cold_url is.
    marker = (b / "TIERDB").read_bytes()
    assert url.encode() in marker and b"secret" not in marker and KEY.encode() not in marker


def test_reopen_with_another_cold_url_is_refused(tmp_path):
    url = "memory://objtest-refuse" + str(tmp_path).replace("/", "_")
    engine.open(tmp_path / "db", layout=_layout(url)).close()
    with pytest.raises(ValueError, match="cold_url"):
        engine.open(tmp_path / "db", layout=_layout(url + "-other"))
    with engine.open(tmp_path / "db") as s:  # remembered
        assert s.layout.cold_url == url
    engine.open(tmp_path / "local", layout=engine.Layout.parse("hot+warm+cold", background=False)).close()
    with pytest.raises(ValueError, match="cold_url"):
        engine.open(tmp_path / "local", layout=_layout(url))
    with pytest.raises(ValueError, match="scheme"):
        engine.Layout.parse("hot+warm+cold", cold_url="ftp://host/x")


def test_empty_or_rolled_back_bucket_is_refused_not_taken_as_empty(tmp_path):
    url = f"file://{tmp_path}/bucket"
    with engine.open(tmp_path / "db", layout=_layout(url)) as s:
        states = _fill(s, 20, 10)
        s.flush()
        s.demote()
        assert s.stats()["tiers"]["cold"]["versions"] > 0
    saved = (tmp_path / "bucket" / "MANIFEST").read_bytes()
    with engine.open(tmp_path / "db") as s:
        states.update(_fill(s, 20, 10, states))
        s.flush()
        s.demote()
    manifest = tmp_path / "bucket" / "MANIFEST"
    newest = manifest.read_bytes()
    manifest.write_bytes(saved)  # the bucket "rolled back" to an older manifest
    with pytest.raises(engine.CorruptionError, match="rolled back"):
        engine.open(tmp_path / "db")
    manifest.unlink()  # or the wrong (empty) bucket
    with pytest.raises(engine.CorruptionError, match="no manifest"):
        engine.open(tmp_path / "db")
    manifest.write_bytes(newest)
    with engine.open(tmp_path / "db") as s:
        _verify(s, states)
        s.check()


# --- racing writers ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "file", "s3"])
def test_two_writers_racing_for_the_manifest_exactly_one_wins(tmp_path, kind, request):
    moto = request.getfixturevalue("moto") if kind == "s3" else None
    url, opts = _url(kind, tmp_path, moto)
    with ColdTier(tmp_path / "c0", url=url, storage_options=opts) as t0:
        t0.set(1, {T: [(b"base", b"0")]})
    for round_ in range(3):
        tiers = [ColdTier(tmp_path / f"c{round_}-{i}", url=url, storage_options=opts) for i in range(2)]
        barrier = threading.Barrier(2)
        outcome: list[Any] = [None, None]

        def write(i: int, barrier: threading.Barrier = barrier, tiers: list[ColdTier] = tiers,
                  round_: int = round_, outcome: list[Any] = outcome) -> None:
            barrier.wait()
            try:
                tiers[i].write_entries({T: [RawEntry(b"w%d-%d" % (round_, i), 10 + round_, b"x")]})
                outcome[i] = "won"
            except ManifestConflictError as exc:
                outcome[i] = exc

        threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        for t in tiers:
            t.close()
        assert sorted(map(str, outcome)).count("won") == 1, outcome
        winner = outcome.index("won")
        with ColdTier(tmp_path / f"check{round_}", url=url, storage_options=opts) as t:
            t.check()
            assert t.get(T, b"base", 5) == b"0"
            assert t.get(T, b"w%d-%d" % (round_, winner), 100) == b"x"
            assert t.get(T, b"w%d-%d" % (round_, 1 - winner), 100) is None
            # the loser's upload was removed; only live objects remain
            names = {i.name for i in t._remote.client.list("seg/")}
            assert names == {f"seg/{s.file_no:012d}.seg" for s in t._state.segments}


def test_loser_keeps_failing_instead_of_overwriting(tmp_path):
    url = "memory://objtest-loser" + str(tmp_path).replace("/", "_")
    a = ColdTier(tmp_path / "a", url=url)
    b = ColdTier(tmp_path / "b", url=url)
    try:
        a.set(1, {T: [(b"k", b"a")]})
        with pytest.raises(ManifestConflictError):
            b.set(2, {T: [(b"k", b"b")]})
        with pytest.raises(ManifestConflictError):
            b.write_entries({T: [RawEntry(b"j", 1, b"b")]})
        with pytest.raises(ManifestConflictError):
            b.ensure_table(EntryKind.source(77))
        a.set(3, {T: [(b"k", b"a3")]})
        a.check()
        assert a.get_all_versions(T, b"k") == [(3, b"a3"), (1, b"a")]
    finally:
        a.close()
        b.close()


# --- faults ------------------------------------------------------------------------------


def test_injected_503s_are_retried_then_a_typed_error(tmp_path, moto, proxy):
    bucket = moto.bucket()
    url = f"s3://{bucket}/t"
    opts = s3_options(proxy.endpoint, retries=3)
    with ColdTier(tmp_path / "c", url=url, storage_options=opts, block_size=512) as t:
        proxy.fail(2)  # fewer than the retry bound: invisible to the caller
        t.set(1, {T: [(b"k%03d" % i, b"v1") for i in range(100)]})
        assert t.stats()["objstore_retries"] >= 2
        proxy.fail(100, match=r"^PUT .*/seg/")  # every segment upload fails
        with pytest.raises(StorageIOError, match=r"seg/\d{12}\.seg") as ei:
            t.set(2, {T: [(b"k000", b"v2")]})
        assert "4 attempts" in str(ei.value)
        proxy.heal()
        assert t.get(T, b"k000", 5) == b"v1"  # nothing half-written is referenced
        proxy.fail(100, status=500, match=r"^GET ")
        t._cache.clear()
        t._remote.ranges.drop_file(t._state.segments[0].file_no)
        with pytest.raises(StorageIOError, match=r"get_range 'seg/"):
            t.get(T, b"k050", 5)
        proxy.heal()
        assert t.get(T, b"k050", 5) == b"v1"
        t.set(3, {T: [(b"k000", b"v3")]})
        t.check()
    with ColdTier(tmp_path / "c2", url=url, storage_options=s3_options(moto.endpoint)) as t:
        t.check()
        assert t.get_all_versions(T, b"k000") == [(3, b"v3"), (1, b"v1")]


def test_missing_bucket_or_bad_credentials_is_a_typed_error(tmp_path, moto):
    url = "s3://no-such-bucket-tierdb/db"
    with pytest.raises(StorageIOError, match="no-such-bucket-tierdb"):
        ColdTier(tmp_path / "c", url=url, storage_options=s3_options(moto.endpoint))
    with pytest.raises(StorageIOError, match="no-such-bucket-tierdb"):
        engine.open(tmp_path / "db", layout=_layout(url), storage_options=s3_options(moto.endpoint))
    assert not (tmp_path / "db").exists() or not (tmp_path / "db" / "TIERDB").exists()


def test_manifest_put_answer_lost_counts_as_success(tmp_path, moto, proxy):
    """The manifest PUT reaches the server but the client sees 503: the retry's 412 is
    resolved by reading the manifest back (it holds our bytes), not reported as a race."""
    url = f"s3://{moto.bucket()}/t"
    opts = s3_options(proxy.endpoint)
    with ColdTier(tmp_path / "c", url=url, storage_options=opts) as t:
        t.set(1, {T: [(b"a", b"1")]})
        proxy.fail(1, match=r"^PUT .*/MANIFEST", forward=True)
        t.set(2, {T: [(b"a", b"2")]})
        t.check()
    with ColdTier(tmp_path / "c2", url=url, storage_options=s3_options(moto.endpoint)) as t:
        assert t.get_all_versions(T, b"a") == [(2, b"2"), (1, b"1")]


def test_manifest_put_failing_mid_compaction_then_recovery(tmp_path, moto, proxy):
    url = f"s3://{moto.bucket()}/t"
    opts = s3_options(proxy.endpoint, retries=2)
    with ColdTier(tmp_path / "c", url=url, storage_options=opts, compact_trigger=None) as t:
        for v in range(1, 7):
            t.set(v, {T: [(b"k%02d" % i, b"v%d" % v) for i in range(v, 30)]})
        t.drop({T: [(b"k10", 3)]})
        before = {(k, v): t.get(T, b"k%02d" % k, v) for k in range(30) for v in range(8)}
        # The merged output uploads, then every manifest PUT fails: the swap's fate is unknown.
        proxy.fail(100, match=r"^PUT .*/MANIFEST")
        with pytest.raises(StorageIOError):
            t.compact(full=True)
        assert {(k, v): t.get(T, b"k%02d" % k, v) for k in range(30) for v in range(8)} == before
        proxy.heal()
        t.compact(full=True)  # resolves the doubt (manifest unchanged), then compacts
        assert t.stats()["segments"] == 1
        t.check()
    with ColdTier(tmp_path / "c2", url=url, storage_options=s3_options(moto.endpoint)) as t:
        t.check()
        assert {(k, v): t.get(T, b"k%02d" % k, v) for k in range(30) for v in range(8)} == before
        live = {f"seg/{s.file_no:012d}.seg" for s in t._state.segments}
        assert {i.name for i in t._remote.client.list("seg/")} == live  # orphans swept


def test_s3_server_stopped_mid_demotion_and_mid_compaction(tmp_path):
    moto = Moto()
    moto.start()
    try:
        url = f"s3://{moto.bucket()}/db"
        opts = s3_options(moto.endpoint, retries=1, connect_timeout=2, timeout=5)
        path = tmp_path / "db"
        s = engine.open(path, layout=_layout(url), storage_options=opts)
        try:
            cold = next(t for t in s._tiers if t.name == "cold")
            states = {}
            for _ in range(3):
                states.update(_fill(s, 20, 20, states))
                s.flush()
                s.demote()
            states.update(_fill(s, 30, 20, states))
            s.flush()
            moto.stop()  # the server goes away with a demotion due
            with pytest.raises(StorageIOError):
                s.demote()
            _verify(s, states, every=3)  # warm still holds everything not demoted
            states.update(_fill(s, 5, 20, states))  # commits carry on meanwhile
            with pytest.raises(StorageIOError):
                cold.compact(full=True)  # three segments to merge
            moto.start()
            s.demote()
            assert cold.compact(full=True)["merged_segments"] == 4
            s.check()
            _verify(s, states, every=2)
        finally:
            s.close()
        shutil.rmtree(path / "cold-cache")
        with engine.open(path, storage_options=opts) as s:
            s.check()
            _verify(s, states)
    finally:
        moto.stop()


# --- the range cache ---------------------------------------------------------------------


def test_range_cache_budget_and_damaged_cache_file(tmp_path):
    url = "memory://objtest-cache" + str(tmp_path).replace("/", "_")
    budget = 64 * 1024
    with ColdTier(tmp_path / "c", url=url, block_size=1024, cache_bytes=0, cache_on_write=False,
                  disk_cache_bytes=budget, dictionary=False) as t:
        for v in range(1, 4):
            t.set(v, {T: [(b"key%05d" % i, os.urandom(8).hex().encode() * 8) for i in range(1500)]})
        for i in range(0, 1500, 3):
            assert t.get(T, b"key%05d" % i, 10) is not None
        st = t.stats()
        assert 0 < st["disk_cache_bytes"] <= budget and st["disk_cache_evictions"] > 0
        want = t.get(T, b"key00042", 10)
        requests = t.stats()["objstore_range_gets"]
        assert t.get(T, b"key00042", 10) == want  # cached: no new request
        assert t.stats()["objstore_range_gets"] == requests
        # Damage every cached range: reads refetch and stay right; check() is clean.
        for p in (tmp_path / "c").glob("*.rng"):
            data = bytearray(p.read_bytes())
            data[len(data) // 2] ^= 0xFF
            p.write_bytes(bytes(data))
        assert t.get(T, b"key00042", 10) == want
        t.check()
    with ColdTier(tmp_path / "c", url=url, disk_cache_bytes=budget) as t:  # reloads the cache
        assert t.stats()["disk_cache_bytes"] <= budget
        assert t.get(T, b"key00042", 10) == want


def test_cold_scan_reads_ahead_point_gets_fetch_single_blocks(tmp_path):
    from engine.types import Bound, RangeCursor

    url = "memory://objtest-readahead" + str(tmp_path).replace("/", "_")
    rows = [RawEntry(b"key%06d" % i, 1, os.urandom(20).hex().encode() * 3) for i in range(20_000)]
    with ColdTier(tmp_path / "w", url=url, block_size=1024, dictionary=False) as t:
        t.write_entries({T: rows})
        nblocks = len(t._state.segments[0].block_entries)
    with ColdTier(tmp_path / "r1", url=url, cache_on_write=False) as t:  # empty caches
        before = t.io_stats()["objstore_range_gets"]
        for i in (5, 9_000, 17_123):
            assert t.get(T, b"key%06d" % i, 1) == rows[i].value
        assert t.io_stats()["objstore_range_gets"] - before == 3  # one block each
    with ColdTier(tmp_path / "r2", url=url, cache_on_write=False) as t:
        before = t.io_stats()["objstore_range_gets"]
        cur, got = RangeCursor(), []
        while not cur.exhausted:
            got += t.range_next(T, cur, Bound.UNBOUNDED, Bound.UNBOUNDED, 5, 500).entries
        assert got == rows
        gets = t.io_stats()["objstore_range_gets"] - before
        assert nblocks > 500 and gets < nblocks / 20, (gets, nblocks)


def test_check_verifies_the_objects_not_the_cached_copies(tmp_path):
    url = f"file://{tmp_path}/bucket"
    with ColdTier(tmp_path / "c", url=url, block_size=512) as t:
        t.set(1, {T: [(b"k%04d" % i, b"value %d" % i) for i in range(2000)]})
        for i in range(0, 2000, 50):  # every block is in the range cache now
            assert t.get(T, b"k%04d" % i, 1) == b"value %d" % i
        t.check()
        seg = tmp_path / "bucket" / "seg" / f"{t._state.segments[0].file_no:012d}.seg"
        data = bytearray(seg.read_bytes())
        data[len(data) // 3] ^= 0x01  # inside a block, far from header and tail
        seg.write_bytes(bytes(data))
        assert t.get(T, b"k0100", 1) == b"value 100"  # served by the good cached copy
        with pytest.raises(engine.CorruptionError, match=r"seg/\d{12}\.seg"):
            t.check()


def test_cli_reaches_an_s3_archive_with_credentials_from_the_environment(tmp_path, moto):
    import subprocess

    url = f"s3://{moto.bucket()}/db"
    with engine.open(tmp_path / "db", layout=_layout(url), storage_options=s3_options(moto.endpoint)) as s:
        for i in range(5):
            with s.begin() as tx:
                tx.set(T, b"k", b"%d" % i)
        s.flush()
        s.demote()
        assert s.stats()["tiers"]["cold"]["versions"] == 4
    env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=KEY, AWS_REGION="us-east-1",
               AWS_ENDPOINT_URL_S3=moto.endpoint, AWS_ALLOW_HTTP="true")
    exe = Path(sys.executable).with_name("tierdb")
    r = subprocess.run([str(exe), "history", str(tmp_path / "db"), "k", "--table", str(T)],
                       capture_output=True, text=True, env=env, timeout=120, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert [line.split("\t")[-1] for line in r.stdout.splitlines()] == ["4", "3", "2", "1", "0"]
