"""Child process for test_failover.py: a primary committing with ack="sync" until killed.

argv: path servers(comma-separated) stream log [threads [lease seconds]]

``threads`` committers (default 4, so commits share quorum round trips in groups) take
commit numbers from one counter; commit number c writes key ``k<c % 50>`` = ``v<c>`` in
table source:1. After every acknowledged commit a line ``<version> <c>`` goes to the log
(unbuffered: the lines survive SIGKILL of this process). On FencedError the log gets
``FENCED <c> <store version>`` as its last line and the process exits with status 3 at
once; other errors (write-write conflicts between the threads included) are logged as
``ERR`` and the loop goes on.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time

import engine
from engine import EntryKind

T = EntryKind.source(1)


def main() -> None:
    path, servers, stream, logp = sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[4]
    threads = int(sys.argv[5]) if len(sys.argv) > 5 else 4
    lease = float(sys.argv[6]) if len(sys.argv) > 6 else None
    fd = os.open(logp, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    store = engine.open(path, layout="hot+warm")
    store.replicate(servers, stream, replicas=3, ack="sync", timeout=5.0, lease=lease)
    os.write(fd, b"READY\n")
    numbers = itertools.count(1)
    log_lock = threading.Lock()

    def commit_forever() -> None:
        while True:
            c = next(numbers)
            try:
                with store.begin() as tx:
                    tx.set(T, b"k%d" % (c % 50), b"v%d" % c)
                line = b"%d %d\n" % (tx.version, c)
            except engine.FencedError:
                with log_lock:
                    os.write(fd, b"FENCED %d %d\n" % (c, store.version))
                    os._exit(3)
            except engine.EngineError as exc:
                line = b"ERR %d %s\n" % (c, type(exc).__name__.encode())
                time.sleep(0.05)
            with log_lock:
                os.write(fd, line)

    for _ in range(threads):
        threading.Thread(target=commit_forever, daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
