"""The ``tierdb`` command: reads, writes, time travel, maintenance and readable errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from engine.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def db(tmp_path, capsys):
    path = str(tmp_path / "db")
    assert run(capsys, "put", path, "alice", "1", "--create", "--table", "source:1")[0] == 0
    assert run(capsys, "put", path, "alice", "2", "--table", "source:1")[0] == 0
    assert run(capsys, "put", path, "0x00ff", "0xdeadbeef", "--table", "source:1")[0] == 0
    assert run(capsys, "delete", path, "bob", "--table", "source:1")[0] == 0
    return path


def test_put_get_with_versions(db, capsys):
    assert run(capsys, "get", db, "alice", "--table", "source:1") == (0, "2\n", "")
    assert run(capsys, "get", db, "alice", "--table", "source:1", "--version", "1") == (0, "1\n", "")
    code, out, err = run(capsys, "get", db, "0x00ff", "--table", "source:1")
    assert (code, out) == (0, "0xdeadbeef\n")
    code, out, err = run(capsys, "get", db, "alice", "--table", "source:1", "--version", "0")
    assert code == 1 and "not found" in err


def test_scan_and_history(db, capsys):
    code, out, _ = run(capsys, "scan", db, "--table", "source:1", "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows == [{"key": "0x00ff", "value": "0xdeadbeef"}, {"key": "alice", "value": "2"}]
    code, out, _ = run(capsys, "scan", db, "--table", "source:1", "--version", "1")
    assert out == "alice\t1\n"
    code, out, _ = run(capsys, "scan", db, "--table", "source:1", "--prefix", "al", "--reverse")
    assert out == "alice\t2\n"
    code, out, _ = run(capsys, "history", db, "alice", "--table", "source:1")
    lines = out.splitlines()
    assert [ln.split("\t")[0] for ln in lines] == ["2", "1"]
    assert lines[0].endswith("\t2")


def test_at_time(db, capsys):
    later = time.time() + 5
    assert run(capsys, "get", db, "alice", "--table", "source:1", "--at", str(later))[1] == "2\n"
    code, _, err = run(capsys, "get", db, "alice", "--table", "source:1", "--at", "1999-01-01T00:00:00")
    assert code == 2 and "no commit at or before" in err
    code, _, err = run(capsys, "get", db, "alice", "--at", "yesterday-ish")
    assert code == 2 and "bad --at time" in err


def test_maintenance_and_stats(db, capsys):
    for cmd in ("flush", "demote", "gc", "compact", "check"):
        code, out, _ = run(capsys, cmd, db)
        assert code == 0, cmd
        json.loads(out)
    code, out, _ = run(capsys, "stats", db)
    st = json.loads(out)
    assert st["version"] == 4 and st["layout"] == "hot+warm+cold"
    assert st["tiers"]["warm"]["keys"] + st["tiers"]["cold"]["keys"] >= 3


def test_errors_are_readable(tmp_path, db, capsys):
    code, _, err = run(capsys, "get", str(tmp_path / "missing"), "k")
    assert code == 2 and "no tierdb store" in err
    code, _, err = run(capsys, "get", db, "0xabc")
    assert code == 2 and "bad key encoding" in err
    code, _, err = run(capsys, "get", db, "alice", "--version", "99")
    assert code == 2 and "FutureVersionError" in err
    code, _, err = run(capsys, "get", db, "alice", "--table", "sauce:1")
    assert code == 2 and "not an EntryKind" in err
    with pytest.raises(SystemExit) as exc:
        main(["get", db, "alice", "--version", "-3"])
    assert exc.value.code == 2
    code, _, err = run(capsys, "put", str(tmp_path / "new"), "k", "v")
    assert code == 2 and "--create" in err
    assert not (tmp_path / "new").exists()
    # nothing above changed the store
    assert run(capsys, "get", db, "alice", "--table", "source:1")[1] == "2\n"


def test_demo_and_console_script(tmp_path):
    out = subprocess.run([sys.executable, "-m", "engine.cli", "demo", "--path", str(tmp_path / "demo")],
                         capture_output=True, text=True, check=True).stdout
    assert "check: ok" in out and "per-tier stats" in out
    assert "as of version 4: <deleted>" in out
    notastore = tmp_path / "other"
    notastore.mkdir()
    (notastore / "precious.txt").write_text("keep me")
    res = subprocess.run([sys.executable, "-m", "engine.cli", "demo", "--path", str(notastore)],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "not a tierdb store" in res.stderr
    assert (notastore / "precious.txt").read_text() == "keep me"
