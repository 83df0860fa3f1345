"""Layouts, the read cascade, merged range cursors and tier movement."""

from .layout import Layout as Layout
from .reader import MergedScan as MergedScan
from .reader import Router as Router

__all__ = ["Layout", "MergedScan", "Router"]
