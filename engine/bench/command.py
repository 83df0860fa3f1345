"""The ``tierdb bench`` command line (``engine.cli`` hands ``tierdb bench ...`` to :func:`main`).

Exit status: 0 every target verified; 1 a target answered wrongly or failed (``bench``) or a
figure regressed beyond the threshold (``bench compare``); 2 bad options (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .config import (
    ALL_WORKLOADS,
    DEFAULT_PEERS,
    DURABILITY,
    EXTRA_WORKLOADS,
    BenchConfig,
    BenchConfigError,
)
from .peers import PEERS

__all__ = ["build_parser", "main"]

EPILOG = """\
examples:
  tierdb bench --quick
  tierdb bench --workload ycsb-c time-travel --layout hot+warm+cold warm --peers rocksdb,lmdb
  tierdb bench --keys 10000 100000 1000000 --workload ycsb-c   # a scale run (log-log plot)
  tierdb bench --set hot_bytes=16MiB --set zstd_level=9 --baseline tierdb:hot+warm+cold
  tierdb bench --workload my_mix --workload-file my_workload.py
  tierdb bench compare bench-results/A/results.json bench-results/B/results.json --threshold 0.10
"""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        v = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {v}")
    return v


def _keys(text: str) -> list[int]:
    return [_positive_int(x) for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tierdb bench", description="Benchmark tierdb layouts beside peers on seeded workloads; "
                "write results.json, report.md and PNG plots.", epilog=EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", "-w", nargs="+", action="extend", default=None, metavar="W",
                   help=f"workloads (default all of: {', '.join(ALL_WORKLOADS)}; also {', '.join(EXTRA_WORKLOADS)})")
    p.add_argument("--layout", "-l", nargs="+", action="extend", default=None, metavar="L",
                   help="tierdb layouts, e.g. hot+warm+cold, memory, warm, hot+warm:hot_bytes=16MiB "
                   "(default hot+warm+cold); 'none' for peers only")
    p.add_argument("--set", dest="knobs", action="append", default=[], metavar="KNOB=VALUE",
                   help="a layout knob for every tierdb layout (repeatable), e.g. --set block_size=16KiB")
    p.add_argument("--peers", default=None, metavar="P,P",
                   help=f"comma-separated peers of {', '.join(PEERS)}, or 'none' (default {','.join(DEFAULT_PEERS)}; "
                   "the dict reference always runs, to verify answers)")
    p.add_argument("--target", action="append", default=[], metavar="FILE.py:FACTORY",
                   help="a user target: FACTORY(path, params) returns an object with the Target protocol")
    p.add_argument("--keys", "-n", nargs="+", type=_keys, action="extend", default=None, metavar="N",
                   help="key counts; several make a scale run (default 20000)")
    p.add_argument("--value-size", type=_positive_int, default=100, metavar="B", help="value bytes (default 100)")
    p.add_argument("--ops", type=_positive_int, default=None, help="operations per mixed workload (default 10000)")
    p.add_argument("--rounds", "-r", type=_positive_int, default=None, help="interleaved rounds (default 3)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--durability", choices=DURABILITY, default="normal", help="tierdb durability; sync also makes the peers' commits durable (default normal)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="time rates in wall-clock or process CPU seconds (steadier on a busy machine)")
    p.add_argument("--out", "-o", default=None, metavar="DIR", help="output directory (default bench-results/<time>)")
    p.add_argument("--baseline", default=None, metavar="T", help="ratios against this target (default peer:rocksdb)")
    p.add_argument("--workload-file", default=None, metavar="F",
                   help="a Python file defining workload functions fn(target, rec, params)")
    p.add_argument("--param", action="append", default=[], metavar="K=V",
                   help="workload option (repeatable), e.g. --param passes=8")
    p.add_argument("--quick", action="store_true", help="small sizes and one round (under 3 minutes)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no tables; just the exit status")
    return p


def build_compare_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tierdb bench compare",
                description="Compare two results.json; exit 1 if any figure regressed beyond the threshold.")
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--threshold", type=float, default=0.10, help="allowed relative change (default 0.10)")
    return p


def _kv(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise BenchConfigError(f"{what} {item!r}: give KEY=VALUE")
        out[k.strip()] = v.strip()
    return out


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    cfg = BenchConfig()
    if args.quick:
        cfg.apply_quick()  # first: the sizes given explicitly below win
    if args.workload:
        cfg.workloads = list(dict.fromkeys(args.workload))
    if args.layout:
        cfg.layouts = [] if args.layout == ["none"] else list(dict.fromkeys(args.layout))
    cfg.knobs = _kv(args.knobs, "--set")
    if args.peers is not None:
        cfg.peers = [] if args.peers.strip() == "none" else [x.strip() for x in args.peers.split(",") if x.strip()]
    cfg.targets = list(args.target)
    if args.keys:
        cfg.keys = [k for ks in args.keys for k in ks]
    cfg.value_size = args.value_size
    cfg.seed = args.seed
    cfg.durability = args.durability
    cfg.clock = args.clock
    cfg.baseline = args.baseline
    cfg.workload_file = args.workload_file
    extra: dict[str, Any] = {}
    for k, v in _kv(args.param, "--param").items():
        try:
            extra[k] = int(v)
        except ValueError:
            extra[k] = v
    cfg.extra = extra
    if args.rounds is not None:
        cfg.rounds = args.rounds
    if args.ops is not None:
        cfg.ops = args.ops
    if args.out is not None:
        cfg.out = Path(args.out)
    return cfg


class _Bar:
    """A tqdm bar advanced once per child run."""

    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="run", file=sys.stderr, dynamic_ncols=True, leave=False)
        self.started = False

    def __call__(self, label: str) -> None:
        if self.started:
            self.bar.update(1)
        self.started = True
        self.bar.set_description(label, refresh=True)

    def close(self) -> None:
        if self.started:
            self.bar.update(1)
        self.bar.close()


def run_bench(argv: Sequence[str]) -> int:
    from .api import count_runs, run
    from .output import summary_text

    args = build_parser().parse_args(list(argv))
    try:
        cfg = config_from_args(args)
        cfg.validate()
    except BenchConfigError as e:
        print(f"tierdb bench: error: {e}", file=sys.stderr)
        return 2
    bar: Any = None
    if not args.quiet:
        try:
            bar = _Bar(count_runs(cfg))
        except ImportError:
            bar = lambda label: print(label, file=sys.stderr, flush=True)
    try:
        result = run(cfg, progress=bar, command=["tierdb", "bench", *argv])
    finally:
        if isinstance(bar, _Bar):
            bar.close()
    if not args.quiet:
        for s in result.skipped:
            print(s, file=sys.stderr)
        print(summary_text(result))
        print()
        for c in result.wrong():
            print(f"WRONG: {c.target} [{c.workload}]: {c.reason}")
        print(f"report: {result.out / 'report.md'}")
    else:
        for c in result.wrong():
            print(f"tierdb bench: WRONG: {c.target} [{c.workload}]: {c.reason}", file=sys.stderr)
    return 0 if result.ok else 1


def run_compare(argv: Sequence[str]) -> int:
    from .compare import compare_files

    args = build_compare_parser().parse_args(list(argv))
    try:
        changes, text = compare_files(args.old, args.new, args.threshold)
    except BenchConfigError as e:
        print(f"tierdb bench compare: error: {e}", file=sys.stderr)
        return 2
    print(text)
    return 1 if any(c.regressed for c in changes) else 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["compare"]:
        return run_compare(argv[1:])
    return run_bench(argv)
