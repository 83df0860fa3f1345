"""What a KV bucket and its watch do the same way on every backend.

Both backends (:mod:`engine.kv.local`, :mod:`engine.kv.nats`) build on these: a bucket is
its own reader, writer, watcher and purger, its ``watch_*`` shortcuts all go through
``watch(scope, cursor)``, and ``watch`` checks its arguments and picks the resume mode with
:func:`watch_resume_rev`; a watch iterates and closes as a context manager through
:class:`WatchIteration`. Backend I/O stays in the backend modules.

Notes: thread safety
    Nothing here holds state; the backends' contracts apply.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, Self, TypeVar

from .errors import OperationFailed
from .protocol import ResumeMode, resume_mode
from .types import KvUpdate, VersionToken, WatchCursor, WatchScope

__all__ = ["BucketFacets", "WatchIteration", "expected_u64", "watch_resume_rev"]

W = TypeVar("W")


def watch_resume_rev(scope: object, cursor: WatchCursor | None, u64_note: str) -> int | None:
    """Check ``watch(scope, cursor)`` arguments; the revision to resume above, or None.

    None means a state-sync watch (no cursor, an empty one, or revision 0). ``u64_note``
    ends the message for a cursor without a u64 form (which backend's cursors those are).

    Raises:
        TypeError: ``scope`` is not a :class:`WatchScope`.
        OperationFailed: a cursor without a u64 form, or of 2**64-1.
    """
    if not isinstance(scope, WatchScope):
        raise TypeError(f"scope must be a WatchScope, got {type(scope).__name__}")
    rev: int | None = None
    if cursor is not None and not cursor.is_none:
        rev = cursor.as_u64()
        if rev is None:
            raise OperationFailed(f"cursor {cursor!r} has no u64 form; {u64_note}")
    mode = resume_mode(rev)
    if mode is ResumeMode.REFUSE:
        raise OperationFailed("a cursor of 2**64-1 cannot be resumed (rev + 1 would wrap to 0)")
    return rev if mode is ResumeMode.RESUME else None


def expected_u64(key: str, expected: object, u64_note: str) -> int:
    """The revision a compare-and-set ``expected`` token names.

    ``u64_note`` ends the message for a token without a u64 form.

    Raises:
        OperationFailed: ``expected`` is not a :class:`VersionToken` or has no u64 form.
    """
    if not isinstance(expected, VersionToken):
        raise OperationFailed(f"expected must be a VersionToken, got {type(expected).__name__}")
    want = expected.as_u64()
    if want is None:
        raise OperationFailed(f"expected version {expected!r} for key {key!r} has no u64 form "
                              f"({u64_note})")
    return want


class BucketFacets(Generic[W]):
    """A bucket that is its own reader, writer, watcher and purger; ``W`` is its watch type.

    Subclasses implement :meth:`watch` (and ``ttl_writer``: whether TTLs are offered is
    a backend decision).
    """

    def reader(self) -> Self:
        return self

    def writer(self) -> Self:
        return self

    def watcher(self) -> Self:
        return self

    def purge_writer(self) -> Self:
        return self

    def watch(self, scope: WatchScope, cursor: WatchCursor | None = None) -> W:
        raise NotImplementedError

    def watch_all(self) -> W:
        return self.watch(WatchScope.All())

    def watch_prefix(self, prefix: str) -> W:
        return self.watch(WatchScope.Prefix(prefix))

    def watch_prefixes(self, prefixes: list[str]) -> W:
        return self.watch(WatchScope.Prefixes(prefixes))

    def watch_all_from(self, cursor: WatchCursor) -> W:
        return self.watch(WatchScope.All(), cursor)

    def watch_prefix_from(self, prefix: str, cursor: WatchCursor) -> W:
        return self.watch(WatchScope.Prefix(prefix), cursor)

    def watch_prefixes_from(self, prefixes: list[str], cursor: WatchCursor) -> W:
        return self.watch(WatchScope.Prefixes(prefixes), cursor)


class WatchIteration:
    """Iteration and ``with`` support of a :class:`~engine.kv.api.KvWatch`.

    Subclasses implement ``next``, ``close`` and ``ended``.
    """

    @property
    def ended(self) -> bool:
        raise NotImplementedError

    def next(self, timeout: float | None = None) -> KvUpdate | None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __iter__(self) -> Iterator[KvUpdate]:
        while not self.ended:
            u = self.next(None)
            if u is not None:
                yield u

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
