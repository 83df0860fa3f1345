"""The reference Graph: waves, batch, observer, mount, snapshot, restore (spec 13)."""

from __future__ import annotations

import pytest

from engine.views import (
    SENTINEL,
    Graph,
    Message,
    NameMismatch,
    UnknownNode,
    UnknownSubgraph,
)


def recorder(g: Graph) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    g.observe(lambda path, tier: seen.append((path, tier)))
    return seen


def test_state_set_get_invalidate() -> None:
    g = Graph("g")
    g.state("a", 1)
    g.state("b")
    assert g.get("a") == 1 and g.get("b") is SENTINEL
    g.set("b", None)
    assert g.get("b") is None  # null is a value
    g.invalidate("a")
    assert g.get("a") is SENTINEL
    with pytest.raises(UnknownNode):
        g.set("nope", 1)
    with pytest.raises(ValueError):
        g.state("a")
    with pytest.raises(ValueError):
        g.state("x::y")


def test_messages_and_batch() -> None:
    g = Graph("g")
    g.state("a", 0)
    g.state("b", 0)
    seen = recorder(g)
    g.set("a", 1)
    assert seen == [("a", Message.DIRTY.tier), ("a", Message.DATA.tier)]
    seen.clear()
    with g.batch():
        g.set("a", 2)
        g.set("b", 3)
        assert seen == [("a", 1), ("b", 1)]  # DIRTY at once, DATA held
        with g.batch():
            g.invalidate("b")
        assert seen == [("a", 1), ("b", 1)]
    assert seen == [("a", 1), ("b", 1), ("a", 3), ("b", 3), ("b", 4)]


def test_after_wave_coalesces() -> None:
    g = Graph("g")
    g.state("a", 0)
    g.state("b", 0)
    calls: list[dict] = []
    scheduled = []

    def on(path: str, tier: int) -> None:
        if tier >= 3 and not scheduled:
            scheduled.append(1)
            g.after_wave(lambda: (scheduled.clear(), calls.append(g.values())))

    g.observe(on)
    with g.batch():
        g.set("a", 1)
        g.set("b", 2)
    assert calls == [{"a": 1, "b": 2}]
    g.set("a", 5)
    assert calls[-1] == {"a": 5, "b": 2} and len(calls) == 2
    ran = []
    g.after_wave(lambda: ran.append(1))  # no wave open: runs now
    assert ran == [1]


def test_failed_batch_rolls_back() -> None:
    g = Graph("g")
    g.state("a", 0)
    seen = recorder(g)
    with pytest.raises(RuntimeError), g.batch():
        g.set("a", 1)
        g.state("n", 5)
        g.mount("c", Graph("c"))
        raise RuntimeError("boom")
    assert g.values() == {"a": 0}
    assert g.subgraphs == {} and "n" not in g
    assert all(tier < 3 for _, tier in seen)  # no held message delivered
    # inner failure inside an outer batch only undoes the inner part
    with g.batch():
        g.set("a", 1)
        with pytest.raises(KeyError), g.batch():
            g.set("a", 2)
            raise KeyError("x")
    assert g.get("a") == 1


def test_mount_paths_and_observer() -> None:
    root = Graph("root")
    child = Graph("child")
    child.state("x", 1)
    seen = recorder(root)
    root.mount("c", child)
    assert seen == [("c::x", 0), ("c::x", 3)]
    seen.clear()
    child.set("x", 2)
    assert root.get("c::x") == 2 and ("c::x", 3) in seen
    root.set("c::x", 3)
    assert child.get("x") == 3
    assert root.values() == {"c::x": 3}
    assert root.subgraph("c") is child and child.parent is root
    with pytest.raises(ValueError):
        Graph("other").mount("c", child)  # already mounted
    with pytest.raises(ValueError):
        child.mount("r", root)  # cycle
    seen.clear()
    assert root.unmount("c") is child
    assert ("c::x", 5) in seen and ("c::x", 6) in seen
    assert child.parent is None and root.resolve("c::x") is None
    with pytest.raises(UnknownSubgraph):
        root.unmount("c")


def test_remove_emits_complete() -> None:
    g = Graph("g")
    g.state("a", 1)
    seen = recorder(g)
    g.remove("a")
    assert seen == [("a", 5), ("a", 6)]
    with pytest.raises(UnknownNode):
        g.remove("a")


def test_snapshot_shape() -> None:
    g = Graph("g")
    g.state("a", {"k": [1, 2]})
    g.state("b")
    c = Graph("cg")
    c.state("z", 1)
    g.mount("c", c)
    assert g.snapshot() == {
        "name": "g",
        "nodes": {
            "a": {"type": "state", "status": "live", "value": {"k": [1, 2]}},
            "b": {"type": "state", "status": "sentinel"},
        },
        "subgraphs": {"c": {"name": "cg", "nodes": {"z": {"type": "state", "status": "live", "value": 1}}}},
    }
    assert "subgraphs" not in Graph("e").snapshot()
    s = g.snapshot()
    s["nodes"]["a"]["value"]["k"].append(3)  # snapshots are copies
    assert g.get("a") == {"k": [1, 2]}


def test_restore_and_errors() -> None:
    g = Graph("g")
    g.state("a", 1)
    g.state("b", 2)
    c = Graph("cg")
    c.state("z", 1)
    g.mount("c", c)
    s = g.snapshot()
    g.set("a", 10)
    g.invalidate("b")
    c.set("z", 5)
    seen = recorder(g)
    g.restore(s)
    assert g.values() == {"a": 1, "b": 2, "c::z": 1}
    assert any(t == 3 for _, t in seen)
    with pytest.raises(NameMismatch):
        g.restore({**s, "name": "other"})
    with pytest.raises(UnknownNode):
        g.restore({"name": "g", "nodes": {"zz": {"type": "state", "status": "live", "value": 1}}})
    with pytest.raises(UnknownSubgraph):
        g.restore({"name": "g", "nodes": {}, "subgraphs": {"nope": {"name": "n", "nodes": {}}}})
    # validated before anything changes
    g.set("a", 7)
    with pytest.raises(UnknownNode):
        g.restore({"name": "g", "nodes": {"a": {"type": "state", "status": "live", "value": 0}, "zz": {}}})
    assert g.get("a") == 7


def test_from_snapshot() -> None:
    g = Graph("g")
    g.state("a", 1)
    g.state("s")
    c = Graph("cg")
    c.state("z", [1])
    g.mount("c", c)
    h = Graph.from_snapshot(g.snapshot())
    assert h.snapshot() == g.snapshot()


def test_observer_unsubscribe() -> None:
    g = Graph("g")
    g.state("a", 0)
    seen: list = []
    off = g.observe(lambda p, t: seen.append(p))
    off()
    off()
    g.set("a", 1)
    assert seen == []
