"""PNG plots of a run (matplotlib, Agg backend, imported only here).

- ``throughput.png``: each workload's primary figure per target (median, min-max bars, labelled).
- ``latency.png``: p50 and p99 of the point operations per workload and target (log axis).
- ``resources.png``: disk MB after close and peak RSS added per target.
- ``scale.png`` (several ``--keys``): each workload's primary figure, disk MB and RSS
  added against key count, log-log, one line per target.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .report import fmt_value
from .runner import Cell
from .workloads import PRIMARY

if TYPE_CHECKING:
    from .api import BenchResult

__all__ = ["make_plots"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(n: int) -> tuple[int, int]:
    cols = min(3, max(1, n))
    return math.ceil(n / cols), cols


def _targets(cells: list[Cell]) -> list[str]:
    out: list[str] = []
    for c in cells:
        if c.target not in out:
            out.append(c.target)
    return out


def _colors(targets: list[str]) -> dict[str, Any]:
    plt = _plt()
    cmap = plt.get_cmap("tab10")
    return {t: cmap(i % 10) for i, t in enumerate(targets)}


def _primary(c: Cell) -> str | None:
    name = PRIMARY.get(c.workload)
    if name in c.figures:
        return name
    return next((n for n in c.figures if n.endswith("/s")), None)


def _short(t: str) -> str:
    return t.replace("tierdb:", "tierdb\n").replace("peer:", "")


def throughput(cells: list[Cell], path: Path, title: str) -> Path | None:
    plt = _plt()
    workloads = list(dict.fromkeys(c.workload for c in cells))
    workloads = [w for w in workloads if any(c.has_figures and c.workload == w for c in cells)]
    if not workloads:
        return None
    targets = _targets(cells)
    colors = _colors(targets)
    rows, cols = _grid(len(workloads))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    for ax, w in zip(axes.flat, workloads):
        cs = [c for c in cells if c.workload == w and c.has_figures and _primary(c)]
        names = [_short(c.target) for c in cs]
        meds, lo, hi = [], [], []
        for c in cs:
            f = c.figures[_primary(c) or ""]
            meds.append(f["median"])
            lo.append(f["median"] - f["min"])
            hi.append(f["max"] - f["median"])
        bars = ax.bar(range(len(cs)), meds, color=[colors[c.target] for c in cs], yerr=[lo, hi], capsize=3)
        unit = cs[0].figures[_primary(cs[0]) or ""]["unit"] if cs else ""
        ax.bar_label(bars, labels=[fmt_value(m, unit) for m in meds], fontsize=7, padding=2)
        ax.margins(y=0.15)
        from matplotlib.ticker import FuncFormatter

        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos, u=unit: fmt_value(v, u)))
        ax.set_xticks(range(len(cs)), names, fontsize=7)
        fname = _primary(cs[0]) if cs else ""
        ax.set_title(f"{w}", fontsize=10)
        ax.set_ylabel(f"{fname} (median, min-max)", fontsize=8)
        ax.set_xlabel("target", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(workloads):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def latency(cells: list[Cell], path: Path, title: str) -> Path | None:
    plt = _plt()
    workloads = [w for w in dict.fromkeys(c.workload for c in cells)
                 if any(c.latency_us and c.has_figures and c.workload == w for c in cells)]
    if not workloads:
        return None
    targets = _targets(cells)
    colors = _colors(targets)
    rows, cols = _grid(len(workloads))
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols, 3.6 * rows), squeeze=False)
    for ax, w in zip(axes.flat, workloads):
        cs = [c for c in cells if c.workload == w and c.has_figures and c.latency_us]
        ops = list(dict.fromkeys(o for c in cs for o in c.latency_us))
        width = 0.8 / max(1, len(cs))
        for i, c in enumerate(cs):
            xs = [j + i * width for j in range(len(ops))]
            p50 = [c.latency_us.get(o, {}).get("p50", 0.0) for o in ops]
            p99 = [c.latency_us.get(o, {}).get("p99", 0.0) for o in ops]
            ax.bar(xs, p99, width, color=colors[c.target], alpha=0.35)
            ax.bar(xs, p50, width, color=colors[c.target], label=c.target)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(ops))], ops, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("latency, us (solid p50, light p99)", fontsize=8)
        ax.set_xlabel("operation", fontsize=8)
        ax.set_title(w, fontsize=10)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(workloads):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def resources(cells: list[Cell], path: Path, title: str) -> Path | None:
    plt = _plt()
    targets = [t for t in _targets(cells) if any(c.target == t and c.has_figures for c in cells)]
    if not targets:
        return None
    colors = _colors(_targets(cells))

    def worst(t: str, name: str) -> float:
        vals = [c.figures[name]["median"] for c in cells if c.target == t and c.has_figures and name in c.figures]
        return max(vals) if vals else 0.0

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, name, label in ((a1, "disk MB", "disk MB after close (max over workloads)"),
                            (a2, "RSS added MB", "peak RSS added, MB (max over workloads)")):
        vals = [worst(t, name) for t in targets]
        ax.bar(range(len(targets)), vals, color=[colors[t] for t in targets])
        ax.set_xticks(range(len(targets)), [_short(t) for t in targets], fontsize=7)
        ax.set_ylabel(label, fontsize=8)
        ax.set_xlabel("target", fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def scale(by_keys: dict[int, list[Cell]], path: Path, title: str) -> Path | None:
    plt = _plt()
    sizes = sorted(by_keys)
    allcells = [c for n in sizes for c in by_keys[n]]
    workloads = [w for w in dict.fromkeys(c.workload for c in allcells)
                 if any(c.has_figures and c.workload == w for c in allcells)]
    if len(sizes) < 2 or not workloads:
        return None
    targets = _targets(allcells)
    colors = _colors(targets)
    panels: list[str] = list(workloads) + ["disk MB", "RSS added MB"]
    rows, cols = _grid(len(panels))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    for ax, name in zip(list(axes.flat)[len(workloads):], panels[len(workloads):]):
        plotted = False
        for t in targets:
            xs, ys = [], []
            for n in sizes:
                vals = [c.figures[name]["median"] for c in by_keys[n]
                        if c.target == t and c.has_figures and name in c.figures]
                if vals and max(vals) > 0:
                    xs.append(n)
                    ys.append(max(vals))
            if xs:
                ax.plot(xs, ys, marker="o", color=colors[t], label=t)
                plotted = True
        if not plotted:
            ax.axis("off")
            ax.set_title(f"{name}: not measured by these workloads", fontsize=9)
            continue
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("keys (log)", fontsize=8)
        ax.set_ylabel(f"{name}, max over workloads (log)", fontsize=8)
        ax.set_title(name.replace(" MB", ""), fontsize=10)
        ax.legend(fontsize=6)
    for ax, w in zip(axes.flat, workloads):
        fname = ""
        for t in targets:
            xs, ys = [], []
            for n in sizes:
                c = next((c for c in by_keys[n] if c.workload == w and c.target == t and c.has_figures), None)
                if c is not None and _primary(c):
                    fname = _primary(c) or fname
                    xs.append(n)
                    ys.append(c.figures[_primary(c) or ""]["median"])
            if xs:
                ax.plot(xs, ys, marker="o", color=colors[t], label=t)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("keys (log)", fontsize=8)
        ax.set_ylabel(f"{fname} (log)", fontsize=8)
        ax.set_title(w, fontsize=10)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def make_plots(result: BenchResult, out: Path) -> list[Path]:
    """Write the plots of ``result`` under ``out``; return the files written."""
    sizes = sorted(result.cells)
    biggest = result.cells[sizes[-1]]
    sub = f"{sizes[-1]:,} keys, {result.config.rounds} round(s)"
    made = [
        throughput(biggest, out / "throughput.png", f"throughput per workload and target ({sub})"),
        latency(biggest, out / "latency.png", f"point-operation latency ({sub})"),
        resources(biggest, out / "resources.png", f"disk and memory ({sub})"),
        scale(result.cells, out / "scale.png", "scale: each workload's primary figure, disk and memory vs key count"),
    ]
    return [p for p in made if p is not None]
