"""Writable clones of a store as of a version: :func:`clone` (``engine.clone``,
``store.clone``).

A clone is a new, independent store whose history ends at version ``v``: every retained
version <= ``v`` reads exactly as in the source, nothing above ``v`` exists, and its next
commit is ``v + 1``. It is made in three steps:

1. capture (capture.py): a store image of the source, in moments, inside the source's
   directory. Cold segments, cold drop files and RocksDB SSTs are hard links, so they are
   shared with the source, not copied; the commit log, time index and pins are cut at ``v``.
2. trim: versions above ``v`` that warm or cold still hold are removed from the image with
   the tiers' own ``drop`` (RocksDB deletes; a cold drop file), and the image's warm
   metadata is set to ``v`` (flushed watermark or version; the cold-read shortcut is turned
   off when the trim removed what it relies on). A clone of the latest version trims
   nothing and opens neither tier.
3. place: the image is renamed to ``dest`` (same file system: the shared files stay
   shared) or copied there (another file system: nothing can be shared).

Why the source's GC and compaction can never take a segment from a live clone: both tiers
only ever *unlink names* of immutable files, and a clone holds its own name (a hard link)
for every file it shares. The kernel's link count is the reference count; the bytes go only
when the last name does. That holds for a clone of a clone (one more name), and a deleted
clone simply drops its names. Neither side ever writes into a shared file: cold segments and
drop files are written once under a temporary name and renamed; RocksDB never modifies an
SST; commit-log files, which are appended to and rewritten, are never shared (the clone gets
new ones). See docs/DECISIONS.md, "Backups and clones".

In object stores the clone's own prefix references the source's objects instead (``BASE``
at the clone, ``refs/`` at the origin; engine/tiers/cold/shared.py): the source's deletions
skip objects a clone's ``BASE`` maps to it, and the clone only ever releases them.

A store open in another process cannot be cloned by path (its lock is held and its
unflushed commits live in that process): ``engine.clone`` raises :class:`LockedError` and
says to clone from the owning process with ``store.clone(dest, version=v)``.

Notes: thread safety
    ``store.clone`` may run while other threads use the store (see capture.py).
"""

from __future__ import annotations

import os
import shutil
import struct
import time
import uuid
from pathlib import Path
from typing import Any

from ..errors import BackupError, FormatError, LockedError, StorageIOError
from .capture import FLUSHED_META, Image, capture, make_staging
from .coldplace import SharedCold, place_cold, share_cold
from .files import fsync_dir, remove_tree
from .targets import check_empty_dir

__all__ = ["clone", "clone_store"]

VERSION_META = b"store.version"            # engine/store.py
COLD_SKIP_META = b"store.cold_skip_from"   # engine/router/movement.py
_U64 = struct.Struct(">Q")
_DROP_BATCH = 50_000


def clone(src: Any, dest: str | os.PathLike[str], *, version: int | None = None,
          cold_url: str | None = None, cold_storage_options: dict[str, Any] | None = None,
          **open_options: Any) -> dict[str, Any]:
    """Create at ``dest`` a writable store whose history ends at ``version`` (default: the
    source's current version), sharing the source's immutable files by hard link.

    ``src``: a store directory (opened here, with ``open_options`` such as ``retention``
    or ``storage_options``, and closed again), or an open :class:`~engine.Store`. The clone's
    cold tier is local (``dest/cold``) unless ``cold_url`` names an empty object-store prefix
    for it (``cold_storage_options`` for obstore). A source whose cold tier is in an object
    store shares its objects with a clone given a ``cold_url`` by reference (no segment is
    copied; engine/tiers/cold/shared.py); without one they are downloaded into ``dest/cold``.
    Returns ``{"version",
    "source_version", "path", "linked_files", "linked_bytes", "copied_files",
    "copied_bytes", "trimmed_versions", "not_cloned", "seconds"}`` (``not_cloned``: entries
    of the source directory this tierdb does not know, left out of the clone).

    Raises:
        FormatError: ``src`` is not a tierdb store.
        LockedError: ``src`` is open in another process (clone it there with
            ``store.clone``) or already open in this one (pass that Store).
        DestinationExistsError: ``dest`` exists and is not an empty directory.
        FutureVersionError / HistoryUnavailable / InvalidVersionError: ``version`` is above
            the source's, below its history floor and unpinned, or not a version.
        BackupError: a memory-only store, or ``dest`` inside the source.
        StorageIOError, CorruptionError. Nothing is left at ``dest`` after any error.
    """
    from ..store import MARKER_NAME, Store
    from ..store import open as open_store

    if isinstance(src, Store):
        return clone_store(src, dest, version=version, cold_url=cold_url,
                           cold_storage_options=cold_storage_options)
    p = Path(src)
    check_empty_dir(Path(dest), "clone destination")
    if not (p / MARKER_NAME).is_file():
        raise FormatError(f"{p} is not a tierdb store (no {MARKER_NAME} marker); nothing was "
                          "written", path=p)
    try:
        store = open_store(p, **open_options)
    except LockedError:
        raise LockedError(
            f"cannot clone {p}: the store is open in another process (or in this one). Clone it "
            "from the process that has it open with store.clone(dest, version=...), or close "
            "it there first") from None
    try:
        return clone_store(store, dest, version=version, cold_url=cold_url,
                           cold_storage_options=cold_storage_options)
    finally:
        store.close()


def clone_store(store: Any, dest: str | os.PathLike[str], *, version: int | None = None,
                cold_url: str | None = None,
                cold_storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`clone` of an open store (``store.clone``)."""
    from ..store import _read_marker, _write_marker

    started = time.monotonic()
    store._check_open()
    if store.path is None:
        raise BackupError("a memory-only store (engine.open(None)) cannot be cloned; open it "
                          "with a path")
    src = Path(store.path)
    out = Path(dest)
    check_empty_dir(out, "clone destination")
    here, root = out.resolve(), src.resolve()
    if here == root or root in here.parents:
        raise BackupError(f"clone destination {out} is inside the source store {src}; choose a "
                          "directory outside it")
    v, token = store._hold(version)  # validates: future, below the floor, bad type
    staging: Path | None = None
    shared: SharedCold | None = None
    try:
        try:
            staging = make_staging(src)
            img = capture(store, staging, upto=v, foreign=False, share_cold=cold_url is not None)
        finally:
            store._readpoints.release(token)
        meta = _read_marker(staging)
        if img.remote_cold is not None:
            # Object store to object store: the clone references the source's objects.
            assert cold_url is not None
            try:
                shared = share_cold(img.remote_cold, cold_url, cold_storage_options)
            finally:
                img.remote_cold.release()
            placed: str | None = shared.url
            meta["cold_url"] = shared.url
            trimmed = _trim(staging, img, (shared.url, cold_storage_options))
        else:
            trimmed = _trim(staging, img)
            placed = place_cold(staging, cold_url, cold_storage_options)
            meta = _read_marker(staging)
        meta["created"] = time.time()
        meta["clone_of"] = {"source": str(src), "version": v, "source_version": img.source_version}
        _write_marker(staging, meta)
        figures = _place(staging, out, img)
        staging = None
    except BaseException:
        if staging is not None:
            remove_tree(staging)
        if shared is not None:
            shared.undo()
        raise
    return {"version": v, "source_version": img.source_version, "path": str(out), **figures,
            "trimmed_versions": trimmed, "not_cloned": img.foreign, "cold_url": placed,
            "seconds": time.monotonic() - started}


def _trim(root: Path, img: Image, remote: tuple[str, Any] | None = None) -> dict[str, int]:
    """Remove from the image every version above ``img.version`` that warm or cold holds,
    and set warm's version metadata to it. ``remote``: the image's cold tier is the object
    store prefix ``(cold_url, storage_options)`` instead of ``root/cold``."""
    v = img.version
    removed = {"warm": 0, "cold": 0}
    # Warm holds nothing above the source's version. (Not "above the flushed watermark" for
    # hot-fronted layouts: a flush cut short by a crash leaves versions above it in warm
    # until the next flush settles them.)
    if (root / "warm").is_dir() and img.source_version > v:  # else: metadata already right
        from ..tiers.warm import WarmTier

        warm = WarmTier(root / "warm")
        try:
            meta: dict[bytes, bytes | None] = {}
            removed["warm"] = _drop_above(warm, v)
            raw = warm.get_meta(COLD_SKIP_META)
            if raw is not None and _U64.unpack(raw)[0] > v:
                # Reads at versions >= C skip cold because warm kept every cold key's
                # newest version <= C; the trim may have removed some of those (from warm,
                # or from cold after a later demotion). And cold's recorded successors
                # (<= C) may name trimmed versions, which the clone's own commits would
                # then slip under: 0 turns off both the skip and old reads that stop at
                # cold (Router.get).
                meta[COLD_SKIP_META] = _U64.pack(0)
            if img.warm_first:
                meta[VERSION_META] = _U64.pack(v)
            else:
                meta[FLUSHED_META] = _U64.pack(min(img.flushed, v))
            warm.write_entries({}, sync=True, meta=meta)
        finally:
            warm.close()
    if (remote is not None or (root / "cold").is_dir()) and img.cold_max_version > v:
        from ..tiers.cold import ColdTier

        cold = ColdTier(root / "cold") if remote is None else \
            ColdTier(root / "cold-cache", url=remote[0], storage_options=remote[1])
        try:
            removed["cold"] = _drop_above(cold, v)
        finally:
            cold.close()
    return removed


def _sharing(root: Path) -> dict[str, int]:
    """Files and bytes under ``root`` that share their inode with another name (the source,
    or other clones) versus files of its own."""
    out = {"linked_files": 0, "linked_bytes": 0, "copied_files": 0, "copied_bytes": 0}
    for d, _dirs, files in os.walk(root):
        for f in files:
            st = os.stat(os.path.join(d, f))
            kind = "linked" if st.st_nlink > 1 else "copied"
            out[kind + "_files"] += 1
            out[kind + "_bytes"] += st.st_size
    return out


def _drop_above(tier: Any, v: int) -> int:
    """Drop every version above ``v`` from ``tier``; return how many. O(stored versions)."""
    n = 0
    for table in tier.tables():
        doomed = [(e.key, e.version) for e in tier.iter_versions(table) if e.version > v]
        for i in range(0, len(doomed), _DROP_BATCH):
            tier.drop({table: doomed[i:i + _DROP_BATCH]})
        n += len(doomed)
    return n


def _place(staging: Path, dest: Path, img: Image) -> dict[str, int]:
    """Move the trimmed image to ``dest``: a rename on the same file system (shared files
    stay shared), a copy otherwise. Returns the linked/copied figures."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        same_fs = os.stat(staging).st_dev == os.stat(dest.parent).st_dev
        if same_fs:
            if dest.exists():
                dest.rmdir()  # empty (checked before the capture)
            os.rename(staging, dest)
            fsync_dir(dest.parent)
            return _sharing(dest)
        tmp = dest.parent / f".{dest.name}.cloning-{uuid.uuid4().hex[:12]}"
        try:
            shutil.copytree(staging, tmp)
            if dest.exists():
                dest.rmdir()
            os.rename(tmp, dest)
            fsync_dir(dest.parent)
        except BaseException:
            remove_tree(tmp)
            raise
        remove_tree(staging)
    except OSError as exc:
        if isinstance(exc, StorageIOError):
            raise
        raise StorageIOError(f"cannot place the clone at {dest}: {exc.strerror or exc}") from exc
    total = img.linked_bytes + img.copied_bytes
    return {"linked_files": 0, "linked_bytes": 0,
            "copied_files": img.linked_files + img.copied_files, "copied_bytes": total}
