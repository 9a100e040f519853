"""The report's model: one typed summary per journal, what the writers render.

The dataclasses only, and the words they use (:data:`VERDICTS`, the matrix and
redirection verdicts); :mod:`chaosmesh_sec.report.reading` fills them from journals.
Every value that could not be read is None or "" (unknown), never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from chaosmesh_sec.report import describe

__all__ = [
    "FAULTS_PACKAGE",
    "HEAL_PREFIXES",
    "MATRIX_VERDICTS",
    "REDIRECTION_VERDICTS",
    "VERDICTS",
    "CellSample",
    "CellTimeline",
    "Experiment",
    "FaultWindow",
    "Hypothesis",
    "IssuanceCheck",
    "IssuanceRow",
    "MatrixCell",
    "MatrixTimeline",
    "MatrixView",
    "PodRedirection",
    "RedirectionView",
    "Report",
    "SafetyNet",
    "Sample",
    "Sampled",
    "Step",
    "TargetSummary",
    "Timeline",
    "VerdictChange",
    "Window",
]

VERDICTS = ("held", "deviated", "failed", "interrupted", "aborted", "unknown")
"""An experiment's verdict, best first."""
MATRIX_VERDICTS = ("allowed", "denied_by_mesh", "denied_by_network", "mtls_failure", "error")
"""The verdicts of one matrix cell (as :mod:`chaosmesh_sec.probes._matrix_evidence` names them)."""
REDIRECTION_VERDICTS = ("redirected", "caught", "unredirected", "unknown")
"""A sidecar pod's traffic capture, best first (as :mod:`chaosmesh_sec.probes.redirection`)."""
FAULTS_PACKAGE = "chaosmesh_sec.faults."
HEAL_PREFIXES = ("heal_", "restore_")


@dataclass(frozen=True)
class Step:
    """One activity as it ran: a hypothesis probe, a method activity or a rollback.

    `phase`: ``before``, ``during`` (the method), ``after`` or ``rollback``. `error`:
    the last line of its exception ("" when it raised none). `what`: what it did, in
    one line (:func:`describe.what`). `tolerance` / `tolerance_met`: hypothesis
    probes only. `offset_s`: its start, in seconds since the experiment's.
    """

    phase: str
    name: str
    type: str
    module: str
    func: str
    status: str
    start: datetime | None
    end: datetime | None
    duration: float | None
    offset_s: float | None
    output: Any
    error: str
    traceback: str
    background: bool
    what: str
    tolerance: str = ""
    tolerance_met: bool | None = None
    arguments: Mapping[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def is_heal(self) -> bool:
        """A ``heal_*`` function, or a ``restore_*`` of this pack's faults."""
        return self.func.startswith("heal_") or (
            self.module.startswith(FAULTS_PACKAGE) and self.func.startswith(HEAL_PREFIXES)
        )

    @property
    def is_fault(self) -> bool:
        """An activity of a module under :data:`FAULTS_PACKAGE` that is not a heal."""
        return self.module.startswith(FAULTS_PACKAGE) and not self.is_heal


@dataclass(frozen=True)
class Hypothesis:
    """The steady-state hypothesis as checked before or after the method."""

    phase: str
    met: bool | None
    probes: tuple[Step, ...]

    @property
    def out_of_tolerance(self) -> tuple[str, ...]:
        """The probes that failed or whose tolerance was not met."""
        return tuple(p.name for p in self.probes if p.failed or p.tolerance_met is False)


@dataclass(frozen=True)
class _Cell:
    """A source x destination of a matrix, and what it expects."""

    source: str
    destination: str
    expected: str

    @property
    def id(self) -> str:
        """``source -> destination``, as the journal names a cell."""
        return f"{self.source} -> {self.destination}"


@dataclass(frozen=True)
class MatrixCell(_Cell):
    """One source x destination of a matrix check; `evidence` says what came back."""

    verdict: str
    ok: bool
    fail_open: bool
    unexpected_deny: bool
    layer_mismatch: bool
    baseline: str | None
    layer_change: str | None
    evidence: str


@dataclass(frozen=True)
class MatrixView:
    """One identity-matrix check, its cells in the journal's order.

    `sources` / `destinations`: the rows and columns, in order of first appearance.
    `fail_open`: the fail-open cells' ids, from the cells and the output's list (and
    from the exception, for a check that raised on them and returned no cells).
    `holds` / `tolerance_met`: None when unknown (a failed probe; a check in the method).
    `seconds`: what the check took by its own count; `duration`: the activity's.
    """

    phase: str
    probe: str
    matrix: str
    status: str
    holds: bool | None
    tolerance_met: bool | None
    sources: tuple[str, ...]
    destinations: tuple[str, ...]
    cells: tuple[MatrixCell, ...]
    fail_open: tuple[str, ...]
    layer_changes: tuple[str, ...]
    counts: Mapping[str, int]
    checked_at: str
    seconds: float | None
    duration: float | None
    error: str

    def cell(self, source: str, destination: str) -> MatrixCell | None:
        return next(
            (c for c in self.cells if c.source == source and c.destination == destination), None
        )

    @property
    def not_ok(self) -> tuple[MatrixCell, ...]:
        return tuple(c for c in self.cells if not c.ok)


@dataclass(frozen=True)
class Sample:
    """One certificate request of the sampling: `t` seconds after it started."""

    t: float
    target: str
    kind: str
    pod: str
    issued: bool
    code: str
    latency_ms: float | None


@dataclass(frozen=True)
class TargetSummary:
    """A target's figures over the sampling (seconds relative to its start)."""

    target: str
    attempts: int | None
    issued: int | None
    success_rate: float | None
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    first_failure_s: float | None
    last_failure_s: float | None
    longest_outage_s: float | None


@dataclass(frozen=True)
class FaultWindow:
    """When a fault was in effect (see the module's docstring); `ended_by` says what ended it."""

    name: str
    func: str
    start: datetime
    end: datetime
    ended_by: str


@dataclass(frozen=True)
class Window:
    """A :class:`FaultWindow` in seconds since a timeline's start (may fall outside it)."""

    name: str
    func: str
    start_s: float
    end_s: float
    ended_by: str


@dataclass(frozen=True)
class Sampled:
    """What every sampling probe's run has: when it ran and how often, the fault windows
    over it (:class:`Window`), why it stopped short (`reason`), its error.

    `span_s`: the sampled seconds (from ``started_at`` to ``ended_at``, or to the last
    sample's slot).
    """

    phase: str
    probe: str
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    interval_seconds: float | None
    windows: tuple[Window, ...]
    reason: str
    error: str

    def _last_t(self) -> float:
        return 0.0

    @property
    def span_s(self) -> float:
        last = self._last_t() + (self.interval_seconds or 0.0)
        if self.started_at and self.ended_at:
            return max((self.ended_at - self.started_at).total_seconds(), last, 0.0)
        return last


@dataclass(frozen=True)
class Timeline(Sampled):
    """A ``sample_issuance`` run: samples, a summary per target, the faults over it.

    `targets`: the lanes, ``service`` first, then replicas in order of appearance.
    """

    identity: str
    targets: tuple[str, ...]
    samples: tuple[Sample, ...]
    summary: tuple[TargetSummary, ...]

    def _last_t(self) -> float:
        return max((s.t for s in self.samples), default=0.0)


@dataclass(frozen=True)
class CellSample:
    """One round of a sampled identity matrix, for one cell: `t` seconds after it started.

    `pod` / `pod_ip`: the source pod asked ("" when the journal does not say);
    `not_asked`: its source (or a pod destination) had no Ready pod in that round.
    """

    t: float
    verdict: str
    ok: bool
    fail_open: bool
    pod: str
    pod_ip: str
    not_asked: bool


@dataclass(frozen=True)
class VerdictChange:
    """A cell's verdict changed from one round to the next, at `t` (a layer change, the
    way back); `evidence`: what came back in the round it changed ("" unknown);
    `pod` / `pod_ip`: the source pod asked then, `new_pod`: not the one asked before."""

    t: float
    before: str
    after: str
    pod: str
    pod_ip: str
    new_pod: bool
    evidence: str

    @property
    def text(self) -> str:
        return f"{self.before} → {self.after}"


@dataclass(frozen=True)
class CellTimeline(_Cell):
    """One cell of a ``sample_matrix`` run: its samples in time order, its changes."""

    samples: tuple[CellSample, ...]
    changes: tuple[VerdictChange, ...]

    @property
    def fail_open_s(self) -> tuple[float, ...]:
        return tuple(s.t for s in self.samples if s.fail_open)

    @property
    def deviations(self) -> int:
        return sum(1 for s in self.samples if not s.ok)


@dataclass(frozen=True)
class MatrixTimeline(Sampled):
    """A ``sample_matrix`` run: each cell's verdict round after round, the faults over it.

    `holds`: every cell as expected in every round (None: unknown).
    """

    matrix: str
    holds: bool | None
    rounds: int | None
    cells: tuple[CellTimeline, ...]

    def _last_t(self) -> float:
        return max((s.t for c in self.cells for s in c.samples), default=0.0)

    @property
    def fail_open(self) -> tuple[tuple[float, str], ...]:
        """Each fail-open moment: (t, cell), in time order."""
        return tuple(sorted((t, c.id) for c in self.cells for t in c.fail_open_s))

    @property
    def changes(self) -> tuple[tuple[CellTimeline, VerdictChange], ...]:
        """Every cell's changes, in time order."""
        every = [(c, ch) for c in self.cells for ch in c.changes]
        return tuple(sorted(every, key=lambda x: x[1].t))

    @property
    def fail_open_text(self) -> str:
        """``a -> b at 5 s, a -> b at 9 s``: each fail-open moment ("" with none)."""
        return ", ".join(f"{cell} at {describe.at(t)}" for t, cell in self.fail_open)

    @property
    def headline(self) -> str:
        """In one line, for a summary: ``matrix m over time: 9 changes of verdict,
        FAIL-OPEN 2 moment(s)`` (or ``no fail-open``)."""
        n = len(self.changes)
        text = f"matrix {self.matrix} over time: {n} change{'s' if n != 1 else ''} of verdict"
        moments = len(self.fail_open)
        return text + (f", FAIL-OPEN {moments} moment(s)" if moments else ", no fail-open")

    def beside_faults(self, t: float) -> str:
        """Where `t` falls against the fault windows, in words: ``during F (+3.2 s)``,
        ``4.1 s after F ended`` (each that ended, the latest first), ``1.0 s before F``;
        "" with no fault."""
        inside = [w for w in self.windows if w.start_s <= t <= w.end_s]
        if inside:
            return ", ".join(f"during {w.name} (+{t - w.start_s:.1f} s)" for w in inside)
        ended = sorted((w for w in self.windows if w.end_s < t), key=lambda w: -w.end_s)
        if ended:
            return ", ".join(f"{t - w.end_s:.1f} s after {w.name} ended" for w in ended)
        after = [w for w in self.windows if w.start_s > t]
        if after:
            w = min(after, key=lambda w: w.start_s)
            return f"{w.start_s - t:.1f} s before {w.name}"
        return ""


@dataclass(frozen=True)
class IssuanceRow:
    """One target of a ``certificate_issuance`` check (a replica, or the Service)."""

    target: str
    kind: str
    pod: str
    node: str
    issued: bool | None
    code: str
    message: str
    latency_ms: float | None
    san: str
    not_after: str


@dataclass(frozen=True)
class IssuanceCheck:
    """A ``certificate_issuance`` check: its verdict and a row per target."""

    phase: str
    probe: str
    status: str
    ok: bool | None
    reason: str
    via: str
    identity: str
    issuing_replicas: int | None
    replica_count: int | None
    checked_at: str
    rows: tuple[IssuanceRow, ...]
    error: str


@dataclass(frozen=True)
class SafetyNet:
    """What the safety-net control did at the end of the run."""

    nothing_left: bool | None
    what: str
    error: str
    run_id: str = ""  # the run it healed (every ledger entry of the run carries it)
    refused: str = ""  # why the run was not let start (the run Lease was held), if so


@dataclass(frozen=True)
class PodRedirection:
    """One sidecar pod in a redirection check: `pod` is ``namespace/name``."""

    pod: str
    node: str
    verdict: str
    detail: str
    validation_exit_code: int | None


@dataclass(frozen=True)
class RedirectionView:
    """One ``redirection_in_place`` check: its pods and their verdicts."""

    phase: str
    probe: str
    holds: bool | None
    pods: tuple[PodRedirection, ...]
    error: str

    def count(self, verdict: str) -> int:
        return sum(1 for p in self.pods if p.verdict == verdict)


@dataclass(frozen=True)
class Experiment:
    """One journal, read: verdict, hypothesis, what ran, and this pack's figures.

    `key`: a short unique id for the report (from the journal's file name).
    """

    key: str
    journal: str
    title: str
    description: str
    tags: tuple[str, ...]
    status: str
    deviated: bool
    verdict: str
    start: datetime | None
    end: datetime | None
    duration: float | None
    hypothesis_title: str
    before: Hypothesis | None
    after: Hypothesis | None
    method: tuple[Step, ...]
    rollbacks: tuple[Step, ...]
    matrices: tuple[MatrixView, ...]
    timelines: tuple[Timeline, ...]
    issuance_checks: tuple[IssuanceCheck, ...]
    fault_windows: tuple[FaultWindow, ...]
    safety_net: SafetyNet | None
    chaoslib_version: str
    redirections: tuple[RedirectionView, ...] = ()
    matrix_timelines: tuple[MatrixTimeline, ...] = ()

    @property
    def fail_open_count(self) -> int:
        """Fail-open cells over every matrix check of the run, each fail-open moment of a
        sampled matrix counted as one (the worst result)."""
        checks = sum(len(m.fail_open) for m in self.matrices)
        return checks + sum(len(t.fail_open) for t in self.matrix_timelines)

    @property
    def fail_open_cells(self) -> tuple[str, ...]:
        """Each fail-open cell once, in run order (the sampled matrices' last)."""
        checked = [c for m in self.matrices for c in m.fail_open]
        sampled = [cell for t in self.matrix_timelines for _t, cell in t.fail_open]
        return tuple(dict.fromkeys([*checked, *sampled]))

    @property
    def failed_steps(self) -> tuple[Step, ...]:
        return tuple(s for s in self.method if s.failed)


@dataclass(frozen=True)
class Report:
    """The experiments of a day, in the order they started."""

    title: str
    experiments: tuple[Experiment, ...]

    @property
    def fail_open_count(self) -> int:
        return sum(e.fail_open_count for e in self.experiments)

    def verdict_counts(self) -> dict[str, int]:
        """How many experiments got each verdict (only the verdicts that occur)."""
        counts = {v: 0 for v in VERDICTS}
        for e in self.experiments:
            counts[e.verdict] = counts.get(e.verdict, 0) + 1
        return {v: n for v, n in counts.items() if n}

    @property
    def start(self) -> datetime | None:
        return min((e.start for e in self.experiments if e.start), default=None)

    @property
    def end(self) -> datetime | None:
        return max((e.end for e in self.experiments if e.end), default=None)
