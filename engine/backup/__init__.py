"""Online backups, restores and writable clones at a version (issue 13).

:func:`backup` (``store.backup``), :func:`check_backup`, :func:`restore_backup` and
:func:`clone` (``engine.clone``, ``store.clone``). How: capture.py (a consistent store
image in moments), backup.py, clone.py; formats in manifest.py and docs/FORMATS.md;
clone reference tracking in clone.py and docs/DECISIONS.md.
"""

from .backup import backup as backup
from .backup import check_backup as check_backup
from .backup import restore_backup as restore_backup
from .clone import clone as clone

__all__ = ["backup", "check_backup", "clone", "restore_backup"]
