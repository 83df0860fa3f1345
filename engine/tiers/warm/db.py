"""The warm tier's RocksDB handle: open/close, tables (column families), metadata, atomic
write-batch commits with reader invalidation, and the per-thread iterator cache.

:class:`WarmDB` is the state every concern of the tier (point reads, scans, writes, checks)
shares; :class:`~engine.tiers.warm.tier.WarmTier` puts them together.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn, Self

import rocksdict

from ...errors import (
    ClosedError,
    CorruptionError,
    FormatError,
    InvalidKeyError,
    LockedError,
    StorageIOError,
)
from ...types import EntryKind, as_bytes
from .format import (
    FORMAT_VERSION,
    MARKER_NAME,
    META_CF,
    META_FORMAT,
    META_FORMAT_KEY,
    NUL,
    POINT_SKIP_LIMIT,
    read_marker,
    write_marker,
)
from .options import COMPRESSION, WarmOptions

__all__ = ["ClosedMap", "ThreadIters", "WarmDB", "rocks_error", "upper_bound_ro"]


class ClosedMap:
    """Stands in for the table maps after ``close``: every access raises ClosedError."""

    __slots__ = ("_path",)

    def __init__(self, path: Path) -> None:
        self._path = path

    def _raise(self, *_: object) -> NoReturn:
        raise ClosedError(f"warm tier {self._path} is closed; open a new WarmTier")

    get = __getitem__ = __contains__ = __iter__ = keys = values = items = _raise


class ThreadIters:
    """One reader thread's cached point iterators, valid while ``gen`` equals the tier's
    generation: ``by_table`` maps table -> iterator and ``table``/``it`` repeat the last one
    used, compared by identity (``EntryKind.__hash__``/``__eq__`` are Python calls, ~8% of a
    get; bench: get latest). ``ver``/``inv`` cache the last read version and its encoded
    suffix (``00 00 ~version``): a run of reads at one version packs it once."""

    __slots__ = ("__weakref__", "by_table", "gen", "inv", "it", "table", "ver")

    def __init__(self) -> None:
        self.gen = -1
        self.table: EntryKind | None = None
        self.it: Any = None
        self.by_table: dict[EntryKind, Any] = {}
        self.ver = -1
        self.inv = b""

    def release(self) -> None:
        """Drop every iterator (called by writers for idle threads; see module docstring)."""
        self.it = None
        self.table = None
        self.by_table = {}


def rocks_error(what: str, path: Path, e: BaseException) -> StorageIOError:
    return StorageIOError(
        f"warm tier {path}: {what} failed: {e}. Nothing of it was applied; fix the cause "
        "(disk full, I/O error, permissions) and retry - if RocksDB stays in its error state, "
        "reopen the tier"
    )


def verify_stop(cf: Any, ro: Any, position: bytes | None, after: bool, path: Path | None,
                reverse: bool = False) -> None:
    """An ``items()`` walk over ``cf`` ended without filling what was asked: make sure
    RocksDB really ran out of rows rather than stopping at a block it could not read.
    (rocksdict's items() iterator hides the iterator's error status, so a block failing its
    checksum would otherwise read as "no more data": absent keys, short scans.)

    ``position``: the last key the walk returned (``after=True``) or where it started
    (``after=False``; None = the table's start, or end when ``reverse``). One seek.

    Raises: CorruptionError (RocksDB reported corruption), StorageIOError (another error).
    """
    it = cf.iter(ro if ro is not None else rocksdict.ReadOptions())
    if position is None:
        if reverse:
            it.seek_to_last()
        else:
            it.seek_to_first()
    elif reverse:
        it.seek_for_prev(position)
    else:
        it.seek(position)
    if after and it.valid():
        if reverse:
            it.prev()
        else:
            it.next()
    try:
        it.status()
    except Exception as e:  # rocksdict raises bare Exception for every RocksDB status
        raise read_error(path, e) from None


def read_error(path: Path | None, e: BaseException) -> Exception:
    """The typed error for a failed RocksDB read: corruption or I/O (RocksDB's message
    names the SST file and offset)."""
    msg = str(e)
    if "corruption" in msg.lower():
        return CorruptionError(f"warm tier data is damaged: {msg}", path=path)
    return StorageIOError(f"warm tier {path or ''}: read failed: {msg}")


def upper_bound_ro(upper: bytes | None) -> Any:
    # rocksdict 0.3.29: ReadOptions.set_iterate_lower_bound sets the *upper* bound (verified
    # empirically), so lower bounds are enforced by seek position plus a key check instead.
    ro = rocksdict.ReadOptions()
    if upper is not None:
        ro.set_iterate_upper_bound(upper)
    return ro



class WarmDB:
    """The open RocksDB database of a warm tier and the state its readers and writers share.

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
        # Weak references to every thread's ThreadIters (a dead thread's entry removes itself).
        # Plain set operations run in C under the GIL, so no lock is needed around them.
        self._slots: set[weakref.ref[ThreadIters]] = set()
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
        self._point_ro.set_max_skippable_internal_keys(POINT_SKIP_LIMIT)
        self._wo_sync = rocksdict.WriteOptions()
        self._wo_sync.sync = True
        self._wo_unlogged = rocksdict.WriteOptions()
        self._wo_unlogged.disable_wal = True  # type: ignore[method-assign, assignment]  # a property; the stub says method
        # Tables holding writes made without the WAL (write_entries(logged=False)), persisted
        # by a memtable flush before the next synced write, flush_wal(sync=True) or close.
        self._unlogged: set[EntryKind] = set()

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
            write_marker(p)  # marker first: a crash leaves a stamped dir that opens as new
            return False
        if not (p / MARKER_NAME).exists():
            raise FormatError(
                f"{p} is not a tierdb warm store (no {MARKER_NAME} marker); refusing to open it "
                "so that nothing in it is modified. Use an empty or new directory.",
                path=p,
            )
        version = read_marker(p)
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
        o.set_compression_type(COMPRESSION[self.options.compression]())
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
        try:
            raw = self._meta.get(META_FORMAT_KEY)
        except Exception as e:  # rocksdict raises bare Exception for every RocksDB status
            if "corruption" in str(e).lower():
                raise CorruptionError(f"warm tier metadata is damaged: {e}", path=self.path) from None
            raise rocks_error("reading the format version", self.path, e) from None
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
                raise rocks_error("stamping the format version", self.path, e) from e
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
        closed = ClosedMap(self.path)
        self._cfs = closed
        self._handles = closed
        self._meta = None
        self._meta_handle = None
        db, self._db = self._db, None
        if db is not None:
            try:
                db.close()
            except Exception as e:  # rocksdict raises bare Exception for every RocksDB status
                raise rocks_error("close", self.path, e) from e

    def close(self) -> None:
        """Flush memtables to the WAL/SSTs and release the RocksDB lock. Idempotent.

        Later reads and writes raise ClosedError.
        """
        with self._lock:
            if self._db is None:
                return
            self._gen += 1
            try:
                self._persist_unlogged()
            finally:
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
            raise rocks_error(f"creating table {name}", self.path, e) from e
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

    def _commit(self, wb: Any, sync: bool, what: str, arg: object = "", *, logged: bool = True,
                tables: Iterable[EntryKind] = ()) -> None:
        """Apply ``wb`` atomically (caller holds the lock), then publish a new generation.

        A synced write first persists earlier unlogged writes (so it is durable only after
        them). ``logged=False`` skips RocksDB's WAL: ``tables`` are then recorded as holding
        unlogged writes. ``what`` and ``arg`` name the operation in errors (formatted only on
        failure).
        """
        db = self._live_db()
        if sync and self._unlogged:
            self._persist_unlogged()
        try:
            if sync:
                db.write(wb, self._wo_sync)
            elif not logged:
                self._unlogged.update(tables)  # before the write: a failed one is flushed too
                db.write(wb, self._wo_unlogged)
            else:
                # rocksdict's default write options; passing an explicit default
                # WriteOptions() measured ~50% slower per entry (bench: writes).
                db.write(wb)
        except rocksdict.DbClosedError as e:
            raise ClosedError(f"warm tier {self.path} is closed") from e
        except Exception as e:  # rocksdict raises bare Exception for every RocksDB status
            raise rocks_error(f"{what} {arg}".rstrip(), self.path, e) from e
        finally:
            self._invalidate_readers()

    def _persist_unlogged(self) -> None:
        """Flush the memtables of tables holding unlogged writes to SST files (caller holds
        the lock). O(memtable bytes)."""
        for table in sorted(self._unlogged):
            cf = self._cfs.get(table)
            if cf is None:
                continue
            try:
                cf.flush(True)
            except Exception as e:  # rocksdict raises bare Exception for every RocksDB status
                raise rocks_error(f"persisting unlogged writes of table {table}", self.path, e) from e
        self._unlogged.clear()

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
        rows = [(k, v) for k, v in meta.items(from_key=prefix, read_opt=upper_bound_ro(upper))]
        return iter(rows)

    # -- point reads -------------------------------------------------------------------------

    def _thread_iters(self) -> ThreadIters:
        try:
            return self._local.its  # type: ignore[no-any-return]
        except AttributeError:
            its = self._local.its = ThreadIters()
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


    def tables(self) -> list[EntryKind]:
        """Every table (column family) of this tier, sorted. O(tables)."""
        return sorted(self._cfs.keys())


    def flush_wal(self, sync: bool = True) -> None:
        """Write RocksDB's WAL buffer to its file, and fsync it if ``sync`` (which also
        persists unlogged writes: see ``write_entries(logged=False)``). O(buffer)."""
        db = self._live_db()
        if sync and self._unlogged:
            with self._lock:
                self._persist_unlogged()
        try:
            db.flush_wal(sync)
        except Exception as e:  # rocksdict raises bare Exception for every RocksDB status
            raise rocks_error("flush_wal", self.path, e) from e

    def compact(self) -> None:
        """Compact every column family fully (drops deleted data). O(data); blocks the caller."""
        # Cached read iterators pin the SST files they started on: release them first, or
        # the files compaction makes obsolete (and the dropped data in them) stay on disk.
        with self._lock:
            self._invalidate_readers()
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
                raise rocks_error("compact", self.path, e) from e
