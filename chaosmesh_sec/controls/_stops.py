"""A fault action that fails during the method stops the method there.

A **fault action** is an activity of type ``action`` whose Python provider is one of
the pack's fault modules (``chaosmesh_sec.faults.*``: every action of the pack lives
there, the faults and their ``heal_*`` / ``restore_*`` rollbacks, and
``heal_leftovers``). When one fails in the method (it raised: bad input only the cluster
could reveal, a refused request, a fault it could not put in place), chaoslib would go
on to the next activity. This watcher, registered by the safety net's
``configure_control`` on chaoslib's event registry, marks the run ``aborted`` instead:

- chaoslib starts no further method activity (it stops the method on an aborted
  journal), and skips the after-hypothesis;
- the rollbacks still run: chaoslib's default rollback strategy plays them for an
  aborted run (not for an ``interrupted`` one, so an ``InterruptExecution`` would
  have skipped them); the safety net runs after them, as always;
- ``chaos run`` exits 1 (the status is not ``completed``), and the game day says
  ``not_applied`` (2).

A failed probe in the method does not stop it (a probe there is an observation), nor
does an activity of another extension. What stopped the run goes into the safety net's
journal record (``stopped``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from chaoslib.run import EventHandlerRegistry, RunEventHandler

import chaosmesh_sec.faults

__all__ = ["FAULT_MODULES", "MethodStop", "is_fault_action", "stopped", "watch"]

logger = logging.getLogger("chaostoolkit")

FAULT_MODULES = chaosmesh_sec.faults.__name__ + "."
"""The prefix of every module whose actions are fault actions."""


def is_fault_action(activity: Mapping[str, Any]) -> bool:
    """Is this activity one of the pack's fault actions (pure)?"""
    provider = activity.get("provider") or {}
    module = provider.get("module")
    return (
        activity.get("type") == "action"
        and provider.get("type") == "python"
        and isinstance(module, str)
        and module.startswith(FAULT_MODULES)
    )


class MethodStop(RunEventHandler):  # type: ignore[misc]  # chaoslib is untyped
    """Marks the run aborted when a fault action fails during the method."""

    def __init__(self) -> None:
        self.journal: dict[str, Any] | None = None
        self.in_method = False
        self.stop: dict[str, Any] | None = None

    def running(self, experiment: Any, journal: Any, *args: Any) -> None:
        self.journal = journal if isinstance(journal, dict) else None

    def start_method(self, experiment: Any) -> None:
        self.in_method = True

    def method_completed(self, experiment: Any, state: Any = None) -> None:
        self.in_method = False

    def activity_completed(self, activity: Any, run: Any) -> None:
        if not (self.in_method and isinstance(activity, Mapping) and isinstance(run, Mapping)):
            return
        if run.get("status") != "failed" or not is_fault_action(activity):
            return
        name = str(activity.get("name"))
        if self.stop is None:
            self.stop = {"phase": "method", "activity": name, "status": "aborted"}
            logger.error(
                "fault action %r failed: no further method activity; the rollbacks and "
                "the safety net still run",
                name,
            )
        if self.journal is not None:
            self.journal["status"] = "aborted"


class _Current:
    watcher: MethodStop | None = None


def watch(event_registry: Any) -> None:
    """Register a fresh watcher for this run (chaoslib passes its event registry to a
    control's ``configure_control``)."""
    _Current.watcher = MethodStop()
    if isinstance(event_registry, EventHandlerRegistry):
        event_registry.register(_Current.watcher)


def stopped() -> dict[str, Any] | None:
    """What stopped this run's method (``phase``, ``activity``), or None."""
    return _Current.watcher.stop if _Current.watcher is not None else None
