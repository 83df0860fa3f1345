"""Cold objects shared by reference between object-store prefixes (clones at a version).

A clone of a store whose cold tier is in an object store gets a prefix of its own, but its
manifest may name segments and drop files that stay where they are, in the prefix of the
store it was cloned from (their *origin*). Two small objects record this:

``BASE`` at the clone's prefix (:data:`BASE_OBJECT`)
    the objects the clone reads from other prefixes: ``{name: origin URL}``. It is the truth
    about what the clone references: a based object the clone's manifest no longer names is
    released by removing it from ``BASE``.
``refs/<clone id>.ref`` at every origin prefix (:data:`REFS_PREFIX`)
    the clone's URL: "a clone whose ``BASE`` may name objects of this prefix".

Both are ``REF_HEADER`` (magic, format version, body length, CRC-32 of the body) followed by
canonical JSON (docs/FORMATS.md, "Clones").

How the three parties use them:

* The clone's cold tier reads through a :class:`SharedClient` (:func:`open_client` picks it
  when ``BASE`` exists): ``get``/``get_range``/``head`` of a based name go to its origin,
  ``list`` reports based names as present, and ``delete`` of a based name (the clone's
  compaction retired it, or its open-time sweep found it unnamed) removes it from ``BASE``
  and, when nothing of that origin is left, deletes the clone's ref there. It never deletes
  an object in another prefix.
* An origin's cold tier asks :func:`unreferenced` before deleting objects: names that the
  ``BASE`` of any clone with a ref here maps to this prefix are kept. Kept objects are not
  named by the origin's manifest, so its next open-time sweep offers them again, and they go
  once no clone references them. A ref whose clone has no ``BASE`` (the clone's prefix was
  deleted) is removed. If a ref or ``BASE`` cannot be read, nothing is deleted this time.
* engine/backup/clone.py creates a clone: with the source's objects held in-process
  (``ColdTier.hold_objects``) it writes ``BASE``, then the refs, then the clone's ``MANIFEST``
  (so there is no moment at which an object is neither held nor referenced).

A clone of a clone keeps each object's original origin and adds refs there and at the
intermediate clone's prefix for that clone's own objects. Deleting a clone's prefix releases
everything it referenced (at the origins' next sweeps); deleting an origin's prefix while
clones reference it breaks them, as deleting any store's data does.

Notes: thread safety
    A SharedClient serialises its own ``BASE`` rewrites; a store is used by one process at a
    time (its lock), and each prefix belongs to one store.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from typing import Any

from ...errors import CorruptionError, FormatError, StorageIOError
from ...records import RECORD_HEADER, decode_json_record, encode_json_record
from .objstore import (
    Fetched,
    ObjectInfo,
    ObjectNotFoundError,
    ObjectStoreClient,
    check_url,
    redact_url,
)

__all__ = ["BASE_OBJECT", "REFS_PREFIX", "SharedClient", "add_ref", "decode_ref", "encode_ref",
           "open_client", "remove_ref", "unreferenced"]

BASE_OBJECT = "BASE"
REFS_PREFIX = "refs/"
BASE_MAGIC = b"TIERDBBS"
REF_MAGIC = b"TIERDBRF"
REF_FORMAT_VERSION = 1
# an engine.records record: magic, format version, body length, crc32 of body
REF_HEADER = RECORD_HEADER


def encode_ref(magic: bytes, body: Mapping[str, Any]) -> bytes:
    return encode_json_record(magic, REF_FORMAT_VERSION, dict(body))


def decode_ref(data: bytes, magic: bytes, where: str) -> dict[str, Any]:
    """Parse a BASE or ref object. Raises CorruptionError / FormatError naming ``where``."""
    out: dict[str, Any] = decode_json_record(
        data, magic, REF_FORMAT_VERSION, what="shared-object record", path=where,
        bad_magic=FormatError, bad_magic_message="not a tierdb shared-object record (bad magic)")
    return out


def _where(client: ObjectStoreClient, name: str) -> str:
    return f"{redact_url(client.url).rstrip('/')}/{name}"


def read_base(client: ObjectStoreClient) -> dict[str, str] | None:
    """The ``BASE`` of ``client``'s prefix (name -> origin URL), or None if it has none."""
    try:
        data = client.get(BASE_OBJECT).data
    except ObjectNotFoundError:
        return None
    body = decode_ref(data, BASE_MAGIC, _where(client, BASE_OBJECT))
    return {str(k): check_url(v) for k, v in body["objects"].items()}


def write_base(client: ObjectStoreClient, objects: Mapping[str, str], *, create: bool) -> None:
    data = encode_ref(BASE_MAGIC, {"objects": dict(objects)})
    if create:
        client.put_if_absent(BASE_OBJECT, data)
    else:
        client.put(BASE_OBJECT, data)


def _ref_name(clone_url: str) -> str:
    return f"{REFS_PREFIX}{uuid.uuid5(uuid.NAMESPACE_URL, clone_url).hex}.ref"


def add_ref(origin: ObjectStoreClient, clone_url: str) -> None:
    """Record at ``origin`` that the clone at ``clone_url`` may reference its objects."""
    origin.put(_ref_name(clone_url), encode_ref(REF_MAGIC, {"clone": check_url(clone_url)}))


def remove_ref(origin: ObjectStoreClient, clone_url: str) -> None:
    origin.delete(_ref_name(clone_url))


def open_client(url: str, storage_options: Mapping[str, Any] | None = None,
                **kwargs: Any) -> ObjectStoreClient:
    """The client a cold tier at ``url`` uses: a :class:`SharedClient` when the prefix has a
    ``BASE`` (it is a clone sharing objects by reference), else a plain client. One GET."""
    client = ObjectStoreClient(url, storage_options, **kwargs)
    base = read_base(client)
    if base is None:
        return client
    return SharedClient(url, storage_options, base, **kwargs)


def unreferenced(client: ObjectStoreClient, names: list[str],
                 storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """The subset of ``names`` (objects of ``client``'s prefix about to be deleted) that no
    clone references. One LIST of ``refs/``; per ref, one GET of it and one of the clone's
    BASE. On any read failure nothing is returned (delete nothing now; retried later)."""
    if not names:
        return names
    refs = client.list(REFS_PREFIX)
    if not refs:
        return names
    me = check_url(client.url)
    kept: set[str] = set()
    try:
        for info in refs:
            ref = decode_ref(client.get(info.name).data, REF_MAGIC, _where(client, info.name))
            clone = ObjectStoreClient(str(ref["clone"]), storage_options)
            base = read_base(clone)
            if base is None:  # the clone's prefix is gone: its references went with it
                client.delete(info.name)
                continue
            kept.update(n for n, origin in base.items() if origin == me)
    except (StorageIOError, CorruptionError, KeyError, ValueError):
        return []
    return [n for n in names if n not in kept]


class SharedClient(ObjectStoreClient):
    """The client of a clone's prefix: based objects are read from their origin, never
    deleted there (see module docstring)."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None,
                 base: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(url, storage_options, **kwargs)
        self._options = dict(storage_options or {})
        self._kwargs = kwargs
        self.base = dict(base)
        self._origins: dict[str, ObjectStoreClient] = {}
        self._base_lock = threading.Lock()

    def origin(self, url: str) -> ObjectStoreClient:
        c = self._origins.get(url)
        if c is None:
            c = self._origins[url] = ObjectStoreClient(url, self._options, **self._kwargs)
        return c

    def _route(self, name: str) -> ObjectStoreClient | None:
        url = self.base.get(name)
        return None if url is None else self.origin(url)

    def get(self, name: str) -> Fetched:
        c = self._route(name)
        return super().get(name) if c is None else c.get(name)

    def get_range(self, name: str, start: int, end: int) -> bytes:
        c = self._route(name)
        return super().get_range(name, start, end) if c is None else c.get_range(name, start, end)

    def head(self, name: str) -> ObjectInfo | None:
        c = self._route(name)
        return super().head(name) if c is None else c.head(name)

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        own = super().list(prefix)
        names = {i.name for i in own}
        based = [ObjectInfo(n, 0, None, 0.0) for n in self.base if n.startswith(prefix) and n not in names]
        return sorted(own + based, key=lambda i: i.name)

    def delete(self, name: str) -> None:
        if name not in self.base:
            super().delete(name)
            return
        with self._base_lock:
            origin = self.base.pop(name, None)
            if origin is None:
                return
            write_base(self, self.base, create=False)
            if origin not in self.base.values():
                remove_ref(self.origin(origin), self.url)

    def stats(self) -> dict[str, int]:
        out = super().stats()
        for c in self._origins.values():
            for k, v in c.stats().items():
                out[k] = out.get(k, 0) + v
        return out
