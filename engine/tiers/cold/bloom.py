"""A per-segment Bloom filter over (table, key), built vectorized with numpy.

Hashing: ``c = crc32(table_prefix + key)`` (zlib, C speed; the table prefix is chained in
through the CRC start value, so nothing is concatenated), then one 64-bit multiply
``h = (c + golden) * mul mod 2**64`` spreads the 32-bit CRC over two halves ``h1 = h >> 32``,
``h2 = h & 0xFFFFFFFF`` for Kirsch-Mitzenmacher double hashing: probe i is bit
``(h1 + i * h2) mod m``. Two CRCs of one key under different seeds differ by a constant
(CRC is affine), so they must not serve as the two hashes directly. A full splitmix64
finalizer was measured too: it costs ~50 % more per miss and gave the same false-positive
rate on sequential, hex and short keys (0.77-0.84 % at 10 bits/key, theory 0.82 %), so the
single multiply stays. Two keys share every probe only if their CRCs collide (~2**-32).

Thread safety: immutable after construction; ``may_contain`` is safe from any thread.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Final

import numpy as np

__all__ = ["HASH_ADD", "HASH_MUL", "MASK64", "BloomFilter", "bloom_hash", "hash_many", "optimal_k"]

MASK64: Final = (1 << 64) - 1
HASH_MUL: Final = 0xBF58476D1CE4E5B9
HASH_ADD: Final = 0x9E3779B97F4A7C15


def bloom_hash(key: bytes, seed: int) -> int:
    """64-bit hash of ``key`` under table ``seed`` (the CRC of the table prefix). O(len(key))."""
    return ((zlib.crc32(key, seed) + HASH_ADD) * HASH_MUL) & MASK64


def hash_many(keys: Sequence[bytes], seed: int) -> np.ndarray:
    """:func:`bloom_hash` of every key as a ``uint64`` array; the mixing is vectorized."""
    crc = zlib.crc32
    z = np.fromiter((crc(k, seed) for k in keys), dtype=np.uint64, count=len(keys))
    with np.errstate(over="ignore"):
        return (z + np.uint64(HASH_ADD)) * np.uint64(HASH_MUL)


def optimal_k(bits_per_key: float) -> int:
    """Number of probes minimising the false-positive rate: round(bits_per_key * ln 2)."""
    return max(1, min(30, round(bits_per_key * math.log(2))))


class BloomFilter:
    """A standard Bloom filter of ``m`` bits and ``k`` probes, stored as ``bytes``.

    Complexity: ``may_contain`` O(k) worst case, ~2 probes on average for a miss at the
    optimal k; ``build`` O(n * k) vectorized. FP rate ~ (1 - e^(-k n / m))^k, about 0.8 % at
    10 bits per key.
    """

    __slots__ = ("bits", "k", "m")

    def __init__(self, bits: bytes, m: int, k: int) -> None:
        if m <= 0 or k <= 0 or len(bits) != (m + 7) // 8:
            raise ValueError(f"inconsistent bloom filter: m={m}, k={k}, {len(bits)} bytes")
        self.bits = bits
        self.m = m
        self.k = k

    @classmethod
    def build(cls, hashes: np.ndarray, bits_per_key: float) -> BloomFilter:
        """A filter holding every hash in ``hashes`` (from :func:`hash_many`)."""
        n = max(1, len(hashes))
        m = max(64, math.ceil(n * bits_per_key))
        k = optimal_k(bits_per_key)
        h = hashes.astype(np.uint64)
        h1 = h >> np.uint64(32)
        h2 = h & np.uint64(0xFFFFFFFF)
        i = np.arange(k, dtype=np.uint64)
        with np.errstate(over="ignore"):
            pos = (h1[:, None] + i[None, :] * h2[:, None]) % np.uint64(m)
        bitmap = np.zeros(m, dtype=bool)
        bitmap[pos.ravel().astype(np.int64)] = True
        return cls(np.packbits(bitmap, bitorder="little").tobytes(), m, k)

    def may_contain_hash(self, h: int) -> bool:
        """False only if the key hashing to ``h`` is certainly absent."""
        h1 = h >> 32
        h2 = h & 0xFFFFFFFF
        m = self.m
        bits = self.bits
        for _ in range(self.k):
            p = h1 % m
            if not (bits[p >> 3] >> (p & 7)) & 1:
                return False
            h1 += h2
        return True

    def may_contain_many(self, hashes: np.ndarray) -> np.ndarray:
        """Vectorized :meth:`may_contain_hash` over a ``uint64`` array; a bool array."""
        h = hashes.astype(np.uint64)
        h1 = h >> np.uint64(32)
        h2 = h & np.uint64(0xFFFFFFFF)
        bits = np.frombuffer(self.bits, dtype=np.uint8)
        ok = np.ones(len(h), dtype=bool)
        m = np.uint64(self.m)
        with np.errstate(over="ignore"):
            for i in range(self.k):
                p = (h1 + np.uint64(i) * h2) % m
                ok &= ((bits[(p >> np.uint64(3)).astype(np.int64)] >> (p & np.uint64(7)).astype(np.uint8)) & 1).astype(bool)
        return ok

    @property
    def nbytes(self) -> int:
        return len(self.bits)
