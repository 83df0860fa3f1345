"""Retention: the history floor below which unpinned versions may be garbage collected."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Retention"]


@dataclass(frozen=True)
class Retention:
    """How much history a store keeps readable.

    Args:
        history_versions: keep the newest N versions readable (read points
            ``>= version - N + 1``). ``None``: no version limit.
        history_seconds: keep every version current within the last S seconds readable.
            ``None``: no time limit.

    With both ``None`` (the default) every version is kept. When both are set, the larger
    window wins (a version is kept if either rule keeps it). Pins and open snapshots and
    transactions are always kept in addition.
    """

    history_versions: int | None = None
    history_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.history_versions is not None:
            if isinstance(self.history_versions, bool) or not isinstance(self.history_versions, int) \
                    or self.history_versions < 1:
                raise ValueError(f"history_versions must be an int >= 1 or None, got {self.history_versions!r}")
        if self.history_seconds is not None:
            if isinstance(self.history_seconds, bool) or not isinstance(self.history_seconds, (int, float)) \
                    or self.history_seconds < 0:
                raise ValueError(f"history_seconds must be a number >= 0 or None, got {self.history_seconds!r}")

    @property
    def keeps_everything(self) -> bool:
        return self.history_versions is None and self.history_seconds is None

    def floor(self, current_version: int, version_at: Callable[[float], int],
              now: float | None = None) -> int:
        """The lowest version that is still a retained read point (0 = everything).

        ``version_at(ts)`` maps a wall-clock time to the version current at that time.
        """
        if self.keeps_everything:
            return 0
        candidates: list[int] = []
        if self.history_versions is not None:
            candidates.append(max(0, current_version - self.history_versions + 1))
        if self.history_seconds is not None:
            t = (time.time() if now is None else now) - self.history_seconds
            candidates.append(min(current_version, version_at(t)))
        return min(candidates)
