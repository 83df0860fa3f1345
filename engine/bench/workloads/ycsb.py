"""The YCSB core mixes A, B, C, E and F over zipfian keys."""

from __future__ import annotations

import random
import time
from typing import Any

from ..data import Params, ValueMaker, key_of
from ..record import Recorder
from .common import (
    Workload,
    now,
    preload,
)

__all__ = ['YCSB_MIXES', 'ycsb']


YCSB_MIXES = {  # read, update, scan, insert, read-modify-write proportions (the YCSB core workloads)
    "ycsb-a": (0.50, 0.50, 0.0, 0.0, 0.0),
    "ycsb-b": (0.95, 0.05, 0.0, 0.0, 0.0),
    "ycsb-c": (1.00, 0.0, 0.0, 0.0, 0.0),
    "ycsb-e": (0.0, 0.0, 0.95, 0.05, 0.0),
    "ycsb-f": (0.50, 0.0, 0.0, 0.0, 0.50),
}


def ycsb(mix: str) -> Workload:
    read_p, update_p, scan_p, insert_p, rmw_p = YCSB_MIXES[mix]

    def run(target: Any, rec: Recorder, params: Params) -> None:
        from ..data import zipfian_sampler

        preload(target, params, None, rec)
        target.age()
        n = params.keys
        rng = random.Random(params.seed + 10)
        draw = zipfian_sampler(n, 0.99, rng)
        value = ValueMaker(params.value_size, params.seed + 11)
        kinds: list[tuple[str, bytes, Any]] = []
        c1, c2, c3, c4 = read_p, read_p + update_p, read_p + update_p + scan_p, read_p + update_p + scan_p + insert_p
        inserted = n
        for _ in range(params.ops):
            u = rng.random()
            if u < c1:
                kinds.append(("read", key_of(draw()), None))
            elif u < c2:
                kinds.append(("update", key_of(draw()), value()))
            elif u < c3:
                kinds.append(("scan", key_of(draw()), rng.randint(1, 100)))
            elif u < c4:
                kinds.append(("insert", key_of(inserted), value()))
                inserted += 1
            else:
                kinds.append(("rmw", key_of(draw()), value()))
        get, commit, scan = target.get, target.commit, target.scan
        clock = time.perf_counter_ns
        lat: dict[str, list[int]] = {"read": [], "update": [], "scan": [], "insert": [], "rmw": []}
        answers: list[Any] = []
        t0 = now()
        for kind, k, arg in kinds:
            c0 = clock()
            if kind == "read":
                answers.append(get(k, None))
            elif kind == "scan":
                answers.append(scan(k, arg, None))
            elif kind == "rmw":
                old = get(k, None)
                commit([(k, arg if old is None else arg[: len(arg) // 2] + old[len(arg) // 2:])], ())
                answers.append(old)
            else:
                commit([(k, arg)], ())
            lat[kind].append(clock() - c0)
        rec.rate("ops/s", len(kinds), now() - t0, "ops/s")
        for kind, xs in lat.items():
            if xs:
                rec.latencies(kind, xs)
        rec.check(f"{mix} answers", answers)
        probe = [key_of(i) for i in range(0, n, max(1, n // 500))]
        # named by the op count: a run with fewer ops (a slow peer's) ends in another state
        rec.check(f"state after {len(kinds)} ops", target.get_many(probe, None))

    run.__doc__ = (f"YCSB {mix[-1].upper()}: zipfian (0.99) keys over a preloaded store; reads "
                   f"{read_p:.0%}, updates {update_p:.0%}, short scans {scan_p:.0%}, inserts "
                   f"{insert_p:.0%}, read-modify-writes {rmw_p:.0%}; one commit per write.")
    return run
