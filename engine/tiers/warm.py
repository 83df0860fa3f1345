"""The warm tier: every version of every key in one RocksDB database (through ``rocksdict``).

Layout (byte-level details in ``docs/FORMATS.md``, "Warm tier (RocksDB)"):

- one column family (CF) per :class:`~engine.types.EntryKind`, named ``str(kind)``
  (``"multi"``, ``"source:42"``...), so the table list is the CF list and survives reopen;
- a reserved CF :data:`META_CF` for tierdb's own metadata and the store's (``set(meta=...)``);
- versioned keys ``escape(key) + 00 00 + ~version (u64 BE)``: user-key order is kept for
  variable-length keys and a key's newest version sorts first (:func:`encode_key`);
- values carry a one-byte tag (:data:`TAG_VALUE` + bytes, or :data:`TAG_TOMBSTONE` alone);
- a marker file :data:`MARKER_NAME` (magic, format version, CRC32) stamped before RocksDB
  creates anything, so a directory that is not a warm store - or one from a newer format - is
  refused before a single byte in it changes.

Reads are iterator seeks: the newest version <= v of ``key`` is the first entry at or after
``encode_key(key, v)``. Point reads reuse one iterator per (thread, table) until the next write
(see "Latest-version reads" in docs/FORMATS.md for the measured alternatives, including a
"current value" CF, and why this one was kept).

Notes: thread safety
    Any number of reader threads alongside writers: ``set``, ``write_entries``, ``drop``,
    ``clear_table``, ``ensure_table`` and ``close`` serialise on ``self._lock``; reads take no
    lock. Every write bumps a generation counter *after* RocksDB applied it; a reader's cached
    iterator is used only while its generation is current, so a read that starts after a write
    returned always sees it, and an iterator (an implicit RocksDB snapshot) never outlives the
    next write by more than the read in flight. RocksDB applies each ``WriteBatch`` atomically,
    so readers never see part of a ``set``. ``close`` while reads are in flight is the caller's
    race: those reads may finish on the old snapshot or raise :class:`ClosedError`.

    RocksDB frees the directory's ``LOCK`` only when its last handle dies. ``close`` drops the
    tier's own handles and every thread's cached iterators; a traceback kept from an exception
    raised inside the tier references frames holding handles, so keep such exceptions only as
    long as needed before reopening the same directory in this process.
"""

from __future__ import annotations

import os
import struct
import threading
import weakref
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, NoReturn, Self

import rocksdict

from ..errors import (
    ClosedError,
    CorruptionError,
    FormatError,
    InvalidKeyError,
    LockedError,
    StorageIOError,
)
from ..types import (
    MAX_VERSION,
    Bound,
    EntryKind,
    RangeBatch,
    RangeCursor,
    RawEntry,
    as_bytes,
    check_version,
)
from .base import DropBatches, SetBatches, finish_page

__all__ = [
    "FORMAT_VERSION",
    "MARKER_NAME",
    "META_CF",
    "WarmOptions",
    "WarmTier",
    "decode_key",
    "encode_key",
    "key_prefix",
]

# --- on-disk format ---------------------------------------------------------------------------

FORMAT_VERSION: Final = 1
"""Warm format written by this build; directories stamped with a newer one are refused."""

MARKER_NAME: Final = "TIERDB_WARM"
MARKER_MAGIC: Final = b"TDBWARM\x00"
MARKER: Final = struct.Struct(">8sII")  # magic, format version, CRC32 of the first 12 bytes
assert MARKER.size == 16

META_CF: Final = "tierdb.meta"  # EntryKind.parse refuses it, so it can never shadow a table
META_FORMAT_KEY: Final = b"\x00tierdb:format_version"  # 0x00-prefixed meta keys are reserved
META_FORMAT: Final = struct.Struct(">I")
assert META_FORMAT.size == 4

VERSION_SUFFIX: Final = struct.Struct(">Q")  # ~version, big-endian: newest sorts first
assert VERSION_SUFFIX.size == 8
NUL: Final = b"\x00"  # test membership with `0 in key`: `NUL in key` is ~6x slower (buffer path)
ESCAPED_NUL: Final = b"\x00\xff"
TERMINATOR: Final = b"\x00\x00"
PAST_VERSIONS: Final = b"\x00\x01"  # escape(key) + this sorts after every version of key
SUFFIX_LEN: Final = len(TERMINATOR) + VERSION_SUFFIX.size
assert SUFFIX_LEN == 10

TAG_VALUE: Final = b"\x01"
TAG_TOMBSTONE: Final = b"\x02"
_TAG_VALUE_INT: Final = TAG_VALUE[0]
_TAG_TOMBSTONE_INT: Final = TAG_TOMBSTONE[0]

# A range scan steps over at most this many unwanted versions of one key with next() before it
# re-seeks past them (RocksDB's max_sequential_skip_in_iterations uses the same idea).
_SCAN_SKIP_LIMIT: Final = 8
# A cached point iterator gives up (status Incomplete) after stepping over this many deleted
# entries; the read then retries on an iterator bounded to the key's own versions.
_POINT_SKIP_LIMIT: Final = 256
_ITER_CHUNK: Final = 256

_pack_inv = VERSION_SUFFIX.pack
_from_bytes = int.from_bytes
# RawEntry is a NamedTuple: constructing one is a single tuple allocation (engine/types.py).
_raw_entry = RawEntry



def key_prefix(key: bytes) -> bytes:
    """``escape(key) + 00 00``: the common prefix of every stored version of ``key``. O(len)."""
    return key.replace(NUL, ESCAPED_NUL) + TERMINATOR


def encode_key(key: bytes, version: int) -> bytes:
    """The physical RocksDB key of ``(key, version)``. O(len(key)).

    Raises:
        InvalidKeyError / InvalidVersionError: bad ``version``.
    """
    if type(version) is not int:
        check_version(version)
    try:
        return key.replace(NUL, ESCAPED_NUL) + TERMINATOR + _pack_inv(MAX_VERSION - version)
    except struct.error:
        check_version(version)
        raise


def decode_key(physical: bytes) -> tuple[bytes, int]:
    """Invert :func:`encode_key`. O(len).

    Raises:
        ValueError: ``physical`` is not a valid encoding (no terminator, bad escape).
    """
    if len(physical) < SUFFIX_LEN or physical[-SUFFIX_LEN:-8] != TERMINATOR:
        raise ValueError(f"not a warm versioned key (no 00 00 terminator): {physical!r}")
    escaped = physical[:-SUFFIX_LEN]
    if 0 in escaped.replace(ESCAPED_NUL, b""):
        raise ValueError(f"bad escape in warm versioned key (00 not followed by ff): {physical!r}")
    return escaped.replace(ESCAPED_NUL, NUL), MAX_VERSION - _from_bytes(physical[-8:], "big")


def _decode_value(tagged: bytes, where: object) -> bytes | None:
    t = tagged[0] if tagged else -1
    if t == _TAG_VALUE_INT:
        return tagged[1:]
    if t == _TAG_TOMBSTONE_INT and len(tagged) == 1:
        return None
    raise CorruptionError(f"warm tier: bad value tag {tagged[:1]!r} at {where}; run check()")


# --- options ----------------------------------------------------------------------------------

_COMPRESSION = {
    "lz4": rocksdict.DBCompressionType.lz4,
    "zstd": rocksdict.DBCompressionType.zstd,
    "none": rocksdict.DBCompressionType.none,
}


@dataclass(frozen=True)
class WarmOptions:
    """RocksDB knobs of the warm tier; every field has a laptop-friendly default.

    Attributes:
        block_cache_bytes: one LRU block cache shared by every column family (64 MiB).
        bloom_bits_per_key: whole-key bloom filter bits for table CFs (0 = off). Warm reads are
            iterator seeks for "newest version <= v", which whole-key filters cannot answer,
            so the default spends no memory on them; the meta CF (point gets) always uses 10.
        compression: SST block compression, ``"lz4"`` (default), ``"zstd"`` or ``"none"``.
        write_buffer_size: memtable size per column family before a flush (64 MiB).
        sync_writes: fsync the WAL on every ``set`` by default (False: a returned write
            survives a process crash, not a power loss, unless ``set(sync=True)``).
    """

    block_cache_bytes: int = 64 << 20
    bloom_bits_per_key: int = 0
    compression: str = "lz4"
    write_buffer_size: int = 64 << 20
    sync_writes: bool = False

    def __post_init__(self) -> None:
        for name in ("block_cache_bytes", "write_buffer_size", "bloom_bits_per_key"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"WarmOptions.{name} must be an int, got {v!r}")
        for name in ("block_cache_bytes", "write_buffer_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"WarmOptions.{name} must be positive, got {getattr(self, name)!r}")
        if not 0 <= self.bloom_bits_per_key <= 64:
            raise ValueError(f"WarmOptions.bloom_bits_per_key must be in [0, 64], got {self.bloom_bits_per_key!r}")
        if self.compression not in _COMPRESSION:
            raise ValueError(
                f"WarmOptions.compression must be one of {sorted(_COMPRESSION)}, got {self.compression!r}"
            )
        if not isinstance(self.sync_writes, bool):
            raise TypeError(f"WarmOptions.sync_writes must be a bool, got {self.sync_writes!r}")


# --- marker file ------------------------------------------------------------------------------


def _marker_bytes(version: int) -> bytes:
    head = MARKER_MAGIC + version.to_bytes(4, "big")
    return MARKER.pack(MARKER_MAGIC, version, zlib.crc32(head))


def _read_marker(path: Path) -> int:
    """Format version stamped in ``path``'s marker file. Raises FormatError if damaged."""
    marker = path / MARKER_NAME
    try:
        data = marker.read_bytes()
    except OSError as e:
        raise StorageIOError(f"cannot read warm tier marker {marker}: {e}; check permissions") from e
    if len(data) != MARKER.size:
        raise FormatError(f"warm tier marker has {len(data)} bytes, expected {MARKER.size}", path=marker)
    magic, version, crc = MARKER.unpack(data)
    if magic != MARKER_MAGIC or zlib.crc32(data[:12]) != crc:
        raise FormatError("warm tier marker is damaged (bad magic or checksum)", path=marker, offset=0)
    return int(version)


def _write_marker(path: Path) -> None:
    """Write the marker atomically: temp file, fsync, rename, fsync the directory."""
    tmp = path / (MARKER_NAME + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(_marker_bytes(FORMAT_VERSION))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path / MARKER_NAME)
        dfd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as e:
        raise StorageIOError(f"cannot create warm tier in {path}: {e}; check space and permissions") from e


# --- internals --------------------------------------------------------------------------------


class _ClosedMap:
    """Stands in for the table maps after ``close``: every access raises ClosedError."""

    __slots__ = ("_path",)

    def __init__(self, path: Path) -> None:
        self._path = path

    def _raise(self, *_: object) -> NoReturn:
        raise ClosedError(f"warm tier {self._path} is closed; open a new WarmTier")

    get = __getitem__ = __contains__ = __iter__ = keys = values = items = _raise


class _Iters:
    """One reader thread's cached point iterators, valid while ``gen`` equals the tier's
    generation: ``by_table`` maps table -> iterator and ``table``/``it`` repeat the last one
    used, compared by identity (``EntryKind.__hash__``/``__eq__`` are Python calls, ~8% of a
    get; bench: get latest)."""

    __slots__ = ("__weakref__", "by_table", "gen", "it", "table")

    def __init__(self) -> None:
        self.gen = -1
        self.table: EntryKind | None = None
        self.it: Any = None
        self.by_table: dict[EntryKind, Any] = {}

    def release(self) -> None:
        """Drop every iterator (called by writers for idle threads; see module docstring)."""
        self.it = None
        self.by_table = {}


def _rocks_error(what: str, path: Path, e: BaseException) -> StorageIOError:
    return StorageIOError(
        f"warm tier {path}: {what} failed: {e}. Nothing of it was applied; fix the cause "
        "(disk full, I/O error, permissions) and retry - if RocksDB stays in its error state, "
        "reopen the tier"
    )


def _upper_bound_ro(upper: bytes | None) -> Any:
    # rocksdict 0.3.29: ReadOptions.set_iterate_lower_bound sets the *upper* bound (verified
    # empirically), so lower bounds are enforced by seek position plus a key check instead.
    ro = rocksdict.ReadOptions()
    if upper is not None:
        ro.set_iterate_upper_bound(upper)
    return ro


# --- the tier ---------------------------------------------------------------------------------


class WarmTier:
    """Multi-version tier on RocksDB; see the module docstring for layout and thread safety.

    Complexity: point reads are one seek (O(log n) in RocksDB) on a per-thread cached iterator;
    ``set`` is O(entries) into one ``WriteBatch``; range pages are one bounded seek plus
    O(batch + skipped versions); ``stats`` and ``check`` are O(n).

    Raises (constructor):
        FormatError: ``path`` is not a warm store (non-empty without marker, or not a directory),
            or was written by a newer format version. Nothing in ``path`` is modified.
        LockedError: another process (or another open WarmTier) holds the store.
        StorageIOError: RocksDB failed to open the directory.
    """

    name = "warm"

    def __init__(self, path: str | os.PathLike[str], **options: Any) -> None:
        self.options = WarmOptions(**options)
        self.path = Path(path)
        self._lock = threading.Lock()
        # Weak references to every thread's _Iters (a dead thread's entry removes itself).
        # Plain set operations run in C under the GIL, so no lock is needed around them.
        self._slots: set[weakref.ref[_Iters]] = set()
        self._local = threading.local()
        self._gen = 0
        self._cache = rocksdict.Cache(self.options.block_cache_bytes)
        existing = self._prepare_dir()
        tables = self._list_tables() if existing else []
        self._db: Any = self._open(tables)
        self._cfs: Any = {}
        self._handles: Any = {}
        try:
            for t in tables:
                self._cfs[t] = self._db.get_column_family(str(t))
                self._handles[t] = self._db.get_column_family_handle(str(t))
            self._meta: Any = self._db.get_column_family(META_CF)
            self._meta_handle = self._db.get_column_family_handle(META_CF)
            self._check_meta_format(bool(tables))
        except BaseException:
            self._release()
            raise
        self._point_ro = rocksdict.ReadOptions()
        self._point_ro.set_max_skippable_internal_keys(_POINT_SKIP_LIMIT)
        self._wo_sync = rocksdict.WriteOptions()
        self._wo_sync.sync = True

    # -- open / close ------------------------------------------------------------------------

    def _prepare_dir(self) -> bool:
        """Refuse foreign or newer directories; stamp new ones. True if a database exists."""
        p = self.path
        if p.exists() and not p.is_dir():
            raise FormatError(f"warm tier path {p} is not a directory; pass a directory path", path=p)
        if not p.exists() or not any(p.iterdir()):
            try:
                p.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StorageIOError(f"cannot create warm tier directory {p}: {e}") from e
            _write_marker(p)  # marker first: a crash leaves a stamped dir that opens as new
            return False
        if not (p / MARKER_NAME).exists():
            raise FormatError(
                f"{p} is not a tierdb warm store (no {MARKER_NAME} marker); refusing to open it "
                "so that nothing in it is modified. Use an empty or new directory.",
                path=p,
            )
        version = _read_marker(p)
        if version > FORMAT_VERSION:
            raise FormatError(
                f"{p} holds warm format version {version}, newer than this build reads "
                f"({FORMAT_VERSION}); upgrade tierdb to open it. Nothing was modified.",
                path=p / MARKER_NAME,
            )
        # No CURRENT: creation crashed before RocksDB finished; open() completes it.
        return (p / "CURRENT").exists()

    def _list_tables(self) -> list[EntryKind]:
        try:
            names = rocksdict.Rdict.list_cf(str(self.path), rocksdict.Options(raw_mode=True))
        except Exception as e:  # rocksdict raises bare Exception for every RocksDB status
            raise CorruptionError(f"cannot list column families: {e}", path=self.path) from e
        tables = []
        for name in names:
            if name in ("default", META_CF):
                continue
            try:
                tables.append(EntryKind.parse(name))
            except ValueError:
                raise FormatError(
                    f"column family {name!r} was not written by tierdb's warm tier; refusing to open",
                    path=self.path,
                ) from None
        if META_CF not in names and tables:
            raise CorruptionError(f"warm store has tables but no {META_CF!r} column family", path=self.path)
        return sorted(tables)

    def _table_options(self, bloom_bits: int) -> Any:
        o = rocksdict.Options(raw_mode=True)
        o.set_compression_type(_COMPRESSION[self.options.compression]())
        o.set_write_buffer_size(self.options.write_buffer_size)
        bbo = rocksdict.BlockBasedOptions()
        bbo.set_block_cache(self._cache)
        if bloom_bits:
            bbo.set_bloom_filter(bloom_bits, False)
        o.set_block_based_table_factory(bbo)
        return o

    def _open(self, tables: list[EntryKind]) -> Any:
        opts = self._table_options(0)
        opts.create_if_missing(True)
        opts.create_missing_column_families(True)
        opts.set_keep_log_file_num(4)
        cfs = {META_CF: self._table_options(10)}
        data_opts = self._table_options(self.options.bloom_bits_per_key)
        for t in tables:
            cfs[str(t)] = data_opts
        try:
            return rocksdict.Rdict(str(self.path), opts, column_families=cfs)
        except Exception as e:  # rocksdict raises bare Exception for every RocksDB status
            msg = str(e)
            if "lock" in msg.lower():
                raise LockedError(
                    f"warm tier {self.path} is already open (RocksDB LOCK held by another process "
                    f"or another WarmTier in this one): {msg}. Close the other user first."
                ) from e
            raise StorageIOError(f"cannot open warm tier {self.path}: {msg}") from e

    def _check_meta_format(self, has_tables: bool) -> None:
        raw = self._meta.get(META_FORMAT_KEY)
        if raw is None:
            if has_tables:
                raise CorruptionError("warm store has tables but no format_version meta key", path=self.path)
            wb = rocksdict.WriteBatch(raw_mode=True)
            wb.put(META_FORMAT_KEY, META_FORMAT.pack(FORMAT_VERSION), self._meta_handle)
            wo = rocksdict.WriteOptions()
            wo.sync = True
            try:
                self._db.write(wb, wo)
            except Exception as e:  # rocksdict raises bare Exception for every RocksDB status
                raise _rocks_error("stamping the format version", self.path, e) from e
            return
        if len(raw) != META_FORMAT.size or META_FORMAT.unpack(raw)[0] != FORMAT_VERSION:
            raise FormatError(
                f"warm store format_version meta key {raw!r} disagrees with its marker "
                f"(format {FORMAT_VERSION})",
                path=self.path,
            )

    def _release(self) -> None:
        """Drop every handle and iterator so RocksDB really closes and frees its LOCK."""
        for ref in list(self._slots):
            its = ref()
            if its is not None:
                its.release()
        closed = _ClosedMap(self.path)
        self._cfs = closed
        self._handles = closed
        self._meta = None
        self._meta_handle = None
        db, self._db = self._db, None
        if db is not None:
            try:
                db.close()
            except Exception as e:  # rocksdict raises bare Exception for every RocksDB status
                raise _rocks_error("close", self.path, e) from e

    def close(self) -> None:
        """Flush memtables to the WAL/SSTs and release the RocksDB lock. Idempotent.

        Later reads and writes raise ClosedError.
        """
        with self._lock:
            if self._db is None:
                return
            self._gen += 1
            self._release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"WarmTier({str(self.path)!r}{'' if self._db is not None else ', closed'})"

    # -- write helpers -----------------------------------------------------------------------

    def _live_db(self) -> Any:
        db = self._db
        if db is None:
            raise ClosedError(f"warm tier {self.path} is closed; open a new WarmTier")
        return db

    def _create_table(self, table: EntryKind) -> Any:
        """Create ``table``'s CF (caller holds the lock). Returns its write handle."""
        if not isinstance(table, EntryKind):
            raise InvalidKeyError(f"table must be an EntryKind, got {type(table).__name__}")
        db = self._live_db()
        name = str(table)
        try:
            cf = db.create_column_family(name, self._table_options(self.options.bloom_bits_per_key))
            handle = db.get_column_family_handle(name)
        except Exception as e:  # rocksdict raises bare Exception for every RocksDB status
            raise _rocks_error(f"creating table {name}", self.path, e) from e
        self._cfs[table] = cf
        self._handles[table] = handle
        return handle

    def _handles_for(self, tables: Iterable[object], validate: Any) -> dict[Any, Any]:
        """Write handles of ``tables``, creating missing ones only after ``validate()`` passed."""
        handles = self._handles
        out = {}
        missing = []
        for t in tables:
            h = handles.get(t)
            if h is None:
                if not isinstance(t, EntryKind):
                    raise InvalidKeyError(f"table must be an EntryKind, got {type(t).__name__}")
                missing.append(t)
            else:
                out[t] = h
        if missing:
            validate()  # bad input must not leave new empty tables behind
            for t in missing:
                out[t] = self._create_table(t)
        return out

    def _add_meta(self, wb: Any, meta: Mapping[bytes, bytes | None]) -> None:
        h = self._meta_handle
        for k, v in meta.items():
            k = as_bytes(k, "meta key")
            if k[:1] == NUL:
                raise InvalidKeyError(f"meta keys starting with 0x00 are reserved for tierdb: {k!r}")
            if v is None:
                wb.delete(k, h)
            else:
                wb.put(k, as_bytes(v, "meta value"), h)

    def _commit(self, wb: Any, sync: bool, what: str, arg: object = "") -> None:
        """Apply ``wb`` atomically (caller holds the lock), then publish a new generation.

        ``what`` and ``arg`` name the operation in errors (formatted only on failure).
        """
        db = self._live_db()
        try:
            if sync:
                db.write(wb, self._wo_sync)
            else:
                # rocksdict's default write options; passing an explicit default
                # WriteOptions() measured ~50% slower per entry (bench: writes).
                db.write(wb)
        except rocksdict.DbClosedError as e:
            raise ClosedError(f"warm tier {self.path} is closed") from e
        except Exception as e:  # rocksdict raises bare Exception for every RocksDB status
            raise _rocks_error(f"{what} {arg}".rstrip(), self.path, e) from e
        finally:
            self._invalidate_readers()

    def _invalidate_readers(self) -> None:
        self._gen += 1
        # Release idle threads' iterators now (they pin memtables and SST files); threads that
        # are mid-read keep their own reference until they finish.
        # A plain set of weak references, not a WeakSet: WeakSet's iteration guard cost ~1 us
        # per write (bench: writes).
        for ref in list(self._slots):
            its = ref()
            if its is not None:
                its.release()

    # -- writes ------------------------------------------------------------------------------

    def set(
        self,
        version: int,
        batches: SetBatches,
        *,
        sync: bool | None = None,
        meta: Mapping[bytes, bytes | None] | None = None,
    ) -> None:
        """Write every table's ``(key, value | None)`` at ``version`` in one atomic WriteBatch.

        ``meta`` entries (value None deletes) go to the meta CF in the same batch. ``sync``
        None uses ``options.sync_writes``. O(entries + bytes).

        Raises:
            InvalidKeyError / InvalidVersionError: bad table, key, value or version (nothing
                written).
            StorageIOError: RocksDB refused the write (nothing applied).
            ClosedError: the tier is closed.
        """
        if type(version) is not int:
            check_version(version)
        try:
            suffix = TERMINATOR + _pack_inv(MAX_VERSION - version)
        except struct.error:
            check_version(version)
            raise
        with self._lock:
            if self._db is None:
                self._live_db()  # raises ClosedError
            handles = self._handles
            wb = rocksdict.WriteBatch(raw_mode=True)
            put = wb.put
            tag_value, tombstone, nul, escaped = TAG_VALUE, TAG_TOMBSTONE, NUL, ESCAPED_NUL
            for table, rows in batches.items():
                h = handles.get(table)
                if h is None:
                    h = self._handles_for((table,), lambda: self._validate_set(batches))[table]
                for key, value in rows:
                    if type(key) is not bytes:
                        key = as_bytes(key)
                    if value is None:
                        tagged = tombstone
                    elif type(value) is bytes:
                        tagged = tag_value + value
                    else:
                        tagged = tag_value + as_bytes(value, "value")
                    put((key.replace(nul, escaped) if 0 in key else key) + suffix, tagged, h)
            if meta:
                self._add_meta(wb, meta)
            do_sync = self.options.sync_writes if sync is None else sync
            if wb.len() or do_sync:  # an empty synced set still syncs the WAL
                self._commit(wb, do_sync, "set of version", version)

    @staticmethod
    def _validate_set(batches: SetBatches) -> None:
        for rows in batches.values():
            for key, value in rows:
                as_bytes(key)
                if value is not None:
                    as_bytes(value, "value")

    def write_entries(
        self,
        batches: Mapping[EntryKind, Sequence[RawEntry]],
        *,
        sync: bool = True,
        meta: Mapping[bytes, bytes | None] | None = None,
    ) -> None:
        """Write many ``RawEntry`` of any versions (tombstones included) in one atomic WriteBatch.

        Used by flush (hot -> warm); rewriting an existing ``(key, version)`` replaces it, so a
        re-run is idempotent. O(entries + bytes).

        Raises:
            InvalidKeyError / InvalidVersionError: bad input (nothing written).
            StorageIOError: RocksDB refused the write (nothing applied).
        """
        with self._lock:
            self._live_db()
            handles = self._handles_for(batches.keys(), lambda: self._validate_entries(batches))
            wb = rocksdict.WriteBatch(raw_mode=True)
            put = wb.put
            for table, rows in batches.items():
                h = handles[table]
                for e in rows:
                    key, version, value = e.key, e.version, e.value
                    if type(key) is not bytes:
                        key = as_bytes(key)
                    if type(version) is not int:
                        check_version(version)
                    try:
                        inv = _pack_inv(MAX_VERSION - version)
                    except struct.error:
                        check_version(version)
                        raise
                    if value is None:
                        tagged = TAG_TOMBSTONE
                    else:
                        tagged = TAG_VALUE + (value if type(value) is bytes else as_bytes(value, "value"))
                    put((key.replace(NUL, ESCAPED_NUL) if 0 in key else key) + TERMINATOR + inv, tagged, h)
            if meta:
                self._add_meta(wb, meta)
            self._commit(wb, sync, "write_entries")

    @staticmethod
    def _validate_entries(batches: Mapping[EntryKind, Sequence[RawEntry]]) -> None:
        for rows in batches.values():
            for e in rows:
                as_bytes(e.key)
                check_version(e.version)
                if e.value is not None:
                    as_bytes(e.value, "value")

    def drop(self, batches: DropBatches, *, sync: bool | None = None) -> None:
        """Delete exactly the listed ``(key, version)`` pairs in one WriteBatch. O(pairs).

        Missing tables, keys and versions are ignored.
        """
        with self._lock:
            self._live_db()
            wb = rocksdict.WriteBatch(raw_mode=True)
            handles = self._handles
            for table, rows in batches.items():
                h = handles.get(table)
                if h is None:
                    continue
                for key, version in rows:
                    wb.delete(encode_key(as_bytes(key), version), h)
            if wb.len():
                self._commit(wb, self.options.sync_writes if sync is None else sync, "drop")

    def ensure_table(self, table: EntryKind) -> None:
        """Create ``table`` (its column family) if missing. O(1)."""
        with self._lock:
            self._live_db()
            if table not in self._handles:
                self._create_table(table)

    def clear_table(self, table: EntryKind) -> None:
        """Delete every entry of ``table`` with one range deletion; the table stays listed.

        O(1) write; space comes back as compaction runs (or :meth:`compact`).
        """
        with self._lock:
            self._live_db()
            cf = self._cfs.get(table)
            if cf is None:
                return
            it = cf.iter(rocksdict.ReadOptions())
            it.seek_to_last()
            last = it.key()
            del it
            if last is None:
                return
            wb = rocksdict.WriteBatch(raw_mode=True)
            # Every physical key is >= b"" and <= last, so [b"", last + 00) covers the table.
            wb.delete_range(b"", last + NUL, self._handles[table])
            self._commit(wb, self.options.sync_writes, f"clear_table({table})")

    # -- meta --------------------------------------------------------------------------------

    def get_meta(self, key: bytes) -> bytes | None:
        """The meta value under ``key``, or None. O(log n)."""
        meta = self._meta
        if meta is None:
            raise ClosedError(f"warm tier {self.path} is closed; open a new WarmTier")
        return meta.get(as_bytes(key, "meta key"))  # type: ignore[no-any-return]

    def iter_meta(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every meta ``(key, value)`` whose key starts with ``prefix``, ascending.

        The pairs are read when called (a point-in-time list). O(log n + matches).
        """
        meta = self._meta
        if meta is None:
            raise ClosedError(f"warm tier {self.path} is closed; open a new WarmTier")
        prefix = as_bytes(prefix, "meta prefix")
        stripped = prefix.rstrip(b"\xff")
        upper = stripped[:-1] + bytes([stripped[-1] + 1]) if stripped else None
        rows = [(k, v) for k, v in meta.items(from_key=prefix, read_opt=_upper_bound_ro(upper))]
        return iter(rows)

    # -- point reads -------------------------------------------------------------------------

    def _thread_iters(self) -> _Iters:
        try:
            return self._local.its  # type: ignore[no-any-return]
        except AttributeError:
            its = self._local.its = _Iters()
            self._slots.add(weakref.ref(its, self._slots.discard))
            return its

    def _point_iter(self, table: EntryKind) -> Any:
        """This thread's cached unbounded iterator on ``table`` (None: no such table)."""
        its = self._thread_iters()
        gen = self._gen
        if its.gen != gen:
            # Read the generation before creating iterators: an iterator is tagged with a
            # generation no newer than the data it sees (module docstring).
            its.release()
            its.gen = gen
        by_table = its.by_table
        it = by_table.get(table)
        if it is None:
            cf = self._cfs.get(table)  # raises ClosedError after close
            if cf is None:
                return None
            it = by_table[table] = cf.iter(self._point_ro)
        its.table = table
        its.it = it
        return it

    def _seek_bounded(self, table: EntryKind, prefix: bytes, target: bytes) -> tuple[bytes, bytes] | None:
        """Slow path: seek on a fresh iterator bounded to ``prefix``'s versions."""
        self._thread_iters().release()  # an iterator that gave up (Incomplete) is not reused
        cf = self._cfs.get(table)
        if cf is None:
            return None
        ro = _upper_bound_ro(prefix[:-1] + b"\x01")
        try:
            for kv in cf.items(from_key=target, read_opt=ro):
                return kv  # type: ignore[no-any-return]
        except rocksdict.DbClosedError as e:
            raise ClosedError(f"warm tier {self.path} is closed") from e
        except Exception as e:  # rocksdict raises bare Exception for every RocksDB status
            raise StorageIOError(f"warm tier {self.path}: read failed: {e}") from e
        return None

    def _resolve_miss(self, it: Any, table: EntryKind, prefix: bytes, target: bytes) -> tuple[bytes, bytes] | None:
        """The cached iterator came back invalid: end of table, or it gave up (Incomplete)."""
        try:
            it.status()
            return None  # end of table
        except Exception:  # noqa: BLE001 - Incomplete (too many deleted entries); rocksdict raises bare Exception
            kv = self._seek_bounded(table, prefix, target)
        if kv is None or kv[0][:-8] != prefix:
            return None
        return kv

    def _seek(self, table: EntryKind, key: bytes, version: int) -> tuple[bytes, bytes] | None:
        """(physical key, tagged value) of the newest version <= ``version``, or None."""
        it = self._point_iter(table)
        if it is None:
            check_version(version)  # bad input raises even for a missing table
            return None
        prefix = (key.replace(NUL, ESCAPED_NUL) if 0 in key else key) + TERMINATOR
        try:
            target = prefix + _pack_inv(MAX_VERSION - version)
        except (struct.error, TypeError):
            check_version(version)
            raise
        it.seek(target)
        k = it.key()
        if k is None:
            return self._resolve_miss(it, table, prefix, target)
        if k[:-8] != prefix:
            return None
        return k, it.value()

    def get(self, table: EntryKind, key: bytes, version: int) -> bytes | None:
        """Value of the newest version <= ``version``; None for a tombstone or no version.

        One seek on this thread's cached iterator. O(log n).
        """
        if type(key) is not bytes:
            key = as_bytes(key)
        # Inlined _point_iter fast path (the call alone cost ~10% of a get; bench: get latest).
        try:
            its = self._local.its
            it = its.it if its.table is table and its.gen == self._gen else None
        except AttributeError:
            it = None
        if it is None:
            it = self._point_iter(table)
            if it is None:
                check_version(version)  # bad input raises even for a missing table
                return None
        prefix = (key.replace(NUL, ESCAPED_NUL) if 0 in key else key) + TERMINATOR
        try:
            target = prefix + _pack_inv(MAX_VERSION - version)
        except (struct.error, TypeError):
            check_version(version)
            raise
        it.seek(target)
        k = it.key()
        if k is None:
            kv = self._resolve_miss(it, table, prefix, target)
            if kv is None:
                return None
            v = kv[1]
        elif k[:-8] != prefix:
            return None
        else:
            v = it.value()
        t = v[0] if v else -1
        if t == _TAG_VALUE_INT:
            return v[1:]  # type: ignore[no-any-return]
        if t == _TAG_TOMBSTONE_INT and len(v) == 1:
            return None
        return _decode_value(v, f"table {table} key {key!r}")

    def lookup(self, table: EntryKind, key: bytes, version: int) -> RawEntry | None:
        """The newest stored version <= ``version`` (tombstones included); None = not found.

        O(log n).
        """
        if type(key) is not bytes:
            key = as_bytes(key)
        found = self._seek(table, key, version)
        if found is None:
            return None
        k, v = found
        return _raw_entry(key, MAX_VERSION - _from_bytes(k[-8:], "big"),
                          _decode_value(v, f"table {table} key {key!r}"))

    def contains(self, table: EntryKind, key: bytes, version: int) -> bool:
        """``get(...) is not None``. O(log n)."""
        return self.get(table, key, version) is not None

    def get_all_versions(self, table: EntryKind, key: bytes) -> list[tuple[int, bytes | None]]:
        """Every stored version of ``key``, newest first. One bounded iterator; O(log n + versions)."""
        key = as_bytes(key)
        cf = self._cfs.get(table)
        if cf is None:
            return []
        prefix = key_prefix(key)
        ro = _upper_bound_ro(prefix[:-1] + b"\x01")
        where = f"table {table} key {key!r}"
        return [
            (MAX_VERSION - _from_bytes(k[-8:], "big"), _decode_value(v, where))
            for k, v in cf.items(from_key=prefix, read_opt=ro)
        ]

    # -- ranges ------------------------------------------------------------------------------

    @staticmethod
    def _low(start: Bound, cursor: RangeCursor, reverse: bool) -> bytes | None:
        if not reverse and cursor.last_key is not None:
            return cursor.last_key.replace(NUL, ESCAPED_NUL) + PAST_VERSIONS
        if start.key is None:
            return None
        return start.key.replace(NUL, ESCAPED_NUL) + (TERMINATOR if start.inclusive else PAST_VERSIONS)

    @staticmethod
    def _high(end: Bound, cursor: RangeCursor, reverse: bool) -> bytes | None:
        if reverse and cursor.last_key is not None:
            return cursor.last_key.replace(NUL, ESCAPED_NUL) + TERMINATOR
        if end.key is None:
            return None
        return end.key.replace(NUL, ESCAPED_NUL) + (PAST_VERSIONS if end.inclusive else TERMINATOR)

    def _page(
        self,
        table: EntryKind,
        cursor: RangeCursor,
        start: Bound,
        end: Bound,
        version: int,
        batch_size: int,
        reverse: bool,
    ) -> RangeBatch:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        cf = self._cfs.get(table)  # raises ClosedError after close
        if cursor.exhausted:
            return RangeBatch.empty()
        if cf is None:
            check_version(version)  # bad input raises even for a missing table
            cursor.exhausted = True
            return RangeBatch.empty()
        try:
            inv_read = _pack_inv(MAX_VERSION - version)
        except (struct.error, TypeError):
            check_version(version)
            raise
        lo = self._low(start, cursor, reverse)
        hi = self._high(end, cursor, reverse)
        if lo is not None and hi is not None and lo >= hi:
            out: list[RawEntry] = []
            has_more = False
        else:
            try:
                if reverse:
                    out, has_more = self._scan_rev(cf, lo, hi, inv_read, batch_size, table)
                else:
                    out, has_more = self._scan_fwd(cf, lo, hi, inv_read, batch_size, table)
            except rocksdict.DbClosedError as e:
                raise ClosedError(f"warm tier {self.path} is closed") from e
        return finish_page(cursor, out, has_more)

    @staticmethod
    def _scan_fwd(
        cf: Any, lo: bytes | None, hi: bytes | None, inv_read: bytes, batch_size: int, table: EntryKind
    ) -> tuple[list[RawEntry], bool]:
        ro = _upper_bound_ro(hi)
        out: list[RawEntry] = []
        append = out.append
        last_p: bytes | None = None  # prefix of the key just emitted
        newer_p: bytes | None = None  # prefix whose too-new versions are being skipped
        run = 0
        from_key = lo
        room = batch_size
        # Locals for the per-row loop (each global/attribute load is ~2% of a row).
        tv, tt, maxv, from_bytes = _TAG_VALUE_INT, _TAG_TOMBSTONE_INT, MAX_VERSION, _from_bytes
        new_entry = RawEntry
        while True:
            reseek = None
            for k, v in cf.items(from_key=from_key, read_opt=ro):
                p = k[:-8]
                if p == last_p:  # an older version of the key just emitted
                    run += 1
                    if run > _SCAN_SKIP_LIMIT:
                        reseek = p[:-1] + b"\x01"
                        break
                    continue
                s = k[-8:]
                if s < inv_read:  # newer than the read version
                    if p != newer_p:
                        newer_p = p
                        run = 0
                    run += 1
                    if run > _SCAN_SKIP_LIMIT:
                        reseek = p + inv_read
                        break
                    continue
                if not room:
                    return out, True
                room -= 1
                last_p = p
                run = 0
                ek = k[:-SUFFIX_LEN]
                if 0 in ek:
                    ek = ek.replace(ESCAPED_NUL, NUL)
                t = v[0] if v else -1
                if t == tv:
                    val: bytes | None = v[1:]
                elif t == tt and len(v) == 1:
                    val = None
                else:
                    val = _decode_value(v, f"table {table} key {ek!r}")
                append(new_entry(ek, maxv - from_bytes(s, "big"), val))
            if reseek is None:
                return out, False
            from_key = reseek
            run = 0

    @staticmethod
    def _scan_rev(
        cf: Any, lo: bytes | None, hi: bytes | None, inv_read: bytes, batch_size: int, table: EntryKind
    ) -> tuple[list[RawEntry], bool]:
        # Walking backwards, a key's versions arrive oldest first: the answer for the key is the
        # last one seen that is still <= the read version.
        ro = _upper_bound_ro(hi)
        out: list[RawEntry] = []
        group: bytes | None = None
        cand: tuple[bytes, bytes] | None = None  # best (k, v) of the current group so far
        done = False  # the current group's answer is final (remaining versions too new)
        run = 0
        from_key = hi
        where = f"table {table}"

        def emit(k: bytes, v: bytes) -> None:
            ek = k[:-SUFFIX_LEN]
            if 0 in ek:
                ek = ek.replace(ESCAPED_NUL, NUL)
            out.append(_raw_entry(ek, MAX_VERSION - _from_bytes(k[-8:], "big"), _decode_value(v, where)))

        while True:
            reseek = None
            for k, v in cf.items(backwards=True, from_key=from_key, read_opt=ro):
                if lo is not None and k < lo:
                    break  # below the range (lower bounds are manual: see _upper_bound_ro)
                p = k[:-8]
                if p != group:
                    if cand is not None:
                        emit(*cand)
                        cand = None
                    group = p
                    run = 0
                    if k[-8:] >= inv_read:  # its oldest version is visible: the key is visible
                        if len(out) == batch_size:
                            return out, True
                        cand = (k, v)
                        done = False
                    else:
                        done = True
                    continue
                run += 1
                if not done:
                    if k[-8:] >= inv_read:
                        cand = (k, v)
                    else:
                        done = True
                if run > _SCAN_SKIP_LIMIT:
                    if not done:  # a long history: seek straight to the newest visible version
                        for kv in cf.items(from_key=p + inv_read, read_opt=_upper_bound_ro(p[:-1] + b"\x01")):
                            cand = kv
                            break
                        done = True
                    reseek = p  # seek_for_prev(p) lands on the previous key
                    break
            if reseek is None:
                if cand is not None:
                    emit(*cand)
                return out, False
            from_key = reseek

    def range_next(self, table: EntryKind, cursor: RangeCursor, start: Bound, end: Bound,
                   version: int, batch_size: int) -> RangeBatch:
        """Next <= ``batch_size`` keys ascending at their newest version <= ``version``.

        One bounded iterator per page; O(log n + batch + skipped versions).
        """
        return self._page(table, cursor, start, end, version, batch_size, False)

    def range_rev_next(self, table: EntryKind, cursor: RangeCursor, start: Bound, end: Bound,
                       version: int, batch_size: int) -> RangeBatch:
        """As :meth:`range_next`, in descending key order."""
        return self._page(table, cursor, start, end, version, batch_size, True)

    # -- maintenance -------------------------------------------------------------------------

    def tables(self) -> list[EntryKind]:
        """Every table (column family) of this tier, sorted. O(tables)."""
        return sorted(self._cfs.keys())

    def iter_versions(self, table: EntryKind, start: bytes | None = None) -> Iterator[RawEntry]:
        """Every stored version of ``table``, key ascending, version descending, from ``start``.

        Pages through short-lived iterators (none is held across a ``yield``), so it is not a
        consistent snapshot against concurrent writes. O(n) over the whole walk.
        """
        cf = self._cfs.get(table)
        if cf is None:
            return
        from_key: bytes | None = key_prefix(as_bytes(start)) if start is not None else None
        where = f"table {table}"
        ro = rocksdict.ReadOptions()
        while True:
            rows: list[RawEntry] = []
            last = None
            for k, v in cf.items(from_key=from_key, read_opt=ro):
                ek, ver = decode_key(k)
                rows.append(_raw_entry(ek, ver, _decode_value(v, where)))
                last = k
                if len(rows) == _ITER_CHUNK:
                    break
            if last is None:
                return
            yield from rows
            if len(rows) < _ITER_CHUNK:
                return
            from_key = last + NUL  # the smallest key after `last`
            cf = self._cfs.get(table)
            if cf is None:
                return

    def check(self) -> None:
        """Verify the format marker, meta format key, and for every table: key encoding,
        value tags, and key-ascending / version-descending order. O(n).

        Raises:
            CorruptionError: naming the table and physical key.
        """
        cfs = dict(self._cfs.items())
        version = _read_marker(self.path)
        if version != FORMAT_VERSION:
            raise FormatError(f"marker says format {version}, expected {FORMAT_VERSION}", path=self.path)
        raw = self.get_meta(META_FORMAT_KEY)
        if raw != META_FORMAT.pack(FORMAT_VERSION):
            raise CorruptionError(f"meta format_version is {raw!r}", path=self.path)
        for table, cf in cfs.items():
            prev_key: bytes | None = None
            prev_version = 0
            prev_phys = b""
            for k, v in cf.items(read_opt=rocksdict.ReadOptions()):
                where = f"table {table} physical key {k!r}"
                if k <= prev_phys and prev_key is not None:
                    raise CorruptionError(f"warm tier: keys out of order at {where}", path=self.path)
                try:
                    key, ver = decode_key(k)
                except ValueError as e:
                    raise CorruptionError(f"warm tier: {e} ({where})", path=self.path) from None
                if not v or v[0] not in (_TAG_VALUE_INT, _TAG_TOMBSTONE_INT) or (
                        v[0] == _TAG_TOMBSTONE_INT and len(v) != 1):
                    raise CorruptionError(f"warm tier: bad value tag {v[:1]!r} at {where}", path=self.path)
                if prev_key is not None:
                    if key < prev_key:
                        raise CorruptionError(f"warm tier: user keys out of order at {where}", path=self.path)
                    if key == prev_key and ver >= prev_version:
                        raise CorruptionError(f"warm tier: versions not descending at {where}", path=self.path)
                prev_key, prev_version, prev_phys = key, ver, k

    def stats(self, *, exact: bool = True) -> dict[str, Any]:
        """Counts and bytes of this tier.

        ``exact=True`` (default) walks every table: O(n). ``keys``/``versions``/``bytes`` are
        then exact (``bytes`` = physical key + tagged value bytes of live entries, so it falls
        right after a drop). ``exact=False`` is O(tables): ``versions`` and ``bytes`` come from
        RocksDB estimates and ``keys`` is None. Always includes ``rocksdb`` properties.
        """
        cfs = dict(self._cfs.items())
        out: dict[str, Any] = {"tier": "warm", "path": str(self.path), "tables": len(cfs),
                               "exact": exact, "options": asdict(self.options)}
        props = {"estimate_num_keys": 0, "total_sst_files_size": 0, "cur_size_all_mem_tables": 0,
                 "estimate_live_data_size": 0}
        for cf in cfs.values():
            for name in props:
                try:
                    props[name] += int(cf.property_int_value("rocksdb." + name.replace("_", "-")) or 0)
                except Exception:  # noqa: BLE001, S110 - an unsupported property must not fail stats()
                    pass
        out["rocksdb"] = props
        if not exact:
            out.update(keys=None, versions=props["estimate_num_keys"],
                       bytes=props["total_sst_files_size"] + props["cur_size_all_mem_tables"])
            return out
        keys = versions = nbytes = tombstones = 0
        for cf in cfs.values():
            last = None
            for k, v in cf.items(read_opt=rocksdict.ReadOptions()):
                versions += 1
                nbytes += len(k) + len(v)
                if len(v) == 1 and v[0] == _TAG_TOMBSTONE_INT:
                    tombstones += 1
                p = k[:-8]
                if p != last:
                    keys += 1
                    last = p
        out.update(keys=keys, versions=versions, bytes=nbytes, tombstones=tombstones)
        return out

    def flush_wal(self, sync: bool = True) -> None:
        """Write RocksDB's WAL buffer to its file, and fsync it if ``sync``. O(buffer)."""
        db = self._live_db()
        try:
            db.flush_wal(sync)
        except Exception as e:  # rocksdict raises bare Exception for every RocksDB status
            raise _rocks_error("flush_wal", self.path, e) from e

    def compact(self) -> None:
        """Compact every column family fully (drops deleted data). O(data); blocks the caller."""
        cfs = list(dict(self._cfs.items()).values())
        meta = self._meta
        # Force the bottommost level too: by default RocksDB skips rewriting it, which
        # leaves dropped versions on disk (tests/gc/test_space.py).
        opts = rocksdict.CompactOptions()
        opts.set_bottommost_level_compaction(rocksdict.BottommostLevelCompaction.force())
        for cf in cfs + ([meta] if meta is not None else []):
            try:
                cf.compact_range(None, None, opts)
            except rocksdict.DbClosedError as e:
                raise ClosedError(f"warm tier {self.path} is closed") from e
            except Exception as e:  # rocksdict raises bare Exception for every RocksDB status
                raise _rocks_error("compact", self.path, e) from e
