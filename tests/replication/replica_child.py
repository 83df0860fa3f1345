"""Child process for test_replica.py: follow a stream as a replica until killed.

argv: path servers(comma-separated) stream
Prints the applied version on stdout after every change (flushed), so the parent can
SIGKILL it while it is applying.
"""

from __future__ import annotations

import sys
import time

import engine


def main() -> None:
    path, servers, stream = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
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
