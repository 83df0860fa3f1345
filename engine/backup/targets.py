"""Where backups are written and read: a local directory (this module) or an object store
(objstore.py, chosen by a URL such as ``s3://bucket/prefix``).

A :class:`Target` receives a backup: ``prepare`` validates the destination (and creates
it), ``put`` stores one file (returning its size and SHA-256 as written), ``commit`` writes
the manifest last, ``abort`` removes what this backup wrote. A :class:`Source` reads one
back for check and restore.

Thread safety: one backup (or restore) per object, used from one thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from ..errors import (
    BackupError,
    CorruptionError,
    DestinationExistsError,
    StorageIOError,
)
from .files import CHUNK, copy_hashed, fsync_dir, fsync_tree, remove_tree
from .manifest import BACKUP_NAME, DATA_DIR

__all__ = ["DirSource", "DirTarget", "Source", "Target", "is_url", "open_source", "open_target"]

Tick = Callable[[int], None]


class Target(Protocol):
    where: str

    def prepare(self) -> None: ...
    def put(self, rel: str, src: Path, tick: Tick | None) -> tuple[int, str]: ...
    def commit(self, manifest: bytes) -> None: ...
    def abort(self) -> None: ...


class Source(Protocol):
    where: str

    def manifest_bytes(self) -> bytes | None: ...
    def chunks(self, rel: str) -> Iterator[bytes]: ...
    def names(self) -> list[str]: ...
    def name_of(self, rel: str) -> str: ...


def is_url(s: object) -> bool:
    return isinstance(s, str) and "://" in s


def open_target(dest: object, store_path: Path | None, **storage_options: object) -> Target:
    """The target for ``dest``: a directory path, or an object-store URL."""
    if is_url(dest):
        from .objstore import ObjectTarget

        return ObjectTarget(str(dest), **storage_options)
    if not isinstance(dest, (str, os.PathLike)):
        raise BackupError(f"backup destination must be a directory path or an object-store URL, "
                          f"got {type(dest).__name__}")
    return DirTarget(Path(dest), store_path)


def open_source(src: object, **storage_options: object) -> Source:
    """The source for ``src``: a directory path, or an object-store URL."""
    if is_url(src):
        from .objstore import ObjectSource

        return ObjectSource(str(src), **storage_options)
    if not isinstance(src, (str, os.PathLike)):
        raise BackupError(f"backup source must be a directory path or an object-store URL, "
                          f"got {type(src).__name__}")
    return DirSource(Path(src))


def check_empty_dir(path: Path, what: str) -> None:
    """Raise DestinationExistsError unless ``path`` is missing or an empty directory."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise DestinationExistsError(
            f"{what} {path} exists and is not an empty directory; nothing was written: "
            "choose a new path or empty it first")


class DirTarget:
    """A backup into a local directory (missing, or empty)."""

    def __init__(self, path: Path, store_path: Path | None) -> None:
        self.path = path
        self.where = str(path)
        self._store = store_path
        self._created = False

    def prepare(self) -> None:
        check_empty_dir(self.path, "backup destination")
        if self._store is not None:
            here, store = self.path.resolve(), self._store.resolve()
            if here == store or store in here.parents:
                raise BackupError(f"backup destination {self.path} is inside the store {self._store}; "
                                  "choose a directory outside it")
        self._created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageIOError(f"cannot create backup directory {self.path}: {exc.strerror or exc}") from exc

    def put(self, rel: str, src: Path, tick: Tick | None) -> tuple[int, str]:
        dst = self.path / rel
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageIOError(f"cannot create {dst.parent}: {exc.strerror or exc}") from exc
        return copy_hashed(src, dst, tick)

    def commit(self, manifest: bytes) -> None:
        fsync_tree(self.path)
        tmp = self.path / (BACKUP_NAME + ".tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(manifest)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path / BACKUP_NAME)
        except OSError as exc:
            raise StorageIOError(f"cannot write the backup manifest in {self.path}: "
                                 f"{exc.strerror or exc}") from exc
        fsync_dir(self.path)

    def abort(self) -> None:
        """Remove what this backup wrote (the manifest first, so a partial removal still
        leaves nothing that checks as a backup)."""
        for name in (BACKUP_NAME, BACKUP_NAME + ".tmp"):
            try:
                os.unlink(self.path / name)
            except OSError:
                pass  # not written yet
        if self._created:
            remove_tree(self.path)
        else:
            remove_tree(self.path / DATA_DIR)


class DirSource:
    """A backup in a local directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)

    def manifest_bytes(self) -> bytes | None:
        if not self.path.is_dir():
            raise BackupError(f"no backup at {self.path}: not a directory")
        try:
            return (self.path / BACKUP_NAME).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageIOError(f"cannot read {self.path / BACKUP_NAME}: {exc.strerror or exc}") from exc

    def chunks(self, rel: str) -> Iterator[bytes]:
        p = self.path / rel
        try:
            fh = open(p, "rb")  # noqa: SIM115 - closed by the with below (a generator)
        except FileNotFoundError:
            raise CorruptionError(f"backup file {rel} is missing", path=p) from None
        except OSError as exc:
            raise StorageIOError(f"cannot read {p}: {exc.strerror or exc}") from exc
        with fh:
            while True:
                try:
                    buf = fh.read(CHUNK)
                except OSError as exc:
                    raise StorageIOError(f"cannot read {p}: {exc.strerror or exc}") from exc
                if not buf:
                    return
                yield buf

    def names(self) -> list[str]:
        root = self.path / DATA_DIR
        out = []
        for d, _dirs, files in os.walk(root):
            for f in files:
                out.append((Path(d) / f).relative_to(self.path).as_posix())
        return sorted(out)

    def name_of(self, rel: str) -> str:
        return str(self.path / rel)
