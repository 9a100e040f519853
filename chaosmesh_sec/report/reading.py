"""Chaos Toolkit journals, read into the report's model (:mod:`chaosmesh_sec.report.model`).

No I/O besides :func:`read_journal`; everything else is a pure function of the parsed
journal. :func:`experiment_from_journal` scrubs the journal first
(:func:`~.scrub.scrub_json`): no token or private key reaches the model. Nothing
assumes this pack: a field missing or of another type reads as "unknown", so a
journal of any ``chaos run`` gives at least its verdict, its hypothesis and its
activities.

What this pack's activities returned is recognised by ``provider.module`` and
``func`` and read into its own shape:

- ``chaosmesh_sec.probes.matrix`` / ``identity_matrix``: a :class:`MatrixView` per
  check, phased ``before`` (hypothesis), ``during`` (method), ``after``, ``rollback``;
- ``chaosmesh_sec.probes.matrix`` / ``sample_matrix``: a :class:`MatrixTimeline`, each
  cell's verdict round after round and its changes (derived from the samples, a
  sample that differs from the one before it), with the fault windows over it;
- ``chaosmesh_sec.probes.issuance`` / ``sample_issuance``: a :class:`Timeline`, with
  the :class:`FaultWindow` of each fault drawn over it;
- ``chaosmesh_sec.probes.issuance`` / ``certificate_issuance``: an
  :class:`IssuanceCheck` (a row per replica and the Service);
- the safety net's ``extensions`` record: a :class:`SafetyNet`.

Where each part of a journal is, and this pack's words in it (the safety net's
record, the fail-open a matrix raised), come from :mod:`chaosmesh_sec.journal`.

An experiment's verdict (:data:`VERDICTS`) is Chaos Toolkit's own reading:
``deviated`` when the journal says so, ``held`` when it completed, else its status
(``failed``, ``interrupted``, ``aborted``). One case Chaos Toolkit leaves as
``completed``, the hypothesis not met *before* the method (nothing was tried), is
``failed`` here.

A fault window runs from the start of a fault (an action of a module under
``chaosmesh_sec.faults`` whose function is not a heal) to the earliest of: the end of
the first heal after it (a ``heal_*`` or ``restore_*`` function of the same module,
of the same Deployment for the churn faults, or the leftovers' heal, in the method or
the rollbacks) and the fault's own
``duration_seconds`` after its start (the partition heals itself). A fault with
neither ends with its action (a kill: the ReplicaSet replaces the pods). A fault
whose action failed has no window: this pack's faults undo what they did before
raising.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.journal import (
    MATRIX_FUNC,
    MATRIX_MODULE,
    MATRIX_SAMPLING_FUNC,
    fail_open_raised,
    method_runs,
    rollback_runs,
    safety_net_records,
    steady_state,
)
from chaosmesh_sec.report import describe
from chaosmesh_sec.report.model import (
    MATRIX_VERDICTS,
    REDIRECTION_VERDICTS,
    VERDICTS,
    CellSample,
    CellTimeline,
    Experiment,
    FaultWindow,
    Hypothesis,
    IssuanceCheck,
    IssuanceRow,
    MatrixCell,
    MatrixTimeline,
    MatrixView,
    PodRedirection,
    RedirectionView,
    Report,
    SafetyNet,
    Sample,
    Step,
    TargetSummary,
    Timeline,
    VerdictChange,
    Window,
)
from chaosmesh_sec.report.scrub import scrub_json

__all__ = ["experiment_from_journal", "load_report", "read_journal"]

MATRIX_PROBE = (MATRIX_MODULE, MATRIX_FUNC)
MATRIX_SAMPLING_PROBE = (MATRIX_MODULE, MATRIX_SAMPLING_FUNC)
SAMPLING_PROBE = ("chaosmesh_sec.probes.issuance", "sample_issuance")
ISSUANCE_PROBE = ("chaosmesh_sec.probes.issuance", "certificate_issuance")
REDIRECTION_PROBE = ("chaosmesh_sec.probes.redirection", "redirection_in_place")
LEFTOVERS_MODULE = "chaosmesh_sec.faults.leftovers"
TRACEBACK_LINES = 12


def read_journal(path: Path) -> dict[str, Any]:
    """The journal at `path`, parsed; InvalidInput when it is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(str(path), f"cannot read it: {exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(str(path), f"not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("experiment"), dict):
        raise InvalidInput(str(path), "not a Chaos Toolkit journal (no `experiment` object)")
    return data


def load_report(journals: Sequence[Path], title: str = "") -> Report:
    """Read every journal into a :class:`Report`, experiments in the order they started.

    `title`: the report's; default ``Chaos Toolkit report, <day of the first start>``.
    InvalidInput on a file that is not a journal.
    """
    keys: set[str] = set()
    experiments = []
    for path in journals:
        key = _unique(_slug(path.stem), keys)
        experiments.append(experiment_from_journal(read_journal(path), path.name, key))
    far = datetime.max.replace(tzinfo=UTC)
    ordered = sorted(experiments, key=lambda e: e.start or far)
    if not title:
        first = min((e.start for e in ordered if e.start), default=None)
        title = "Chaos Toolkit report" + (f", {first:%Y-%m-%d}" if first else "")
    return Report(title, tuple(ordered))


def experiment_from_journal(
    journal: Mapping[str, Any], source: str = "", key: str = ""
) -> Experiment:
    """Read one parsed journal, scrubbed of tokens and private keys first.

    `source`: what to call the journal (its file name); `key`: the experiment's id in
    the report (default: from the title).
    """
    journal = _map(scrub_json(journal))
    spec = _map(journal.get("experiment"))
    title = _str(spec.get("title")) or source or "untitled experiment"
    start = _when(journal.get("start"))
    before = _hypothesis("before", steady_state(journal, "before"), start)
    after = _hypothesis("after", steady_state(journal, "after"), start)
    method = _sorted(_step("during", r, start) for r in method_runs(journal))
    rollbacks = _sorted(_step("rollback", r, start) for r in rollback_runs(journal))
    every = [*(before.probes if before else ()), *method, *(after.probes if after else ())]
    every += rollbacks
    windows = _fault_windows(method, rollbacks)
    status = _str(journal.get("status")) or "unknown"
    deviated = journal.get("deviated") is True
    return Experiment(
        key=key or _slug(title),
        journal=source,
        title=title,
        description=_str(spec.get("description")),
        tags=tuple(_str(t) for t in _list(spec.get("tags"))),
        status=status,
        deviated=deviated,
        verdict=_verdict(status, deviated, before),
        start=start,
        end=_when(journal.get("end")),
        duration=describe.number(journal.get("duration")),
        hypothesis_title=_str(_map(spec.get("steady-state-hypothesis")).get("title")),
        before=before,
        after=after,
        method=method,
        rollbacks=rollbacks,
        matrices=tuple(_matrix(s) for s in every if (s.module, s.func) == MATRIX_PROBE),
        timelines=tuple(
            _timeline(s, windows) for s in every if (s.module, s.func) == SAMPLING_PROBE
        ),
        issuance_checks=tuple(_issuance(s) for s in every if (s.module, s.func) == ISSUANCE_PROBE),
        fault_windows=windows,
        safety_net=_safety_net(safety_net_records(journal)),
        chaoslib_version=_str(journal.get("chaoslib-version")),
        redirections=tuple(
            _redirection(s) for s in every if (s.module, s.func) == REDIRECTION_PROBE
        ),
        matrix_timelines=tuple(
            _matrix_timeline(s, windows)
            for s in every
            if (s.module, s.func) == MATRIX_SAMPLING_PROBE
        ),
    )


def _verdict(status: str, deviated: bool, before: Hypothesis | None) -> str:
    if deviated:
        return "deviated"
    if status == "completed":
        return "failed" if before is not None and before.met is False else "held"
    return status if status in VERDICTS else "unknown"


def _hypothesis(phase: str, state: Any, start: datetime | None) -> Hypothesis | None:
    if not isinstance(state, Mapping):
        return None
    met = state.get("steady_state_met")
    probes = tuple(_step(phase, p, start) for p in _list(state.get("probes")))
    return Hypothesis(phase, met if isinstance(met, bool) else None, probes)


def _step(phase: str, result: Any, start: datetime | None) -> Step:
    r = _map(result)
    activity = _map(r.get("activity"))
    provider = _map(activity.get("provider"))
    module = _str(provider.get("module"))
    func = _str(provider.get("func")) or _str(provider.get("path"))
    status = _str(r.get("status")) or "unknown"
    began, ended = _when(r.get("start")), _when(r.get("end"))
    error = describe.last_line(r.get("exception"))
    output = r.get("output")
    met = r.get("tolerance_met")
    return Step(
        phase=phase,
        name=_str(activity.get("name")) or func or "unnamed",
        type=_str(activity.get("type")) or "activity",
        module=module,
        func=func,
        status=status,
        start=began,
        end=ended,
        duration=describe.number(r.get("duration")),
        offset_s=(began - start).total_seconds() if began and start else None,
        output=output,
        error=error,
        traceback=_traceback(r.get("exception")),
        background=activity.get("background") is True,
        what=error if status == "failed" and error else describe.what(module, func, output),
        tolerance=_tolerance(activity.get("tolerance")) if "tolerance" in activity else "",
        tolerance_met=met if isinstance(met, bool) else None,
        arguments=_map(provider.get("arguments")),
    )


def _sorted(steps: Iterable[Step]) -> tuple[Step, ...]:
    """In the order they started (a background activity is journaled when it ends)."""
    far = datetime.max.replace(tzinfo=UTC)
    return tuple(sorted(steps, key=lambda s: s.start or far))


def _traceback(exception: Any) -> str:
    if isinstance(exception, list):
        text = "".join(str(part) for part in exception)
    elif isinstance(exception, str):
        text = exception
    else:
        return ""
    return "\n".join(text.rstrip().splitlines()[-TRACEBACK_LINES:])


def _tolerance(tolerance: Any) -> str:
    """A tolerance in one line: ``$.holds == true``, ``== true``, ``in [0, 3]``..."""
    if isinstance(tolerance, Mapping):
        kind = _str(tolerance.get("type"))
        if kind == "jsonpath":
            expect = f" == {describe.clip(json.dumps(tolerance['expect']), 60)}"
            target = f" {_str(tolerance.get('target'))}" if tolerance.get("target") else ""
            return f"{_str(tolerance.get('path'))}{expect if 'expect' in tolerance else ''}{target}"
        if kind == "regex":
            return f"matches /{_str(tolerance.get('pattern'))}/"
        if kind == "range":
            return f"in {json.dumps(tolerance.get('range'))}"
        if kind == "probe":
            return f"probe {_str(tolerance.get('name'))}"
        return describe.clip(json.dumps(tolerance), 80)
    if isinstance(tolerance, list):
        return f"in {describe.clip(json.dumps(tolerance), 60)}"
    return f"== {describe.clip(json.dumps(tolerance), 60)}"


# ---------------------------------------------------------------- this pack's outputs


def _matrix(step: Step) -> MatrixView:
    o = _map(step.output)
    listed_changes = {
        _str(c.get("cell")): (_str(c.get("baseline")), _str(c.get("verdict")))
        for c in (_map(x) for x in _list(o.get("layer_changes")))
    }
    listed_fail_open = [_str(c) for c in _list(o.get("fail_open"))]
    cells = []
    for c in (_map(x) for x in _list(o.get("cells"))):
        source, destination = _str(c.get("source")), _str(c.get("destination"))
        cid = f"{source} -> {destination}"
        baseline = _str(c.get("baseline")) or None
        change = _str(c.get("layer_change")) or None
        if change is None and cid in listed_changes:
            baseline, verdict = listed_changes[cid]
            change = f"{baseline} -> {verdict}"
        cells.append(
            MatrixCell(
                source=source,
                destination=destination,
                expected=_str(c.get("expected")),
                verdict=_str(c.get("verdict")) or "error",
                ok=c.get("ok") is True,
                fail_open=c.get("fail_open") is True or cid in listed_fail_open,
                unexpected_deny=c.get("unexpected_deny") is True,
                layer_mismatch=c.get("layer_mismatch") is True,
                baseline=baseline,
                layer_change=change,
                evidence=_evidence(c.get("evidence")),
            )
        )
    name = _str(o.get("matrix"))
    fail_open = [c.id for c in cells if c.fail_open] + listed_fail_open
    raised = fail_open_raised(step.error)
    if raised is not None:  # fail_on_fail_open: the check raised, the journal has no output
        name = name or raised.matrix
        named = list(raised.cells)
        fail_open += named
        if not cells:
            cells = [_raised_cell(cid) for cid in dict.fromkeys(named)]
    counts = {k: v for k, v in _map(o.get("counts")).items() if isinstance(v, int)}
    if not counts and cells:
        counts = {v: sum(1 for c in cells if c.verdict == v) for v in MATRIX_VERDICTS}
    holds = o.get("holds")
    if not isinstance(holds, bool) and fail_open:
        holds = False
    return MatrixView(
        phase=step.phase,
        probe=step.name,
        matrix=name or _str(step.arguments.get("matrix")),
        status=step.status,
        holds=holds if isinstance(holds, bool) else None,
        tolerance_met=step.tolerance_met,
        sources=tuple(dict.fromkeys(c.source for c in cells)),
        destinations=tuple(dict.fromkeys(c.destination for c in cells)),
        cells=tuple(cells),
        fail_open=tuple(dict.fromkeys(fail_open)),
        layer_changes=tuple(f"{c.id}: {c.layer_change}" for c in cells if c.layer_change),
        counts=counts,
        checked_at=_str(o.get("checked_at")),
        seconds=describe.number(o.get("seconds")),
        duration=step.duration,
        error=step.error,
    )


def _raised_cell(cid: str) -> MatrixCell:
    """A fail-open cell known only from the exception: a deny was expected, it got through."""
    source, _, destination = cid.partition(" -> ")
    return MatrixCell(
        source=source.strip(),
        destination=destination.strip(),
        expected="denied",
        verdict="allowed",
        ok=False,
        fail_open=True,
        unexpected_deny=False,
        layer_mismatch=False,
        baseline=None,
        layer_change=None,
        evidence="named by the check's exception (it raised: the journal has no evidence)",
    )


_ANSWERED_BY = {"envoy": "Envoy", "app": "the app"}
"""How a cell's evidence names who answered (its ``answered_by``), in a sentence."""


def _evidence(value: Any) -> str:
    """One line of a cell's evidence: ``HTTP 403 from Envoy · RBAC: access denied``."""
    e = _map(value)
    if not e:
        return ""
    parts = []
    code, exit_code = _str(e.get("http_code")), e.get("exit_code")
    if code and code != "000":
        who = _ANSWERED_BY.get(_str(e.get("answered_by")))
        parts.append(f"HTTP {code} from {who}" if who else f"HTTP {code}")
    if exit_code not in (None, 0):
        parts.append(f"curl exit {describe.headline(exit_code)}")
    elif exit_code is None:
        parts.append("no exit code")
    for key in ("body", "error"):
        text = _str(e.get(key)).strip()
        if text:
            parts.append(describe.clip(text, 200))
    return " · ".join(parts)


def _timeline(step: Step, windows: Sequence[FaultWindow]) -> Timeline:
    o = _map(step.output)
    started, ended = _when(o.get("started_at")), _when(o.get("ended_at"))
    samples = []
    for s in (_map(x) for x in _list(o.get("samples"))):
        t = describe.number(s.get("t"))
        if t is None:
            continue
        samples.append(
            Sample(
                t=t,
                target=_str(s.get("target")) or "?",
                kind=_str(s.get("kind")),
                pod=_str(s.get("pod")),
                issued=s.get("issued") is True,
                code=_str(s.get("code")),
                latency_ms=describe.number(s.get("latency_ms")),
            )
        )
    summary = [_target_summary(target, v) for target, v in _map(o.get("summary")).items()]
    seen = dict.fromkeys([*(t.target for t in summary), *(s.target for s in samples)])
    targets = [t for t in seen if t == "service"] + [t for t in seen if t != "service"]
    return Timeline(
        phase=step.phase,
        probe=step.name,
        status=step.status,
        started_at=started,
        ended_at=ended,
        interval_seconds=describe.number(o.get("interval_seconds")),
        identity=_str(o.get("identity")),
        targets=tuple(targets),
        samples=tuple(samples),
        summary=tuple(sorted(summary, key=lambda s: targets.index(s.target))),
        windows=_relative(windows, started),
        reason=_str(o.get("reason")),
        error=step.error,
    )


def _relative(windows: Sequence[FaultWindow], started: datetime | None) -> tuple[Window, ...]:
    """The fault windows in seconds since a sampling `started` (none if it is unknown)."""
    if started is None:
        return ()
    return tuple(
        Window(
            w.name,
            w.func,
            (w.start - started).total_seconds(),
            (w.end - started).total_seconds(),
            w.ended_by,
        )
        for w in windows
    )


def _matrix_timeline(step: Step, windows: Sequence[FaultWindow]) -> MatrixTimeline:
    o = _map(step.output)
    started = _when(o.get("started_at"))
    cells = []
    for c in (_map(x) for x in _list(o.get("cells"))):
        source, destination = _str(c.get("source")), _str(c.get("destination"))
        if not source and " -> " in _str(c.get("cell")):
            source, _, destination = _str(c.get("cell")).partition(" -> ")
        samples = sorted(
            (s for s in (_cell_sample(_map(x)) for x in _list(c.get("samples"))) if s),
            key=lambda s: s.t,
        )
        told = {describe.number(_map(x).get("t")): _map(x) for x in _list(c.get("changes"))}
        changes = [
            VerdictChange(
                t=now.t,
                before=before.verdict,
                after=now.verdict,
                pod=now.pod,
                pod_ip=now.pod_ip,
                new_pod=bool(now.pod) and now.pod != before.pod,
                evidence=_evidence(told.get(now.t, {}).get("evidence")),
            )
            for before, now in pairwise(samples)
            if now.verdict != before.verdict
        ]
        cells.append(
            CellTimeline(
                source=source,
                destination=destination,
                expected=_str(c.get("expected")),
                samples=tuple(samples),
                changes=tuple(changes),
            )
        )
    holds = o.get("holds")
    return MatrixTimeline(
        phase=step.phase,
        probe=step.name,
        status=step.status,
        matrix=_str(o.get("matrix")) or _str(step.arguments.get("matrix")),
        started_at=started,
        ended_at=_when(o.get("ended_at")),
        interval_seconds=describe.number(o.get("interval_seconds")),
        holds=holds if isinstance(holds, bool) else None,
        rounds=_int(o.get("rounds")),
        cells=tuple(cells),
        windows=_relative(windows, started),
        reason=_str(o.get("reason")),
        error=step.error,
    )


def _cell_sample(s: Mapping[str, Any]) -> CellSample | None:
    """One sample of a cell (None without a time); `not_asked` when it says it had no pod."""
    t = describe.number(s.get("t"))
    if t is None:
        return None
    verdict = _str(s.get("verdict"))
    return CellSample(
        t=t,
        verdict=verdict if verdict in MATRIX_VERDICTS else "error",
        ok=s.get("ok") is True,
        fail_open=s.get("fail_open") is True,
        pod=_str(s.get("pod")),
        pod_ip=_str(s.get("pod_ip")),
        not_asked="pod" in s and s.get("pod") is None and verdict == "error",
    )


def _target_summary(target: str, value: Any) -> TargetSummary:
    s = _map(value)
    latency = _map(s.get("latency_ms"))
    return TargetSummary(
        target=target,
        attempts=_int(s.get("attempts")),
        issued=_int(s.get("issued")),
        success_rate=describe.number(s.get("success_rate")),
        p50_ms=describe.number(latency.get("p50")),
        p90_ms=describe.number(latency.get("p90")),
        p99_ms=describe.number(latency.get("p99")),
        max_ms=describe.number(latency.get("max")),
        first_failure_s=describe.number(s.get("first_failure_s")),
        last_failure_s=describe.number(s.get("last_failure_s")),
        longest_outage_s=describe.number(s.get("longest_outage_s")),
    )


def _issuance(step: Step) -> IssuanceCheck:
    o = _map(step.output)
    targets = [_map(r) for r in _list(o.get("replicas"))]
    if isinstance(o.get("service"), Mapping):
        targets.append(_map(o.get("service")))
    rows = []
    for r in targets:
        leaf = _map(r.get("leaf"))
        issued = r.get("issued")
        rows.append(
            IssuanceRow(
                target=_str(r.get("target")) or _str(r.get("pod")),
                kind=_str(r.get("kind")),
                pod=_str(r.get("pod")),
                node=_str(r.get("node")),
                issued=issued if isinstance(issued, bool) else None,
                code=_str(r.get("code")),
                message=_str(r.get("message")),
                latency_ms=describe.number(r.get("latency_ms")),
                san=", ".join(_str(u) for u in _list(leaf.get("spiffe_uris"))),
                not_after=_str(leaf.get("not_after")),
            )
        )
    ok = o.get("ok")
    return IssuanceCheck(
        phase=step.phase,
        probe=step.name,
        status=step.status,
        ok=ok if isinstance(ok, bool) else None,
        reason=_str(o.get("reason")),
        via=_str(o.get("via")),
        identity=_str(o.get("identity")),
        issuing_replicas=_int(o.get("issuing_replicas")),
        replica_count=_int(o.get("replica_count")),
        checked_at=_str(o.get("checked_at")),
        rows=tuple(rows),
        error=step.error,
    )


def _redirection(step: Step) -> RedirectionView:
    out = _map(step.output)
    pods = []
    for raw in (_map(p) for p in _list(out.get("pods"))):
        verdict = _str(raw.get("verdict"))
        pods.append(
            PodRedirection(
                pod=f"{_str(raw.get('namespace'))}/{_str(raw.get('pod'))}",
                node=_str(raw.get("node")),
                verdict=verdict if verdict in REDIRECTION_VERDICTS else "unknown",
                detail=_str(raw.get("detail")),
                validation_exit_code=_int(raw.get("validation_exit_code")),
            )
        )
    holds = out.get("holds")
    return RedirectionView(
        phase=step.phase,
        probe=step.name,
        holds=holds if isinstance(holds, bool) else None,
        pods=tuple(pods),
        error=step.error,
    )


def _safety_net(records: Sequence[Mapping[str, Any]]) -> SafetyNet | None:
    """The run's first safety-net record, read (None when the run has none)."""
    if not records:
        return None
    healed = _map(records[0].get("healed"))
    left = healed.get("nothing_left")
    refused = _str(_map(records[0].get("lease")).get("refused"))
    return SafetyNet(
        nothing_left=left if isinstance(left, bool) else None,
        what=describe.safety_net_what(healed) if healed else "",
        error=_str(records[0].get("error")),
        run_id=_str(records[0].get("run_id")),
        refused=refused,
    )


def _fault_windows(method: Sequence[Step], rollbacks: Sequence[Step]) -> tuple[FaultWindow, ...]:
    heals = [s for s in (*method, *rollbacks) if s.is_heal and s.start and s.end]
    heals.sort(key=lambda s: s.start or datetime.min.replace(tzinfo=UTC))
    windows = []
    for fault in method:
        if not fault.is_fault or fault.status != "succeeded" or fault.start is None:
            continue
        began = fault.start
        ends: list[tuple[datetime, str]] = []
        heal = next((h for h in heals if h.start and h.start >= began and _heals(h, fault)), None)
        if heal is not None and heal.end is not None:
            ends.append((heal.end, f"healed by {heal.name}"))
        lasts = describe.number(_map(fault.output).get("duration_seconds"))
        if lasts is None:
            lasts = describe.number(fault.arguments.get("duration_seconds"))
        if lasts is not None:
            ends.append((began + timedelta(seconds=lasts), f"self-heals after {lasts:g} s"))
        end, why = min(ends) if ends else (fault.end or began, "ends with the action")
        windows.append(FaultWindow(fault.name, fault.func, began, max(end, began), why))
    return tuple(windows)


def _heals(heal: Step, fault: Step) -> bool:
    """Does `heal` undo `fault`: same module (the leftovers' heal undoes any), same workload?"""
    if heal.status != "succeeded" or heal.module not in (fault.module, LEFTOVERS_MODULE):
        return False
    healed, broken = _workloads(heal), _workloads(fault)
    return not (healed and broken) or bool(healed & broken)


def _workloads(step: Step) -> set[str]:
    """The Deployments a churn activity changed or restored (``victim`` for the IP hunt)."""
    o = _map(step.output)
    names = {_str(o.get("victim")) if step.func == "hunt_recycled_ip" else _str(o.get("name"))}
    namespace = _str(o.get("namespace"))
    return {f"{namespace}/{n}" for n in names if n}


# ---------------------------------------------------------------- values


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else describe.headline(value)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _when(value: Any) -> datetime | None:
    """An ISO 8601 time (naive: taken as UTC), else None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:60].rstrip("-") or "experiment"


def _unique(key: str, taken: set[str]) -> str:
    candidate, n = key, 2
    while candidate in taken:
        candidate, n = f"{key}-{n}", n + 1
    taken.add(candidate)
    return candidate
