"""The cold tier: immutable zstd-compressed segment files (see tier.py for the overview)."""

from .scan import ColumnChunk as ColumnChunk
from .tier import ColdOptions as ColdOptions
from .tier import ColdTier as ColdTier

__all__ = ["ColdTier", "ColdOptions", "ColumnChunk"]
