"""Append-log view: partitioned logs, one store key per entry (spec section 5).

Physical layout (see :mod:`engine.views.keys`): entry ``seq`` of partition ``p`` is
stored under ``keyspace prefix + escape(p) + 0x00 0x00 + seq as 20 digits``. Seq
numbers start at 0 per partition and count up by one, so an entry's seq is its position
in its partition, and byte order of keys is (partition, seq) order even when one
partition name extends another (``a``, ``a-b``, ``a/0``).

The next seq of a partition is read *inside* the flush transaction, so two writers
appending to one partition conflict: one commit fails, its entries go back to its
buffer, and the retry appends after the winner without duplicates.

Modes: ``APPEND`` (default) appends after the existing entries; ``OVERWRITE`` replaces
the partition with just this flush's entries (old entry keys are removed in the same
commit).

Notes: thread safety. See :mod:`engine.views.base`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Unpack

from .base import Ops, ViewBase, ViewOptions, prefix_end
from .errors import OverwriteSinkRejected, StorageError
from .keys import entry_key, partition_filter_prefix, partition_prefix, split_entry_key
from .protocols import StoreLike

__all__ = [
    "AppendCursor",
    "AppendLoadResult",
    "AppendLogMode",
    "AppendLogStorage",
    "LoadEntriesOpts",
    "append_log_storage",
    "check_append_sinks",
]


class AppendLogMode(enum.StrEnum):
    """How a flush treats the partition's existing entries."""

    APPEND = "append"
    OVERWRITE = "overwrite"


@dataclass(frozen=True, slots=True)
class AppendCursor:
    """Offset of the next entry to read; ``tag`` is always ``None``."""

    position: int
    tag: None = None

    def __post_init__(self) -> None:
        if isinstance(self.position, bool) or not isinstance(self.position, int):
            raise TypeError(f"AppendCursor.position must be an int, got {type(self.position).__name__}")
        if self.position < 0:
            raise ValueError(f"AppendCursor.position must be >= 0, got {self.position}")
        if self.tag is not None:
            raise ValueError("AppendCursor.tag is always None")


@dataclass(frozen=True, slots=True)
class LoadEntriesOpts:
    """Options of :meth:`AppendLogStorage.load_entries`.

    ``page_size`` ``None`` or ``0`` means unpaged; anything else must be a positive int.
    ``key_filter`` selects partitions whose key starts with it (``None``/``""`` = all).
    """

    cursor: AppendCursor | None = None
    page_size: int | None = None
    key_filter: str | None = None

    def __post_init__(self) -> None:
        ps = self.page_size
        if ps is not None:
            if isinstance(ps, bool) or not isinstance(ps, int):
                raise TypeError(f"page_size must be None or an int, got {type(ps).__name__} {ps!r}")
            if ps < 0:
                raise ValueError(f"page_size must be None or >= 0, got {ps}")
        if self.cursor is not None and not isinstance(self.cursor, AppendCursor):
            raise TypeError(f"cursor must be an AppendCursor, got {type(self.cursor).__name__}")
        if self.key_filter is not None and not isinstance(self.key_filter, str):
            raise TypeError(f"key_filter must be None or a str, got {type(self.key_filter).__name__}")


@dataclass(slots=True)
class AppendLoadResult:
    """A page of entries and the cursor of the next page (``None``: nothing follows)."""

    entries: list[Any] = field(default_factory=list)
    cursor: AppendCursor | None = None


class AppendLogStorage(ViewBase):
    """An :class:`~engine.views.protocols.AppendLogStorageTier` over a store table."""

    kind = "append-log"

    def __init__(
        self,
        store: StoreLike,
        name: str,
        *,
        key_of: Callable[[Any], str] | None = None,
        mode: AppendLogMode = AppendLogMode.APPEND,
        **options: Unpack[ViewOptions],
    ) -> None:
        super().__init__(store, name, **options)
        self._key_of = key_of
        self._mode = AppendLogMode(mode)
        self._pending: dict[str, list[bytes]] = {}

    def mode(self) -> AppendLogMode:
        """The configured mode."""
        return self._mode

    def append_entries(self, entries: Sequence[Any]) -> int | None:
        """Buffer ``entries`` under ``key_of(entry)`` and apply the write trigger.

        ``[]`` does nothing. Every entry is encoded first; if one fails, none is
        buffered.

        Returns:
            The commit version if this call flushed, else ``None``.

        Raises:
            CodecError: an entry cannot be encoded.
            BackendError: the triggered flush failed (the entries stay buffered).
        """
        if isinstance(entries, (str, bytes)) or not isinstance(entries, Sequence):
            raise TypeError(f"append_entries takes a sequence of entries, got {type(entries).__name__}")
        if not entries:
            return None
        staged: list[tuple[str, bytes]] = []
        for entry in entries:
            part = self._key_of(entry) if self._key_of is not None else self._name
            if not isinstance(part, str):
                raise TypeError(
                    f"append-log tier {self._name!r}: key_of must return a str, got {type(part).__name__}"
                )
            staged.append((part, self._codec.encode(entry)))
        with self._lock:
            pending = self._pending
            for part, data in staged:
                pending.setdefault(part, []).append(data)
            fire = self._accept(len(staged))
        return self.flush() if fire else None

    def load_entries(
        self, opts: LoadEntriesOpts | None = None, *, version: int | None = None
    ) -> AppendLoadResult:
        """Read committed entries at ``version``: partitions in key order, entries in seq order.

        With a page size ``n`` returns ``entries[start:start+n]`` and a cursor at
        ``start + n`` only if more entries follow. Entries before ``start`` are skipped
        without decoding; one look-ahead key decides whether more follow.

        Complexity: O(start + n) keys read.

        Raises:
            FutureVersionError, HistoryUnavailable: for an explicit ``version``.
            BackendNoListSupport: the store refuses range scans.
        """
        if opts is None:
            opts = LoadEntriesOpts()
        elif not isinstance(opts, LoadEntriesOpts):
            raise TypeError(f"opts must be LoadEntriesOpts, got {type(opts).__name__}")
        at, explicit = self._resolve_version(version)
        start = opts.cursor.position if opts.cursor is not None else 0
        page = opts.page_size or None
        prefix = partition_filter_prefix(self._prefix, opts.key_filter or "")
        decode = self._codec.decode
        out: list[Any] = []
        index = 0
        more = False
        for physical, value in self._scan(prefix, at, explicit=explicit):
            if not self._is_entry(physical):
                continue
            if index >= start:
                if page is not None and len(out) == page:
                    more = True
                    break
                out.append(decode(value))
            index += 1
        cursor = AppendCursor(start + page) if (page is not None and more) else None
        return AppendLoadResult(out, cursor)

    def partitions(self, prefix: str = "", *, version: int | None = None) -> list[str]:
        """Sorted partition keys starting with ``prefix`` at ``version``."""
        at, explicit = self._resolve_version(version)
        seen: list[str] = []
        for physical, _ in self._scan(partition_filter_prefix(self._prefix, prefix), at, explicit=explicit):
            if self._is_entry(physical):
                part = split_entry_key(self._prefix, physical)[0]
                if not seen or seen[-1] != part:
                    seen.append(part)
        return seen

    def _is_entry(self, physical: bytes) -> bool:
        try:
            split_entry_key(self._prefix, physical)
        except ValueError:
            return False
        return True

    def _list_bytes(self, prefix: str, version: int, explicit: bool) -> Iterator[tuple[str, bytes]]:
        """One ``(partition, entry bytes)`` per entry, in (partition, seq) order."""
        base = self._prefix
        for physical, value in self._scan(partition_filter_prefix(base, prefix), version, explicit=explicit):
            if not value:
                continue
            try:
                part, _seq = split_entry_key(base, physical)
            except ValueError:
                continue
            yield part, value

    # ------------------------------------------------------------------ hooks

    def _take_locked(self) -> dict[str, list[bytes]] | None:
        if not self._pending:
            return None
        taken, self._pending = self._pending, {}
        return taken

    def _give_back_locked(self, taken: dict[str, list[bytes]]) -> None:
        # Taken entries go back ahead of entries appended since (no duplicates: the
        # failed commit wrote nothing). OVERWRITE puts back the whole bucket the same way.
        merged = {part: list(items) for part, items in taken.items()}
        for part, items in self._pending.items():
            merged.setdefault(part, []).extend(items)
        self._pending = merged

    def _build_ops(self, tx: Any, taken: dict[str, list[bytes]]) -> Ops:
        ops: Ops = {}
        base = self._prefix
        table = self._table
        for part in sorted(taken):
            items = taken[part]
            pp = partition_prefix(base, part)
            end = prefix_end(pp)
            if self._mode is AppendLogMode.OVERWRITE:
                for physical, _ in tx.range(table, pp, end):
                    ops[physical] = None
                first = 0
            else:
                first = 0
                for physical, _ in tx.range(table, pp, end, reverse=True):
                    first = split_entry_key(base, physical)[1] + 1
                    break
            for offset, data in enumerate(items):
                ops[entry_key(base, part, first + offset)] = data
        return ops

    def _clear_locked(self) -> None:
        self._pending = {}

    def _check_buffer_locked(self) -> None:
        for part, items in self._pending.items():
            assert isinstance(part, str) and items, f"append-log bucket {part!r} is empty or misnamed"
            assert all(isinstance(d, bytes) for d in items), f"append-log bucket {part!r} holds unencoded data"

    def _check_scan(self, items: Iterator[tuple[bytes, bytes]]) -> int:
        """Every key is an entry key; each partition's seqs run 0, 1, 2, ... in key order."""
        n = 0
        current: str | None = None
        expected = 0
        for physical, value in items:
            try:
                part, seq = split_entry_key(self._prefix, physical)
            except (ValueError, UnicodeDecodeError) as exc:
                raise self._damaged(physical, exc) from exc
            if part != current:
                current, expected = part, 0
            if seq != expected:
                raise self._damaged(physical, f"partition {part!r} expected seq {expected}, found {seq}")
            expected += 1
            try:
                self._codec.decode(value)
            except StorageError as exc:
                raise self._damaged(physical, exc) from exc
            n += 1
        return n

    def _pending_size_locked(self) -> int:
        return sum(len(items) for items in self._pending.values())


def append_log_storage(
    store: StoreLike,
    name: str,
    *,
    key_of: Callable[[Any], str] | None = None,
    mode: AppendLogMode = AppendLogMode.APPEND,
    **options: Unpack[ViewOptions],
) -> AppendLogStorage:
    """Make an append-log view named ``name`` over ``store``.

    Options as :func:`~engine.views.snapshot.snapshot_storage`, plus ``key_of(entry)``
    (the partition key, default the tier name) and ``mode``. Give an append log its own
    keyspace (the default: its name), since an empty ``key_filter`` reads all of it.
    """
    return AppendLogStorage(store, name, key_of=key_of, mode=mode, **options)


def check_append_sinks(sinks: Sequence[Any]) -> None:
    """Refuse OVERWRITE append logs as per-wave delta sinks (spec 5.7).

    Raises:
        OverwriteSinkRejected: naming the index of the first OVERWRITE tier.
    """
    for index, sink in enumerate(sinks):
        mode = getattr(sink, "mode", None)
        if callable(mode) and mode() is AppendLogMode.OVERWRITE:
            raise OverwriteSinkRejected(index)
