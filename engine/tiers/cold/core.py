"""The cold tier's shared state and plumbing: open (lock, recover), the reader-visible
:class:`~engine.tiers.cold.state.State`, manifest replacement, file numbers, close.

The tier's behaviour is split by concern into mixins over :class:`TierCore` (points.py,
ranges.py, writes.py, compactor.py, health.py); tier.py composes them into ``ColdTier``
and documents layout, durability and thread safety for all of them.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from ...errors import ClosedError, LockedError, StorageIOError
from ...types import EntryKind
from .block import parse_block
from .cache import BlockCache
from .manifest import (MANIFEST_NAME, Manifest, ReplacedNotDurable, SegmentRef, encode_manifest,
                       write_atomic)
from .options import ColdOptions
from .reader import Segment
from .state import State, recover
from .writer import BlockHook, segment_name


class TierCore:
    """State every part of the cold tier shares, and its lifecycle (see tier.py).

    Attributes: ``options`` (:class:`ColdOptions`), ``path``; private: the writer and
    compaction locks, the block cache, the current :class:`State` (None once closed), the
    manifest last written, the file-number and seq counters, the stats counters.

    Raises (constructor): LockedError (another opener), CorruptionError/FormatError (damaged
    or foreign files), StorageIOError (OS failures).
    """

    def __init__(self, path: str | os.PathLike[str], **options: Any) -> None:
        self.options = ColdOptions(**options)
        self.path = Path(path)
        self._write_lock = threading.RLock()
        self._compact_lock = threading.Lock()
        self._cache = BlockCache(self.options.cache_bytes)
        self._generation = 0
        self._stats_cache: tuple[int, dict[str, int]] | None = None
        self._counters = {"compactions": 0, "compaction_bytes_in": 0, "compaction_bytes_out": 0,
                          "segments_written": 0, "bytes_written": 0, "recovered_temp_files": 0}
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.path / "LOCK", os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise StorageIOError(f"cannot open cold tier directory {self.path}: {exc}") from exc
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise LockedError(f"cold tier {self.path} is open elsewhere (LOCK is held); close "
                              "the other user first") from None
        try:
            rec = recover(self.path, self._cache)
        except BaseException:  # release the lock, then re-raise whatever it was
            os.close(self._lock_fd)
            raise
        self._manifest = rec.manifest
        self._next_file_no = rec.next_file_no
        self._next_seq = rec.next_seq
        self._counters["recovered_temp_files"] = rec.removed_temp_files
        self._state: State | None = rec.state

    def _live(self) -> State:
        st = self._state
        if st is None:
            raise ClosedError(f"cold tier {self.path} is closed; open it again")
        return st

    def _write_manifest(self, segments: Sequence[Segment], tables: frozenset[EntryKind],
                        drop_floor: int | None = None) -> None:
        """Durably replace the manifest (writer lock held)."""
        m = self._manifest
        new = Manifest(
            generation=m.generation + 1,
            next_file_no=self._next_file_no,
            next_seq=self._next_seq,
            drop_floor=m.drop_floor if drop_floor is None else drop_floor,
            segments=[SegmentRef(s.file_no, s.seq, s.file_size, s.footer_crc) for s in segments],
            tables=sorted(tables),
        )
        try:
            write_atomic(self.path / MANIFEST_NAME, encode_manifest(new))
        except ReplacedNotDurable:
            self._manifest = new  # it is the manifest on disk now
            raise
        self._manifest = new

    def _cache_filler(self, file_no: int) -> BlockHook | None:
        """The writer hook that parses each block of segment ``file_no`` into the cache as
        it is written (``cache_on_write``), or None. File numbers are never reused, so the
        entries of a write that is abandoned can never answer for another file; they age
        out of the LRU."""
        cache = self._cache
        if not self.options.cache_on_write or cache.capacity == 0:
            return None
        path = self.path / segment_name(file_no)
        put = cache.put

        def fill(b: int, offset: int, raw: bytes) -> None:
            put((file_no, b), parse_block(raw, path, offset), count_miss=False)

        return fill

    def _alloc_file_no(self) -> int:
        no = self._next_file_no
        self._next_file_no += 1
        return no

    def _changed(self) -> None:
        self._generation += 1

    @staticmethod
    def _unlink_quiet(p: Path) -> None:
        try:
            os.unlink(p)
        except OSError:
            pass  # an unnamed segment is removed on the next open anyway

    def tables(self) -> list[EntryKind]:
        """Every table ever written, ensured or cleared here, sorted."""
        return sorted(self._live().tables)

    def close(self) -> None:
        """Release the directory lock and the cache. Idempotent; later calls raise ClosedError.

        Waits for a running compaction. Segment descriptors close as soon as no reader
        references them (immediately when none is in flight).
        """
        with self._compact_lock, self._write_lock:
            if self._state is None:
                return
            self._state = None
            self._cache.clear()
            try:
                os.close(self._lock_fd)
            except OSError:
                pass  # already closed: nothing left to release

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        st = self._state
        state = "closed" if st is None else f"{len(st.segments)} segments"
        return f"ColdTier({str(self.path)!r}, {state})"
