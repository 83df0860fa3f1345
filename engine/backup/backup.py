"""Online backups: :func:`backup` (``store.backup(dest)``), :func:`check_backup` and
:func:`restore_backup`.

A backup is taken as of one version while the store keeps committing: a store image is
captured in moments into a staging directory inside the store (hard links and a RocksDB
checkpoint, see capture.py), then copied to the destination at leisure, each file hashed
(SHA-256) as it is written, and the manifest ``BACKUP`` is written last (manifest.py). The
staging directory is removed afterwards; while it exists it pins the files it links (they
cost no space until the store deletes its own names).

Restore verifies every byte against the manifest while copying into a staging directory
next to the target, renames it into place, and opens the result once to confirm it is the
store the manifest describes.

Notes: thread safety
    Any number of backups may run against one open store (their captures serialise on the
    store's mover lock; the copies run in parallel). Restore and check touch only the paths
    they are given.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import BackupError, CorruptionError, EngineError, StorageIOError
from .capture import capture, make_staging
from .coldplace import place_cold
from .files import fsync_dir, fsync_tree, remove_tree, walk_files
from .manifest import (
    BACKUP_NAME,
    DATA_DIR,
    BackupFile,
    BackupManifest,
    decode_manifest,
    encode_manifest,
)
from .targets import Source, check_empty_dir, open_source, open_target

__all__ = ["backup", "check_backup", "restore_backup"]

Progress = Callable[[int, "int | None"], None]


class _Bytes:
    """Turns per-chunk byte counts into ``progress(done, total)`` calls."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress = progress
        self.total = total
        self.done = 0
        if progress is not None:
            progress(0, total)

    def __call__(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(self.done, self.total)


def backup(store: Any, dest: str | os.PathLike[str], *, progress: Progress | None = None,
           **storage_options: Any) -> dict[str, Any]:
    """Write a consistent, checksummed backup of the open ``store`` as of its current
    version to ``dest``: a directory that does not exist or is empty, or an object-store
    URL (``s3://``, ``gs://``, ``az://``, ``file://``, ``memory://``; ``storage_options``
    go to obstore). Commits continue meanwhile; the backup holds exactly the versions <=
    the one it reports. ``progress(done_bytes, total_bytes)`` is called as files are copied.

    Returns ``{"version", "files", "bytes", "dest", "seconds", "capture_seconds"}``.

    Complexity: O(store bytes) copied and hashed; the store's movement (flush, demotion,
    GC) waits only for the capture (O(files) links and the unflushed commit log).
    Raises:
        BackupError: a memory-only store, or ``dest`` inside the store.
        DestinationExistsError: ``dest`` exists and is not empty (nothing written).
        ClosedError, StorageIOError, CorruptionError (the source store is damaged). On any
        error the partial backup is removed; what is left cannot pass :func:`check_backup`.
    """
    store._check_open()
    if store.path is None:
        raise BackupError("a memory-only store (engine.open(None)) has nothing on disk to back "
                          "up; open the store with a path")
    started = time.monotonic()
    target = open_target(dest, Path(store.path), **storage_options)
    target.prepare()
    staging: Path | None = None
    try:
        staging = make_staging(Path(store.path))
        img = capture(store, staging)
        captured = time.monotonic() - started
        files = [(rel, p, p.stat().st_size) for rel, p in walk_files(staging)]
        tick = _Bytes(progress, sum(size for _r, _p, size in files))
        entries = []
        for rel, p, _size in files:
            size, digest = target.put(f"{DATA_DIR}/{rel}", p, tick)
            entries.append(BackupFile(f"{DATA_DIR}/{rel}", size, digest))
        m = BackupManifest(img.version, img.layout, time.time(), str(store.path), entries,
                           img.source_version)
        target.commit(encode_manifest(m))
    except BaseException:
        target.abort()
        raise
    finally:
        if staging is not None:
            remove_tree(staging)
    return {"version": m.version, "files": len(entries), "bytes": m.total_bytes,
            "dest": target.where, "seconds": time.monotonic() - started,
            "capture_seconds": captured}


def _read_manifest(source: Source) -> BackupManifest:
    raw = source.manifest_bytes()
    if raw is None:
        raise CorruptionError(
            f"no {BACKUP_NAME} manifest in {source.where}: this is not a complete tierdb backup "
            "(an interrupted backup never writes it); take the backup again",
            path=source.name_of(BACKUP_NAME))
    return decode_manifest(raw, source.name_of(BACKUP_NAME))


def _verify_file(source: Source, f: BackupFile, tick: _Bytes, sink: Any = None) -> None:
    """Stream one backup file, compare size and SHA-256 with the manifest; ``sink`` (an
    open binary file) receives the bytes. Raises CorruptionError naming the file."""
    h = hashlib.sha256()
    n = 0
    for chunk in source.chunks(f.path):
        h.update(chunk)
        n += len(chunk)
        if sink is not None:
            sink.write(chunk)
        tick(len(chunk))
    where = source.name_of(f.path)
    if n != f.size:
        raise CorruptionError(f"backup file {f.path} has {n} bytes, the manifest says {f.size}: "
                              "the backup is damaged", path=where)
    if h.hexdigest() != f.sha256:
        raise CorruptionError(f"backup file {f.path} is damaged: its SHA-256 does not match the "
                              "manifest (a changed byte); restore from another backup", path=where)


def check_backup(src: str | os.PathLike[str], *, progress: Progress | None = None,
                 **storage_options: Any) -> dict[str, Any]:
    """Verify a backup: its manifest checksum, then every file's size and SHA-256; a file
    that is missing, damaged or not in the manifest is an error naming it.

    Returns ``{"ok": True, "version", "files", "bytes", "layout", "created"}``.
    Complexity: O(backup bytes) read.
    Raises: CorruptionError (names the file), FormatError, BackupError, StorageIOError.
    """
    source = open_source(src, **storage_options)
    m = _read_manifest(source)
    listed = {f.path for f in m.files}
    extra = [n for n in source.names() if n not in listed]
    if extra:
        raise CorruptionError(f"backup holds {len(extra)} file(s) its manifest does not list, "
                              f"first {extra[0]}: not a backup this tierdb wrote, or tampered with",
                              path=source.name_of(extra[0]))
    tick = _Bytes(progress, m.total_bytes)
    for f in m.files:
        _verify_file(source, f, tick)
    return {"ok": True, "version": m.version, "files": len(m.files), "bytes": m.total_bytes,
            "layout": m.layout, "created": m.created, "source": m.source}


def restore_backup(src: str | os.PathLike[str], path: str | os.PathLike[str], *,
                   progress: Progress | None = None, cold_url: str | None = None,
                   cold_storage_options: dict[str, Any] | None = None,
                   **storage_options: Any) -> dict[str, Any]:
    """Rebuild a working store at ``path`` (missing, or an empty directory) from the backup
    ``src`` (a directory or an object-store URL; ``storage_options`` for it). Every byte is
    verified against the manifest while copying; the store appears at ``path`` only once
    complete (a staging directory beside it is renamed), then it is opened once to confirm
    its version.

    The restored store keeps its cold tier in ``path/cold`` unless ``cold_url`` (an empty
    object-store prefix, ``cold_storage_options`` for it) is given; it never reuses the
    ``cold_url`` of the store the backup was taken from (see coldplace.py).

    Returns ``{"version", "files", "bytes", "path", "cold_url", "seconds"}``.
    Raises:
        DestinationExistsError: ``path`` exists and is not empty (nothing written).
        CorruptionError: the backup is incomplete or damaged (names the file; nothing is
            left at ``path``). FormatError, BackupError, StorageIOError.
    """
    started = time.monotonic()
    source = open_source(src, **storage_options)
    dest = Path(path)
    check_empty_dir(dest, "restore target")
    m = _read_manifest(source)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageIOError(f"cannot create {dest.parent}: {exc.strerror or exc}") from exc
    staging = dest.parent / f".{dest.name}.restoring-{uuid.uuid4().hex[:12]}"
    tick = _Bytes(progress, m.total_bytes)
    try:
        staging.mkdir()
        for f in m.files:
            out = staging / f.path[len(DATA_DIR) + 1:]
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out, "xb") as fh:
                _verify_file(source, f, tick, fh)
                fh.flush()
                os.fsync(fh.fileno())
        placed = place_cold(staging, cold_url, cold_storage_options)
        from ..replication.state import reseat_restored
        reseat_restored(staging)   # another node: never the source's node id or role
        fsync_tree(staging)
        if dest.exists():
            dest.rmdir()  # empty (checked above)
        os.rename(staging, dest)
        fsync_dir(dest.parent)
    except BaseException as exc:
        remove_tree(staging)
        if isinstance(exc, OSError) and not isinstance(exc, EngineError):
            raise StorageIOError(f"restore into {dest} failed: {exc.strerror or exc}; nothing "
                                 "was left there") from exc
        raise
    from ..store import open as open_store

    with open_store(dest, storage_options=cold_storage_options) as restored:
        version = restored.version
    if version != m.version:
        raise CorruptionError(f"the restored store opens at version {version}, the backup "
                              f"manifest says {m.version}", path=dest)
    return {"version": m.version, "files": len(m.files), "bytes": m.total_bytes, "path": str(dest),
            "cold_url": placed, "seconds": time.monotonic() - started}
