"""Tier implementations of the :class:`~engine.tiers.base.TierStorage` contract."""

from .base import TierStorage as TierStorage
from .hot import HotTier as HotTier

__all__ = ["TierStorage", "HotTier"]
