"""The cold tier on an object store: object names, manifest compare-and-swap, uploads, and
opening (recovering) the tier from the store.

Object layout under the ``cold_url`` prefix (docs/FORMATS.md)::

    MANIFEST                      live segments, live drop files, counters, tables
    seg/NNNNNNNNNNNN.seg          a segment (created once with put-if-absent, never changed)
    drop/NNNNNNNNNNNN.drop        a drop file (likewise)

Writers upload the new immutable object first, then replace ``MANIFEST`` with a
conditional put on the ETag they last read (``If-Match``): of two writers, exactly one wins;
the other gets :class:`~engine.errors.ManifestConflictError`, deletes only the objects it
created for that call, and changes nothing the winner references. An object is live only
while the manifest names it, so an interrupted upload is never referenced.

When a manifest put fails in a way that leaves its outcome unknown (the server went away
after receiving it), :class:`ManifestUncertain` is raised, the objects of that call are kept
(the new manifest may name them), and the next manifest replacement first reads the
manifest back: if it holds the bytes last written or the bytes of the uncertain attempt,
this tier resumes from there; anything else is another writer (ManifestConflictError).

Objects no manifest names and numbered below the manifest's ``next_file_no`` are garbage
(a writer that crashed between upload and manifest, a lost race, a compaction whose
deletes did not finish); :func:`recover_remote` removes them through the tier's
``retire`` callback. Objects numbered at or above it may belong to a writer racing right
now and are left alone.

Notes: thread safety
    :class:`RemoteFiles` methods that touch the manifest are called under the tier's writer
    lock; uploads and range reads may run concurrently (the client is thread-safe).
"""

from __future__ import annotations

import logging
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import CorruptionError, ManifestConflictError, StorageIOError
from .cache import BlockCache
from .drops import DropGroup, DropIndex, decode_drops
from .format import COLD_REF, COLD_REF_MAGIC, SEGMENT_HEADER, crc32
from .manifest import Manifest, decode_manifest, encode_manifest, write_atomic
from .objstore import (
    ObjectExistsError,
    ObjectNotFoundError,
    ObjectStoreClient,
    PreconditionFailedError,
    redact_url,
)
from .rangecache import RangeCache
from .reader import Segment
from .source import TAIL_BYTES, RangeSource
from .state import State, drop_name
from .writer import WrittenSegment, segment_name

__all__ = ["MANIFEST_OBJECT", "ManifestUncertain", "RemoteFiles", "RemoteRecovered",
           "drop_object", "recover_remote", "segment_object"]

log = logging.getLogger("tierdb.cold")

MANIFEST_OBJECT = "MANIFEST"
_OBJ_RE = re.compile(r"^(seg|drop)/(\d{12})\.(seg|drop)$")


def segment_object(file_no: int) -> str:
    """Object name of segment ``file_no`` (relative to the cold_url prefix)."""
    return "seg/" + segment_name(file_no)


def drop_object(file_no: int) -> str:
    """Object name of drop file ``file_no``."""
    return "drop/" + drop_name(file_no)


class _NoRanges:
    """A range cache that keeps nothing (``check()`` reads the objects themselves)."""

    capacity = 0

    def get(self, file_no: int, off: int, n: int) -> bytes | None:
        return None

    def put(self, file_no: int, off: int, data: bytes) -> None:
        pass

    def drop_file(self, file_no: int) -> int:
        return 0


_NO_CACHE: Any = _NoRanges()


class ManifestUncertain(StorageIOError):
    """A manifest put failed after it may have reached the object store: whether the new
    manifest is live is unknown. The objects it names are kept; the next write resolves it."""


class RemoteFiles:
    """The cold tier's view of its object store: the client, the on-disk range cache, the
    manifest's current ETag and bytes."""

    def __init__(self, client: ObjectStoreClient, cache_dir: Path, disk_cache_bytes: int,
                 ref_path: Path | None = None) -> None:
        self.client = client
        self.ref_path = ref_path
        self.ranges = RangeCache(cache_dir, disk_cache_bytes)
        self.etag: str | None = None
        self.last: bytes | None = None
        self.uncertain: bytes | None = None
        # Objects this process created and that no manifest has named yet: the only ones
        # abandon() may delete (a name clash or an upload of unknown outcome is not ours).
        self.created: set[str] = set()

    def display(self, name: str) -> str:
        """A human-readable location of object ``name`` (for error messages)."""
        return f"{redact_url(self.client.url).rstrip('/')}/{name}"

    # -- manifest ------------------------------------------------------------------------

    def read_manifest(self) -> Manifest | None:
        """Fetch, verify and remember the manifest; None if there is none."""
        try:
            f = self.client.get(MANIFEST_OBJECT)
        except ObjectNotFoundError:
            return None
        m = decode_manifest(f.data, self.display(MANIFEST_OBJECT))
        self.etag, self.last, self.uncertain = f.etag, f.data, None
        return m

    def _resync(self) -> None:
        """After an uncertain put: adopt the manifest's ETag if it holds what this tier last
        wrote or tried to write; otherwise someone else wrote it."""
        try:
            f = self.client.get(MANIFEST_OBJECT)
        except ObjectNotFoundError:
            f = None
        if f is not None and f.data in (self.last, self.uncertain):
            self.etag, self.last, self.uncertain = f.etag, f.data, None
            return
        raise ManifestConflictError(
            f"the cold manifest {self.display(MANIFEST_OBJECT)} was replaced by another writer "
            "while this store's last update was in doubt; reopen the store")

    def replace_manifest(self, m: Manifest) -> None:
        """Replace the manifest with ``m`` if nobody else has since this tier read it.

        Raises:
            ManifestConflictError: another writer replaced it (nothing written).
            ManifestUncertain: the put's outcome is unknown (see module docstring).
        """
        if self.uncertain is not None:
            self._resync()
        data = encode_manifest(m)
        try:
            if self.etag is None:
                etag = self.client.put_if_absent(MANIFEST_OBJECT, data)
            else:
                etag = self.client.put_if_match(MANIFEST_OBJECT, data, self.etag)
        except (PreconditionFailedError, ObjectExistsError):
            raise ManifestConflictError(
                f"the cold manifest {self.display(MANIFEST_OBJECT)} was replaced by another "
                "writer since this store read it (two stores share one cold_url?); this "
                "write was not made live. Give each store its own cold_url, then reopen "
                "this store") from None
        except StorageIOError as exc:
            self.uncertain = data
            raise ManifestUncertain(f"replacing the cold manifest {self.display(MANIFEST_OBJECT)} "
                                    f"failed and may or may not have taken effect: {exc}") from exc
        self.etag, self.last = etag, data
        self.write_ref(m.generation)

    # -- the local reference -------------------------------------------------------------

    def read_ref(self) -> int | None:
        """The manifest generation this store last wrote, or None (no ref file kept).

        Raises CorruptionError if the file is damaged."""
        if self.ref_path is None:
            return None
        try:
            data = self.ref_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageIOError(f"cannot read {self.ref_path}: {exc}") from exc
        if len(data) != COLD_REF.size:
            raise CorruptionError(f"cold reference file is {len(data)} bytes, not {COLD_REF.size}",
                                  path=self.ref_path, offset=0)
        magic, generation, crc = COLD_REF.unpack(data)
        if magic != COLD_REF_MAGIC or crc32(data[:16]) != crc:
            raise CorruptionError("cold reference file fails its checksum", path=self.ref_path, offset=0)
        return int(generation)

    def write_ref(self, generation: int) -> None:
        """Record ``generation`` as the newest manifest this store wrote. Best effort: a ref
        left behind only weakens the open-time check (a newer manifest is accepted)."""
        if self.ref_path is None:
            return
        head = COLD_REF.pack(COLD_REF_MAGIC, generation, 0)[:16]
        try:
            write_atomic(self.ref_path, head + struct.pack("<I", crc32(head)))
        except StorageIOError as exc:
            log.warning("could not record the cold manifest generation in %s: %s", self.ref_path, exc)

    # -- objects -------------------------------------------------------------------------

    def open_segment(self, file_no: int, size: int, footer_crc: int, seq: int,
                     cache: BlockCache) -> Segment:
        """Open (verify header, footer, meta of) remote segment ``file_no``."""
        name = segment_object(file_no)
        src = RangeSource(self.client, name, file_no, size, self.ranges)
        return Segment(self.display(name), file_no, cache, expect_size=size,
                       expect_footer_crc=footer_crc, expect_seq=seq, source=src)

    def uncached_segment(self, file_no: int, size: int, footer_crc: int, seq: int) -> Segment:
        """Open remote segment ``file_no`` reading the object store only (no range cache, no
        block cache): what ``check()`` verifies."""
        name = segment_object(file_no)
        src = RangeSource(self.client, name, file_no, size, _NO_CACHE)
        return Segment(self.display(name), file_no, BlockCache(0), expect_size=size,
                       expect_footer_crc=footer_crc, expect_seq=seq, source=src)

    def upload_segment(self, ws: WrittenSegment) -> str:
        """Upload the finished local segment file ``ws`` (create-only), seed the range cache
        with its header and tail, and remove the local file. Returns the object name.

        Raises:
            ManifestConflictError: an object of that number exists (another writer).
            StorageIOError: the upload failed (nothing is referenced; the local file is gone).
        """
        name = segment_object(ws.file_no)
        staged = Path(ws.path)
        try:
            self.put_new(name, staged)
            with open(staged, "rb") as f:
                head = f.read(SEGMENT_HEADER.size)
                tail = max(0, ws.file_size - TAIL_BYTES)
                f.seek(tail)
                end = f.read()
        except OSError as exc:
            raise StorageIOError(f"cannot read the staged segment {staged}: {exc}") from exc
        finally:
            try:
                os.unlink(staged)
            except OSError:
                pass  # a stray staged file is removed on the next open
        rc = self.ranges
        rc.put(ws.file_no, 0, head)
        rc.put(ws.file_no, tail, end)
        return name

    def put_new(self, name: str, data: bytes | Path) -> None:
        """Create object ``name`` (never overwriting). Raises ManifestConflictError if it
        exists, StorageIOError on failure."""
        try:
            self.client.put_if_absent(name, data)
        except ObjectExistsError:
            raise ManifestConflictError(
                f"{self.display(name)} already exists: another writer is using this cold_url; "
                "nothing was made live. Reopen the store") from None
        self.created.add(name)

    def settled(self, names: list[str]) -> None:
        """The manifest naming ``names`` is live: they are no longer ours to abandon."""
        for name in names:
            self.created.discard(name)

    def abandon(self, names: list[str], exc: BaseException) -> None:
        """Delete objects this tier created for a write that did not become live, unless the
        manifest's outcome is uncertain (they may be referenced). Objects it did not create
        (a name clash, an upload whose outcome is unknown) are left for the open-time sweep."""
        if isinstance(exc, ManifestUncertain):
            return
        for name in names:
            if name not in self.created:
                continue
            self.created.discard(name)
            try:
                self.client.delete(name)
            except StorageIOError:
                pass  # unreferenced: a later open sweeps it

    def get_drops(self, no: int) -> list[DropGroup]:
        name = drop_object(no)
        try:
            data = self.client.get(name).data
        except ObjectNotFoundError:
            raise CorruptionError("cold drop file named by the manifest is missing",
                                  path=self.display(name), offset=None) from None
        return decode_drops(data, self.display(name), no)

    def stats(self) -> dict[str, int]:
        c = self.client.stats()
        out = {f"objstore_{k}": v for k, v in c.items()}
        out.update(self.ranges.stats())
        return out


@dataclass(slots=True)
class RemoteRecovered:
    """What :func:`recover_remote` found."""

    manifest: Manifest
    state: State
    next_file_no: int
    next_seq: int
    removed_temp_files: int


def recover_remote(local: Path, remote: RemoteFiles, cache: BlockCache,
                   retire: Callable[[list[str]], None]) -> RemoteRecovered:
    """Open an object-store cold tier (see module docstring). One GET of the manifest, one
    LIST, then per segment two ranged GETs (header, tail) unless the range cache has them,
    and one GET per live drop file.

    Raises:
        CorruptionError: damaged manifest, segment metadata or drop file; a segment or drop
            file the manifest names is missing; segment objects but no manifest.
        FormatError: objects of an unknown format version.
        StorageIOError: the object store cannot be reached (after retries).
    """
    removed = 0
    for name in os.listdir(local):  # staged segment files of an interrupted write
        if name.endswith((".seg", ".seg.tmp", ".drop.tmp", "MANIFEST.tmp")):
            try:
                os.unlink(local / name)
            except OSError as exc:
                raise StorageIOError(f"cannot remove stray staged file {name}: {exc}") from exc
            removed += 1
    m = remote.read_manifest()
    last_gen = remote.read_ref()
    if last_gen is not None and (m is None or m.generation < last_gen):
        have = "no manifest" if m is None else f"manifest generation {m.generation}"
        raise CorruptionError(
            f"the object store at {remote.display('')} holds {have}, but this store last wrote "
            f"generation {last_gen} there: wrong bucket/prefix or credentials, or the bucket was "
            "rolled back. Point cold_url at the right place (or restore the bucket)",
            path=remote.display(MANIFEST_OBJECT), offset=None)
    listed = remote.client.list("")
    numbered = [(mo.group(1), int(mo.group(2)), i.name) for i in listed
                if (mo := _OBJ_RE.match(i.name)) and mo.group(1) == mo.group(3)]
    if m is None:
        if numbered:
            raise CorruptionError("object-store cold tier has segment or drop objects but no "
                                  "MANIFEST; restore the MANIFEST from a backup",
                                  path=remote.display(MANIFEST_OBJECT), offset=None)
        m = Manifest(generation=1, drop_files=[])
        try:
            remote.replace_manifest(m)
        except ManifestConflictError:  # another opener created it first: use theirs
            m = remote.read_manifest()
            if m is None:
                raise
    if m.drop_files is None:  # a manifest copied from a local directory: find drops by name
        m.drop_files = sorted(no for kind, no, _n in numbered if kind == "drop" and no > m.drop_floor)
    live = {segment_object(r.file_no) for r in m.segments}
    live.update(drop_object(no) for no in m.drop_files)
    garbage = [n for _k, no, n in numbered if n not in live and no < m.next_file_no]
    max_no = max((no for _k, no, _n in numbered), default=0)
    present = {n for _k, _no, n in numbered}
    segments: list[Segment] = []
    try:
        for ref in m.segments:
            if segment_object(ref.file_no) not in present:
                raise CorruptionError("cold segment named by the manifest is missing",
                                      path=remote.display(segment_object(ref.file_no)), offset=None)
            segments.append(remote.open_segment(ref.file_no, ref.file_size, ref.footer_crc,
                                                ref.seq, cache))
        drops = DropIndex()
        for no in m.drop_files:
            for g in remote.get_drops(no):
                drops.add_group(g)
    except BaseException:  # close what was opened, then re-raise
        for seg in segments:
            seg.close()
        raise
    if garbage:
        retire(garbage)
    state = State(tuple(segments), frozenset(m.tables), drops, list(m.drop_files))
    return RemoteRecovered(m, state, max(m.next_file_no, max_no + 1), m.next_seq, removed)
