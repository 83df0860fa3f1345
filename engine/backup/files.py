"""File plumbing shared by backup, restore and clone: hashed copies, hard links, fsyncs,
staging directories next to the data they stage.

Thread safety: pure functions over the paths they are given.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import StorageIOError

__all__ = ["CHUNK", "copy_hashed", "fsync_dir", "fsync_tree", "link_or_copy", "remove_tree",
           "walk_files"]

CHUNK = 1 << 20
"""Bytes per read while copying or hashing (one buffer, reused)."""

Progress = Callable[[int], None]


def fsync_dir(path: Path) -> None:
    """Make creations and renames in directory ``path`` durable. Raises StorageIOError."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageIOError(f"cannot fsync directory {path}: {exc.strerror or exc}") from exc


def fsync_tree(root: Path) -> None:
    """fsync every directory under ``root`` (files are fsynced as they are written)."""
    for d, _dirs, _files in os.walk(root):
        fsync_dir(Path(d))


def walk_files(root: Path) -> Iterator[tuple[str, Path]]:
    """Every regular file under ``root`` as ``(relative posix path, path)``, sorted."""
    out: list[tuple[str, Path]] = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in files:
            p = Path(d) / f
            out.append((p.relative_to(root).as_posix(), p))
    return iter(sorted(out))


def copy_hashed(src: Path, dst: Path, progress: Progress | None = None) -> tuple[int, str]:
    """Copy ``src`` to the new file ``dst`` (fsynced); return ``(size, sha256 hex)`` of the
    bytes written. O(size).

    Raises: StorageIOError (``dst`` is removed again).
    """
    h = hashlib.sha256()
    size = 0
    try:
        with open(src, "rb") as fin, open(dst, "xb") as fout:
            while True:
                buf = fin.read(CHUNK)
                if not buf:
                    break
                h.update(buf)
                fout.write(buf)
                size += len(buf)
                if progress is not None:
                    progress(len(buf))
            fout.flush()
            os.fsync(fout.fileno())
    except OSError as exc:
        try:
            os.unlink(dst)
        except OSError:
            pass  # it may never have been created; the caller removes the whole tree anyway
        raise StorageIOError(f"cannot copy {src} to {dst}: {exc.strerror or exc}") from exc
    return size, h.hexdigest()


def link_or_copy(src: Path, dst: Path) -> bool:
    """Hard-link ``src`` as ``dst`` (True), or copy it when the file system cannot link
    (another device, no hard links: False). Only for files that are never modified in
    place once named (segments, drop files, RocksDB SSTs), so the two names can share one
    inode.

    Raises: FileNotFoundError (``src`` vanished: the caller retries), StorageIOError.
    """
    try:
        os.link(src, dst)
        return True
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise StorageIOError(f"cannot link {src} to {dst}: {exc.strerror or exc}") from exc
    try:
        shutil.copyfile(src, dst)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StorageIOError(f"cannot copy {src} to {dst}: {exc.strerror or exc}") from exc
    return False


def remove_tree(path: Path) -> None:
    """Remove ``path`` and everything below it; a missing path is fine. Best effort for
    cleanup after a failure: errors are ignored (the caller is already raising one)."""
    shutil.rmtree(path, ignore_errors=True)
