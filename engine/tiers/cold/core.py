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
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

from ...errors import ClosedError, LockedError, StorageIOError
from ...types import EntryKind
from .block import parse_block
from .cache import BlockCache
from .manifest import (
    MANIFEST_NAME,
    Manifest,
    ReplacedNotDurable,
    SegmentRef,
    encode_manifest,
    fsync_dir,
    write_atomic,
)
from .shared import open_client, unreferenced
from .options import ColdOptions
from .reader import Segment
from .remote import (
    RemoteFiles,
    RemoteRecovered,
    drop_object,
    recover_remote,
    segment_object,
)
from .state import Recovered, State, drop_name, recover
from .writer import BlockHook, WrittenSegment, segment_name


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
        self._remote: RemoteFiles | None = None
        # Segment objects retired by compaction, deleted once no reader holds their Segment
        # (a local file stays readable through its open descriptor; an object does not).
        self._doomed: list[str] = []
        # Objects a backup or clone is copying (engine/backup): name -> holders. Retiring one
        # meanwhile is deferred to the release of its last hold (see hold_objects).
        self._held: dict[str, int] = {}
        self._held_retired: set[str] = set()
        try:
            rec: Recovered | RemoteRecovered
            if self.options.url is None:
                rec = recover(self.path, self._cache)
            else:
                # A clone's prefix reads shared objects from their origin (shared.py).
                client = open_client(self.options.url, self.options.storage_options)
                ref = self.options.ref_path
                self._remote = RemoteFiles(client, self.path, self.options.disk_cache_bytes,
                                           None if ref is None else Path(ref))
                rec = recover_remote(self.path, self._remote, self._cache, self._retire_objects)
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
                        drop_floor: int | None = None, drop_files: Sequence[int] | None = None) -> None:
        """Durably replace the manifest (writer lock held).

        ``drop_files``: the live drop files the new manifest names (object-store tiers only;
        default: the current state's). Raises (object store) ManifestConflictError,
        ManifestUncertain; (local) ReplacedNotDurable, StorageIOError.
        """
        m = self._manifest
        new = Manifest(
            generation=m.generation + 1,
            next_file_no=self._next_file_no,
            next_seq=self._next_seq,
            drop_floor=m.drop_floor if drop_floor is None else drop_floor,
            segments=[SegmentRef(s.file_no, s.seq, s.file_size, s.footer_crc) for s in segments],
            tables=sorted(tables),
        )
        remote = self._remote
        if remote is not None:
            st = self._state
            new.drop_files = sorted(drop_files if drop_files is not None
                                    else (st.drop_files if st is not None else []))
            remote.replace_manifest(new)
            self._manifest = new
            return
        try:
            write_atomic(self.path / MANIFEST_NAME, encode_manifest(new))
        except ReplacedNotDurable:
            self._manifest = new  # it is the manifest on disk now
            raise
        self._manifest = new

    # -- files: a local directory or an object store ------------------------------------

    def _publish_segment(self, ws: WrittenSegment) -> Segment:
        """Make the finished segment ``ws`` readable and durable (not yet live: the manifest
        names it next). Local: open it, fsync the directory. Object store: upload it, then
        open it by range. On failure nothing is left to clean up."""
        remote = self._remote
        if remote is None:
            seg = Segment(ws.path, ws.file_no, self._cache, expect_size=ws.file_size,
                          expect_footer_crc=ws.footer_crc, expect_seq=ws.seq)
            fsync_dir(self.path)
            return seg
        name = remote.upload_segment(ws)
        try:
            return remote.open_segment(ws.file_no, ws.file_size, ws.footer_crc, ws.seq, self._cache)
        except BaseException as exc:
            remote.abandon([name], exc)
            raise

    def _abandon_segment(self, ws: WrittenSegment, exc: BaseException) -> None:
        """The manifest naming ``ws`` did not become live (``exc`` says why): remove it,
        unless its fate is uncertain (an object-store manifest put that may have landed)."""
        remote = self._remote
        if remote is None:
            self._unlink_quiet(ws.path)
            return
        self._unlink_quiet(ws.path)  # the staged copy, if the upload never happened
        remote.abandon([segment_object(ws.file_no)], exc)

    def _put_drop_file(self, no: int, data: bytes) -> None:
        """Write drop file ``no`` (immutable; live once listed/named, see drops.py)."""
        remote = self._remote
        if remote is None:
            write_atomic(self.path / drop_name(no), data)
        else:
            remote.put_new(drop_object(no), data)

    def _abandon_drop_file(self, no: int, exc: BaseException) -> None:
        """An object-store drop file whose manifest did not become live: remove it."""
        if self._remote is not None:
            self._remote.abandon([drop_object(no)], exc)

    def _settled(self, segments: Sequence[Segment] = (), drop_nos: Sequence[int] = ()) -> None:
        """The manifest naming these new files is live (object store bookkeeping)."""
        if self._remote is not None:
            self._remote.settled([segment_object(s.file_no) for s in segments]
                                 + [drop_object(no) for no in drop_nos])
            self._reap()

    def _retire(self, segments: Sequence[Segment], drop_nos: Sequence[int]) -> None:
        """Remove files the durable manifest no longer names (after the swap)."""
        if self._remote is None:
            for s in segments:
                self._unlink_quiet(Path(s.path))
            for no in drop_nos:
                self._unlink_quiet(self.path / drop_name(no))
            return
        for s in segments:
            weakref.finalize(s, self._doomed.append, segment_object(s.file_no))
        self._retire_objects([drop_object(no) for no in drop_nos])

    def _reap(self) -> None:
        """Delete retired segment objects whose last reader is gone."""
        if self._doomed:
            names = []
            while self._doomed:
                names.append(self._doomed.pop())
            self._retire_objects(names)

    def _retire_objects(self, names: list[str]) -> None:
        """Delete object-store objects no manifest of this tier names any more (retired by
        compaction, or garbage found on open). The one place objects are deleted: a clone
        sharing these objects by reference would hook here."""
        remote = self._remote
        assert remote is not None
        if self._held:
            with self._write_lock:
                kept = {n for n in names if n in self._held}
                self._held_retired.update(kept)
            names = [n for n in names if n not in kept]
        try:  # objects a clone references by name stay (shared.py); the next sweep retries
            names = unreferenced(remote.client, names, self.options.storage_options)
        except StorageIOError:
            return  # unreferenced here: the next open's sweep offers them again
        for name in names:
            try:
                remote.client.delete(name)
            except StorageIOError:
                pass  # still unreferenced: the next open sweeps it
            if name.startswith("seg/"):
                remote.ranges.drop_file(int(name[4:16]))

    def hold_objects(self, names: Sequence[str]) -> Callable[[], None]:
        """Keep the object-store objects ``names`` from deletion until the returned
        ``release()`` is called: a backup or clone (engine/backup) copies the objects a
        manifest named while compaction may retire them meanwhile. Call under the writer
        lock, with names the current manifest holds. A retirement that falls inside the
        hold is carried out by the release. No-op for a local tier (its copies are hard
        links). Thread-safe; ``release`` is idempotent."""
        if self._remote is None:
            return lambda: None
        with self._write_lock:
            for n in names:
                self._held[n] = self._held.get(n, 0) + 1
        done = False

        def release() -> None:
            nonlocal done
            with self._write_lock:
                if done:
                    return
                done = True
                due = []
                for n in names:
                    left = self._held[n] - 1
                    if left:
                        self._held[n] = left
                        continue
                    del self._held[n]
                    if n in self._held_retired:
                        self._held_retired.discard(n)
                        due.append(n)
            if due and self._state is not None:
                self._retire_objects(due)

        return release

    def _cache_filler(self, file_no: int) -> BlockHook | None:
        """The writer hook that parses each block of segment ``file_no`` into the cache as
        it is written (``cache_on_write``), or None. File numbers are never reused, so the
        entries of a write that is abandoned can never answer for another file; they age
        out of the LRU."""
        cache = self._cache
        if not self.options.cache_on_write or cache.capacity == 0:
            return None
        path: Path | str = self.path / segment_name(file_no)
        if self._remote is not None:
            path = self._remote.display(segment_object(file_no))
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
            if self._remote is not None:
                try:
                    self._reap()
                except StorageIOError:
                    pass  # unreferenced objects: the next open sweeps them
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
