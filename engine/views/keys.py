"""Physical key layout of views inside an ``EntryKind`` table (documented in docs/VIEWS.md).

Every view lives in a *keyspace* (by default its name) inside a table. The physical key
of everything a view stores starts with the keyspace prefix::

    keyspace prefix = escape(keyspace as UTF-8) + 0x00 0x00
    escape(b)       = b with every 0x00 byte replaced by 0x00 0xFF

The escape never produces 0x00 0x00, so the prefix is *prefix-free*: the prefix of one
keyspace is never a prefix of a key in another keyspace, and two views with different
keyspaces can never collide, whatever their names. Views that are given the same
keyspace share it on purpose (GraphReFly's "two tiers over one backend").

After the prefix:

* snapshot and kv views: the view key as UTF-8 (``"g"``, ``"g/wal/000..017"``);
* append-log views: ``escape(partition) + 0x00 0x00 + seq`` as 20 ASCII digits.

Byte order of physical keys equals (keyspace, then view key / (partition, seq)) order,
and literal prefix filters stay exact.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "SEQ_DIGITS",
    "TERMINATOR",
    "decode_view_key",
    "encode_view_key",
    "entry_key",
    "escape",
    "keyspace_prefix",
    "partition_filter_prefix",
    "partition_prefix",
    "split_entry_key",
    "unescape",
]

TERMINATOR: Final = b"\x00\x00"
SEQ_DIGITS: Final = 20
_ENTRY_SUFFIX_LEN: Final = len(TERMINATOR) + SEQ_DIGITS
assert _ENTRY_SUFFIX_LEN == 22


def escape(raw: bytes) -> bytes:
    """Escape 0x00 as 0x00 0xFF so that 0x00 0x00 can terminate. O(len)."""
    return raw.replace(b"\x00", b"\x00\xff")


def unescape(escaped: bytes) -> bytes:
    """Invert :func:`escape`. O(len)."""
    return escaped.replace(b"\x00\xff", b"\x00")


def keyspace_prefix(keyspace: str) -> bytes:
    """The physical prefix shared by every key of ``keyspace``."""
    return escape(keyspace.encode("utf-8")) + TERMINATOR


def encode_view_key(prefix: bytes, key: str) -> bytes:
    """Physical key of snapshot/kv view key ``key``."""
    return prefix + key.encode("utf-8")


def decode_view_key(prefix: bytes, physical: bytes) -> str:
    """Invert :func:`encode_view_key` (``physical`` must start with ``prefix``)."""
    return physical[len(prefix):].decode("utf-8")


def partition_prefix(prefix: bytes, partition: str) -> bytes:
    """Physical prefix of every entry of exactly ``partition``."""
    return prefix + escape(partition.encode("utf-8")) + TERMINATOR


def partition_filter_prefix(prefix: bytes, key_filter: str) -> bytes:
    """Physical prefix of every entry whose partition key starts with ``key_filter``."""
    return prefix + escape(key_filter.encode("utf-8"))


def entry_key(prefix: bytes, partition: str, seq: int) -> bytes:
    """Physical key of entry ``seq`` of ``partition``."""
    return partition_prefix(prefix, partition) + b"%020d" % seq


def split_entry_key(prefix: bytes, physical: bytes) -> tuple[str, int]:
    """Invert :func:`entry_key`: ``(partition, seq)``.

    Raises:
        ValueError: ``physical`` is not an append-log entry key.
    """
    body = physical[len(prefix):]
    if len(body) < _ENTRY_SUFFIX_LEN or body[-_ENTRY_SUFFIX_LEN:-SEQ_DIGITS] != TERMINATOR:
        raise ValueError(f"not an append-log entry key: {physical!r}")
    digits = body[-SEQ_DIGITS:]
    if not digits.isdigit():
        raise ValueError(f"not an append-log entry key: {physical!r}")
    return unescape(body[:-_ENTRY_SUFFIX_LEN]).decode("utf-8"), int(digits)
