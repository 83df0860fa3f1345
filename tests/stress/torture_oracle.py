"""The torture harness's oracle: the expected state rebuilt from the expected-state log,
and the checks a reopened store must pass against it.

Log records (JSON lines, written by ``torture_child.py`` and by the parent):

* ``intent`` (writes) then ``commit`` (v, writes): a transaction; the commit line is
  appended after ``tx.commit()`` returned. ``writes`` = ``[[table, key, value or null]]``.
* ``erase-intent`` / ``erase`` (t, k, at): ``store.erase``; ``at`` = the version then.
* ``pin-intent`` / ``pin`` (name, v), ``unpin-intent`` / ``unpin`` (name).
* ``truncate`` (v): durability ``"none"`` lost the commits above ``v`` (allowed there).

An ``*-intent`` without its outcome is the operation the kill interrupted: the parent
decides from the reopened store whether it happened (a commit entirely or not at all) and
appends the outcome itself, so after each trial the log describes the store exactly.
"""

from __future__ import annotations

import bisect
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from torture_config import KEYS, TABLES

import engine
from engine.errors import EngineError

Key = tuple[str, str]


@dataclass
class Figures:
    trials: int = 0
    commits_acked: int = 0          # commits the child logged as returned
    commits_verified: int = 0       # commits whose every write was read back at its version
    inflight_present: int = 0       # the interrupted commit was there entirely
    inflight_absent: int = 0        # ... or not at all
    lost: int = 0                   # acknowledged commits missing after recovery (sync/normal)
    lost_allowed: int = 0           # acknowledged commits lost under durability "none"
    partial: int = 0                # versions where some but not all writes of a commit show
    wrong_reads: int = 0            # any read disagreeing with the oracle
    versions_checked: int = 0
    failures: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if k != "failures"}


class Oracle:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.commits: dict[int, dict[Key, str | None]] = {}
        self.hist: dict[Key, list[tuple[int, str | None]]] = {}
        self.pins: dict[str, int] = {}
        self.pending: dict[str, dict] = {}
        self.top = 0

    # -- the log --------------------------------------------------------------------

    def read_new(self) -> list[dict]:
        """Apply the records appended since the last call; a torn last line is cut off."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # the kill cut a line: it was never acknowledged
            with open(self.path, "r+b") as f:
                f.truncate(end)
        recs = [json.loads(line) for line in data[self.offset:end].splitlines()]
        self.offset = end
        for rec in recs:
            self.apply(rec)
        return recs

    def append(self, rec: dict) -> None:
        """The parent's own records (resolutions, its commits)."""
        self.read_new()
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self.offset = self.path.stat().st_size
        self.apply(rec)

    def apply(self, rec: dict) -> None:
        op = rec["op"]
        if op.endswith("-intent") or op == "intent":
            self.pending[op] = rec
        elif op == "commit":
            self.pending.pop("intent", None)
            v = rec["v"]
            assert v > self.top, f"expected log: commit {v} not above {self.top}"
            w = {(t, k): val for t, k, val in rec["writes"]}
            self.commits[v] = w
            for key, val in w.items():
                self.hist.setdefault(key, []).append((v, val))
            self.top = v
        elif op == "erase":
            self.pending.pop("erase-intent", None)
            self.hist.pop((rec["t"], rec["k"]), None)
        elif op == "pin":
            self.pending.pop("pin-intent", None)
            self.pins[rec["name"]] = rec["v"]
        elif op == "unpin":
            self.pending.pop("unpin-intent", None)
            self.pins.pop(rec["name"], None)
        elif op == "truncate":
            v = rec["v"]
            for lost in [x for x in self.commits if x > v]:
                del self.commits[lost]
            for key in list(self.hist):
                self.hist[key] = [e for e in self.hist[key] if e[0] <= v]
            self.top = max([0, *(x for x in self.commits if x <= v)])
            self.pending.pop("intent", None)
        else:
            raise AssertionError(f"unknown expected-log record {rec!r}")

    # -- expected answers -----------------------------------------------------------

    def value_at(self, key: Key, v: int) -> str | None:
        h = self.hist.get(key, [])
        i = bisect.bisect_right(h, v, key=lambda e: e[0])
        return h[i - 1][1] if i else None

    def possible_at(self, key: Key, v: int) -> set[str | None]:
        """Answers allowed for a key whose erase was interrupted (some versions gone)."""
        return {None} | {val for x, val in self.hist.get(key, []) if x <= v}


def _enc(val: str | None) -> bytes | None:
    return None if val is None else val.encode()


def verify(store: engine.Store, oracle: Oracle, rng: random.Random, durability: str,
           prev_top: int, figs: Figures, context: str) -> None:
    """Check a reopened store against the oracle, resolve the interrupted operation, and
    record everything in ``figs`` (failures in ``figs.failures``)."""
    fail = figs.failures.append
    oracle.read_new()
    R = store.version
    L = oracle.top
    figs.commits_acked += len([v for v in oracle.commits if v > prev_top])
    if R < L:
        if durability == "none":
            figs.lost_allowed += len([v for v in oracle.commits if v > R])
            oracle.append({"op": "truncate", "v": R})
        else:
            figs.lost += len([v for v in oracle.commits if v > R])
            fail(f"{context}: store at version {R} but commits up to {L} were acknowledged")
            return
    L = oracle.top
    intent = oracle.pending.get("intent")
    if R > L:
        if R != L + 1 or intent is None:
            fail(f"{context}: store at version {R}, expected log knows {L} (+{'1' if intent else '0'} in flight)")
            return
        # the interrupted commit is there: it must be there entirely (checked below with
        # every other read at R, the oracle now including it)
        oracle.append({"op": "commit", "v": R, "writes": intent["writes"]})
        figs.inflight_present += 1
        inflight = R
    else:
        if intent is not None:
            figs.inflight_absent += 1
            oracle.pending.pop("intent")
        inflight = 0
    uncertain: set[Key] = set()
    if "erase-intent" in oracle.pending:
        rec = oracle.pending["erase-intent"]
        uncertain.add((rec["t"], rec["k"]))
    pins = store.pins()
    if "pin-intent" in oracle.pending:
        rec = oracle.pending["pin-intent"]
        if pins.get(rec["name"]) == rec["v"]:
            oracle.append({"op": "pin", "name": rec["name"], "v": rec["v"]})
        else:
            oracle.pending.pop("pin-intent")
    if "unpin-intent" in oracle.pending:
        rec = oracle.pending["unpin-intent"]
        if rec["name"] not in pins:
            oracle.append({"op": "unpin", "name": rec["name"]})
        else:
            oracle.pending.pop("unpin-intent")
    if pins != oracle.pins:
        fail(f"{context}: pins {pins} != expected {oracle.pins}")
    floor = store.history_floor()
    retained = {v for v in range(max(1, floor), R + 1)}
    retained |= {v for v in oracle.pins.values() if v <= R}

    def check_read(key: Key, v: int, got: bytes | None, what: str) -> bool:
        if key in uncertain:
            ok = got in {_enc(x) for x in oracle.possible_at(key, v)}
        else:
            ok = got == _enc(oracle.value_at(key, v))
        if not ok:
            figs.wrong_reads += 1
            want = oracle.value_at(key, v)
            fail(f"{context}: {what} {key} at version {v}: got {got[:40] if got else got!r}, "
                 f"expected {want[:40] if want else want!r}")
        return ok

    # every new commit that is still retained: all its writes read back at its version
    for v in sorted(x for x in oracle.commits if x > prev_top):
        if v not in retained:
            continue
        checked = wrong = 0
        for key, val in oracle.commits[v].items():
            if key in uncertain or oracle.value_at(key, v) != val:
                continue  # erased since
            checked += 1
            try:
                got = store.get(TABLES[key[0]], key[1].encode(), version=v)
            except EngineError as exc:
                fail(f"{context}: get {key} at retained version {v}: {exc!r}")
                wrong += 1
                continue
            wrong += not check_read(key, v, got, "commit read")
        if wrong == 0:
            figs.commits_verified += 1
        elif wrong == checked:
            figs.lost += 1
        else:
            figs.partial += 1
    # the whole key universe at the latest version and a sample of retained ones
    sample = {R} | set(rng.sample(sorted(retained), min(5, len(retained))))
    if inflight:
        sample.add(inflight)
    for v in sorted(x for x in sample if x >= 1):
        figs.versions_checked += 1
        for tname, table in TABLES.items():
            try:
                got_many = store.get_many(table, [k.encode() for k in KEYS], version=v)
                scan = list(store.range(table, version=v))
            except EngineError as exc:
                fail(f"{context}: reading {tname} at retained version {v}: {exc!r}")
                continue
            for k, got in zip(KEYS, got_many):
                check_read((tname, k), v, got, "get_many")
            want_scan = [(k.encode(), _enc(oracle.value_at((tname, k), v))) for k in KEYS
                         if (tname, k) not in uncertain and oracle.value_at((tname, k), v) is not None]
            got_scan = [(k, val) for k, val in scan
                        if (tname, k.decode()) not in uncertain]
            if got_scan != want_scan:
                figs.wrong_reads += 1
                fail(f"{context}: range {tname} at version {v}: {len(got_scan)} rows, expected "
                     f"{len(want_scan)}; first difference "
                     f"{next((a, b) for a, b in zip(got_scan + [None] * 99, want_scan + [None] * 99) if a != b)!r:.200}")
    # history: nothing that was never written, and every version >= the floor is kept
    for tname, table in TABLES.items():
        for k in KEYS:
            key = (tname, k)
            if key in uncertain:
                continue
            got_hist = store.history(table, k.encode())
            want = {v: _enc(val) for v, val in oracle.hist.get(key, []) if v <= R}
            for v, val in got_hist:
                if want.get(v, b"\0missing") != val:
                    figs.wrong_reads += 1
                    fail(f"{context}: history {key} has version {v} = {val!r:.40} not in the oracle")
            have = {v for v, _ in got_hist}
            for v, val in want.items():
                if v >= max(1, floor) and v not in have:
                    if val is None and not any(x for x, y in got_hist if x < v and y is not None):
                        continue  # a bottom tombstone no read needs may be collected
                    figs.wrong_reads += 1
                    fail(f"{context}: history {key} lost retained version {v}")
    try:
        store.check()
    except EngineError as exc:
        fail(f"{context}: check() failed: {exc!r}")
    # resolve an interrupted erase by finishing it
    for t, k in uncertain:
        store.erase(TABLES[t], k.encode())
        oracle.append({"op": "erase", "t": t, "k": k, "at": store.version})
        if store.get(TABLES[t], k.encode()) is not None or store.history(TABLES[t], k.encode()):
            fail(f"{context}: erase of {(t, k)} left versions behind")


def parent_commit(store: engine.Store, oracle: Oracle, rng: random.Random, context: str,
                  figs: Figures) -> None:
    """A commit right after recovery lands at version + 1 (versions resume above)."""
    before = store.version
    k = rng.choice(KEYS)
    val = f"parent.{before}"
    with store.begin() as tx:
        tx.set(TABLES["m"], k.encode(), val.encode())
    if tx.version != before + 1:
        figs.failures.append(f"{context}: parent commit got version {tx.version}, expected {before + 1}")
    oracle.append({"op": "commit", "v": tx.version, "writes": [["m", k, val]]})
