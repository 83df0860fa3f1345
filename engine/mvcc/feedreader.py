"""Read a store's change feed from its files, without opening the store.

``tierdb changes`` uses this when another process has the store open (the store's LOCK is
taken): the feed's segments are append-only and every record is checksummed, so a reader
needs no lock. It sees what the owner has written so far: a hot-fronted owner writes its
buffered tail every 256 commits, at each flush and at close, so the newest commits may show
up late. With ``wait`` it polls for new records like ``tail -f``.

Notes: thread safety
    A generator; each call has its own state. Runs beside a writing process: a record being
    written at the end of the newest segment is not read until it is whole; a segment the
    owner trims meanwhile ends the iteration with ChangesTrimmed.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import (
    ChangefeedDisabled,
    ChangesTrimmed,
    CorruptionError,
    InvalidKeyError,
)
from ..types import EntryKind, check_version
from .changefeed import Change
from .commitlog import decode_batches
from .feedlog import (
    FEED_DIR,
    FEED_HEADER,
    STATE_NAME,
    check_header,
    read_state,
    records,
)

__all__ = ["read_feed_files"]

POLL_SECONDS = 0.2


def _segments(d: Path) -> list[tuple[int, Path]]:
    out = []
    for p in d.glob("feed-*.log"):
        try:
            out.append((int(p.name[len("feed-"):-len(".log")]), p))
        except ValueError:
            continue
    return sorted(out)


def _floor(d: Path) -> int:
    try:
        return int(read_state(d / STATE_NAME)["floor"])
    except FileNotFoundError:
        return 0


def read_feed_files(store_path: str | os.PathLike[str], after: int = 0, *,
                    tables: Iterable[EntryKind] | None = None, wait: bool = False,
                    timeout: float | None = None) -> Iterator[Change]:
    """Every change above ``after`` found in ``<store_path>/changes/``, in version order.

    ``wait``: keep polling for new records; stop after ``timeout`` seconds without one
    (``None``: forever). Raises ChangefeedDisabled (no feed there), ChangesTrimmed (``after``
    below the floor, or trimmed while reading), CorruptionError (a bad record or a gap).
    """
    d = Path(store_path) / FEED_DIR
    after = check_version(after, "after")
    wanted = None if tables is None else frozenset([tables] if isinstance(tables, EntryKind) else tables)
    if wanted is not None and not all(isinstance(t, EntryKind) for t in wanted):
        raise InvalidKeyError("tables must hold EntryKind values")
    if not (d / STATE_NAME).exists():
        raise ChangefeedDisabled(f"store {store_path} has no change feed ({d / STATE_NAME} is missing)")
    return _follow(d, after, wanted, wait, timeout)


def _follow(d: Path, pos: int, wanted: frozenset[EntryKind] | None, wait: bool,
            timeout: float | None) -> Iterator[Change]:
    # (segment, inode) -> where its next unread record starts; a segment rewritten by an
    # erase has a new inode and is read again from its start
    offsets: dict[tuple[Path, int], int] = {}
    idle_since = time.monotonic()
    while True:
        floor = _floor(d)
        if pos < floor:
            raise ChangesTrimmed(f"changes at or below version {floor} are trimmed from the feed; read "
                                 f"with after >= {floor}", floor=floor)
        segs = _segments(d)
        start = 0
        for i, (first, _p) in enumerate(segs):
            if first <= pos + 1:
                start = i
        moved = relist = False
        for i in range(start, len(segs)):
            first, p = segs[i]
            newest = i == len(segs) - 1
            try:
                with open(p, "rb") as fh:
                    key = (p, os.fstat(fh.fileno()).st_ino)
                    off = offsets.get(key, FEED_HEADER.size)
                    if off == FEED_HEADER.size:
                        head = fh.read(FEED_HEADER.size)
                        if len(head) < FEED_HEADER.size:
                            break  # being created
                        check_header(head, p)
                    fh.seek(off)
                    data = fh.read()
            except FileNotFoundError:
                relist = True  # trimmed or rewritten meanwhile: list again (and check the floor)
                break
            used = 0
            for v, payload, end in records(data, p, 0, len(data), tolerate_tail=newest, base=off):
                used = end
                if v <= pos:
                    continue
                if v != pos + 1:  # trimmed while read, or a replica's snapshot jump
                    fl = max(_floor(d), v - 1)
                    raise ChangesTrimmed(f"versions {pos + 1}..{v - 1} are not in the change feed "
                                         f"(trimmed, or a replica that loaded a snapshot); read with "
                                         f"after >= {fl}", floor=fl)
                try:
                    version, ts, writes = decode_batches(payload)
                except (ValueError, struct.error) as exc:
                    raise CorruptionError(f"malformed change feed record ({exc})", path=p) from None
                pos, moved = version, True
                if wanted is not None:
                    writes = {t: rows for t, rows in writes.items() if t in wanted}
                    if not writes:
                        continue
                yield Change(version, ts, writes)
            offsets = {key: off + used}
        if relist:
            continue
        if not wait:
            return
        now = time.monotonic()
        if moved:
            idle_since = now
        elif timeout is not None and now - idle_since >= timeout:
            return
        time.sleep(POLL_SECONDS if timeout is None else min(POLL_SECONDS, timeout))
