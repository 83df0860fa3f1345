"""A consistent on-disk image of an open store as of one version, made in moments.

:func:`capture` writes into a directory on the store's own file system a *store image*: a
directory with the layout of a store (``TIERDB``, ``warm/``, ``cold/``, ``log/``, ``PINS``,
``POLICIES``, ``TIME``) that :func:`engine.open` would open at exactly the captured
version. Backups copy the image elsewhere; clones trim it and move it into place.

How it stays consistent while the store keeps committing:

* The mover's lock is held for the whole capture, so no flush, demotion or GC pass moves
  or removes a version meanwhile (committers are not blocked by it; a committer that fills
  the hot budget waits for the flush as usual, at most the capture's duration).
* Under the commit lock, briefly: the version ``V`` is read, the commit log is rotated (so
  every record <= ``V`` sits in a closed file that is never appended to again), the time
  index is flushed and the small files (marker, time index, pins, policies) are written; in
  a warm-first layout (no hot tier, commits go straight to RocksDB) the RocksDB checkpoint
  is taken here too.
* Then, commits running again: the RocksDB checkpoint of a hot-fronted store (warm changes
  only by movement, which is held), the commit-log records above the flushed watermark and
  <= the image version (copied record by record, checksums verified), and the cold tier's
  live files (under the cold tier's writer lock, which a compaction swap also takes).

Immutable files are hard-linked, not copied: cold segments and drop files (written once,
never modified; see engine/tiers/cold/tier.py) and RocksDB's SST files (the checkpoint links
them). A link shares the inode, so the image stays intact whatever the store later deletes,
and it costs no bytes. Everything that may change in place (commit-log files, the active
WAL, RocksDB's MANIFEST) is copied. A read point at the image version is held throughout.

This module relies on these private parts of :class:`engine.store.Store` (the store has no
public "freeze movement" API, and adding one for this alone would widen the facade):
``_mover._move_lock``, ``_commit_lock``, ``_version``, ``_readpoints``, ``_log``, ``_time``,
``_pins``, ``_policies``, ``_tiers``, ``_warm_first``, and of the tiers: ``WarmTier._db``
(for RocksDB's checkpoint) and ``ColdTier._write_lock``.

Notes: thread safety
    Safe to run while other threads commit, read, flush or compact; two captures of one
    store serialise on the mover's lock.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ClosedError, CorruptionError, StorageIOError
from ..mvcc.commitlog import LOG_HEADER, REC_FIXED, REC_HEADER
from ..mvcc.pins import PinStore
from ..mvcc.timeindex import TIME_RECORD
from .files import fsync_dir, link_or_copy, remove_tree

__all__ = ["STAGING_PREFIX", "Image", "capture", "make_staging", "read_log_records"]

STAGING_PREFIX = ".tierdb-staging-"
"""Name prefix of image directories made inside a store directory (removed when done; a
stale one left by a crashed process is removed by the next backup or clone)."""

FEED_DIR = "changes"  # engine/mvcc/changefeed.py
KNOWN = frozenset({"TIERDB", "LOCK", "TIME", "PINS", "POLICIES", "warm", "cold", "log", FEED_DIR,
                   "COLD-REF"})
"""Store entries the capture handles itself (``COLD-REF`` is never carried: it pins the cold
manifest generation of the store's own cold_url, and an image's cold tier always lands in a
fresh place)."""
CACHES = frozenset({"cold-cache"})
"""Store entries an image never carries: caches the store rebuilds on demand."""

_LOG_NAME = re.compile(r"^commit-(\d{20})\.log$")
_U64 = struct.Struct(">Q")
FLUSHED_META = b"store.flushed"  # engine/store.py and engine/router/movement.py


@dataclass
class Image:
    """What :func:`capture` wrote.

    ``version``: the version the image opens at; ``source_version``: the store's version
    when it was taken; ``flushed``: the warm tier's flushed watermark (0 without one);
    ``linked``/``copied``: files and bytes shared by hard link or written anew;
    ``foreign``: store entries this tierdb does not know (copied, or listed when skipped);
    ``cold_max_version``: the newest version any captured cold segment holds.
    """

    root: Path
    version: int
    source_version: int
    layout: str
    warm_first: bool
    flushed: int = 0
    cold_max_version: int = 0
    remote_cold: Any = None
    linked_files: int = 0
    linked_bytes: int = 0
    copied_files: int = 0
    copied_bytes: int = 0
    foreign: list[str] = field(default_factory=list)

    def count(self, path: Path, linked: bool) -> None:
        size = path.stat().st_size
        if linked:
            self.linked_files += 1
            self.linked_bytes += size
        else:
            self.copied_files += 1
            self.copied_bytes += size

    def figures(self) -> dict[str, Any]:
        return {"linked_files": self.linked_files, "linked_bytes": self.linked_bytes,
                "copied_files": self.copied_files, "copied_bytes": self.copied_bytes}


def make_staging(store_path: Path) -> Path:
    """A new empty image directory inside ``store_path`` (same file system, so hard links
    work). Stale ones of other processes are removed first: the caller has the store open,
    so it holds the store's lock and no other process can be using them."""
    mine = f"{STAGING_PREFIX}{os.getpid()}-"
    for p in store_path.glob(STAGING_PREFIX + "*"):
        if not p.name.startswith(mine):
            remove_tree(p)
    root = store_path / f"{mine}{uuid.uuid4().hex[:12]}"
    try:
        root.mkdir()
    except OSError as exc:
        raise StorageIOError(f"cannot create a staging directory in {store_path}: "
                             f"{exc.strerror or exc}") from exc
    return root


def capture(store: Any, root: Path, upto: int | None = None, *, foreign: bool = True,
            share_cold: bool = False) -> Image:
    """Write a store image of ``store`` as of ``upto`` (default: its current version) into
    the empty directory ``root``, which must be on the store's file system.

    ``upto`` below the current version: the commit log, time index and pins are cut at it;
    warm and cold may still hold newer versions (the caller trims them: see clone.py).
    ``foreign``: copy store entries this module does not know (True for backups) or only
    list them (clones: they may carry another subsystem's identity). ``share_cold``: a cold
    tier in an object store is not downloaded; ``img.remote_cold`` holds its manifest and
    objects instead, held against deletion until the caller calls its ``release()``.

    Complexity: O(files) links, O(unflushed commit-log bytes) copied.
    Raises: ClosedError, CorruptionError (a damaged commit-log record), StorageIOError.
    """
    path = Path(store.path)
    tiers = {t.name: t for t in store._tiers}
    warm = tiers.get("warm")
    cold = tiers.get("cold")
    warm_first = bool(store._warm_first)
    with store._mover._move_lock:
        with store._commit_lock:
            if store.closed:
                raise ClosedError("store is closed; open it again with engine.open()")
            source_version = int(store._version)
            v = source_version if upto is None else min(int(upto), source_version)
            token = store._readpoints.acquire(v)
            try:
                img = Image(root, v, source_version, store.layout.name, warm_first)
                log_ = store._log
                if log_ is not None:
                    log_.rotate()  # every record <= source_version is in a closed file now
                store._time.flush()
                _copy_small(path / "TIERDB", root / "TIERDB", img)
                _set_floor(root, min(int(store.history_floor()), v))
                _write_time(path / "TIME", root / "TIME", v, img)
                _write_pins(store._pins.all(), root / "PINS", v, img)
                _write_pins(store._policies.all(), root / "POLICIES", None, img)
                if warm is not None and warm_first:
                    _checkpoint(warm, root / "warm", img)
                if foreign:
                    _link_feed(store, path / FEED_DIR, root / FEED_DIR, img)
            except BaseException:
                store._readpoints.release(token)
                raise
        remote: RemoteCold | None = None
        try:
            if warm is not None and not warm_first:
                raw = warm.get_meta(FLUSHED_META)
                img.flushed = _U64.unpack(raw)[0] if raw is not None else 0
                _checkpoint(warm, root / "warm", img)
            if log_ is not None:
                _copy_log(path / "log", root / "log", img.flushed, v, img)
            if cold is not None and getattr(cold, "_remote", None) is not None:
                remote = _hold_remote_cold(cold, img)
            elif cold is not None:
                _link_cold(cold, root / "cold", img)
            _other_entries(path, root, foreign, img)
        except BaseException:
            if remote is not None:
                remote.release()
            raise
        finally:
            store._readpoints.release(token)
    if remote is not None and share_cold:
        img.remote_cold = remote
    elif remote is not None:
        # Outside the store's locks: downloads may take long; the hold keeps the objects.
        try:
            _download_cold(remote, root / "cold", img)
        finally:
            remote.release()
    fsync_dir(root)
    return img


# -- parts --------------------------------------------------------------------------------


def _copy_small(src: Path, dst: Path, img: Image) -> None:
    try:
        shutil.copyfile(src, dst)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StorageIOError(f"cannot copy {src}: {exc.strerror or exc}") from exc
    img.count(dst, False)


def _set_floor(root: Path, floor: int) -> None:
    """Record in the image's marker the source's history floor (capped at the image's
    version): the source's GC may already have removed versions below it, so the new store
    must answer reads there with HistoryUnavailable, whatever retention it is opened with,
    rather than from partial history (its own floor, relative to an older version, would
    be lower). Pinned versions below it stay readable (the pins are carried)."""
    if floor <= 0:
        return
    from ..store import _read_marker, _write_marker

    meta = _read_marker(root)
    meta["history_floor"] = max(floor, int(meta.get("history_floor", 0)))
    _write_marker(root, meta)


def _write_time(src: Path, dst: Path, upto: int, img: Image) -> None:
    """The time index's intact records with a version <= ``upto`` (a torn tail is left
    out; the restored store rebuilds samples from its commit log)."""
    try:
        data = src.read_bytes()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StorageIOError(f"cannot read {src}: {exc.strerror or exc}") from exc
    size = TIME_RECORD.size
    keep = bytearray()
    for off in range(0, len(data) - size + 1, size):
        version, _ts, crc = TIME_RECORD.unpack_from(data, off)
        if zlib.crc32(data[off:off + 16]) != crc:
            break
        if version <= upto:
            keep += data[off:off + size]
    _write_new(dst, bytes(keep))
    img.count(dst, False)


def _write_pins(pins: dict[str, int], dst: Path, upto: int | None, img: Image) -> None:
    keep = {n: v for n, v in pins.items() if upto is None or v <= upto}
    if not keep:
        return
    ps = PinStore(dst)
    for n, v in sorted(keep.items()):
        ps.set(n, v)
    img.count(dst, False)


def _link_feed(store: Any, src: Path, dst: Path, img: Image) -> None:
    """The change feed (backups only), under the commit lock: sealed (its tail written and
    fsynced, the active segment closed: the next record starts a new file, so every existing
    segment is immutable and holds only versions <= the image's), its segments hard-linked,
    its STATE (consumer positions) copied as of now."""
    feed = getattr(store, "_feed", None)
    if feed is None or not src.is_dir():
        return
    feed.seal()
    dst.mkdir()
    for p in sorted(src.iterdir()):
        if p.name.endswith(".tmp") or not p.is_file():
            continue
        if p.name == "STATE":
            _copy_small(p, dst / p.name, img)
        else:
            img.count(dst / p.name, link_or_copy(p, dst / p.name))


def _checkpoint(warm: Any, dst: Path, img: Image) -> None:
    """RocksDB checkpoint of the warm tier into ``dst`` (SSTs hard-linked, the rest copied),
    plus the warm tier's own marker file."""
    import rocksdict

    from ..tiers.warm import MARKER_NAME

    warm.flush_wal(sync=True)  # also persists writes made without RocksDB's WAL (flushes)
    db = warm._db
    if db is None:
        raise ClosedError(f"warm tier {warm.path} is closed")
    try:
        rocksdict.Checkpoint(db).create_checkpoint(str(dst))
    except Exception as exc:  # rocksdict raises bare Exception for every RocksDB status
        raise StorageIOError(f"cannot checkpoint the warm tier {warm.path} into {dst}: {exc}") from exc
    _copy_small(Path(warm.path) / MARKER_NAME, dst / MARKER_NAME, img)
    for p in sorted(dst.iterdir()):
        if p.name != MARKER_NAME:
            img.count(p, p.stat().st_nlink > 1)


def read_log_records(p: Path) -> tuple[bytes, list[tuple[int, bytes]]]:
    """The file header and every record of a closed commit-log file as ``(version, framed
    bytes)``, checksums verified, without modifying the file (commit-log recovery would
    truncate a torn tail).

    Raises: CorruptionError naming the file and offset.
    """
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise StorageIOError(f"cannot read {p}: {exc.strerror or exc}") from exc
    if len(data) < LOG_HEADER.size or zlib.crc32(data[:12]) != LOG_HEADER.unpack_from(data, 0)[2]:
        raise CorruptionError("bad commit log file header", path=p, offset=0)
    out: list[tuple[int, bytes]] = []
    pos = LOG_HEADER.size
    n = len(data)
    while pos < n:
        if pos + REC_HEADER.size > n:
            raise CorruptionError("commit log record header cut short", path=p, offset=pos)
        length, crc = REC_HEADER.unpack_from(data, pos)
        end = pos + REC_HEADER.size + length
        if end > n or length < REC_FIXED.size:
            raise CorruptionError("commit log record runs past the end of a closed file", path=p, offset=pos)
        if zlib.crc32(data[pos + REC_HEADER.size:end]) != crc:
            raise CorruptionError("commit log record fails its checksum", path=p, offset=pos)
        version = REC_FIXED.unpack_from(data, pos + REC_HEADER.size)[0]
        out.append((version, data[pos:end]))
        pos = end
    return data[:LOG_HEADER.size], out


def _copy_log(src: Path, dst: Path, above: int, upto: int, img: Image) -> None:
    """Copy the commit-log records with ``above < version <= upto`` into new files (one per
    source file that holds any), named after their first version as the log names them."""
    files = []
    for name in os.listdir(src):
        m = _LOG_NAME.match(name)
        if m and int(m.group(1)) <= upto:
            files.append((int(m.group(1)), src / name))
    dst.mkdir()
    for _first, p in sorted(files):
        header, records = read_log_records(p)
        recs = [rec for v, rec in records if above < v <= upto]
        if not recs:
            continue
        first = REC_FIXED.unpack_from(recs[0], REC_HEADER.size)[0]
        out = dst / f"commit-{first:020d}.log"
        _write_new(out, header + b"".join(recs))
        img.count(out, False)
    fsync_dir(dst)


def _link_cold(cold: Any, dst: Path, img: Image) -> None:
    """Hard-link the cold tier's live segments and drop files, copy its MANIFEST."""
    from ..tiers.cold.manifest import MANIFEST_NAME, decode_manifest
    from ..tiers.cold.state import DROP_RE
    from ..tiers.cold.writer import segment_name

    src = Path(cold.path)
    dst.mkdir()
    with cold._write_lock:  # a compaction swap (and any cold write) waits
        mpath = src / MANIFEST_NAME
        try:
            raw = mpath.read_bytes()
        except OSError as exc:
            raise StorageIOError(f"cannot read {mpath}: {exc.strerror or exc}") from exc
        m = decode_manifest(raw, mpath)
        names = [segment_name(ref.file_no) for ref in m.segments]
        # The live segments' version ranges (the tier's private state, read under its lock).
        img.cold_max_version = max((s.max_version for s in cold._live().segments), default=0)
        for name in sorted(os.listdir(src)):
            dm = DROP_RE.match(name)
            if dm and int(dm.group(1)) > m.drop_floor:
                names.append(name)
        for name in names:
            try:
                linked = link_or_copy(src / name, dst / name)
            except FileNotFoundError:
                raise CorruptionError("cold file named by the manifest is missing",
                                      path=src / name) from None
            img.count(dst / name, linked)
        _write_new(dst / MANIFEST_NAME, raw)
        img.count(dst / MANIFEST_NAME, False)
    fsync_dir(dst)


@dataclass
class RemoteCold:
    """The objects of an object-store cold tier's manifest, held against deletion."""

    client: Any
    manifest: bytes
    names: list[str]
    release: Any


def _hold_remote_cold(cold: Any, img: Image) -> RemoteCold:
    """Under the cold tier's writer lock: its current manifest, the objects it names, and a
    hold on them (ColdTier.hold_objects) so a compaction cannot delete them mid-copy."""
    from ..tiers.cold.manifest import encode_manifest
    from ..tiers.cold.remote import drop_object, segment_object

    with cold._write_lock:
        m = cold._manifest
        names = [segment_object(ref.file_no) for ref in m.segments]
        names += [drop_object(no) for no in (m.drop_files or [])]
        img.cold_max_version = max((s.max_version for s in cold._live().segments), default=0)
        release = cold.hold_objects(names)
        return RemoteCold(cold._remote.client, encode_manifest(m), names, release)


def _download_cold(rc: RemoteCold, dst: Path, img: Image) -> None:
    """Write the held objects into ``dst`` as a local cold directory (``NNN.seg``,
    ``NNN.drop``, ``MANIFEST``): the image opens with a local cold tier."""
    from ..tiers.cold.manifest import MANIFEST_NAME

    dst.mkdir()
    for name in rc.names:
        out = dst / name.rsplit("/", 1)[-1]
        _write_new(out, rc.client.get(name).data)
        img.count(out, False)
    _write_new(dst / MANIFEST_NAME, rc.manifest)
    img.count(dst / MANIFEST_NAME, False)
    fsync_dir(dst)


def _other_entries(src: Path, dst: Path, copy: bool, img: Image) -> None:
    for p in sorted(src.iterdir()):
        name = p.name
        if name in KNOWN or name in CACHES or name.startswith(STAGING_PREFIX) or name.endswith(".tmp"):
            continue
        img.foreign.append(name)
        if not copy:
            continue
        try:
            if p.is_dir():
                shutil.copytree(p, dst / name)
            else:
                shutil.copyfile(p, dst / name)
        except FileNotFoundError:
            img.foreign.remove(name)  # removed meanwhile by its owner
            continue
        except OSError as exc:
            raise StorageIOError(f"cannot copy {p}: {exc}") from exc
        if (dst / name).is_file():
            img.count(dst / name, False)


def _write_new(path: Path, data: bytes) -> None:
    try:
        with open(path, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise StorageIOError(f"cannot write {path}: {exc.strerror or exc}") from exc
