"""What a workload run records: figures, answer digests for verification, latencies, memory.

A workload calls :meth:`Recorder.timed` around the operations it times (wall clock, so
background work a target does on other threads counts against it), :meth:`Recorder.check`
with the answers it got (only a digest is kept; the runner compares digests with the dict
reference's), and :meth:`Recorder.latencies` with per-operation samples.

Notes: thread safety - one recorder per run, used by the workload's thread.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Recorder", "digest", "peak_rss_bytes", "percentile", "reset_peak_rss", "rss_bytes"]


def digest(answers: Any) -> str:
    """A digest of answers: bytes, None, ints, and (nested) lists/tuples of them."""
    h = hashlib.blake2b(digest_size=16)
    _feed(h, answers)
    return h.hexdigest()


def _feed(h: Any, x: Any) -> None:
    if x is None:
        h.update(b"N")
    elif isinstance(x, (bytes, bytearray, memoryview)):
        b = bytes(x)
        h.update(b"B%d:" % len(b))
        h.update(b)
    elif isinstance(x, int):
        h.update(b"I%d;" % int(x))
    elif isinstance(x, (list, tuple)) or hasattr(x, "__iter__") and not isinstance(x, (str, dict)):
        h.update(b"[")
        for item in x:
            _feed(h, item)
        h.update(b"]")
    else:
        raise TypeError(f"cannot digest an answer of type {type(x).__name__}")


def _status_kib(field_name: str) -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_bytes() -> int:
    """Current resident set size of this process (0 where /proc is missing)."""
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """Peak RSS since the last :func:`reset_peak_rss` (or process start)."""
    peak = _status_kib("VmHWM") * 1024
    if peak:
        return peak
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux ``clear_refs`` 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of an ascending list, nearest rank."""
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


@dataclass
class Recorder:
    """Figures of one run of one workload on one target."""

    figures: dict[str, float] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    checks: dict[str, str] = field(default_factory=dict)
    latency_us: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def put(self, name: str, value: float, unit: str) -> None:
        """Record a figure. Units ending in ``/s`` are higher-is-better; others lower."""
        self.figures[name] = float(value)
        self.units[name] = unit

    def rate(self, name: str, ops: int, seconds: float, unit: str = "ops/s") -> None:
        self.put(name, ops / max(seconds, 1e-9), unit)

    @contextmanager
    def timed(self, name: str, ops: int, unit: str = "ops/s") -> Iterator[None]:
        """Time the block in wall-clock seconds and record ``ops`` / seconds as ``name``."""
        t0 = time.perf_counter()
        yield
        self.rate(name, ops, time.perf_counter() - t0, unit)

    def check(self, name: str, answers: Any) -> None:
        """Keep a digest of ``answers``; the runner compares it with the reference's.

        A list of answers is kept as ``name [len]`` and, when longer, also as
        ``name [first 10]``, so a run with fewer operations (a slow peer's) still compares
        its first answers with the reference's.
        """
        if isinstance(answers, list):
            self.checks[f"{name} [{len(answers)}]"] = digest(answers)
            if len(answers) >= 10:
                self.checks[f"{name} [first 10]"] = digest(answers[:10])
        else:
            self.checks[name] = digest(answers)

    def latencies(self, name: str, samples_ns: Iterable[int]) -> None:
        s = sorted(x / 1000.0 for x in samples_ns)
        if s:
            self.latency_us[name] = {"p50": percentile(s, 0.50), "p99": percentile(s, 0.99),
                                     "max": s[-1], "n": float(len(s))}

    def to_json(self) -> dict[str, Any]:
        return {"figures": self.figures, "units": self.units, "checks": self.checks,
                "latency_us": self.latency_us, "notes": self.notes}
