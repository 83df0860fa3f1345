"""Child process for test_replica.py: follow a stream as a replica until killed.

argv: path servers(comma-separated) stream
Prints the applied version on stdout after every change (flushed), so the parent can
SIGKILL it while it is applying. Each applied commit is paced (1 ms before the real apply):
on a loaded machine the whole stream could otherwise be applied before the parent reads the
first line, and the kill would not land mid-apply.
"""

from __future__ import annotations

import sys
import time

import engine


def _paced(apply):  # type: ignore[no-untyped-def]
    def paced(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(0.001)
        return apply(self, *args, **kwargs)
    return paced


def main() -> None:
    path, servers, stream = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
    engine.Store._apply_replicated = _paced(engine.Store._apply_replicated)  # type: ignore[method-assign]
    r = engine.open_replica(path, servers=servers, stream=stream, layout="hot+warm")
    last = -1
    while True:
        v = r.version
        if v != last:
            print(v, flush=True)
            last = v
        time.sleep(0.002)


if __name__ == "__main__":
    main()
