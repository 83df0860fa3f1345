"""Run one workload on one target in this (fresh) process and print the result as JSON.

The runner starts ``python -m engine.bench.child`` once per (round, workload, target), so
every target starts from a clean heap: the RSS it adds is its own, not a previous target's
leftovers. The spec comes as JSON on stdin; the result is one JSON line on stdout.
``--quick`` runs all workloads of one target in one child (``{"batch": [...]}``): fewer
interpreter starts, and RSS added then counts growth since that workload's target opened.

RSS added: the peak-RSS mark is reset (Linux ``clear_refs``) and the RSS read just before
the target opens, which is the first time the workload touches it (after it generated its
input data, which stays alive to the end so freed input cannot hide the target's growth).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from .data import Params
from .record import Recorder, peak_rss_bytes, reset_peak_rss, rss_bytes

__all__ = ["TargetUnavailable", "load_workload", "main", "make_target", "run_spec"]


def make_target(name: str, path: Path, params: Params, knobs: dict[str, str] | None = None) -> Any:
    """Build target ``name``: ``tierdb:<layout>``, ``peer:<name>``, ``fsync-floor`` or
    ``<file.py>:<factory>`` (a user target: ``factory(path, params)`` returns a Target).

    ``params.extra["history_versions"]`` opens tierdb with that retention (history-heavy).
    """
    if name.startswith("tierdb:"):
        from .tierdb_target import TierdbTarget

        hv = params.extra.get("history_versions")
        return TierdbTarget(path, name[len("tierdb:"):], knobs=knobs, durability=params.durability,
                            history_versions=int(hv) if hv else None)
    if name.startswith("peer:"):
        from .peers import make_peer, unavailable

        peer = name[len("peer:"):]
        reason = unavailable(peer)
        if reason is not None:
            raise ImportError(reason)
        return make_peer(peer, path, sync=params.durability == "sync")
    if name == "fsync-floor":
        from .workloads import FsyncFloor

        return FsyncFloor(path, record_bytes=params.batch * (16 + params.value_size + 10))
    file, sep, factory = name.rpartition(":")
    if sep and file.endswith(".py"):
        mod = _load_file(Path(file), "tierdb_bench_user_target")
        return getattr(mod, factory)(path, params)
    raise ValueError(f"unknown target {name!r}: use tierdb:<layout>, peer:<name> or file.py:factory")


def _load_file(path: Path, modname: str) -> Any:
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_workload(name: str, workload_file: str | None = None) -> Any:
    """A built-in workload by name, or the ``workload`` function (or ``name``) of a file."""
    from .workloads import WORKLOADS

    if workload_file:
        mod = _load_file(Path(workload_file), "tierdb_bench_user_workload")
        fn = getattr(mod, name.replace("-", "_"), None) or getattr(mod, "workload", None)
        if fn is None:
            raise ValueError(f"{workload_file} defines no function {name!r} or 'workload'")
        return fn
    return WORKLOADS[name]


class TargetUnavailable(Exception):
    """The target's library is missing: the run is skipped, not failed."""


class _LazyTarget:
    """Opens the real target on first use, recording the RSS baseline just before."""

    def __init__(self, open_fn: Any, rec: Recorder) -> None:
        self._open_fn = open_fn
        self._rec = rec
        self._t: Any = None
        self._lock = threading.Lock()
        self.baseline = 0

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._t is None:
            with self._lock:
                if self._t is None:
                    reset_peak_rss()
                    self.baseline = rss_bytes()
                    t0 = time.perf_counter()
                    try:
                        self._t = self._open_fn()
                    except ImportError as e:  # a missing peer library; other ImportErrors fail
                        raise TargetUnavailable(str(e)) from e
                    self._rec.put("open s", time.perf_counter() - t0, "s")
        return getattr(self._t, name)


def run_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one spec (see the module docstring) and return the result dict."""
    params = Params.from_json(spec["params"])
    from .workloads import set_clock

    set_clock(params.clock)
    if spec["workload"] == "history-heavy":
        params.extra.setdefault("history_versions", 50)
    rec = Recorder()
    path = Path(spec["dir"])
    if spec["target"].startswith("peer:"):
        from .peers import unavailable

        unavailable(spec["target"][len("peer:"):])  # imports the library before the RSS baseline
    target = _LazyTarget(lambda: make_target(spec["target"], path, params, spec.get("knobs")), rec)
    fn = load_workload(spec["workload"], spec.get("workload_file"))
    result: dict[str, Any] = {"target": spec["target"], "workload": spec["workload"], "round": spec["round"]}
    t0 = time.perf_counter()
    try:
        fn(target, rec, params)
        if target._t is not None:
            peak = peak_rss_bytes()
            rec.put("RSS added MB", max(0, peak - target.baseline) / 1e6, "MB")
            try:
                target._t.close()
            except Exception as e:  # noqa: BLE001 - the figures stand; say why close failed
                rec.notes.append(f"close after the run failed: {type(e).__name__}: {e}")
        result["error"] = None
    except TargetUnavailable as e:
        result["error"] = f"skipped: {e}"
        result["skipped"] = True
    except Exception as e:  # noqa: BLE001 - one line to the runner, traceback to stderr
        traceback.print_exc(file=sys.stderr)
        result["error"] = f"{type(e).__name__}: {e}".splitlines()[0][:300]
    result["seconds"] = time.perf_counter() - t0
    result.update(rec.to_json())
    return result


def main() -> int:
    spec = json.loads(sys.stdin.read())
    # {"batch": [spec, ...]} runs several specs one after another in this process (--quick:
    # fewer interpreter starts; each spec still opens its own target in its own directory).
    result: Any = [run_spec(s) for s in spec["batch"]] if "batch" in spec else run_spec(spec)
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
