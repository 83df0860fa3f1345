"""Crash safety of the cold tier: SIGKILL a writer at random moments.

A child process (cold_crash_child.py) writes segments, drops, clears and compacts in a loop
and reports each finished op. The parent kills it with SIGKILL after a random delay, reopens
the directory and requires: the tier opens (stray temp files removed), ``check()`` passes,
and its contents equal the model after the last reported op or after the op in flight (ops
are atomic; nothing a durable manifest named is lost). Each trial continues from the state
the previous kill left, so later trials also crash in compactions of older data.
"""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.tiers import ColdTier

_HERE = Path(__file__).resolve().parent
_CHILD = _HERE / "cold_crash_child.py"
_spec = importlib.util.spec_from_file_location("cold_crash_child", _CHILD)
assert _spec is not None and _spec.loader is not None
child = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(child)


def _state(t: ColdTier) -> dict:
    out = {}
    for table in (child.T, child.S1):
        for k in child.KEYS:
            vs = t.get_all_versions(table, k)
            if vs:
                out[(table, k)] = dict(vs)
    return out


def _model_after(n: int) -> dict:
    model: dict = {}
    for i in range(1, n + 1):
        child.apply_model(model, i)
    return {k: v for k, v in model.items() if v}


def _run_trials(path: Path, trials: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    done = 0
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(_HERE.parent.parent), env.get("PYTHONPATH", "")])
    seen: dict[str, int] = {"in_flight_applied": 0, "in_flight_absent": 0, "ops": 0}
    for _ in range(trials):
        proc = subprocess.Popen([sys.executable, str(_CHILD), str(path), str(done + 1)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        # Wait until the child is past imports and opening, then kill it at a random moment.
        first = proc.stdout.readline() + proc.stdout.readline()  # type: ignore[union-attr]
        assert first.startswith(b"B ") and b"\nD " in first, (first, proc.stderr.read())  # type: ignore[union-attr]
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # Read through the same buffered pipe objects: communicate() would bypass what
        # readline() already buffered.
        out = proc.stdout.read()  # type: ignore[union-attr]
        err = proc.stderr.read()  # type: ignore[union-attr]
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
        assert proc.returncode == -signal.SIGKILL, err.decode()
        words = (first + out).decode().split()
        pairs = list(zip(words[::2], map(int, words[1::2])))
        reported = [n for tag, n in pairs if tag == "D"]
        started = [n for tag, n in pairs if tag == "B"]
        kind = child.op(started[-1])[0] if started[-1] > reported[-1] else "between ops"
        seen[kind] = seen.get(kind, 0) + 1
        assert reported == list(range(done + 1, done + 1 + len(reported)))
        last = reported[-1]
        with ColdTier(path, **child.OPTIONS) as t:
            assert not [n for n in os.listdir(path) if n.endswith(".tmp")]
            t.check()
            got = _state(t)
            if got == _model_after(last):
                done = last
                seen["in_flight_absent"] += 1
            else:
                assert got == _model_after(last + 1), f"state after kill matches neither op {last} nor {last + 1}"
                done = last + 1
                seen["in_flight_applied"] += 1
        seen["ops"] = done
    return seen


def test_sigkill_during_writes_and_compaction(tmp_path):
    seen = _run_trials(tmp_path / "cold", trials=10, seed=1)
    assert seen["ops"] >= 20, seen


@pytest.mark.stress
@pytest.mark.parametrize("seed", range(5))
def test_sigkill_stress(tmp_path, seed):
    seen = _run_trials(tmp_path / "cold", trials=60, seed=100 + seed)
    assert seen["in_flight_applied"] + seen["in_flight_absent"] == 60
    assert seen.get("compact", 0) + seen.get("set", 0) + seen.get("write_entries", 0) > 30, seen
