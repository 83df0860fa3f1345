"""Built-in workloads. A workload is ``fn(target, rec, params) -> None``.

It drives a :class:`~engine.bench.peers.Target` (commit / get_many / scan / count / age ...),
times what it measures with ``rec.timed`` and hands every answer it got to ``rec.check`` so
the runner can compare it with the dict reference. Everything random comes from
``params.seed``, so every target sees the same operations.

A user workload is the same kind of function in a Python file, named ``workload`` (see
benches/README.md)::

    def workload(target, rec, params):
        sets = [(b"k%015d" % i, b"v" * params.value_size) for i in range(params.batch)]
        with rec.timed("my commits/s", ops=100):
            for _ in range(100):
                target.commit(sets)
        rec.check("my read", target.get_many([k for k, _ in sets]))

Notes: thread safety - a workload runs in one process and owns its target; ``sync`` starts
its own committing threads.
"""

from __future__ import annotations

from .basic import load, scan_workload
from .common import Workload, set_clock
from .graph import graph_checkpoints
from .history import history_heavy, time_travel
from .issue10 import FsyncFloor, aged, build_load, sync_commits
from .ycsb import ycsb

__all__ = [
    "PRIMARY", "WORKLOADS", "FsyncFloor", "Workload", "aged", "build_load", "graph_checkpoints", "history_heavy",
    "load", "scan_workload", "set_clock", "sync_commits", "time_travel",
]

WORKLOADS: dict[str, Workload] = {
    "aged": aged,
    "sync": sync_commits,
    "load": load,
    "ycsb-a": ycsb("ycsb-a"),
    "ycsb-b": ycsb("ycsb-b"),
    "ycsb-c": ycsb("ycsb-c"),
    "ycsb-e": ycsb("ycsb-e"),
    "ycsb-f": ycsb("ycsb-f"),
    "time-travel": time_travel,
    "history-heavy": history_heavy,
    "graph-checkpoints": graph_checkpoints,
    "scan": scan_workload,
}

# The figure each workload is ranked by in plots and the summary table.
PRIMARY: dict[str, str] = {
    "aged": "get old/s", "sync": "sync commits/s", "load": "load writes/s",
    "ycsb-a": "ops/s", "ycsb-b": "ops/s", "ycsb-c": "ops/s", "ycsb-e": "ops/s", "ycsb-f": "ops/s",
    "time-travel": "get past/s", "history-heavy": "get pinned/s",
    "graph-checkpoints": "restores/s", "scan": "full scan rows/s",
}
