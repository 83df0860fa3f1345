"""A small, reusable object-store client over ``obstore`` (S3, GCS, Azure, local, memory).

:class:`ObjectStoreClient` wraps one ``obstore`` store made from a URL plus
``storage_options`` (passed through to ``obstore.store.from_url``: ``endpoint``,
``region``, ``access_key_id``, ``secret_access_key``, ``allow_http`` ...), and gives the
cold tier (and backups/clones) the few operations they need, with object names relative
to the URL's prefix:

=====================  =====================================================================
``get(name)``           whole object -> :class:`Fetched` (bytes + ETag)
``get_range(n, s, e)``  bytes ``[s, e)``
``head(name)``          :class:`ObjectInfo` or None when missing
``put(name, data)``     unconditional (overwrite) -> ETag
``put_if_absent``       create only; :class:`ObjectExistsError` if the name exists
``put_if_match``        replace only if the current ETag matches (compare-and-swap);
                        :class:`PreconditionFailedError` otherwise
``delete(name)``        missing is fine
``list(prefix)``        every object under a prefix -> list[:class:`ObjectInfo`]
=====================  =====================================================================

Faults: timeouts, connection errors, HTTP 5xx and throttling (429/503) are retried with
capped exponential backoff and jitter up to ``retries`` times (obstore's own retries are
turned off so that the bound and the counters are ours); past the bound a
:class:`~engine.errors.StorageIOError` names the object and the URL. A retried
conditional put whose earlier attempt reached the server but whose answer was lost reads
the object back: if it already holds exactly our bytes, the put succeeded.

URLs: ``s3://bucket/prefix`` (also ``s3a``), ``gs://bucket/prefix``,
``az://container/prefix`` (also ``azure``, ``abfs``, ``abfss``), ``file:///abs/dir``
(created if missing) and ``memory://name``. ``memory://`` stores live in this process: one
store per name, shared by every client with that URL (so a tierdb store can be closed and
reopened on it in tests); ``memory://`` with no name is ``memory://default``.

Conditional replace: S3 (and S3-compatible servers that honour ``If-Match``), GCS, Azure
and memory stores do it natively; ``obstore``'s local-file store does not, so for
``file://`` the client serialises replacers with an ``flock`` on ``<dir>/.cas-lock`` and
compares the current ETag under it (correct between processes on one host).

Notes: thread safety
    A client may be shared by any number of threads; counters are updated under a lock.
"""

from __future__ import annotations

import fcntl
import os
import random
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ...errors import EngineError, StorageIOError

__all__ = [
    "SCHEMES",
    "Fetched",
    "ObjectExistsError",
    "ObjectInfo",
    "ObjectNotFoundError",
    "ObjectStoreClient",
    "PreconditionFailedError",
    "check_url",
    "redact_url",
]

SCHEMES = ("s3", "s3a", "gs", "az", "azure", "abfs", "abfss", "file", "memory")

_MEMORY_STORES: dict[str, Any] = {}
_MEMORY_LOCK = threading.Lock()
_PERMANENT_STATUS = re.compile(r"status code: (4\d\d)")


class ObjectExistsError(EngineError):
    """``put_if_absent``: an object of that name already exists (nothing was written)."""


class PreconditionFailedError(EngineError):
    """``put_if_match``: the object changed (or vanished) since its ETag was read; nothing
    was written. Read it again and decide."""


class ObjectNotFoundError(StorageIOError, FileNotFoundError):
    """The object does not exist (``get``/``get_range``)."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What ``head``/``list`` report about one object (``name`` is relative to the prefix)."""

    name: str
    size: int
    etag: str | None
    last_modified: float


@dataclass(frozen=True, slots=True)
class Fetched:
    """A whole object read by ``get``: its bytes and the ETag they had."""

    data: bytes
    etag: str | None


def check_url(url: object) -> str:
    """Validate an object-store URL's shape (no I/O). Returns it stripped.

    Raises:
        ValueError: not a str, unknown scheme, or missing bucket/path.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"cold_url must be a non-empty str, got {url!r}")
    url = url.strip()
    p = urlparse(url)
    scheme = p.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"cold_url {redact_url(url)!r}: unsupported scheme {p.scheme!r}; use one of "
                         + ", ".join(f"{s}://" for s in SCHEMES))
    if scheme == "file":
        if p.netloc not in ("", "localhost") or not p.path.startswith("/"):
            raise ValueError(f"cold_url {url!r}: a file URL needs an absolute path (file:///dir)")
    elif scheme != "memory" and not p.netloc:
        raise ValueError(f"cold_url {redact_url(url)!r} names no bucket/container")
    if p.password or p.username:
        raise ValueError("cold_url must not carry credentials; pass them in storage_options")
    return url


def redact_url(url: str) -> str:
    """``url`` without any query string (where some stores accept secrets)."""
    return url.split("?", 1)[0]


def _duration(v: Any) -> Any:
    return timedelta(seconds=v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


class ObjectStoreClient:
    """One object store (URL + options) with typed errors, bounded retries and counters.

    Args:
        url: see the module docstring; validated by :func:`check_url`.
        storage_options: passed to ``obstore.store.from_url``; ``allow_http``,
            ``timeout`` and ``connect_timeout`` go to its client options. Two keys are
            tierdb's own and override the arguments below: ``retries`` and
            ``retry_backoff`` (seconds). Never stored on disk by tierdb.
        retries: attempts after the first for transient faults (default 5).
        backoff: first backoff in seconds (doubles per attempt, capped at ``max_backoff``,
            with full jitter).
        timeout: per-request timeout in seconds for network stores (default 30).

    Raises (constructor): ValueError (bad URL or option), StorageIOError (the store cannot
    be built, e.g. a file URL that cannot be created).
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None, *,
                 retries: int = 5, backoff: float = 0.05, max_backoff: float = 2.0,
                 timeout: float = 30.0) -> None:
        self.url = check_url(url)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self._lock = threading.Lock()
        self._counters = {"requests": 0, "bytes_read": 0, "bytes_written": 0, "retries": 0,
                          "failures": 0, "gets": 0, "range_gets": 0, "puts": 0, "heads": 0,
                          "lists": 0, "deletes": 0}
        p = urlparse(self.url)
        self.scheme = p.scheme.lower()
        self._cas_lock_path: Path | None = None
        opts = dict(storage_options or {})
        if "retries" in opts:
            self.retries = int(opts.pop("retries"))
        if "retry_backoff" in opts:
            self.backoff = float(opts.pop("retry_backoff"))
        if self.retries < 0 or self.backoff < 0:
            raise ValueError("storage_options retries and retry_backoff must be >= 0")
        from obstore.store import MemoryStore, from_url

        try:
            if self.scheme == "memory":
                key = (p.netloc + p.path).strip("/") or "default"
                with _MEMORY_LOCK:
                    st = _MEMORY_STORES.get(key)
                    if st is None:
                        st = _MEMORY_STORES[key] = MemoryStore()
                self._store = st
            elif self.scheme == "file":
                root = Path(unquote(p.path))
                root.mkdir(parents=True, exist_ok=True)
                self._cas_lock_path = root / ".cas-lock"
                self._store = from_url("file://" + str(root.resolve()), mkdir=True)
            else:
                client: dict[str, Any] = dict(opts.pop("client_options", {}) or {})
                for k in ("allow_http", "timeout", "connect_timeout"):
                    if k in opts:
                        client[k] = opts.pop(k)
                client.setdefault("timeout", timedelta(seconds=timeout))
                if "allow_http" not in client:
                    # Passing client options hides obstore's own reading of this variable.
                    env = os.environ.get("AWS_ALLOW_HTTP") or os.environ.get("ALLOW_HTTP") or ""
                    if env.strip().lower() in ("1", "true", "yes", "on"):
                        client["allow_http"] = True
                for k in ("timeout", "connect_timeout"):
                    if k in client:
                        client[k] = _duration(client[k])
                if "allow_http" in client:
                    client["allow_http"] = bool(client["allow_http"])
                self._store = from_url(self.url, client_options=client,  # type: ignore[call-overload]
                                       retry_config={"max_retries": 0}, **opts)
        except ValueError:
            raise
        except Exception as exc:  # obstore raises its own config/IO errors: make them typed
            raise StorageIOError(f"cannot open object store {redact_url(self.url)}: {exc}") from exc

    # -- plumbing ------------------------------------------------------------------------

    def _count(self, kind: str, nread: int = 0, nwritten: int = 0) -> None:
        with self._lock:
            c = self._counters
            c["requests"] += 1
            c[kind] += 1
            c["bytes_read"] += nread
            c["bytes_written"] += nwritten

    @staticmethod
    def _transient(exc: BaseException) -> bool:
        from obstore.exceptions import (
            AlreadyExistsError,
            InvalidPathError,
            NotFoundError,
            NotSupportedError,
            PermissionDeniedError,
            PreconditionError,
            UnauthenticatedError,
            UnknownConfigurationKeyError,
        )
        if isinstance(exc, (AlreadyExistsError, InvalidPathError, NotFoundError, NotSupportedError,
                            PermissionDeniedError, PreconditionError, UnauthenticatedError,
                            UnknownConfigurationKeyError, FileNotFoundError, ValueError, TypeError)):
            return False
        m = _PERMANENT_STATUS.search(str(exc))
        return m is None or m.group(1) in ("408", "429")

    def _call(self, what: str, name: str, fn: Any, expected: tuple[type[BaseException], ...] = ()) -> Any:
        """Run ``fn()`` with bounded retries on transient faults. Errors of the ``expected``
        types propagate for the caller to decide; other refusals (permissions, a missing
        bucket, bad requests) become StorageIOError."""
        attempt = 0
        while True:
            try:
                return fn()
            except Exception as exc:
                if not self._transient(exc):
                    if isinstance(exc, expected):
                        raise  # not found / exists / precondition: the caller decides
                    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    raise StorageIOError(
                        f"object store {redact_url(self.url)}: {what} {name!r} refused: {first}; "
                        "check the URL, credentials and permissions") from exc
                if attempt >= self.retries:
                    with self._lock:
                        self._counters["failures"] += 1
                    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    raise StorageIOError(
                        f"object store {redact_url(self.url)}: {what} {name!r} failed after "
                        f"{attempt + 1} attempts: {first}; check the endpoint and network, "
                        "then retry") from exc
                with self._lock:
                    self._counters["retries"] += 1
                delay = min(self.max_backoff, self.backoff * (2 ** attempt))
                time.sleep(random.uniform(delay / 2, delay))
                attempt += 1

    def _not_found(self, name: str, exc: BaseException) -> ObjectNotFoundError:
        return ObjectNotFoundError(f"object {name!r} not found in {redact_url(self.url)}")

    # -- reads ---------------------------------------------------------------------------

    def get(self, name: str) -> Fetched:
        """The whole object. Raises ObjectNotFoundError, StorageIOError."""
        import obstore as obs

        def once() -> Fetched:
            self._count("gets")
            r = obs.get(self._store, name)
            data = bytes(r.bytes())
            with self._lock:
                self._counters["bytes_read"] += len(data)
            return Fetched(data, r.meta.get("e_tag"))

        try:
            return self._call("get", name, once, (FileNotFoundError,))  # type: ignore[no-any-return]
        except FileNotFoundError as exc:
            if isinstance(exc, ObjectNotFoundError):
                raise
            raise self._not_found(name, exc) from None

    def get_range(self, name: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of the object (fewer only if the object is shorter).

        Raises ObjectNotFoundError, StorageIOError."""
        import obstore as obs

        if end <= start:
            return b""

        def once() -> bytes:
            self._count("range_gets")
            data = bytes(obs.get_range(self._store, name, start=start, end=end))
            with self._lock:
                self._counters["bytes_read"] += len(data)
            return data

        try:
            return self._call("get_range", name, once, (FileNotFoundError,))  # type: ignore[no-any-return]
        except FileNotFoundError as exc:
            if isinstance(exc, ObjectNotFoundError):
                raise
            raise self._not_found(name, exc) from None
        except StorageIOError:
            raise
        except Exception as exc:  # e.g. a range past the end of a shorter object
            raise StorageIOError(f"object store {redact_url(self.url)}: get_range {name!r} "
                                 f"[{start}, {end}) failed: {exc}") from exc

    def head(self, name: str) -> ObjectInfo | None:
        """Size/ETag of the object, or None if it does not exist."""
        import obstore as obs

        def once() -> ObjectInfo:
            self._count("heads")
            return self._info(obs.head(self._store, name))

        try:
            return self._call("head", name, once, (FileNotFoundError,))  # type: ignore[no-any-return]
        except FileNotFoundError:
            return None

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Every object whose name starts with ``prefix``, sorted by name."""
        import obstore as obs

        def once() -> list[ObjectInfo]:
            self._count("lists")
            out: list[ObjectInfo] = []
            for batch in obs.list(self._store, prefix=prefix or None):
                out.extend(self._info(m) for m in batch)
            return out

        items: list[ObjectInfo] = self._call("list", prefix or "/", once)
        return sorted((i for i in items if i.name.startswith(prefix)
                       and not i.name.endswith(".cas-lock")), key=lambda i: i.name)

    @staticmethod
    def _info(meta: Mapping[str, Any]) -> ObjectInfo:
        lm = meta.get("last_modified")
        return ObjectInfo(str(meta["path"]), int(meta["size"]), meta.get("e_tag"),
                          lm.timestamp() if lm is not None else 0.0)

    # -- writes --------------------------------------------------------------------------

    def put(self, name: str, data: bytes) -> str | None:
        """Write (overwrite) ``name``; returns the new ETag."""
        import obstore as obs

        def once() -> str | None:
            self._count("puts", nwritten=len(data))
            r = obs.put(self._store, name, data, use_multipart=False)
            return r.get("e_tag")

        return self._call("put", name, once)  # type: ignore[no-any-return]

    def put_if_absent(self, name: str, data: bytes | Path) -> str | None:
        """Create ``name`` only if it does not exist; returns the new ETag. ``data`` may be
        a local file's Path (uploaded in one request, without a copy in Python memory).

        Raises:
            ObjectExistsError: it exists (and does not already hold exactly ``data`` after a
                retried attempt).
            StorageIOError: retries exhausted.
        """
        import obstore as obs
        from obstore.exceptions import AlreadyExistsError

        tried = [0]

        size = data.stat().st_size if isinstance(data, Path) else len(data)

        def once() -> str | None:
            tried[0] += 1
            self._count("puts", nwritten=size)
            r = obs.put(self._store, name, data, mode="create", use_multipart=False)
            return r.get("e_tag")

        try:
            return self._call("put_if_absent", name, once,  # type: ignore[no-any-return]
                              (AlreadyExistsError,))
        except AlreadyExistsError:
            if tried[0] > 1:
                got = self._same_as(name, data)
                if got is not None:
                    return got  # our earlier attempt landed; its answer was lost
            raise ObjectExistsError(f"object {name!r} already exists in {redact_url(self.url)}; "
                                    "nothing was written") from None

    def put_if_match(self, name: str, data: bytes, etag: str | None) -> str | None:
        """Replace ``name`` only if its current ETag is ``etag``; returns the new ETag.

        ``etag=None`` means "only if it does not exist" (same as :meth:`put_if_absent`).

        Raises:
            PreconditionFailedError: the object changed or vanished; nothing was written.
            StorageIOError: retries exhausted (the object may or may not be replaced: read
                it back to know).
        """
        if etag is None:
            try:
                return self.put_if_absent(name, data)
            except ObjectExistsError:
                raise PreconditionFailedError(
                    f"object {name!r} in {redact_url(self.url)} appeared meanwhile; nothing "
                    "was written") from None
        if self._cas_lock_path is not None:
            return self._local_cas(name, data, etag)
        import obstore as obs
        from obstore.exceptions import NotFoundError, PreconditionError

        tried = [0]

        def once() -> str | None:
            tried[0] += 1
            self._count("puts", nwritten=len(data))
            r = obs.put(self._store, name, data, mode={"e_tag": etag}, use_multipart=False)
            return r.get("e_tag")

        try:
            return self._call("put_if_match", name, once,  # type: ignore[no-any-return]
                              (PreconditionError, NotFoundError))
        except (PreconditionError, NotFoundError):
            if tried[0] > 1:
                got = self._same_as(name, data)
                if got is not None:
                    return got
            raise PreconditionFailedError(
                f"object {name!r} in {redact_url(self.url)} changed since ETag {etag} was "
                "read; nothing was written") from None

    def _local_cas(self, name: str, data: bytes, etag: str) -> str | None:
        assert self._cas_lock_path is not None
        try:
            fd = os.open(self._cas_lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise StorageIOError(f"cannot open {self._cas_lock_path}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            cur = self.head(name)
            if cur is None or cur.etag != etag:
                raise PreconditionFailedError(
                    f"object {name!r} in {redact_url(self.url)} changed since ETag {etag} was "
                    "read; nothing was written")
            return self.put(name, data)  # LocalStore writes a temp file and renames it
        finally:
            os.close(fd)

    def _same_as(self, name: str, data: bytes | Path) -> str | None:
        try:
            f = self.get(name)
        except ObjectNotFoundError:
            return None
        if isinstance(data, Path):
            try:
                data = data.read_bytes()
            except OSError:
                return None
        return f.etag if f.data == data else None

    def delete(self, name: str) -> None:
        """Remove ``name``; a missing object is fine."""
        import obstore as obs

        def once() -> None:
            self._count("deletes")
            obs.delete(self._store, name)

        try:
            self._call("delete", name, once, (FileNotFoundError,))
        except FileNotFoundError:
            pass

    # -- accounting ----------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Counters since construction: ``requests`` (every attempt), ``bytes_read``,
        ``bytes_written``, ``retries``, ``failures`` (retries exhausted), and per kind
        ``gets``, ``range_gets``, ``puts``, ``heads``, ``lists``, ``deletes``."""
        with self._lock:
            return dict(self._counters)

    def __repr__(self) -> str:
        return f"ObjectStoreClient({redact_url(self.url)!r})"
