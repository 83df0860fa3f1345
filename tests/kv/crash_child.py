"""Child process for test_crash.py: write a feed and fold it with watch_applied until killed.

argv: backend(local|nats) src fold bucket url total

The writer thread continues the feed from what the service already holds (keys k.00000,
k.00001, ... written in order, each exactly once). The fold counts every raw update it
stores *in the same commit* as the data and the cursor, so a double application or a lost
update shows up as a count that differs from ``total``.
"""

from __future__ import annotations

import struct
import sys
import threading
import time

import engine
from engine.kv import (
    BatchConfig,
    LocalConnection,
    NatsConnection,
    NatsConnectionConfig,
    Put,
    StoreFold,
    WatchScope,
    watch_applied,
)

COUNT_KEY = b"applied-count"
U64 = struct.Struct(">Q")


class CountingFold(StoreFold):
    def apply(self, batch, cursor):  # type: ignore[no-untyped-def]
        with self.store.begin() as tx:
            for u in batch:
                k = self._data_prefix + u.key.encode()
                if isinstance(u, Put):
                    tx.set(self.table, k, u.entry.value)
                else:
                    tx.remove(self.table, k)
            raw = tx.get(self.table, COUNT_KEY)
            n = 0 if raw is None else U64.unpack(raw)[0]
            tx.set(self.table, COUNT_KEY, U64.pack(n + len(batch)))
            tx.set(self.table, self._cursor_key, cursor.token.raw)


def main() -> int:
    backend, src, fold_path, bucket_name, url, total_s = sys.argv[1:7]
    total = int(total_s)
    store = None
    if backend == "local":
        store = engine.open(src, layout="hot+warm")
        conn = LocalConnection(store)
    else:
        conn = NatsConnection(NatsConnectionConfig(servers=[url], timeout=10.0))
    conn.connect()
    bucket = conn.store(bucket_name)
    fstore = engine.open(fold_path, layout="warm")
    fold = CountingFold(fstore)

    def writer() -> None:
        i = len(bucket.keys("k."))
        while i < total:
            bucket.put(f"k.{i:05d}", str(i).encode())
            i += 1
            time.sleep(0.001)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    done = threading.Event()

    def monitor() -> None:
        while not done.is_set():
            if not t.is_alive() and fold.count() >= total:
                done.set()
            time.sleep(0.05)

    threading.Thread(target=monitor, daemon=True).start()

    watch_applied(bucket.watcher(), WatchScope.Prefix("k."), reader=bucket, store=fold,
                  batch=BatchConfig(window=0.005, max=25), parse=lambda u: u,
                  apply=lambda us: None, shutdown=done)
    conn.shutdown()
    fstore.close()
    if store is not None:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
