"""Where the cold tier of a restored store or a clone lives.

A store image (capture.py) always carries its cold tier as a local ``cold/`` directory, also
when the source kept it in an object store (``cold_url``; the objects are downloaded into
the image). Before the image becomes a store, :func:`place_cold` decides:

* ``cold_url=None`` (default): the cold tier stays local, and a ``cold_url`` the source's
  marker names is removed from the new store's marker. A restored store or a clone must
  never open the source's object-store prefix: two stores would then share one cold
  manifest (the conditional put would make one of them fail, but it is still wrong).
* ``cold_url="s3://..."`` (any object-store URL, ``cold_storage_options`` for obstore): the
  cold files are uploaded there (create-only, ``MANIFEST`` last; the prefix must be empty),
  ``cold/`` is removed and the marker names the new URL. The store then opens with its cold
  tier in that prefix and an empty ``cold-cache/``.

Thread safety: touches only the image directory and the given prefix.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from ..errors import BackupError, DestinationExistsError, StorageIOError

__all__ = ["place_cold"]

_SEG = re.compile(r"^\d{12}\.seg$")
_DROP = re.compile(r"^\d{12}\.drop$")


def place_cold(root: Path, cold_url: str | None, storage_options: dict[str, Any] | None = None) -> str | None:
    """Settle the cold tier of the image at ``root`` (see module docstring); return the
    cold URL the new store uses (None: local).

    Raises: DestinationExistsError (the prefix holds objects; nothing uploaded),
    StorageIOError (an upload failed; what was uploaded is deleted again), ValueError (a
    bad URL).
    """
    from ..store import _read_marker, _write_marker

    meta = _read_marker(root)
    if cold_url is not None and "cold" not in str(meta.get("layout", "")).split("+"):
        raise BackupError(f"cold_url was given but the store's layout {meta.get('layout')!r} has no "
                          "cold tier")
    if cold_url is None:
        if meta.pop("cold_url", None) is not None:
            _write_marker(root, meta)
        return None
    from ..tiers.cold.manifest import MANIFEST_NAME
    from ..tiers.cold.objstore import ObjectStoreClient, check_url, redact_url
    from ..tiers.cold.remote import MANIFEST_OBJECT, drop_object, segment_object

    url = check_url(cold_url)
    client = ObjectStoreClient(url, storage_options or None)
    present = client.list("")
    if present:
        raise DestinationExistsError(
            f"cold_url {redact_url(url)} already holds {len(present)} object(s); give the new "
            "store an empty prefix of its own (nothing was uploaded)")
    cold = root / "cold"
    uploaded: list[str] = []
    try:
        if cold.is_dir():
            for p in sorted(cold.iterdir()):
                if _SEG.match(p.name):
                    name = segment_object(int(p.name[:12]))
                elif _DROP.match(p.name):
                    name = drop_object(int(p.name[:12]))
                else:
                    continue
                client.put_if_absent(name, p.read_bytes())
                uploaded.append(name)
            manifest = cold / MANIFEST_NAME
            if manifest.exists():
                client.put_if_absent(MANIFEST_OBJECT, manifest.read_bytes())
                uploaded.append(MANIFEST_OBJECT)
    except BaseException:
        for name in reversed(uploaded):
            try:
                client.delete(name)
            except StorageIOError:
                pass  # unreachable: without MANIFEST the objects are never used
        raise
    shutil.rmtree(cold, ignore_errors=True)
    meta["cold_url"] = url
    _write_marker(root, meta)
    return url


class SharedCold:
    """A clone's cold prefix that references the source's objects (see :func:`share_cold`);
    ``undo()`` removes it again (for a clone that fails later)."""

    def __init__(self, url: str, client: Any, origins: dict[str, Any]) -> None:
        self.url = url
        self.client = client
        self.origins = origins  # origin URL -> client that can write its refs

    def undo(self) -> None:
        from ..tiers.cold.shared import remove_ref

        try:
            for info in self.client.list(""):
                self.client.delete(info.name)
            for origin in self.origins.values():
                remove_ref(origin, self.url)
        except StorageIOError:
            pass  # best effort: a ref whose clone has no BASE is removed by the origin


def share_cold(rc: Any, cold_url: str, storage_options: dict[str, Any] | None) -> SharedCold:
    """Make ``cold_url`` (an empty prefix) a cold tier whose manifest is the source's (``rc``:
    capture.RemoteCold, its objects held) and whose objects stay where they are: write
    ``BASE`` (object -> origin), a ref at every origin, then ``MANIFEST`` (engine/tiers/cold/
    shared.py). Requests: O(origins) small puts; no segment byte moves.

    Raises: DestinationExistsError (the prefix holds objects; nothing written),
    StorageIOError (what was written is removed again).
    """
    from ..tiers.cold.objstore import ObjectStoreClient, check_url, redact_url
    from ..tiers.cold.remote import MANIFEST_OBJECT
    from ..tiers.cold.shared import SharedClient, add_ref, write_base

    url = check_url(cold_url)
    src = rc.client
    if url == check_url(src.url):
        raise DestinationExistsError(f"cold_url {redact_url(url)} is the source's own prefix; give "
                                     "the clone an empty prefix of its own (nothing was written)")
    client = ObjectStoreClient(url, storage_options or None)
    present = client.list("")
    if present:
        raise DestinationExistsError(
            f"cold_url {redact_url(url)} already holds {len(present)} object(s); give the clone an "
            "empty prefix of its own (nothing was written)")
    base = src.base if isinstance(src, SharedClient) else {}
    objects = {name: base.get(name, check_url(src.url)) for name in rc.names}
    origins: dict[str, Any] = {}
    for o in set(objects.values()):
        origins[o] = src if o == check_url(src.url) else src.origin(o)
    shared = SharedCold(url, client, {})
    try:
        write_base(client, objects, create=True)
        for o, oc in origins.items():
            add_ref(oc, url)
            shared.origins[o] = oc
        client.put_if_absent(MANIFEST_OBJECT, rc.manifest)
    except BaseException:
        shared.undo()
        raise
    return shared
