"""The game day's verdicts: the exit code each journal calls for, and what became of each entry.

Pure: parsed journals in (read through :mod:`chaosmesh_sec.journal`), codes out. The
table (several apply: the highest wins) is :mod:`chaosmesh_sec.gameday`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaosmesh_sec.errors import ClusterUnreachable, FaultNotApplied, InvalidInput, RollbackFailed
from chaosmesh_sec.gameday.plan import Entry
from chaosmesh_sec.journal import (
    FAIL_OPEN_ERROR,
    activity,
    activity_runs,
    exception_text,
    fail_open_cells,
    method_runs,
    safety_net_records,
    scenarios_not_reproduced,
    steady_state,
)

__all__ = [
    "ABORT_AT",
    "EXIT_DEVIATED",
    "EXIT_HELD",
    "EXIT_NOT_APPLIED",
    "EXIT_PLAN_INVALID",
    "EXIT_ROLLBACK_FAILED",
    "MEANINGS",
    "NOT_REPRODUCED",
    "SKIPPED",
    "VERDICTS",
    "Outcome",
    "exit_code",
    "fail_open_cells",
    "journal_exit_code",
    "journal_status",
]

EXIT_HELD = 0
EXIT_DEVIATED = 1
EXIT_NOT_APPLIED = 2
EXIT_ROLLBACK_FAILED = 3
EXIT_PLAN_INVALID = 4

VERDICTS = {
    EXIT_HELD: "held",
    EXIT_DEVIATED: "deviated",
    EXIT_NOT_APPLIED: "not_applied",
    EXIT_ROLLBACK_FAILED: "rollback_failed",
}
MEANINGS = {
    EXIT_HELD: "every hypothesis held",
    EXIT_DEVIATED: "a hypothesis deviated",
    EXIT_NOT_APPLIED: "a fault could not be applied",
    EXIT_ROLLBACK_FAILED: "a rollback failed: run `chaosmesh-sec rollback`",
    EXIT_PLAN_INVALID: "the plan is invalid",
}
SKIPPED = "skipped"
NOT_REPRODUCED = "not_reproduced"
"""The verdict of a run whose scenario did not happen (exit code 2: nothing was tested)."""
ABORT_AT: Mapping[str, int | None] = {
    "never": None,
    "deviated": EXIT_DEVIATED,
    "failed": EXIT_NOT_APPLIED,
}
"""The exit code from which each ``abort_on`` of a plan (:data:`.plan.ABORT_ON`) stops it."""
NOT_APPLIED_ERRORS = tuple(e.__name__ for e in (FaultNotApplied, InvalidInput, ClusterUnreachable))
ROLLBACK_ERROR = RollbackFailed.__name__


def journal_status(journal: Mapping[str, Any]) -> str:
    """The run's status as ``chaos`` reports it: ``deviated`` or the journal's status."""
    if journal.get("deviated"):
        return "deviated"
    return str(journal.get("status") or "aborted")


def journal_exit_code(journal: Mapping[str, Any]) -> int:
    """The exit code one journal calls for (see :mod:`chaosmesh_sec.gameday`'s table)."""
    codes = {EXIT_HELD}
    if any(record.get("error") for record in safety_net_records(journal)):
        codes.add(EXIT_ROLLBACK_FAILED)
    status = journal.get("status")
    before = steady_state(journal, "before")
    method = method_runs(journal)
    if before is not None and before.get("steady_state_met") is False:
        codes.add(EXIT_NOT_APPLIED)  # the method never ran: the system was not steady
    if status in ("failed", "aborted", "interrupted") and not method:
        codes.add(EXIT_NOT_APPLIED)
    if status in ("aborted", "interrupted"):
        codes.add(EXIT_NOT_APPLIED)  # stopped before its verdict
    if journal.get("deviated"):
        codes.add(EXIT_DEVIATED)
    for phase, run in activity_runs(journal):
        text = exception_text(run)
        failed = run.get("status") == "failed"
        if ROLLBACK_ERROR in text or (phase == "rollbacks" and failed):
            codes.add(EXIT_ROLLBACK_FAILED)
        if FAIL_OPEN_ERROR in text:
            codes.add(EXIT_DEVIATED)
        if phase == "method" and failed:
            action = activity(run).get("type") == "action"
            if action or any(name in text for name in NOT_APPLIED_ERRORS):
                codes.add(EXIT_NOT_APPLIED)
    if fail_open_cells(journal):
        codes.add(EXIT_DEVIATED)
    if scenarios_not_reproduced(journal):
        codes.add(EXIT_NOT_APPLIED)  # the story the hypothesis is about did not happen
    return max(codes)


def exit_code(journals: Iterable[Mapping[str, Any]]) -> int:
    """The game day's exit code: the highest any journal calls for (0 with none)."""
    return max((journal_exit_code(j) for j in journals), default=EXIT_HELD)


@dataclass(frozen=True)
class Outcome:
    """What became of one plan entry."""

    entry: Entry
    journal_path: Path | None = None
    journal: Mapping[str, Any] | None = None
    seconds: float = 0.0

    @property
    def skipped(self) -> bool:
        return self.journal is None

    @property
    def status(self) -> str:
        return SKIPPED if self.journal is None else journal_status(self.journal)

    @property
    def code(self) -> int | None:
        return None if self.journal is None else journal_exit_code(self.journal)

    @property
    def verdict(self) -> str:
        code = self.code
        if code is None or self.journal is None:
            return SKIPPED
        if code == EXIT_NOT_APPLIED and scenarios_not_reproduced(self.journal):
            return NOT_REPRODUCED
        return VERDICTS[code]

    @property
    def fail_open(self) -> int:
        return 0 if self.journal is None else fail_open_cells(self.journal)
