"""Tables of benchmark results: figures with spread, ratios against a baseline, goals.

Every function returns text; ``markdown=True`` gives GitHub tables, otherwise aligned plain
text for a terminal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .runner import Cell

__all__ = ["figure_table", "fmt_value", "higher_is_better", "ratio_table", "status_lines", "table"]


def higher_is_better(unit: str) -> bool:
    """Rates (``.../s``) are better higher; sizes and times lower."""
    return unit.endswith("/s")


def fmt_value(v: float | None, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if unit.endswith("/s"):
        a = abs(v)
        if a >= 1e6:
            return f"{v / 1e6:.2f}M"
        if a >= 1e3:
            return f"{v / 1e3:.0f}k" if a >= 1e4 else f"{v / 1e3:.1f}k"
        return f"{v:.0f}"
    if unit == "s":
        return f"{v:.3f}" if v < 1 else f"{v:.2f}"
    return f"{v:.1f}" if abs(v) < 100 else f"{v:.0f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool = False) -> str:
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(header))]
    for r in rows:
        lines.append("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))
    return "\n".join(lines)


def _cell_text(cell: Cell, name: str, spread: bool) -> str:
    f = cell.figures.get(name)
    if f is None:
        return "n/a"
    s = fmt_value(f["median"], f["unit"])
    if spread and len(f["values"]) > 1:
        s += f" ±{100 * f['spread'] / 2:.0f}%"
    return s


def figure_table(cells: Sequence[Cell], columns: Sequence[str], *, markdown: bool = False,
                 spread: bool = True, labels: dict[str, str] | None = None) -> str:
    """One row per target: the median of each column figure (± half the relative spread).

    A WRONG, failed or skipped target shows its status instead of figures.
    """
    labels = labels or {}
    header = ["target"] + [labels.get(c, c) for c in columns]
    rows = []
    for c in cells:
        if c.has_figures:
            rows.append([c.target] + [_cell_text(c, col, spread) for col in columns])
        else:
            rows.append([c.target] + [c.status.upper() if i == 0 else "" for i in range(len(columns))])
    return table(header, rows, markdown)


def ratio(a: Cell, b: Cell, name: str) -> float | None:
    va, vb = a.median(name), b.median(name)
    if va is None or vb is None or not a.has_figures or not b.has_figures or vb == 0:
        return None
    return va / vb


def ratio_table(subjects: Sequence[Cell], baselines: Sequence[Cell], columns: Sequence[str], *,
                markdown: bool = False, labels: dict[str, str] | None = None) -> str:
    """``subject / baseline`` per column for every pair (for sizes < 1 is better)."""
    labels = labels or {}
    header = ["ratio"] + [labels.get(c, c) for c in columns]
    rows = []
    for s in subjects:
        for b in baselines:
            if s is b:
                continue
            row = [f"{s.target} / {b.target}"]
            for col in columns:
                r = ratio(s, b, col)
                row.append("-" if r is None else f"{r:.2f}x")
            rows.append(row)
    return table(header, rows, markdown)


def status_lines(cells: Sequence[Cell]) -> list[str]:
    """One line per target that is not plainly ok (WRONG, failed, skipped, unverified)."""
    out = []
    for c in cells:
        if c.status != "ok":
            out.append(f"{c.target} [{c.workload}]: {c.status.upper()}: {c.reason}")
    return out
