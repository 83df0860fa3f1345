"""Pure decision kernels shared by production code and the model-checker tests.

Every function here is a total, side-effect-free decision over plain values, so the
exhaustive model checker (``tests/kv/test_model_check.py``) imports and explores exactly
the code that production runs (``slipstream-kv.md`` sections 7, 10, 11, 12). Nothing here
does I/O, reads clocks or raises for a decision; callers turn decisions into actions.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Final

__all__ = [
    "CORRUPT",
    "MAX_STORE_FAILURES",
    "PRUNE_GRACE_TTLS",
    "U64_MAX",
    "LeaseDecision",
    "ResumeMode",
    "StoreFailureAction",
    "advance_batch_high",
    "floor_guard_due",
    "flush_due",
    "lease_after_create_failed",
    "lease_expired",
    "pointer_publish_allowed",
    "prune_allowed",
    "resume_mode",
    "resume_window_ok",
    "resync_deletions",
    "store_failure_action",
]

U64_MAX: Final = (1 << 64) - 1
MAX_STORE_FAILURES: Final = 16
PRUNE_GRACE_TTLS: Final = 4


class ResumeMode(enum.Enum):
    FULL = "full"        # no cursor (or revision 0): state-sync watch with re-list
    RESUME = "resume"    # deliver revisions above the cursor, no re-list
    REFUSE = "refuse"    # 2**64-1 can never be resumed (rev + 1 would wrap to 0)


def resume_mode(cursor_rev: int | None) -> ResumeMode:
    """How to open a watch for a cursor revision (None = empty cursor)."""
    if cursor_rev is None or cursor_rev == 0:
        return ResumeMode.FULL
    if cursor_rev >= U64_MAX:
        return ResumeMode.REFUSE
    return ResumeMode.RESUME


def resume_window_ok(first_seq: int, rev: int) -> bool:
    """A resume from ``rev`` loses nothing iff ``first_seq <= rev + 1`` (checked before and
    after creating the consumer; servers silently clamp a start below ``first_seq``)."""
    return first_seq <= rev + 1


def floor_guard_due(frontier: int, delivered: int) -> bool:
    """A delivered revision above ``frontier + 1`` may hide an eviction: re-check the window.

    Only meaningful for ``All`` scope (prefix watches legitimately skip revisions).
    """
    return delivered > frontier + 1


def advance_batch_high(current: int | None, update_rev: int | None) -> int | None:
    """The batch high-water mark after receiving an update (parsed or rejected).

    An update whose version is unknown (empty token, e.g. a synthetic resync delete) never
    moves it; delivery is in revision order, so a known version only moves it up.
    """
    if update_rev is None:
        return current
    if current is None or update_rev > current:
        return update_rev
    return current


def flush_due(*, raw_count: int, parsed_count: int, max_batch: int, window_expired: bool,
              shutdown: bool, closed: bool) -> bool:
    """Flush triggers of ``watch_applied`` (section 7.4)."""
    if shutdown or closed:
        return True
    if raw_count == 0:
        return False
    return window_expired or raw_count >= max_batch or parsed_count >= max_batch


class StoreFailureAction(enum.Enum):
    REQUEUE = "requeue"   # keep the raw batch at the front; commit it with the next flush
    FATAL = "fatal"       # give up with WatchError


def store_failure_action(consecutive_failures: int,
                         limit: int = MAX_STORE_FAILURES) -> StoreFailureAction:
    """After the ``consecutive_failures``-th store failure in a row, what to do."""
    return StoreFailureAction.FATAL if consecutive_failures >= limit else StoreFailureAction.REQUEUE


def resync_deletions(fold_keys: Iterable[str], live_keys: Iterable[str]) -> list[str]:
    """Keys the fold holds that the service no longer lists: they get synthetic deletes."""
    live = set(live_keys)
    return sorted(k for k in set(fold_keys) if k not in live)


class _Corrupt:
    """Sentinel: the current pointer exists but does not parse."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "CORRUPT"


CORRUPT: Final = _Corrupt()


def pointer_publish_allowed(current: int | None | _Corrupt, candidate: int) -> bool:
    """May a pointer naming ``candidate`` replace ``current``? (absent/corrupt/not newer)

    An equal cursor may republish; an older one is superseded.
    """
    if current is None or current is CORRUPT:
        return True
    assert isinstance(current, int)
    return candidate >= current


def prune_allowed(*, name_rank: int | None, is_target: bool, pointer_rank: int | None,
                  age_seconds: float, ttl_seconds: float,
                  grace_ttls: int = PRUNE_GRACE_TTLS) -> bool:
    """May a payload object be deleted?

    Only a payload that is not the pointer's target, whose name parses (``name_rank`` not
    None), whose rank is strictly below the pointer's, and which is older than
    ``grace_ttls`` x ttl. With no readable pointer nothing is pruned.
    """
    if is_target or name_rank is None or pointer_rank is None:
        return False
    if name_rank >= pointer_rank:
        return False
    return age_seconds > grace_ttls * ttl_seconds


class LeaseDecision(enum.Enum):
    LOST = "lost"     # someone holds a live lease (or it vanished under us)
    STEAL = "steal"   # expired, a tombstone, or garbage: CAS-update against the observed version


def lease_expired(expires_at_unix: float, now_unix: float) -> bool:
    """A lease is live while ``expires_at_unix > now``."""
    return not expires_at_unix > now_unix


def lease_after_create_failed(*, observed_exists: bool, parsed_expires_at: float | None,
                              now_unix: float) -> LeaseDecision:
    """Decide after ``create`` raised AlreadyExists and ``entry`` was read.

    ``observed_exists``: ``entry`` returned something (tombstones included);
    ``parsed_expires_at``: its expiry if the value parses as a lease (None for a tombstone
    or garbage).
    """
    if not observed_exists:
        return LeaseDecision.LOST
    if parsed_expires_at is not None and not lease_expired(parsed_expires_at, now_unix):
        return LeaseDecision.LOST
    return LeaseDecision.STEAL
