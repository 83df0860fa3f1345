"""Key, prefix and bucket name rules, shared by both backends (``nats-jetstream-kv.md`` s. 6).

Keys match ``^[-/_=.a-zA-Z0-9]+$``, have no leading or trailing ``.`` and no empty token
(``a..b``). Watch/scan prefixes are empty or end on a ``.`` token boundary (``"users."``).
Buckets match ``^[a-zA-Z0-9_-]+$``. Every check runs before any I/O and raises
:class:`~engine.kv.errors.OperationFailed` naming the input and the rule.
"""

from __future__ import annotations

import re
from typing import Final

from .errors import OperationFailed

__all__ = ["BUCKET_RULE", "KEY_RULE", "validate_bucket", "validate_key", "validate_prefix"]

_KEY_RE: Final = re.compile(r"[-/_=.a-zA-Z0-9]+")
_BUCKET_RE: Final = re.compile(r"[a-zA-Z0-9_-]+")
KEY_RULE: Final = ("keys match ^[-/_=.a-zA-Z0-9]+$ (ASCII letters, digits and - / _ = .), "
                   "are not empty, and have no leading, trailing or doubled '.'")
BUCKET_RULE: Final = "bucket names match ^[a-zA-Z0-9_-]+$"


def validate_key(key: object) -> str:
    """Return ``key`` if it is a valid KV key; else raise OperationFailed."""
    if not isinstance(key, str):
        raise OperationFailed(f"invalid key {key!r}: keys are str; {KEY_RULE}")
    if not key or _KEY_RE.fullmatch(key) is None or key[0] == "." or key[-1] == "." or ".." in key:
        raise OperationFailed(f"invalid key {key!r}: {KEY_RULE}")
    return key


def validate_prefix(prefix: object) -> str:
    """Return ``prefix`` if it is empty or a key-like string ending in ``.``."""
    if not isinstance(prefix, str):
        raise OperationFailed(f"invalid prefix {prefix!r}: prefixes are str")
    if prefix == "":
        return prefix
    if not prefix.endswith(".") or prefix == ".":
        raise OperationFailed(
            f"invalid prefix {prefix!r}: a prefix must be empty or end on a '.' token boundary "
            f"(e.g. 'users.'), because it becomes the filter subject '<prefix>>'")
    validate_key(prefix[:-1])
    return prefix


def validate_bucket(name: object) -> str:
    """Return ``name`` if it is a valid bucket name; else raise OperationFailed."""
    if not isinstance(name, str) or _BUCKET_RE.fullmatch(name) is None:
        raise OperationFailed(f"invalid bucket name {name!r}: {BUCKET_RULE}")
    return name
