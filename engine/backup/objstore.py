"""Backups in an object store: ``store.backup("s3://bucket/prefix")`` and friends.

The same layout as a directory backup (``data/...`` objects, then ``BACKUP`` last), written
with create-only puts through the cold tier's :class:`ObjectStoreClient` (retries with
backoff, typed errors naming the object). The destination prefix must hold no object.

Thread safety: one backup (or restore, or check) per object, used from one thread.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import CorruptionError, DestinationExistsError, StorageIOError
from ..tiers.cold.objstore import (
    ObjectExistsError,
    ObjectNotFoundError,
    ObjectStoreClient,
    redact_url,
)
from .manifest import BACKUP_NAME, DATA_DIR

__all__ = ["ObjectSource", "ObjectTarget"]


def _client(url: str, storage_options: dict[str, Any]) -> ObjectStoreClient:
    return ObjectStoreClient(url, storage_options or None)


class ObjectTarget:
    """A backup into an empty object-store prefix."""

    def __init__(self, url: str, **storage_options: Any) -> None:
        self.client = _client(url, storage_options)
        self.where = redact_url(url)
        self._written: list[str] = []

    def prepare(self) -> None:
        present = self.client.list("")
        if present:
            raise DestinationExistsError(
                f"backup destination {self.where} already holds {len(present)} object(s) (first "
                f"{present[0].name}); nothing was written: choose an empty prefix")

    def put(self, rel: str, src: Path, tick: Callable[[int], None] | None) -> tuple[int, str]:
        try:
            data = src.read_bytes()
        except OSError as exc:
            raise StorageIOError(f"cannot read {src}: {exc.strerror or exc}") from exc
        try:
            self.client.put_if_absent(rel, data)
        except ObjectExistsError:
            raise DestinationExistsError(f"{self.where}/{rel} appeared while the backup was being "
                                         "written: another writer uses this prefix") from None
        self._written.append(rel)
        if tick is not None:
            tick(len(data))
        return len(data), hashlib.sha256(data).hexdigest()

    def commit(self, manifest: bytes) -> None:
        try:
            self.client.put_if_absent(BACKUP_NAME, manifest)
        except ObjectExistsError:
            raise DestinationExistsError(f"{self.where}/{BACKUP_NAME} appeared while the backup "
                                         "was being written: another writer uses this prefix") from None

    def abort(self) -> None:
        """Delete what this backup wrote (best effort: it never wrote ``BACKUP`` unless the
        commit itself failed, so what is left cannot pass check)."""
        for name in [BACKUP_NAME] + self._written:
            try:
                self.client.delete(name)
            except StorageIOError:
                return  # unreachable (after retries): the rest stay too, without a manifest


class ObjectSource:
    """A backup in an object store."""

    def __init__(self, url: str, **storage_options: Any) -> None:
        self.client = _client(url, storage_options)
        self.where = redact_url(url)

    def manifest_bytes(self) -> bytes | None:
        try:
            return self.client.get(BACKUP_NAME).data
        except ObjectNotFoundError:
            return None

    def chunks(self, rel: str) -> Iterator[bytes]:
        try:
            yield self.client.get(rel).data
        except ObjectNotFoundError:
            raise CorruptionError(f"backup file {rel} is missing", path=self.name_of(rel)) from None

    def names(self) -> list[str]:
        return sorted(i.name for i in self.client.list(DATA_DIR + "/"))

    def name_of(self, rel: str) -> str:
        return f"{self.where.rstrip('/')}/{rel}"
