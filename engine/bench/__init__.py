"""Benchmarks as a product: tierdb layouts beside peers on seeded workloads (``tierdb bench``).

``engine.bench.run(...)`` runs workloads x targets and writes results.json, report.md and
PNG plots; ``engine.bench.compare_files(old, new)`` judges two results. Peers live behind the
``tierdb[bench]`` extra and are imported only when used.
"""

from .api import BenchResult as BenchResult
from .api import run as run
from .compare import Change as Change
from .compare import compare as compare
from .compare import compare_files as compare_files
from .config import ALL_WORKLOADS as ALL_WORKLOADS
from .config import BenchConfig as BenchConfig
from .config import BenchConfigError as BenchConfigError
from .data import Params as Params
from .peers import PEERS as PEERS
from .peers import Target as Target
from .record import Recorder as Recorder
from .runner import Cell as Cell
from .workloads import WORKLOADS as WORKLOADS

__all__ = [
    "ALL_WORKLOADS",
    "PEERS",
    "WORKLOADS",
    "BenchConfig",
    "BenchConfigError",
    "BenchResult",
    "Cell",
    "Change",
    "Params",
    "Recorder",
    "Target",
    "compare",
    "compare_files",
    "run",
]
