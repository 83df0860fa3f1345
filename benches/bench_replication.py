"""Replication figures on a 3-node loopback JetStream cluster (issue 14).

Run: ``.venv/bin/python benches/bench_replication.py [--commits N] [--rounds R] [--threads 1 8] [--out results.json]``

1. Commit throughput, interleaved rounds in one run, with 1 and with 8 committing threads:
   local durability "sync" (fsync per commit, grouped across threads; no replication),
   ack="sync" (R3, local durability "normal"; grouped across threads: one quorum round
   trip per group), ack="async" (R3). Reported as commits/s and as ratios to local "sync".
2. Replication lag under a steady load: a replica in a child process notes, for every
   version it sees, now - the version's commit time; p50/p99.
3. Failover: a primary (child process, ack="sync") and one NATS node are killed with
   SIGKILL mid-load; time from the kill to the first commit on the promoted replica, and
   the acknowledged commits missing there (must be 0).

Numbers on a shared 2-core machine are noisy: read the ratios, not the absolute rates.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import engine  # noqa: E402
from engine import EntryKind  # noqa: E402

T = EntryKind.source(1)
LAG_CHILD = r"""
import sys, time, json, engine
path, servers, stream, out, n = sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[4], int(sys.argv[5])
r = engine.open_replica(path, servers=servers, stream=stream, layout="hot+warm")
print("READY", flush=True)
lags, seen = [], r.version
while seen < n:
    v = r.version
    if v != seen:
        now = time.time()
        for x in range(seen + 1, v + 1):
            t = r.commit_time(x)
            if t is not None:
                lags.append(now - t)
        seen = v
    else:
        time.sleep(0.0002)
r.close()
json.dump(lags, open(out, "w"))
"""


def start_cluster(root: Path) -> object:
    from kv.conftest import ClusterNode, free_port, nats_binary
    from replication.conftest import Cluster, _wait_for_jetstream
    binary, why = nats_binary()
    if binary is None:
        raise SystemExit(why)
    clients = [free_port() for _ in range(3)]
    routes = [free_port() for _ in range(3)]
    nodes = [ClusterNode(binary, root, i + 1, clients[i], routes) for i in range(3)]
    for n in nodes:
        n.start()
    c = Cluster(nodes)
    _wait_for_jetstream(c)
    return c


def one_commit(store: engine.Store, i: int) -> None:
    with store.begin() as tx:
        tx.set(T, b"k%06d" % (i % 5000), b"v%d-" % i + b"x" * 100)


def throughput(cluster: object, root: Path, mode: str, n: int, threads: int = 1) -> float:
    """Commits/s of ``n`` one-write commits spread over ``threads`` committing threads."""
    path = root / f"tp-{mode}-{uuid.uuid4().hex[:6]}"
    stream = f"tp{uuid.uuid4().hex[:8]}"
    store = engine.open(path, layout="hot+warm", durability="sync" if mode == "local-sync" else "normal")
    try:
        if mode.startswith("ack-"):
            store.replicate(cluster.urls, stream, replicas=3, ack=mode[4:])  # type: ignore[attr-defined]
        for i in range(50):  # warm-up
            one_commit(store, i)
        per = n // threads

        def work(t: int) -> None:
            for i in range(per):
                one_commit(store, t * per + i)
        pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        t0 = time.perf_counter()
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        if mode == "ack-async":
            store._replication.flush(120)   # count until the stream acknowledged everything
        return per * threads / (time.perf_counter() - t0)
    finally:
        store.close()
        shutil.rmtree(path, ignore_errors=True)


def lag_run(cluster: object, root: Path, ack: str, rate: float, seconds: float) -> dict[str, float]:
    stream = f"lag{uuid.uuid4().hex[:8]}"
    p = engine.open(root / f"lag-p-{stream}", layout="hot+warm")
    p.replicate(cluster.urls, stream, replicas=3, ack=ack)  # type: ignore[attr-defined]
    n = int(rate * seconds)
    out = root / f"lag-{stream}.json"
    child = subprocess.Popen([sys.executable, "-c", LAG_CHILD, str(root / f"lag-r-{stream}"),
                              ",".join(cluster.urls), stream, str(out), str(n)],  # type: ignore[attr-defined]
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "READY"
        t0 = time.perf_counter()
        for i in range(n):
            one_commit(p, i)
            delay = t0 + (i + 1) / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        child.wait(120)
        lags = sorted(json.loads(out.read_text()))
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        p.close()
    q = statistics.quantiles(lags, n=100)
    return {"commits": n, "rate_per_s": rate, "p50_ms": q[49] * 1e3, "p99_ms": q[98] * 1e3,
            "max_ms": lags[-1] * 1e3}


def failover_run(cluster: object, root: Path, which: int, auto: float | None = None) -> dict[str, float]:
    """Kill -9 the primary (a child committing from 4 threads) and one NATS node; then
    promote a replica: by hand at once (``auto`` None), or let the replica detect it
    through the primary lease (``auto`` = the lease period, seconds)."""
    stream = f"fo{uuid.uuid4().hex[:8]}"
    log = root / f"{stream}.log"
    extra = [] if auto is None else ["4", str(auto)]
    child = subprocess.Popen([sys.executable, str(ROOT / "tests/replication/primary_child.py"),
                              str(root / f"{stream}-p"), ",".join(cluster.urls), stream, str(log),  # type: ignore[attr-defined]
                              *extra],
                             stdout=subprocess.DEVNULL, stderr=open(root / f"{stream}.err", "wb"))
    r = None
    try:
        while not (log.exists() and b"READY" in log.read_bytes()):
            if child.poll() is not None:
                raise RuntimeError(f"the primary child exited with {child.returncode}: "
                                   f"{(root / f'{stream}.err').read_text()[-2000:]}")
            time.sleep(0.05)
        r = engine.open_replica(root / f"{stream}-r", servers=cluster.urls, stream=stream,  # type: ignore[attr-defined]
                                auto_promote=auto)
        time.sleep(1.5)
        victim = cluster.nodes[which % 3]  # type: ignore[attr-defined]
        link = r._follower.link

        async def who() -> tuple[str, str]:
            info = await link.js.stream_info(stream)
            return str(info.cluster.leader), str(link.conn._nc.connected_url.netloc)
        leader, connected = link.run(who(), "who leads")
        t0 = time.perf_counter()
        child.send_signal(signal.SIGKILL)
        cluster.nodes[which % 3].kill()  # type: ignore[attr-defined]
        child.wait()
        if auto is None:
            r.promote(timeout=60)
        else:
            while r._read_only is not None:   # the replica promotes itself
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError("no automatic promotion within 60 s")
                time.sleep(0.005)
        t_promoted = time.perf_counter()
        with r.begin() as tx:
            tx.set(T, b"first", b"after failover")
        t1 = time.perf_counter()
        acked = {}
        for line in log.read_text().splitlines():
            a = line.split()
            if len(a) == 2 and a[0].isdigit():
                acked[int(a[0])] = int(a[1])
        lost = sum(1 for v, c in acked.items()
                   if r.get(T, b"k%d" % (c % 50), version=v) != b"v%d" % c)
        return {"acked_commits": len(acked), "acked_lost": lost,
                "killed_stream_leader": leader == f"n{victim.i}",
                "killed_replicas_server": connected.endswith(f":{victim.client}"),
                "kill_to_promoted_s": t_promoted - t0, "kill_to_first_commit_s": t1 - t0}
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if r is not None:
            r.close()
        cluster.heal()  # type: ignore[attr-defined]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commits", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 8],
                    help="committing threads per throughput run (one run per value)")
    ap.add_argument("--lag-rate", type=float, default=200.0)
    ap.add_argument("--lag-seconds", type=float, default=10.0)
    ap.add_argument("--failovers", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tierdb-bench-repl-"))
    cluster = start_cluster(root)
    res: dict[str, object] = {}
    try:
        modes = ["local-sync", "ack-sync", "ack-async", "local-normal"]
        for threads in args.threads:
            rates: dict[str, list[float]] = {m: [] for m in modes}
            for rnd in range(args.rounds):
                for m in (modes if rnd % 2 == 0 else modes[::-1]):   # interleaved
                    rates[m].append(throughput(cluster, root, m, args.commits, threads))
                    print(f"threads {threads} round {rnd} {m:13s} {rates[m][-1]:9.0f} commits/s",
                          flush=True)
            med = {m: statistics.median(v) for m, v in rates.items()}
            res[f"throughput_commits_per_s_{threads}_threads"] = med
            res[f"throughput_ratio_to_local_sync_{threads}_threads"] = {
                m: med[m] / med["local-sync"] for m in modes}
        res["lag"] = {ack: lag_run(cluster, root, ack, args.lag_rate, args.lag_seconds)
                      for ack in ("sync", "async")}
        res["failover"] = [failover_run(cluster, root, i) for i in range(args.failovers)]
        res["failover_automatic_lease_1s"] = [failover_run(cluster, root, i, auto=1.0)
                                              for i in range(args.failovers)]
    finally:
        for n in cluster.nodes:  # type: ignore[attr-defined]
            n.kill()
        shutil.rmtree(root, ignore_errors=True)
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
