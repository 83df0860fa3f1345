"""Export and import of a fold as a verified artifact directory (``slipstream-kv.md`` s. 9).

An artifact is a directory::

    MANIFEST.json          written last (temp -> fsync -> rename); its presence = complete
    data/fold.tkv          the fold: header, CRC32-framed entry records, cursor, end record

``MANIFEST.json`` holds ``schema_version`` (1), ``backend`` (``tierdb-fold``),
``backend_version`` (``"1"``), ``cursor_hex``, ``created_at_unix`` and ``files`` (a list of
``{path, size, blake2b}``). tierdb hashes with BLAKE2b-256 from the standard library rather
than slipstream's BLAKE3, so the field is named ``blake2b`` (no extra dependency; the
guarantee - a collision-resistant hash per file - is the same). No pickle anywhere.

Paths are never built from manifest strings as given: each declared path must match
``data/<name>[/<name>...]`` with names of ``[A-Za-z0-9._-]`` that are not ``.`` or ``..``,
and the filesystem path is joined from those checked components. Every payload key must be a
valid KV key. Every import failure raises :class:`ArtifactInvalid` (also a
:class:`~engine.errors.CorruptionError`) naming the offending file; an import checks
everything before it creates anything, so a failure leaves nothing at the destination, not
even the destination's missing parent directories.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import struct
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from .errors import ArtifactInvalid, OperationFailed
from .fold import FOLD_BACKEND, FOLD_BACKEND_VERSION, StoreFold
from .names import KEY_RULE, validate_bucket, validate_key
from .types import MAX_TOKEN_BYTES, VersionToken, WatchCursor

__all__ = [
    "MANIFEST_NAME",
    "PAYLOAD_PATH",
    "SCHEMA_VERSION",
    "export_fold",
    "import_artifact",
    "parse_payload",
    "read_manifest",
    "read_payload",
]

MANIFEST_NAME: Final = "MANIFEST.json"
PAYLOAD_PATH: Final = "data/fold.tkv"
SCHEMA_VERSION: Final = 1
MAX_MANIFEST_BYTES: Final = 1 << 20
MANIFEST_FIELDS: Final = frozenset({"schema_version", "backend", "backend_version", "cursor_hex",
                                    "created_at_unix", "files"})
FILE_FIELDS: Final = frozenset({"path", "size", "blake2b"})
ACCEPTED_BACKEND_VERSIONS: Final = frozenset({FOLD_BACKEND_VERSION})
STAGE_PREFIX: Final = ".slipstream-artifact-"
IMPORT_STAGE_PREFIX: Final = ".slipstream-import-"

PAYLOAD_MAGIC: Final = b"TKVF"
PAYLOAD_HEADER = struct.Struct(">4sH")    # magic, format version
RECORD_HEAD = struct.Struct(">BII")       # type, key length, value length
RECORD_CRC = struct.Struct(">I")          # crc32 of head + key + value
U64 = struct.Struct(">Q")
assert PAYLOAD_HEADER.size == 6 and RECORD_HEAD.size == 9 and RECORD_CRC.size == 4
REC_ENTRY, REC_CURSOR, REC_END = 1, 2, 3
PAYLOAD_FORMAT: Final = 1
_NAME_RE: Final = re.compile(r"[A-Za-z0-9._-]+")
_HEX_RE: Final = re.compile(r"(?:[0-9a-f]{2})*")
_HASH_RE: Final = re.compile(r"[0-9a-f]{64}")
_CHUNK: Final = 1 << 20


def _hasher() -> Any:
    return hashlib.blake2b(digest_size=32)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _dest_available(dest: Path) -> bool:
    if not os.path.lexists(dest):
        return True
    return dest.is_dir() and not dest.is_symlink() and not any(dest.iterdir())


# -- payload ------------------------------------------------------------------------------

def _record(kind: int, key: bytes, value: bytes) -> bytes:
    head = RECORD_HEAD.pack(kind, len(key), len(value))
    return head + key + value + RECORD_CRC.pack(zlib.crc32(value, zlib.crc32(key, zlib.crc32(head))))


def write_payload(path: Path, entries: Iterator[tuple[str, bytes]], cursor: WatchCursor) -> int:
    """Write a fold payload; returns the entry count. The file is fsynced."""
    count = 0
    with open(path, "xb") as f:
        f.write(PAYLOAD_HEADER.pack(PAYLOAD_MAGIC, PAYLOAD_FORMAT))
        for key, value in entries:
            f.write(_record(REC_ENTRY, key.encode(), value))
            count += 1
        f.write(_record(REC_CURSOR, b"", cursor.token.raw))
        f.write(_record(REC_END, b"", U64.pack(count)))
        f.flush()
        os.fsync(f.fileno())
    return count


def read_payload(path: Path, shown: str | None = None) -> tuple[WatchCursor, list[tuple[str, bytes]]]:
    """Read and parse a payload file strictly. Raises ArtifactInvalid naming the file and offset."""
    return parse_payload(path.read_bytes(), shown or str(path))


def parse_payload(data: bytes, name: str) -> tuple[WatchCursor, list[tuple[str, bytes]]]:
    """Parse payload bytes strictly (``name`` is the file named in errors).

    Every entry key must be a valid KV key (``names.KEY_RULE``), UTF-8, strictly sorted.

    Raises:
        ArtifactInvalid: naming ``name`` and the offset of the first bad record.
    """
    if len(data) < PAYLOAD_HEADER.size:
        raise ArtifactInvalid("fold payload is truncated", path=name, offset=0)
    magic, fmt = PAYLOAD_HEADER.unpack_from(data, 0)
    if magic != PAYLOAD_MAGIC or fmt != PAYLOAD_FORMAT:
        raise ArtifactInvalid(f"not a tierdb fold payload (magic {magic!r}, format {fmt})", path=name, offset=0)
    off = PAYLOAD_HEADER.size
    entries: list[tuple[str, bytes]] = []
    cursor: WatchCursor | None = None
    last_key: str | None = None
    while True:
        if off + RECORD_HEAD.size > len(data):
            raise ArtifactInvalid("fold payload ends inside a record header", path=name, offset=off)
        kind, klen, vlen = RECORD_HEAD.unpack_from(data, off)
        end = off + RECORD_HEAD.size + klen + vlen
        if end + RECORD_CRC.size > len(data):
            raise ArtifactInvalid("fold payload ends inside a record", path=name, offset=off)
        body = data[off:end]
        (crc,) = RECORD_CRC.unpack_from(data, end)
        if zlib.crc32(body) != crc:
            raise ArtifactInvalid("fold payload record fails its CRC32", path=name, offset=off)
        key = body[RECORD_HEAD.size:RECORD_HEAD.size + klen]
        value = body[RECORD_HEAD.size + klen:]
        if kind == REC_ENTRY and cursor is None:
            try:
                k = key.decode()
            except UnicodeDecodeError:
                raise ArtifactInvalid("fold payload key is not UTF-8", path=name, offset=off) from None
            try:
                validate_key(k)
            except OperationFailed:
                raise ArtifactInvalid(f"fold payload key {k!r} is not a valid KV key: {KEY_RULE}",
                                      path=name, offset=off) from None
            if last_key is not None and k <= last_key:
                raise ArtifactInvalid("fold payload keys are not strictly sorted", path=name, offset=off)
            last_key = k
            entries.append((k, value))
        elif kind == REC_CURSOR and cursor is None and klen == 0 and vlen <= MAX_TOKEN_BYTES:
            cursor = WatchCursor(VersionToken(value))
        elif kind == REC_END and cursor is not None and klen == 0 and vlen == 8:
            if U64.unpack(value)[0] != len(entries):
                raise ArtifactInvalid("fold payload entry count does not match its end record",
                                      path=name, offset=off)
            if end + RECORD_CRC.size != len(data):
                raise ArtifactInvalid("fold payload has bytes after its end record", path=name,
                                      offset=end + RECORD_CRC.size)
            return cursor, entries
        else:
            raise ArtifactInvalid(f"fold payload has an unexpected record (type {kind})", path=name, offset=off)
        off = end + RECORD_CRC.size


# -- export -------------------------------------------------------------------------------

def _hash_file(path: Path) -> tuple[int, str]:
    h = _hasher()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
        os.fsync(f.fileno())
    return size, h.hexdigest()


def _publish(stage: Path, dest: Path) -> None:
    """The final step of an export: rename the complete stage into place."""
    if not _dest_available(dest):
        raise OperationFailed(f"export destination {dest} appeared and is not empty; nothing was written there")
    os.rename(stage, dest)
    _fsync_dir(dest.parent)


def export_fold(fold: StoreFold, dest: str | os.PathLike[str]) -> Path:
    """Export ``fold`` to the artifact directory ``dest`` (absent or empty).

    Steps (9.1): stage in a hidden sibling; write ``data/fold.tkv`` from one consistent
    snapshot; reopen it and compare cursor and entry count; hash and fsync every file;
    write ``MANIFEST.json`` last; rename into place. A crash leaves only the hidden stage.

    Raises:
        OperationFailed: ``dest`` exists and is not an empty directory (left untouched).
        ArtifactInvalid: the staged payload did not verify.
    """
    dest = Path(dest)
    if not _dest_available(dest):
        raise OperationFailed(f"export destination {dest} exists and is not an empty directory; "
                              "choose a new path (nothing was written)")
    parent = dest.parent
    parent.mkdir(parents=True, exist_ok=True)
    stage = parent / f"{STAGE_PREFIX}{uuid.uuid4().hex}"
    stage.mkdir()
    try:
        (stage / "data").mkdir()
        payload = stage / "data" / "fold.tkv"
        with fold.store.snapshot() as snap:
            cursor = fold.cursor(snap.version)
            count = write_payload(payload, fold.iter_range("", snap.version), cursor)
        got_cursor, got = read_payload(payload, PAYLOAD_PATH)
        if got_cursor != cursor or len(got) != count:
            raise ArtifactInvalid("the staged payload does not reopen to the live fold's cursor and "
                                  "entry count", path=PAYLOAD_PATH)
        files = []
        for p in sorted(stage.rglob("*")):
            st = p.lstat()
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                raise ArtifactInvalid("refusing to export a non-regular file", path=str(p))
            size, digest = _hash_file(p)
            files.append({"path": p.relative_to(stage).as_posix(), "size": size, "blake2b": digest})
        _fsync_dir(stage / "data")
        manifest = {"schema_version": SCHEMA_VERSION, "backend": fold.backend,
                    "backend_version": fold.backend_version, "cursor_hex": cursor.token.hex(),
                    "created_at_unix": int(time.time()), "files": files}
        body = json.dumps(manifest, sort_keys=True, indent=1).encode()
        tmp = stage / (MANIFEST_NAME + ".tmp")
        with open(tmp, "xb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, stage / MANIFEST_NAME)
        _fsync_dir(stage)
        _publish(stage, dest)
    except Exception:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return dest


# -- import -------------------------------------------------------------------------------

def _check_path(p: object) -> tuple[str, ...]:
    if not isinstance(p, str):
        raise ArtifactInvalid(f"manifest path {p!r} is not a string", path=MANIFEST_NAME)
    if "\\" in p or p.startswith("/") or "\x00" in p:
        raise ArtifactInvalid(f"manifest path {p!r} is absolute or has a backslash", path=MANIFEST_NAME)
    parts = tuple(p.split("/"))
    if len(parts) < 2 or parts[0] != "data":
        raise ArtifactInvalid(f"manifest path {p!r} is not under data/", path=MANIFEST_NAME)
    for part in parts[1:]:
        if part in ("", ".", "..") or _NAME_RE.fullmatch(part) is None:
            raise ArtifactInvalid(f"manifest path {p!r} has a bad component {part!r}", path=MANIFEST_NAME)
    return parts


def read_manifest(src: Path) -> dict[str, Any]:
    """Parse and validate ``MANIFEST.json`` (checks 1-6 of 9.3). Raises ArtifactInvalid."""
    mpath = src / MANIFEST_NAME
    try:
        st = mpath.lstat()
    except FileNotFoundError:
        raise ArtifactInvalid("artifact has no MANIFEST.json (incomplete export?)", path=str(mpath)) from None
    if not stat.S_ISREG(st.st_mode):
        raise ArtifactInvalid("MANIFEST.json is not a regular file", path=str(mpath))
    if st.st_size > MAX_MANIFEST_BYTES:
        raise ArtifactInvalid("MANIFEST.json is larger than 1 MiB", path=str(mpath))
    try:
        m = json.loads(mpath.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArtifactInvalid(f"MANIFEST.json is not valid JSON: {exc}", path=str(mpath)) from None
    if not isinstance(m, dict):
        raise ArtifactInvalid("MANIFEST.json is not a JSON object", path=str(mpath))
    if set(m) != MANIFEST_FIELDS:
        extra, missing = sorted(set(m) - MANIFEST_FIELDS), sorted(MANIFEST_FIELDS - set(m))
        raise ArtifactInvalid(f"MANIFEST.json fields wrong (unknown {extra}, missing {missing})", path=str(mpath))
    if type(m["schema_version"]) is not int or m["schema_version"] != SCHEMA_VERSION:
        raise ArtifactInvalid(f"unsupported schema_version {m['schema_version']!r}", path=str(mpath))
    files = m["files"]
    if not isinstance(files, list):
        raise ArtifactInvalid("manifest 'files' is not a list", path=str(mpath))
    seen: set[tuple[str, ...]] = set()
    for f in files:
        if not isinstance(f, dict) or set(f) != FILE_FIELDS:
            raise ArtifactInvalid(f"manifest file entry {f!r} must have exactly {sorted(FILE_FIELDS)}",
                                  path=str(mpath))
        parts = _check_path(f["path"])
        if parts in seen:
            raise ArtifactInvalid(f"manifest declares {f['path']!r} twice", path=str(mpath))
        seen.add(parts)
        if type(f["size"]) is not int or f["size"] < 0:
            raise ArtifactInvalid(f"bad size for {f['path']!r}", path=str(mpath))
        if not isinstance(f["blake2b"], str) or _HASH_RE.fullmatch(f["blake2b"]) is None:
            raise ArtifactInvalid(f"bad hash for {f['path']!r}", path=str(mpath))
    ch = m["cursor_hex"]
    if not isinstance(ch, str) or _HEX_RE.fullmatch(ch) is None or len(ch) > 2 * MAX_TOKEN_BYTES:
        raise ArtifactInvalid(f"cursor_hex {ch!r} is not lowercase hex of at most 10 bytes", path=str(mpath))
    if m["backend"] != FOLD_BACKEND:
        raise ArtifactInvalid(f"backend {m['backend']!r} is not {FOLD_BACKEND!r}", path=str(mpath))
    if m["backend_version"] not in ACCEPTED_BACKEND_VERSIONS:
        raise ArtifactInvalid(f"backend_version {m['backend_version']!r} is not supported "
                              f"(accepted: {sorted(ACCEPTED_BACKEND_VERSIONS)})", path=str(mpath))
    if type(m["created_at_unix"]) is not int:
        raise ArtifactInvalid("created_at_unix is not an integer", path=str(mpath))
    if ("data", "fold.tkv") not in seen:
        raise ArtifactInvalid(f"manifest does not declare {PAYLOAD_PATH}", path=str(mpath))
    return m


def _check_tree(src: Path, declared: set[tuple[str, ...]]) -> None:
    """No undeclared files, no symlinks, no special files (check 8)."""
    dirs = {d[:i] for d in declared for i in range(1, len(d))}
    for root, dnames, fnames in os.walk(src, followlinks=False):
        rel = Path(root).relative_to(src).parts
        for n in dnames + fnames:
            p = Path(root) / n
            parts = rel + (n,)
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                raise ArtifactInvalid("artifact contains a symlink", path=str(p))
            if stat.S_ISDIR(st.st_mode):
                if parts not in dirs:
                    raise ArtifactInvalid("artifact contains an undeclared directory", path=str(p))
            elif parts == (MANIFEST_NAME,):
                continue
            elif not stat.S_ISREG(st.st_mode):
                raise ArtifactInvalid("artifact contains a non-regular file", path=str(p))
            elif parts not in declared:
                raise ArtifactInvalid("artifact contains an undeclared file", path=str(p))


def _verify_files(src: Path, declared: dict[tuple[str, ...], dict[str, Any]]) -> bytes:
    """Check every declared file's size and hash in place (check 7); return the payload bytes.

    The payload is read once into memory, hashed and later parsed from those same bytes, so
    what was verified is exactly what gets imported even if ``src`` changes meanwhile.
    Nothing is written.
    """
    payload = b""
    for parts, f in sorted(declared.items()):
        rel = "/".join(parts)
        source = src.joinpath(*parts)          # components were validated by _check_path
        h = _hasher()
        size = 0
        try:
            fin = open(source, "rb")
        except FileNotFoundError:
            raise ArtifactInvalid("a declared file is missing", path=rel) from None
        with fin:
            if parts == ("data", "fold.tkv"):
                data = fin.read()
                h.update(data)
                size = len(data)
                payload = data
            else:
                while chunk := fin.read(_CHUNK):
                    h.update(chunk)
                    size += len(chunk)
        if size != f["size"]:
            raise ArtifactInvalid(f"size {size} != declared {f['size']}", path=rel)
        if h.hexdigest() != f["blake2b"]:
            raise ArtifactInvalid("content hash does not match the manifest (corrupted file)", path=rel)
    return payload


def _missing_parents(dest: Path) -> list[Path]:
    """The ancestors of ``dest`` that do not exist yet, outermost first.

    Raises ArtifactInvalid when an existing ancestor is not a directory (nothing written).
    """
    missing: list[Path] = []
    parent = dest.parent
    while not os.path.lexists(parent):
        missing.append(parent)
        if parent.parent == parent:
            break
        parent = parent.parent
    if os.path.lexists(parent) and not parent.is_dir():
        raise ArtifactInvalid(f"import destination {dest}: {parent} is not a directory; nothing was "
                              "changed", path=str(dest))
    return missing[::-1]


def import_artifact(src: str | os.PathLike[str], dest: str | os.PathLike[str], *,
                    name: str = "fold", layout: str = "warm") -> WatchCursor:
    """Verify the artifact at ``src`` and materialize it as a fold store at ``dest``.

    ``dest`` (absent or empty) becomes a tierdb store holding fold ``name``; open it with
    ``StoreFold.open(dest, name)``. Returns the imported cursor. The artifact is not
    modified.

    Every check runs before anything is created: the manifest, the file tree, each file's
    size and hash, the payload's records, its keys (each must be a valid KV key,
    ``names.KEY_RULE``) and its cursor. Only then are ``dest``'s missing parent
    directories created, the store built in a hidden sibling stage and renamed into place.
    If a later step fails the stage and the parents this call created are removed again.

    Raises:
        ArtifactInvalid: any check of 9.3 failed, the payload holds an invalid KV key, or
            ``dest`` is not available (naming the file); nothing is left at ``dest`` and no
            directory is created.
        OperationFailed: ``name`` is not a valid fold name.
        ValueError: ``layout`` is not a persistent layout.
    """
    from ..router.layout import Layout

    validate_bucket(name)
    if Layout.parse(layout).tiers == ("hot",):
        raise ValueError(f"layout {layout!r} keeps nothing on disk; import into a persistent "
                         "layout such as 'warm'")
    src, dest = Path(src), Path(dest)
    if not src.is_dir() or src.is_symlink():
        raise ArtifactInvalid("artifact is not a directory", path=str(src))
    m = read_manifest(src)
    if not _dest_available(dest):
        raise ArtifactInvalid(f"import destination {dest} exists and is not empty; nothing was changed",
                              path=str(dest))
    declared = {tuple(f["path"].split("/")): f for f in m["files"]}
    _check_tree(src, set(declared))
    expected_cursor = WatchCursor(VersionToken(bytes.fromhex(m["cursor_hex"])))
    payload = _verify_files(src, declared)
    cursor, entries = parse_payload(payload, PAYLOAD_PATH)
    if cursor != expected_cursor:
        raise ArtifactInvalid(f"payload cursor {cursor.token.hex()!r} != manifest cursor_hex "
                              f"{m['cursor_hex']!r}", path=PAYLOAD_PATH)
    del payload
    missing = _missing_parents(dest)
    created: list[Path] = []
    stage: Path | None = None
    try:
        for d in missing:
            d.mkdir()
            created.append(d)
        parent = dest.parent
        stage = parent / f"{IMPORT_STAGE_PREFIX}{uuid.uuid4().hex}"
        stage.mkdir()
        store_dir = stage / "store"
        with StoreFold.open(store_dir, name, layout=layout) as fold:
            fold.apply_entries(entries, cursor)
            fold.store.flush()
        with StoreFold.open(store_dir, name) as fold:     # reopen: the recovered cursor counts
            if fold.cursor() != expected_cursor or fold.count() != len(entries):
                raise ArtifactInvalid("the imported fold does not reopen to the manifest's cursor",
                                      path=PAYLOAD_PATH)
        if not _dest_available(dest):
            raise ArtifactInvalid(f"import destination {dest} appeared meanwhile; nothing was changed",
                                  path=str(dest))
        os.rename(store_dir, dest)
        made, created = created, []                        # they hold the import now: keep
        _fsync_dir(parent)
        for d in reversed(made):                           # make the new directories durable
            _fsync_dir(d.parent)
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
        for d in reversed(created):                        # innermost first; only if still empty
            try:
                d.rmdir()
            except OSError:
                break
    return expected_cursor
