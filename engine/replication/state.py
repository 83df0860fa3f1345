"""The replication state file ``REPLICATION`` in a store directory.

What the store is to its stream (``role``: primary or replica), the stream and servers, the
stream's *lineage* (which store it replicates) and this store's *node* id (the writer id its
commits carry when it is primary). The applied position is not here: it is the store's own
version, written in the same local commit as the data (cursor-after-apply).

Format: ``STATE_HEAD`` (magic "TDBRPLST", payload length u32, crc32 u32), then canonical JSON.
Replaced by write-temp + fsync + rename.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

from ..errors import CorruptionError
from ..mvcc.pins import atomic_write

__all__ = ["STATE_NAME", "ReplicationState", "load_state", "reseat_restored", "save_state"]

STATE_NAME: Final = "REPLICATION"
STATE_MAGIC: Final = b"TDBRPLST"
STATE_HEAD: Final = struct.Struct("<8sII")
assert STATE_HEAD.size == 16


@dataclass
class ReplicationState:
    stream: str
    role: str                      # "primary" | "replica"
    node: str                      # hex, 8 bytes
    lineage: str = ""              # hex, 16 bytes ("" until known)
    servers: list[str] = field(default_factory=list)
    promoted_at: int | None = None

    @property
    def node_id(self) -> bytes:
        return bytes.fromhex(self.node)

    @property
    def lineage_id(self) -> bytes | None:
        return bytes.fromhex(self.lineage) if self.lineage else None


def load_state(path: Path | None) -> ReplicationState | None:
    """The state of the store at ``path`` (None: never replicated, or a memory store)."""
    if path is None:
        return None
    p = path / STATE_NAME
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        return None
    if len(data) < STATE_HEAD.size:
        raise CorruptionError("replication state file is truncated", path=p, offset=0)
    magic, length, crc = STATE_HEAD.unpack_from(data, 0)
    body = data[STATE_HEAD.size:]
    if magic != STATE_MAGIC or len(body) != length or zlib.crc32(body) != crc:
        raise CorruptionError("replication state file fails its checksum", path=p, offset=0)
    try:
        return ReplicationState(**json.loads(body))
    except (ValueError, TypeError) as exc:
        raise CorruptionError(f"replication state file does not decode: {exc}", path=p, offset=0) from None


def save_state(path: Path | None, state: ReplicationState) -> None:
    if path is None:
        return
    body = json.dumps(asdict(state), sort_keys=True, separators=(",", ":")).encode()
    atomic_write(path / STATE_NAME, STATE_HEAD.pack(STATE_MAGIC, len(body), zlib.crc32(body)) + body)


def reseat_restored(path: Path) -> None:
    """A store restored from a backup is another node: give it a node id of its own and make
    it a replica of its stream. Two stores with one node id would each take the other's
    commits for its own (a co-primary); a restored primary must not resume as the primary
    beside the original either. Open it with ``engine.open_replica`` (it follows from its
    version, after checking that its history is the stream's) and ``promote()`` it to write.
    """
    state = load_state(path)
    if state is None:
        return
    state.role, state.node, state.promoted_at = "replica", os.urandom(8).hex(), None
    save_state(path, state)
