"""A small daemon loop shared by the background mover and the drop worker.

``Background(name, tick, pause, counters)`` runs ``tick()`` on a daemon thread whenever it
is kicked or ``pause`` seconds pass; ``tick`` returns the pause before the next run. A tick
that fails with an engine or OS error is counted in ``counters`` (``background_errors``,
``last_error``), logged, and retried on the next tick: background work never kills the
thread nor the store.

Notes: thread safety
    ``start``, ``kick`` and ``stop`` may be called from any thread; ``stop`` joins.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .errors import EngineError

__all__ = ["Background"]

log = logging.getLogger("tierdb.background")


class Background:
    """A kickable daemon loop (see module docstring)."""

    def __init__(self, name: str, tick: Callable[[], float], pause: float,
                 counters: dict[str, Any]) -> None:
        self.name = name
        self._tick = tick
        self._pause = pause
        self._counters = counters
        counters.setdefault("background_errors", 0)
        counters.setdefault("last_error", None)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def kick(self) -> None:
        """Run the next tick now rather than after the pause."""
        self._wake.set()

    def _run(self) -> None:
        pause = self._pause
        while not self._stop.is_set():
            self._wake.wait(pause)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                pause = self._tick()
            except (EngineError, OSError) as exc:
                self._counters["background_errors"] += 1
                self._counters["last_error"] = f"{type(exc).__name__}: {exc}"
                # The message as text: a log record holding the exception would keep its
                # traceback (a tier's frames, RocksDB and its LOCK) alive in any handler that
                # keeps records.
                log.warning("%s failed (will retry): %s", self.name, f"{type(exc).__name__}: {exc}")
                pause = self._pause

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
