"""Run workloads x targets in interleaved rounds, each run in a fresh child process.

Round r runs every workload on every target (the target order rotated by r so machine drift
and cache warmth hit all targets alike). Every run's answer digests are compared with the
dict reference's of the same round; a target whose answers differ is WRONG and gets no
figures. Figures are the median over rounds with their spread ((max - min) / median).

Notes: thread safety - a runner call is single-threaded; children run one at a time (this
is a benchmark: two at once would measure each other).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import Params

__all__ = ["REFERENCE", "Cell", "aggregate", "run_child", "run_matrix"]

REFERENCE = "peer:dict"
ProgressFn = Callable[[str], None]


@dataclass
class Cell:
    """One (workload, target) pair over all rounds."""

    workload: str
    target: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    status: str = "ok"          # ok | WRONG | failed | skipped | unverified
    reason: str = ""
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency_us: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def has_figures(self) -> bool:
        return self.status in ("ok", "unverified") and bool(self.figures)

    def median(self, name: str) -> float | None:
        f = self.figures.get(name)
        return None if f is None else float(f["median"])

    def to_json(self) -> dict[str, Any]:
        return {"workload": self.workload, "target": self.target, "status": self.status,
                "reason": self.reason, "figures": self.figures if self.has_figures else {},
                "latency_us": self.latency_us if self.has_figures else {},
                "notes": self.notes,
                "runs": self.runs if self.has_figures else
                [{"round": r.get("round"), "error": r.get("error"), "checks": r.get("checks", {})}
                 for r in self.runs]}


def run_child(spec: dict[str, Any], timeout: float = 3600.0) -> Any:
    """Run one spec (or ``{"batch": [...]}``) in ``python -m engine.bench.child``; a crash
    becomes an error result (one per spec of a batch)."""
    if "batch" in spec:
        got = _run_child(spec, timeout)
        if isinstance(got, list):
            return got
        return [dict(s_, error=got.get("error"), stderr=got.get("stderr", ""), target=s_["target"],
                     workload=s_["workload"], round=s_["round"]) for s_ in spec["batch"]]
    return _run_child(spec, timeout)


def _run_child(spec: dict[str, Any], timeout: float) -> Any:
    env = dict(os.environ)
    pkg_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        proc = subprocess.run([sys.executable, "-m", "engine.bench.child"], input=json.dumps(spec),
                              capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        return {"target": spec.get("target"), "workload": spec.get("workload"), "round": spec.get("round"),
                "error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(("{", "["))]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"target": spec.get("target"), "workload": spec.get("workload"), "round": spec.get("round"),
                "error": f"child exited {proc.returncode}: {tail[:300]}", "stderr": proc.stderr[-4000:]}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(("{", "["))]
    return json.loads(lines[-1])


def _spread(values: Sequence[float]) -> float:
    med = statistics.median(values)
    return (max(values) - min(values)) / med if med else 0.0


def aggregate(cell: Cell) -> None:
    """Medians and spreads of the cell's successful runs (in place)."""
    runs = [r for r in cell.runs if not r.get("error")]
    names: list[str] = []
    for r in runs:
        names += [n for n in r.get("figures", {}) if n not in names]
    for n in names:
        vals = [r["figures"][n] for r in runs if n in r.get("figures", {})]
        unit = next(r["units"][n] for r in runs if n in r.get("units", {}))
        cell.figures[n] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
                           "spread": _spread(vals), "unit": unit, "values": vals}
    ops: list[str] = []
    for r in runs:
        ops += [o for o in r.get("latency_us", {}) if o not in ops]
    for o in ops:
        ls = [r["latency_us"][o] for r in runs if o in r.get("latency_us", {})]
        cell.latency_us[o] = {q: statistics.median(x[q] for x in ls) for q in ("p50", "p99")}
    for r in runs:
        cell.notes += [n for n in r.get("notes", []) if n not in cell.notes]
    rates = [n for n, f in cell.figures.items() if f["unit"].endswith("/s")]
    if runs and not rates and cell.notes and cell.status in ("ok", "unverified"):
        # the workload declined this target (e.g. time travel on an unversioned store)
        cell.status, cell.reason = "n/a", "; ".join(cell.notes)
        cell.figures, cell.latency_us = {}, {}


def _verify(cell: Cell, ref_runs: dict[int, dict[str, Any]]) -> None:
    """Mark ``cell`` WRONG when any run's answers differ from the reference's of its round."""
    bad: list[str] = []
    checked = 0
    for r in cell.runs:
        if r.get("error"):
            continue
        ref = ref_runs.get(r["round"])
        if ref is None or ref.get("error"):
            continue
        for name, d in r.get("checks", {}).items():
            want = ref.get("checks", {}).get(name)
            if want is None:
                continue  # a check the reference does not make (e.g. a target-specific probe)
            checked += 1
            if want != d and name not in bad:
                bad.append(name)
    if bad:
        cell.status = "WRONG"
        cell.reason = "answers differ from the dict reference: " + ", ".join(bad)
    elif checked == 0 and cell.status == "ok":
        cell.status = "unverified"
        cell.reason = "no answers to compare (the workload reads nothing, or no reference ran)"


def run_matrix(targets: Sequence[str], workloads: Sequence[str], params: Params, rounds: int, *,
               knobs: dict[str, str] | None = None, workload_file: str | None = None,
               reference: bool = True, progress: ProgressFn | None = None,
               workdir: Path | None = None, keep_data: bool = False,
               params_for: Callable[[str, str], Params] | None = None, group: bool = False) -> list[Cell]:
    """Run every workload on every target for ``rounds`` interleaved rounds.

    ``reference`` adds the dict reference (:data:`REFERENCE`) when it is not among
    ``targets`` and verifies every target against it. ``params_for(workload, target)`` may
    adjust parameters per run (e.g. fewer operations for a very slow peer). ``group`` runs
    all workloads of a target in one child per round (fewer interpreter starts).
    """
    tlist = list(dict.fromkeys(targets))
    if reference and REFERENCE not in tlist:
        tlist.append(REFERENCE)
    cells = {(w, t): Cell(w, t) for w in workloads for t in tlist}
    root = Path(tempfile.mkdtemp(prefix="tierdb-bench-", dir=workdir))

    def spec_of(rnd: int, w: str, t: str) -> dict[str, Any]:
        p = params_for(w, t) if params_for else params
        p = Params.from_json(p.to_json())
        p.verify_full = rnd == 0
        d = root / f"r{rnd}-{w}-{t}".replace(":", "_").replace("+", "_").replace("/", "_")
        return {"target": t, "workload": w, "round": rnd, "params": p.to_json(),
                "knobs": knobs or {}, "dir": str(d), "workload_file": workload_file}

    def record(res: dict[str, Any], rnd: int) -> None:
        cell = cells[(res["workload"], res["target"])]
        cell.runs.append(res)
        if res.get("skipped"):
            cell.status, cell.reason = "skipped", str(res["error"]).removeprefix("skipped: ")
        elif res.get("error") and cell.status == "ok":
            cell.status, cell.reason = "failed", f"round {rnd + 1}: {res['error']}"

    try:
        for rnd in range(rounds):
            order = tlist[rnd % len(tlist):] + tlist[: rnd % len(tlist)]
            if group:
                for t in order:
                    specs = [spec_of(rnd, w, t) for w in workloads if cells[(w, t)].status != "skipped"]
                    if not specs:
                        continue
                    if progress:
                        progress(f"round {rnd + 1}/{rounds} {t}")
                    for res in run_child({"batch": specs}):
                        record(res, rnd)
                    for sp in specs:
                        if not keep_data:
                            shutil.rmtree(sp["dir"], ignore_errors=True)
                continue
            for w in workloads:
                for t in order:
                    if cells[(w, t)].status == "skipped":
                        continue
                    spec = spec_of(rnd, w, t)
                    if progress:
                        progress(f"round {rnd + 1}/{rounds} {w} {t}")
                    res = run_child(spec)
                    if not keep_data:
                        shutil.rmtree(spec["dir"], ignore_errors=True)
                    record(res, rnd)
    finally:
        if not keep_data:
            shutil.rmtree(root, ignore_errors=True)
    for w in workloads:
        ref_runs = {r["round"]: r for r in cells[(w, REFERENCE)].runs} if (w, REFERENCE) in cells else {}
        for t in tlist:
            cell = cells[(w, t)]
            if cell.status in ("skipped", "failed"):
                continue
            if t != REFERENCE:
                _verify(cell, ref_runs)
            aggregate(cell)
    return list(cells.values())
