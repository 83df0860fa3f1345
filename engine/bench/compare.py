"""``tierdb bench compare OLD.json NEW.json``: per target and figure, what changed.

A figure regressed when it moved the wrong way by more than ``threshold`` (a fraction):
rates (units ``.../s``) falling below ``old * (1 - threshold)``, sizes and times (MB, s)
rising above ``old * (1 + threshold)``. A target that verified before and is WRONG or
failed now is a regression too. Figures present on one side only are listed, not judged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import BenchConfigError
from .report import fmt_value, higher_is_better, table

__all__ = ["Change", "compare", "compare_files", "load_results"]


@dataclass
class Change:
    keys: int
    workload: str
    target: str
    figure: str
    old: float | None
    new: float | None
    unit: str
    regressed: bool
    note: str = ""

    @property
    def change(self) -> float | None:
        if self.old is None or self.new is None or self.old == 0:
            return None
        return self.new / self.old - 1.0


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a results.json; a missing or malformed file raises BenchConfigError."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise BenchConfigError(f"{p}: no such file (give the results.json of a tierdb bench run)") from None
    except (OSError, ValueError) as e:
        raise BenchConfigError(f"{p}: not a readable results.json ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise BenchConfigError(f"{p}: not a tierdb bench results.json (no 'results' list)")
    return data


def _index(data: dict[str, Any]) -> dict[tuple[int, str, str], dict[str, Any]]:
    return {(int(r.get("keys", 0)), r["workload"], r["target"]): r for r in data["results"]}


def compare(old: dict[str, Any], new: dict[str, Any], threshold: float = 0.10) -> list[Change]:
    """Every figure of every (keys, workload, target) in both results, judged."""
    if not 0 <= threshold < 10:
        raise BenchConfigError(f"--threshold must be a fraction like 0.10, got {threshold}")
    a, b = _index(old), _index(new)
    out: list[Change] = []
    for key in list(a) + [k for k in b if k not in a]:
        n, w, t = key
        ra, rb = a.get(key), b.get(key)
        if ra is None or rb is None:
            out.append(Change(n, w, t, "(target)", None, None, "", False,
                              "only in new" if ra is None else "only in old"))
            continue
        sa, sb = ra.get("status"), rb.get("status")
        if sb in ("WRONG", "failed") and sa not in ("WRONG", "failed"):
            out.append(Change(n, w, t, "(status)", None, None, "", True, f"{sa} -> {sb}: {rb.get('reason', '')}"))
            continue
        fa, fb = ra.get("figures", {}), rb.get("figures", {})
        for fig in list(fa) + [f for f in fb if f not in fa]:
            if fig == "open s":
                continue
            va = fa.get(fig, {}).get("median")
            vb = fb.get(fig, {}).get("median")
            unit = (fa.get(fig) or fb.get(fig) or {}).get("unit", "")
            regressed = False
            if va is not None and vb is not None:
                if higher_is_better(unit):
                    regressed = vb < va * (1 - threshold)
                else:
                    regressed = vb > va * (1 + threshold) and vb - va > _noise_floor(unit)
            out.append(Change(n, w, t, fig, va, vb, unit, regressed,
                              "" if va is not None and vb is not None else ("new figure" if va is None else "gone")))
    return out


def _noise_floor(unit: str) -> float:
    # Tiny sizes and times (a 0.01 s reopen, a 0.2 MB store) swing by more than any threshold
    # from run to run; below these absolute changes a rise is not called a regression.
    return {"s": 0.005, "MB": 0.05}.get(unit, 0.0)


def format_changes(changes: list[Change], threshold: float) -> str:
    rows = []
    for c in changes:
        ch = c.change
        rows.append([f"{c.keys:,}" if c.keys else "-", c.workload, c.target, c.figure,
                     fmt_value(c.old, c.unit), fmt_value(c.new, c.unit),
                     "-" if ch is None else f"{100 * ch:+.1f}%",
                     "REGRESSED" if c.regressed else (c.note or "ok")])
    head = table(["keys", "workload", "target", "figure", "old", "new", "change", "verdict"], rows)
    bad = sum(c.regressed for c in changes)
    return head + f"\n\n{bad} regression(s) beyond {100 * threshold:.0f}%"


def compare_files(old: str | Path, new: str | Path, threshold: float = 0.10) -> tuple[list[Change], str]:
    changes = compare(load_results(old), load_results(new), threshold)
    return changes, format_changes(changes, threshold)
