"""Child process for test_failover.py: a primary committing with ack="sync" until killed.

argv: path servers(comma-separated) stream log

Commit number c writes key ``k<c % 50>`` = ``v<c>`` in table source:1. After every
acknowledged commit it appends ``<version> <c>`` to the log (unbuffered: the lines survive
SIGKILL of this process). On FencedError it appends ``FENCED <c> <store version>`` and exits
with status 3; other errors are logged as ``ERR`` and the loop goes on.
"""

from __future__ import annotations

import os
import sys
import time

import engine
from engine import EntryKind

T = EntryKind.source(1)


def main() -> None:
    path, servers, stream, logp = sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[4]
    fd = os.open(logp, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    store = engine.open(path, layout="hot+warm")
    store.replicate(servers, stream, replicas=3, ack="sync", timeout=5.0)
    os.write(fd, b"READY\n")
    c = 0
    while True:
        c += 1
        try:
            with store.begin() as tx:
                tx.set(T, b"k%d" % (c % 50), b"v%d" % c)
            os.write(fd, b"%d %d\n" % (tx.version, c))
        except engine.FencedError:
            os.write(fd, b"FENCED %d %d\n" % (c, store.version))
            store.close()
            sys.exit(3)
        except engine.EngineError as exc:
            os.write(fd, b"ERR %d %s\n" % (c, type(exc).__name__.encode()))
            time.sleep(0.05)


if __name__ == "__main__":
    main()
