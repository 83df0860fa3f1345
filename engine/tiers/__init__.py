"""Tier implementations of the :class:`~engine.tiers.base.TierStorage` contract."""

from .base import TierStorage as TierStorage
from .hot import HotTier as HotTier
from .warm import WarmTier as WarmTier
from .cold import ColdTier as ColdTier

__all__ = ["TierStorage", "HotTier", "WarmTier", "ColdTier"]
