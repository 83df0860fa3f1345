"""The cold tier: immutable zstd-compressed segment files (see tier.py for the overview)."""

from .options import ColdOptions as ColdOptions
from .scan import ColumnChunk as ColumnChunk
from .tier import ColdTier as ColdTier

__all__ = ["ColdOptions", "ColdTier", "ColumnChunk"]
