"""Write a run's results.json and report.md (and call the plots).

results.json holds every figure of every round, the exact command, seeds and parameters,
library versions and machine facts; report.md holds the tables (medians ± half-spread,
ratios against the baseline target, p50/p99 latencies) and links the plots.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .report import figure_table, fmt_value, ratio, status_lines, table
from .runner import Cell
from .workloads import PRIMARY

if TYPE_CHECKING:
    from .api import BenchResult

__all__ = ["library_versions", "machine_facts", "report_md", "results_json", "summary_text", "write_all"]

RESULTS_FORMAT = 1


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for dist in ("tierdb", "rocksdict", "lmdb", "slatedb", "zstandard", "numpy", "sortedcontainers",
                 "matplotlib", "tqdm"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def machine_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(),
                             "cpus": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                facts["memory_mb"] = int(line.split()[1]) // 1024
                break
    except OSError:
        pass
    return facts


def results_json(result: BenchResult) -> dict[str, Any]:
    cfg = result.config
    return {
        "format": RESULTS_FORMAT,
        "command": result.command,
        "started": result.started,
        "seconds": round(result.seconds, 1),
        "config": {"workloads": cfg.workloads, "layouts": cfg.layouts, "knobs": cfg.knobs, "peers": cfg.peers,
                   "targets": cfg.targets, "keys": cfg.keys, "value_size": cfg.value_size,
                   "rounds": cfg.rounds, "ops": cfg.ops, "durability": cfg.durability,
                   "workload_file": cfg.workload_file, "quick": cfg.quick, "extra": cfg.extra},
        "seeds": {"seed": cfg.seed},
        "params": {str(n): cfg.params(n).to_json() for n in cfg.keys},
        "baseline": cfg.chosen_baseline(),
        "skipped": result.skipped,
        "versions": library_versions(),
        "machine": machine_facts(),
        "results": [dict(c.to_json(), keys=n) for n, cells in result.cells.items() for c in cells],
    }


def _figure_names(cells: list[Cell]) -> list[str]:
    names: list[str] = []
    for c in cells:
        if c.has_figures:
            names += [n for n in c.figures if n not in names and n != "open s"]
    return names


def _by_workload(cells: list[Cell]) -> dict[str, list[Cell]]:
    out: dict[str, list[Cell]] = {}
    for c in cells:
        out.setdefault(c.workload, []).append(c)
    return out


def summary_rows(cells: list[Cell], baseline: str) -> tuple[list[str], list[list[str]]]:
    """One row per (workload, target): the workload's primary figure and the ratio to baseline."""
    rows = []
    for w, cs in _by_workload(cells).items():
        fig = PRIMARY.get(w)
        base = next((c for c in cs if c.target == baseline), None)
        for c in cs:
            name = fig if fig in c.figures else next(iter(c.figures), None)
            if not c.has_figures or name is None:
                rows.append([w, c.target, "", c.status.upper(), "", ""])
                continue
            f = c.figures[name]
            r = ratio(c, base, name) if base is not None else None
            spread = f" ±{100 * f['spread'] / 2:.0f}%" if len(f["values"]) > 1 else ""
            op, lat = next(iter(c.latency_us.items()), ("", None))
            rows.append([w, c.target, name, fmt_value(f["median"], f["unit"]) + spread,
                         "-" if r is None else f"{r:.2f}x",
                         "" if lat is None else f"{op} {lat['p50']:.0f} / {lat['p99']:.0f}"])
    return ["workload", "target", "figure", "median", f"vs {baseline}", "op p50 / p99 us"], rows


def peer_ratio_rows(cells: list[Cell]) -> tuple[list[str], list[list[str]]]:
    """Per workload and tierdb target: its primary figure over each peer's (same run)."""
    peers = list(dict.fromkeys(c.target for c in cells if not c.target.startswith("tierdb:") and c.target != "peer:dict"))
    rows = []
    for w, cs in _by_workload(cells).items():
        fig = PRIMARY.get(w, "")
        by = {c.target: c for c in cs}
        for t in (c for c in cs if c.target.startswith("tierdb:")):
            row = [w, t.target, fig]
            for p in peers:
                r = ratio(t, by[p], fig) if p in by and fig in t.figures else None
                row.append("-" if r is None else f"{r:.2f}x")
            rows.append(row)
    return ["workload", "tierdb target", "figure"] + [f"/ {p}" for p in peers], rows


def summary_text(result: BenchResult, markdown: bool = False) -> str:
    base = result.config.chosen_baseline()
    parts = []
    for n, cells in result.cells.items():
        header, rows = summary_rows(cells, base)
        if len(result.cells) > 1:
            parts.append(f"{n:,} keys" + (":" if not markdown else ""))
        parts.append(table(header, rows, markdown))
        header, rows = peer_ratio_rows(cells)
        if rows and len(header) > 3:
            parts.append(("tierdb / each peer (primary figure; > 1 means tierdb is faster):"
                          if not markdown else "tierdb / each peer (primary figure; > 1 means tierdb is faster):\n")
                         + "\n" + table(header, rows, markdown))
    return "\n\n".join(parts)


def report_md(result: BenchResult, plots: list[Path]) -> str:
    cfg = result.config
    base = cfg.chosen_baseline()
    v = library_versions()
    m = machine_facts()
    lines = [
        "# tierdb bench report", "",
        f"`{' '.join(result.command) or 'engine.bench.run(...)'}`", "",
        (f"Started {result.started}, {result.seconds:.0f} s; keys {', '.join(f'{k:,}' for k in cfg.keys)}; "
         f"{cfg.value_size}-byte values; {cfg.rounds} interleaved round(s), each target in a fresh process; "
         f"seed {cfg.seed}; durability {cfg.durability}; {cfg.clock} clock; baseline **{base}**."),
        (f"Machine: {m.get('cpu', m['machine'])}, {m['cpus']} CPUs, {m.get('memory_mb', '?')} MB; "
         f"Python {v['python']}, tierdb {v['tierdb']}, rocksdict {v['rocksdict']}, lmdb {v['lmdb']}, "
         f"SQLite {v['sqlite']}, slatedb {v['slatedb']}."), "",
        ("Figures are medians over rounds, ± half the spread ((max - min) / median). Every target's "
         "answers were compared with the dict reference before any figure is shown; a WRONG "
         "target has no figures. Ratios are target / baseline (for rates higher is better; for "
         "MB and seconds lower is better)."), "",
    ]
    notes = result.skipped + [s for cells in result.cells.values() for s in status_lines(cells)]
    if notes:
        lines += ["## Status", ""] + [f"- {s}" for s in notes] + [""]
    lines += ["## Summary", "", summary_text(result, markdown=True), ""]
    if plots:
        lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    for n, cells in result.cells.items():
        for w, cs in _by_workload(cells).items():
            lines += [f"## {w}" + (f" ({n:,} keys)" if len(cfg.keys) > 1 else ""), ""]
            names = _figure_names(cs)
            if names:
                lines += [figure_table(cs, names, markdown=True), ""]
                b = next((c for c in cs if c.target == base and c.has_figures), None)
                if b is not None:
                    rows = []
                    for c in cs:
                        if c is b or not c.has_figures:
                            continue
                        rows.append([f"{c.target} / {base}"] + [
                            "-" if (r := ratio(c, b, nm)) is None else f"{r:.2f}x" for nm in names])
                    if rows:
                        lines += [table(["ratio"] + names, rows, markdown=True), ""]
                lat_ops = []
                for c in cs:
                    lat_ops += [o for o in c.latency_us if o not in lat_ops]
                if lat_ops:
                    rows = [[c.target] + [f"{c.latency_us[o]['p50']:.1f} / {c.latency_us[o]['p99']:.1f}"
                                          if o in c.latency_us else "-" for o in lat_ops]
                            for c in cs if c.has_figures]
                    lines += ["Latency p50 / p99 (us):", "", table(["target"] + lat_ops, rows, markdown=True), ""]
            else:
                lines += ["No figures (see Status).", ""]
    return "\n".join(lines)


def write_all(result: BenchResult) -> list[Path]:
    """Write results.json, the plots and report.md under ``result.out``; return the paths."""
    from .plots import make_plots

    out = result.out
    out.mkdir(parents=True, exist_ok=True)
    files = []
    data = results_json(result)
    (out / "results.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    files.append(out / "results.json")
    try:
        plots = make_plots(result, out)
    except ImportError as e:
        print(f"tierdb bench: plots skipped: {e} (pip install 'tierdb[bench]')", file=sys.stderr)
        plots = []
    files += plots
    (out / "report.md").write_text(report_md(result, plots))
    files.append(out / "report.md")
    return files
