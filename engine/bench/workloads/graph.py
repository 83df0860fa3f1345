"""``graph-checkpoints``: the reference ``Graph`` checkpointed per wave, restored at old versions."""

from __future__ import annotations

import random
import time
from typing import Any

from ..data import Params
from ..record import Recorder
from .common import (
    now,
)

__all__ = ['graph_checkpoints']


def graph_checkpoints(target: Any, rec: Recorder, params: Params) -> None:
    """Waves of the reference ``Graph`` checkpointed, then restores at random old versions.

    A graph of ``keys // 10`` state nodes (10..200); each wave sets 10 seeded nodes in one
    ``graph.batch()`` (``keys // 20`` waves, 10..1000). tierdb checkpoints through ``engine.views``
    (``graph_storage`` + ``attach_snapshot_storage``: one commit per wave, a baseline every
    10 emissions, WAL frames between) and restores with ``restore_snapshot(version=v)``.
    A peer stores each node's canonical JSON under ``g/<node>`` (one commit per wave) and
    restores by a range read at ``v``. The restored values of every target are compared.
    """
    import json

    from ...views import (
        Graph,
        RestoreOptions,
        attach_snapshot_storage,
        graph_storage,
        restore_snapshot,
    )

    if not target.versioned:
        rec.notes.append("graph-checkpoints restores old versions; this target keeps only the latest")
        return
    nodes = [f"n{i:05d}" for i in range(max(10, min(200, params.keys // 10)))]
    waves = max(10, min(1000, params.keys // 20))
    rng = random.Random(params.seed + 40)
    plan = [[(rng.choice(nodes), rng.randrange(1_000_000)) for _ in range(10)] for _ in range(waves)]

    def fresh() -> Any:
        g = Graph("g")
        for name in nodes:
            g.state(name, 0)
        return g

    graph = fresh()
    tier = target.name.startswith("tierdb:")
    versions: list[int] = []
    if tier:
        store = target.store
        snap, wal = graph_storage(store, "g")
        handle = attach_snapshot_storage(graph, [(snap, wal)])
        t0 = now()
        for wave in plan:
            with graph.batch():
                for name, v in wave:
                    graph.set(name, v)
            versions.append(int(store.version))
        elapsed = now() - t0
        handle.dispose()
    else:
        t0 = now()
        for wave in plan:
            with graph.batch():
                for name, v in wave:
                    graph.set(name, v)
            changed = {name: graph.get(name) for name, _ in wave}
            versions.append(target.commit([(b"g/" + k.encode(), json.dumps(val, separators=(",", ":")).encode())
                                           for k, val in sorted(changed.items())], ()))
        elapsed = now() - t0
    rec.rate("checkpoint waves/s", waves, elapsed, "waves/s")
    target.age()
    picks = [rng.randrange(waves) for _ in range(max(5, min(params.scans, 50)))]
    restored = []
    clock = time.perf_counter_ns
    lat = []
    t0 = now()
    for w in picks:
        c0 = clock()
        past = fresh()
        if tier:
            restore_snapshot(past, snap, wal, RestoreOptions(version=versions[w]))
            vals = past.values()
        else:
            vals = {n: 0 for n in nodes}
            for k, v in target.scan(b"g/", len(nodes), versions[w]):
                vals[k[2:].decode()] = json.loads(v)
        lat.append(clock() - c0)
        restored.append(json.dumps(vals, sort_keys=True).encode())
    rec.rate("restores/s", len(picks), now() - t0, "restores/s")
    rec.latencies("restore", lat)
    rec.check("restored graphs", restored)
