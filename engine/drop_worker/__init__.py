"""Retention policy, garbage-collection planning and the background drop worker."""

from .retention import Retention as Retention

__all__ = ["Retention"]
