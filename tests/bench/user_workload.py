"""A user workload for tests/bench: the documented ``workload(target, rec, params)`` shape."""

from __future__ import annotations

from typing import Any


def workload(target: Any, rec: Any, params: Any) -> None:
    sets = [(b"k%015d" % i, b"v%099d" % i) for i in range(params.batch)]
    with rec.timed("my commits/s", ops=20, unit="commits/s"):
        for _ in range(20):
            target.commit(sets)
    rec.check("my read", target.get_many([k for k, _ in sets]))
