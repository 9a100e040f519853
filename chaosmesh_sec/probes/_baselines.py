"""What a probe keeps under a name for the rest of the run (``record_as`` / ``compare_to``).

A run is one ``chaos run``: one process. A name is recorded once, by the first probe
that records it; later records under that name are ignored. So under
``--hypothesis-strategy continuously``, where the steady-state hypothesis (and its
``record_as``) runs again and again while the fault is on, the baseline stays the one
taken before the method (chaoslib runs the before-hypothesis first, and stops the run
when it fails).
"""

from __future__ import annotations

import logging
import threading
from typing import Generic, TypeVar

__all__ = ["RunRecords"]

logger = logging.getLogger("chaostoolkit")

T = TypeVar("T")


class RunRecords(Generic[T]):
    """Named values kept for the rest of the run; the first record of a name wins."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._lock = threading.Lock()
        self._kept: dict[str, T] = {}

    def record(self, name: str, value: T) -> bool:
        """Keep ``value`` as ``name`` unless that name was recorded already (then False)."""
        with self._lock:
            if name in self._kept:
                logger.info(
                    "%s %r was recorded earlier in this run: kept as it was", self._what, name
                )
                return False
            self._kept[name] = value
            return True

    def get(self, name: str) -> T | None:
        """The value recorded as ``name``, or None."""
        with self._lock:
            return self._kept.get(name)
