"""``tierdb follow`` and ``tierdb replication-status`` against the shared cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import engine
from engine.cli import main

from .conftest import T1, Cluster, wait_until

pytestmark = pytest.mark.nats


def test_follow_and_replication_status(cluster: Cluster, stream_name: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    p = engine.open(tmp_path / "p")
    try:
        p.replicate(cluster.urls, stream_name, replicas=3, ack="sync")
        for i in range(12):
            with p.begin() as tx:
                tx.set(T1, b"k%d" % i, b"v%d" % i)
        rpath = str(tmp_path / "r")
        assert main(["follow", rpath, "--nats", ",".join(cluster.urls), "--stream", stream_name,
                     "--until", "12", "--seconds", "30"]) == 0
        out = capsys.readouterr()
        assert json.loads(out.out.strip().splitlines()[-1]) == {"stream": stream_name, "version": 12}
        assert "applied version" in out.err
        assert main(["replication-status", rpath]) == 0
        st = json.loads(capsys.readouterr().out)
        assert st["version"] == 12 and st["replication"]["role"] == "replica"
        assert st["stream"]["last_version"] == 12 and st["behind_versions"] == 0
        assert st["is_current_primary"] is False
        assert st["stream"]["lease"] is None                              # no lease taken
        assert main(["replication-status", str(tmp_path / "p")]) == 0   # open here: locked
        st = json.loads(capsys.readouterr().out)
        assert st["version"] is None and "another process" in st["note"]
    finally:
        p.close()
    assert main(["replication-status", str(tmp_path / "p")]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["replication"]["role"] == "primary" and st["is_current_primary"] is True
    p = engine.open(tmp_path / "p")
    p.replicate(cluster.urls, stream_name, replicas=3, lease=5.0)
    node = p._replication.node.hex()
    assert wait_until(lambda: p._replication.status()["lease"]["revision"] is not None, 10)
    p.close()
    assert main(["replication-status", rpath]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["stream"]["lease"]["holder_node"] == node
    assert main(["follow", str(tmp_path / "x"), "--nats", cluster.urls[0], "--stream", "nope",
                 "--seconds", "1"]) == 2
    assert "StreamNotFound" in capsys.readouterr().err
