"""A small reference reactive ``Graph`` for checkpoints, demos and tests (spec section 13).

A graph is a named namespace of *state nodes* plus mounted subgraphs; paths use
``"::"`` (``"child::x"``). Each node caches a JSON value or :data:`SENTINEL` (never set,
or invalidated).

**Waves.** Every mutation runs in a *wave*. DIRTY (tier 1) reaches observers at once;
messages of tier 3 and above (DATA, INVALIDATE, COMPLETE) are held until the outermost
:meth:`Graph.batch` closes, so several sets in one batch form one wave; a lone ``set``
is a wave of its own. After a wave's messages are delivered, callbacks registered with
:meth:`Graph.after_wave` run (storage flushes there: one wave, one transaction). A batch
that raises restores every value and structure it changed and delivers none of its held
messages ("roll back if it throws").

**Observer.** ``graph.observe(fn)`` calls ``fn(path, tier)`` for every message of a node
of the graph or of its mounted subgraphs (paths relative to the observed graph).
Adding a node emits START (0) and, if it has a value, DATA (3), as a subscription to a
live node would; removing a node emits COMPLETE (5) then TEARDOWN (6). Mounting a
subgraph does the same for each of its nodes.

**Snapshots** use GraphReFly's Rust shape (``GraphPersistSnapshot``)::

    {"name": "g",
     "nodes": {"a": {"type": "state", "status": "live", "value": 1},
               "b": {"type": "state", "status": "sentinel"}},
     "subgraphs": {"child": {...}}}            # omitted when empty

Notes: thread safety. A graph is not thread-safe; use it from one thread.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from .errors import NameMismatch, UnknownNode, UnknownSubgraph

__all__ = [
    "PATH_SEP",
    "SENTINEL",
    "Graph",
    "Message",
    "Sentinel",
    "StateNode",
    "copy_json",
    "json_equal",
]

PATH_SEP: Final = "::"


class Sentinel:
    """The type of :data:`SENTINEL`: "no value" (never emitted, or invalidated)."""

    _instance: Sentinel | None = None

    def __new__(cls) -> Sentinel:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "SENTINEL"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "SENTINEL"


SENTINEL: Final = Sentinel()
"""A node's value when it has none. Distinct from ``None``, which is JSON ``null``."""


class Message(enum.Enum):
    """Message kinds and their tiers (storage reacts to tiers 3 to 5)."""

    START = ("start", 0)
    DIRTY = ("dirty", 1)
    PAUSE = ("pause", 2)
    RESUME = ("resume", 2)
    DATA = ("data", 3)
    RESOLVED = ("resolved", 3)
    INVALIDATE = ("invalidate", 4)
    COMPLETE = ("complete", 5)
    ERROR = ("error", 5)
    TEARDOWN = ("teardown", 6)

    @property
    def tier(self) -> int:
        """The message tier."""
        return int(self.value[1])


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON values: ``True != 1``, ``1 != 1.5``, dicts by key, lists in order."""
    if a is SENTINEL or b is SENTINEL:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(json_equal(v, b[k]) for k, v in a.items())
        )
    if isinstance(a, (list, tuple)):
        return (
            isinstance(b, (list, tuple))
            and len(a) == len(b)
            and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(b, (dict, list, tuple)):
        return False
    if isinstance(a, (int, float)) or isinstance(b, (int, float)):
        return type(a) is type(b) and a == b
    return bool(a == b)


def copy_json(value: Any) -> Any:
    """Deep copy of a JSON value (dicts and lists copied, tuples become lists)."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [copy_json(v) for v in value]
    return value


def _check_segment(name: object, what: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, got {type(name).__name__}")
    if not name or PATH_SEP in name:
        raise ValueError(f"{what} must be non-empty and must not contain {PATH_SEP!r}, got {name!r}")
    return name


class StateNode:
    """A source node written with ``set``; holds a value or :data:`SENTINEL`."""

    __slots__ = ("name", "value")
    type: Final = "state"

    def __init__(self, name: str, value: Any = SENTINEL) -> None:
        self.name = name
        self.value = value

    @property
    def status(self) -> str:
        """``"live"`` with a value, ``"sentinel"`` without."""
        return "sentinel" if self.value is SENTINEL else "live"

    def slice(self) -> dict[str, Any]:
        """The ``NodeSlice`` of this node (value omitted while sentinel, deps omitted)."""
        out: dict[str, Any] = {"type": self.type, "status": self.status}
        if self.value is not SENTINEL:
            out["value"] = copy_json(self.value)
        return out

    def __repr__(self) -> str:
        return f"StateNode({self.name!r}, {self.value!r})"


Observer = Callable[[str, int], None]


class Graph:
    """A named graph of state nodes and mounted subgraphs. See the module docstring."""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"graph name must be a non-empty str, got {name!r}")
        self._name = name
        self._nodes: dict[str, StateNode] = {}
        self._subgraphs: dict[str, Graph] = {}
        self._parent: Graph | None = None
        self._mount_name: str | None = None
        self._observers: list[Observer] = []
        # Wave state; only the root's is used.
        self._depth = 0
        self._held: list[tuple[Graph, str, int]] = []
        self._undo: list[Callable[[], None]] = []
        self._after: list[Callable[[], None]] = []
        self._delivering = 0

    # ------------------------------------------------------------------ structure

    @property
    def name(self) -> str:
        """The graph name (snapshots and WAL keys use it)."""
        return self._name

    @property
    def parent(self) -> Graph | None:
        """The graph this one is mounted in, if any."""
        return self._parent

    def _root(self) -> Graph:
        g = self
        while g._parent is not None:
            g = g._parent
        return g

    def state(self, name: str, initial: Any = SENTINEL) -> StateNode:
        """Add a state node (a wave: START, then DATA if ``initial`` is a value).

        Raises:
            ValueError: bad name, or a node or subgraph of that name exists.
        """
        _check_segment(name, "node name")
        if name in self._nodes or name in self._subgraphs:
            raise ValueError(f"graph {self._name!r} already has {name!r}")
        node = StateNode(name, copy_json(initial))
        with self.batch():
            self._record_structure()
            self._nodes[name] = node
            self._emit(name, Message.START)
            if node.value is not SENTINEL:
                self._emit(name, Message.DATA)
        return node

    add = state

    def remove(self, name: str) -> None:
        """Remove node ``name`` of this graph (a wave: COMPLETE, TEARDOWN).

        Raises:
            UnknownNode: there is no such node.
        """
        if name not in self._nodes:
            raise UnknownNode(name)
        with self.batch():
            self._record_structure()
            del self._nodes[name]
            self._emit(name, Message.COMPLETE)
            self._emit(name, Message.TEARDOWN)

    def mount(self, name: str, subgraph: Graph) -> Graph:
        """Mount ``subgraph`` under ``name`` (its nodes emit START/DATA in one wave).

        Raises:
            ValueError: bad name, name taken, or ``subgraph`` is mounted elsewhere or is
                an ancestor of this graph.
        """
        _check_segment(name, "mount name")
        if not isinstance(subgraph, Graph):
            raise TypeError(f"mount takes a Graph, got {type(subgraph).__name__}")
        if name in self._nodes or name in self._subgraphs:
            raise ValueError(f"graph {self._name!r} already has {name!r}")
        if subgraph._parent is not None:
            raise ValueError(f"graph {subgraph.name!r} is already mounted elsewhere; unmount it first")
        g: Graph | None = self
        while g is not None:
            if g is subgraph:
                raise ValueError("cannot mount a graph inside itself")
            g = g._parent
        with self.batch():
            self._record_structure()
            self._subgraphs[name] = subgraph
            subgraph._parent = self
            subgraph._mount_name = name
            for path, node in subgraph._walk_nodes():
                self._emit(name + PATH_SEP + path, Message.START, owner=self)
                if node.value is not SENTINEL:
                    self._emit(name + PATH_SEP + path, Message.DATA, owner=self)
        return subgraph

    def unmount(self, name: str) -> Graph:
        """Unmount and return subgraph ``name`` (its nodes emit COMPLETE/TEARDOWN).

        Raises:
            UnknownSubgraph: nothing is mounted under ``name``.
        """
        sub = self._subgraphs.get(name)
        if sub is None:
            raise UnknownSubgraph(name)
        with self.batch():
            for path, _node in sub._walk_nodes():
                self._emit(name + PATH_SEP + path, Message.COMPLETE, owner=self)
                self._emit(name + PATH_SEP + path, Message.TEARDOWN, owner=self)
            self._record_structure()
            del self._subgraphs[name]
            sub._parent = None
            sub._mount_name = None
        return sub

    def _record_structure(self) -> None:
        """Remember nodes/subgraphs (and mount links) so a failing batch can undo."""
        nodes = dict(self._nodes)
        subs = dict(self._subgraphs)
        links = {n: (s._parent, s._mount_name) for n, s in subs.items()}

        def undo() -> None:
            for sub in self._subgraphs.values():
                if sub not in subs.values():
                    sub._parent = None
                    sub._mount_name = None
            self._nodes = nodes
            self._subgraphs = subs
            for n, s in subs.items():
                s._parent, s._mount_name = links[n]

        self._root()._undo.append(undo)

    def subgraph(self, path: str) -> Graph | None:
        """The graph mounted at ``path`` (``"a::b"``), or ``None``."""
        g: Graph | None = self
        for seg in path.split(PATH_SEP):
            if g is None:
                return None
            g = g._subgraphs.get(seg)
        return g

    @property
    def subgraphs(self) -> dict[str, Graph]:
        """Mounted subgraphs by mount name (a copy)."""
        return dict(self._subgraphs)

    def node_names(self) -> list[str]:
        """Names of this graph's own nodes, in insertion order."""
        return list(self._nodes)

    def resolve(self, path: str) -> StateNode | None:
        """The node at ``path``, or ``None``."""
        if not isinstance(path, str) or not path:
            return None
        *mounts, last = path.split(PATH_SEP)
        g = self.subgraph(PATH_SEP.join(mounts)) if mounts else self
        return None if g is None else g._nodes.get(last)

    def _owner_of(self, path: str) -> tuple[Graph, StateNode]:
        *mounts, last = path.split(PATH_SEP)
        g = self.subgraph(PATH_SEP.join(mounts)) if mounts else self
        node = None if g is None else g._nodes.get(last)
        if g is None or node is None:
            raise UnknownNode(path)
        return g, node

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self.resolve(path) is not None

    def _walk_nodes(self, base: str = "") -> Iterator[tuple[str, StateNode]]:
        for name, node in self._nodes.items():
            yield base + name, node
        for mname, sub in self._subgraphs.items():
            yield from sub._walk_nodes(base + mname + PATH_SEP)

    def values(self) -> dict[str, Any]:
        """Every node of the graph and its subgraphs: ``{path: value or SENTINEL}``."""
        return {path: copy_json(node.value) for path, node in self._walk_nodes()}

    # ------------------------------------------------------------------ values

    def get(self, path: str) -> Any:
        """The value at ``path`` (:data:`SENTINEL` if none). Raises :class:`UnknownNode`."""
        return self._owner_of(path)[1].value

    def set(self, path: str, value: Any) -> None:
        """Set the state node at ``path`` (DIRTY now, DATA at the end of the wave).

        Raises:
            UnknownNode: no node at ``path``.
        """
        if value is SENTINEL:
            self.invalidate(path)
            return
        owner, node = self._owner_of(path)
        with self.batch():
            self._record_value(node)
            node.value = copy_json(value)
            owner._emit(node.name, Message.DIRTY)
            owner._emit(node.name, Message.DATA)

    def invalidate(self, path: str) -> None:
        """Clear the node at ``path`` to :data:`SENTINEL` (INVALIDATE at the end of the wave)."""
        owner, node = self._owner_of(path)
        with self.batch():
            self._record_value(node)
            node.value = SENTINEL
            owner._emit(node.name, Message.INVALIDATE)

    def _record_value(self, node: StateNode) -> None:
        old = node.value

        def undo() -> None:
            node.value = old

        self._root()._undo.append(undo)

    # ------------------------------------------------------------------ waves

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group mutations into one wave; on an exception, undo them and re-raise."""
        root = self._root()
        undo_mark = len(root._undo)
        held_mark = len(root._held)
        root._depth += 1
        try:
            yield
        except BaseException:
            undo = root._undo[undo_mark:]
            del root._undo[undo_mark:]
            del root._held[held_mark:]
            for fn in reversed(undo):
                fn()
            root._depth -= 1
            if root._depth == 0:
                root._end_wave()
            raise
        root._depth -= 1
        if root._depth == 0:
            root._end_wave()

    @property
    def in_batch(self) -> bool:
        """True while a wave is open."""
        return self._root()._depth > 0

    def _end_wave(self) -> None:
        """Deliver the held messages, then (outermost delivery only) the after-wave callbacks."""
        self._undo.clear()
        self._delivering += 1
        try:
            while self._held:
                held, self._held = self._held, []
                for owner, path, tier in held:
                    owner._dispatch(path, tier)
        finally:
            self._delivering -= 1
        if self._delivering:
            return
        first_error: BaseException | None = None
        while self._after:
            after, self._after = self._after, []
            for fn in after:
                try:
                    fn()
                except BaseException as exc:  # run the others, then re-raise the first
                    if first_error is None:
                        first_error = exc
        if first_error is not None:
            raise first_error

    def after_wave(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once the current wave's messages are delivered (now if none is open)."""
        root = self._root()
        if root._depth == 0 and not root._delivering:
            fn()
        else:
            root._after.append(fn)

    def _emit(self, path: str, message: Message, owner: Graph | None = None) -> None:
        """Emit ``message`` for node ``path`` (relative to ``owner``, default self)."""
        src = self if owner is None else owner
        tier = message.tier
        root = self._root()
        if tier >= 3 and root._depth > 0:
            root._held.append((src, path, tier))
        else:
            src._dispatch(path, tier)

    def _dispatch(self, path: str, tier: int) -> None:
        g: Graph | None = self
        while g is not None:
            for fn in list(g._observers):
                fn(path, tier)
            if g._parent is None:
                break
            path = f"{g._mount_name}{PATH_SEP}{path}"
            g = g._parent

    def observe(self, fn: Observer) -> Callable[[], None]:
        """Call ``fn(path, tier)`` for every message; returns an unsubscribe function."""
        self._observers.append(fn)

        def unsubscribe() -> None:
            if fn in self._observers:
                self._observers.remove(fn)

        return unsubscribe

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> dict[str, Any]:
        """The graph as a ``GraphPersistSnapshot`` JSON object (values deep-copied)."""
        out: dict[str, Any] = {
            "name": self._name,
            "nodes": {name: node.slice() for name, node in self._nodes.items()},
        }
        if self._subgraphs:
            out["subgraphs"] = {m: sub.snapshot() for m, sub in self._subgraphs.items()}
        return out

    def _check_restore(self, snap: Mapping[str, Any], where: str) -> None:
        if not isinstance(snap, Mapping):
            raise TypeError(f"snapshot must be a mapping, got {type(snap).__name__}")
        found = snap.get("name")
        if found != self._name:
            raise NameMismatch(self._name, str(found))
        for name in snap.get("nodes", {}) or {}:
            if name not in self._nodes:
                raise UnknownNode(where + name)
        for mname, sub in (snap.get("subgraphs", {}) or {}).items():
            child = self._subgraphs.get(mname)
            if child is None:
                raise UnknownSubgraph(where + mname)
            child._check_restore(sub, where + mname + PATH_SEP)

    def _apply_restore(self, snap: Mapping[str, Any]) -> None:
        for name, slc in (snap.get("nodes", {}) or {}).items():
            if not isinstance(slc, Mapping) or slc.get("type", "state") != "state":
                continue
            if "value" in slc:
                self.set(name, slc["value"])
            else:
                self.invalidate(name)
        for mname, sub in (snap.get("subgraphs", {}) or {}).items():
            self._subgraphs[mname]._apply_restore(sub)

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Set this graph's state nodes to ``snapshot``'s values, in one wave.

        Only existing state nodes are set (a slice without a value invalidates the
        node); nodes the snapshot does not mention keep their values. Everything is
        validated before anything changes.

        Raises:
            NameMismatch: the snapshot is of a graph with another name.
            UnknownNode, UnknownSubgraph: the snapshot names something this graph lacks.
        """
        self._check_restore(snapshot, "")
        with self.batch():
            self._apply_restore(snapshot)

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> Graph:
        """Build a new graph with a state node per snapshot node, and restore it.

        Nodes of other types become state nodes holding the snapshot's value.
        """
        if not isinstance(snapshot, Mapping):
            raise TypeError(f"snapshot must be a mapping, got {type(snapshot).__name__}")
        graph = cls(str(snapshot.get("name")))
        for name, slc in (snapshot.get("nodes", {}) or {}).items():
            value = slc.get("value", SENTINEL) if isinstance(slc, Mapping) else SENTINEL
            graph._nodes[name] = StateNode(name, copy_json(value))
        for mname, sub in (snapshot.get("subgraphs", {}) or {}).items():
            child = cls.from_snapshot(sub)
            graph._subgraphs[mname] = child
            child._parent = graph
            child._mount_name = mname
        return graph

    def __repr__(self) -> str:
        return f"Graph({self._name!r}, nodes={list(self._nodes)}, subgraphs={list(self._subgraphs)})"
