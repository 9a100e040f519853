"""The JUnit XML report, for CI (Jenkins, GitLab): one test suite per journal.

A ``<testsuites>`` root; per experiment a ``<testsuite>`` named after its title, whose
test cases are:

- ``hypothesis before`` and ``hypothesis after``: a ``<failure>`` when the hypothesis
  was not met (or the run deviated), its message naming the fail-open cells
  (``fail-open: sleep-v2 -> helloworld-v1``) and the probes out of tolerance;
  ``<skipped>`` when it was not checked;
- one per identity-matrix check in the method (``during: <probe>``): a ``<failure>``
  on a fail-open cell or a cell not as expected, an ``<error>`` when the check raised
  for another reason;
- one per identity matrix sampled over time in the method (``during: <probe>``): a
  ``<failure>`` naming each fail-open moment (a change of layer, or a cell not as
  expected while a fault is on, is the timeline's to show, not a failure);
- one per failed activity of the method, and of the rollbacks (a failed rollback may
  leave a fault behind), and the safety net's own error: an ``<error>`` with the
  exception's last line.

Counts (``tests``, ``failures``, ``errors``, ``skipped``) and ``time`` (seconds) are
on every suite and on the root. Every text is scrubbed and stripped of the characters
XML 1.0 cannot hold.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from chaosmesh_sec.journal import (
    FAIL_OPEN_ERROR,
    MATRIX_FUNC,
    MATRIX_MODULE,
    MATRIX_SAMPLING_FUNC,
)
from chaosmesh_sec.report import describe
from chaosmesh_sec.report.model import (
    Experiment,
    Hypothesis,
    MatrixTimeline,
    MatrixView,
    Report,
    Step,
)
from chaosmesh_sec.report.scrub import scrub

__all__ = ["render_junit"]

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
MESSAGE_CHARS = 500


def _x(value: object) -> str:
    """Scrubbed text XML 1.0 can hold."""
    return _NOT_XML.sub("", scrub(str(value)))


@dataclass(frozen=True)
class _Case:
    """One test case: `outcome` is None (passed), ``failure``, ``error`` or ``skipped``."""

    name: str
    seconds: float
    outcome: str | None = None
    message: str = ""
    kind: str = ""
    details: str = ""


def render_junit(report: Report) -> str:
    """The whole report as a JUnit XML document."""
    root = ET.Element("testsuites", name=_x(report.title))
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    seconds = 0.0
    for i, e in enumerate(report.experiments):
        cases = _cases(e)
        suite = ET.SubElement(root, "testsuite", name=_x(e.title), id=str(i))
        counts = {
            "tests": len(cases),
            "failures": sum(1 for c in cases if c.outcome == "failure"),
            "errors": sum(1 for c in cases if c.outcome == "error"),
            "skipped": sum(1 for c in cases if c.outcome == "skipped"),
        }
        for key, n in counts.items():
            suite.set(key, str(n))
            totals[key] += n
        took = e.duration if e.duration is not None else sum(c.seconds for c in cases)
        seconds += took
        suite.set("time", f"{took:.3f}")
        if e.start is not None:
            suite.set("timestamp", f"{e.start:%Y-%m-%dT%H:%M:%S}")
        _properties(suite, e)
        for case in cases:
            _case(suite, e, case)
        ET.SubElement(suite, "system-out").text = _x(_story(e))
    for key, n in totals.items():
        root.set(key, str(n))
    root.set("time", f"{seconds:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _properties(suite: ET.Element, e: Experiment) -> None:
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("journal", e.journal),
        ("verdict", e.verdict),
        ("status", e.status),
        ("deviated", str(e.deviated).lower()),
        ("fail_open_count", str(e.fail_open_count)),
    ):
        ET.SubElement(props, "property", name=name, value=_x(value))


def _case(suite: ET.Element, e: Experiment, case: _Case) -> None:
    element = ET.SubElement(
        suite,
        "testcase",
        name=_x(case.name),
        classname=_x(f"chaosmesh-sec.{e.key}"),
        time=f"{case.seconds:.3f}",
    )
    if case.outcome is None:
        return
    outcome = ET.SubElement(
        element, case.outcome, message=_x(describe.clip(case.message, MESSAGE_CHARS))
    )
    if case.kind:
        outcome.set("type", _x(case.kind))
    if case.details:
        outcome.text = _x(case.details)


def _story(e: Experiment) -> str:
    """What ran, one line per activity (the suite's standard output)."""
    lines = [f"{e.title}: {e.verdict} ({e.status}, deviated: {str(e.deviated).lower()})"]
    for s in (*e.method, *e.rollbacks):
        what = s.error if s.failed else s.what
        lines.append(f"[{s.phase}] {s.name} ({s.func}) {s.status}: {what}")
    if e.safety_net is not None:
        lines.append(f"[safety net] {e.safety_net.what or e.safety_net.error}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the cases


def _cases(e: Experiment) -> list[_Case]:
    cases = [_hypothesis_case(e, "before", e.before), _hypothesis_case(e, "after", e.after)]
    during = iter(m for m in e.matrices if m.phase == "during")
    sampled = iter(m for m in e.matrix_timelines if m.phase == "during")
    for step in e.method:
        if (step.module, step.func) == (MATRIX_MODULE, MATRIX_FUNC):
            view = next(during, None)
            if view is not None:
                cases.append(_matrix_case(view))
                continue
        if (step.module, step.func) == (MATRIX_MODULE, MATRIX_SAMPLING_FUNC) and not step.failed:
            timeline = next(sampled, None)
            if timeline is not None:
                cases.append(_timeline_case(timeline, step))
                continue
        if step.failed:
            cases.append(_step_case("activity", step))
    cases.extend(_step_case("rollback", s) for s in e.rollbacks if s.failed)
    if e.safety_net is not None and e.safety_net.error:
        cases.append(
            _Case(
                "safety net", 0.0, "error", e.safety_net.error, "RollbackFailed", e.safety_net.error
            )
        )
    return cases


def _hypothesis_case(e: Experiment, phase: str, state: Hypothesis | None) -> _Case:
    name = f"hypothesis {phase}" + (f": {e.hypothesis_title}" if e.hypothesis_title else "")
    if state is None:
        return _Case(name, 0.0, "skipped", "not checked")
    seconds = sum(p.duration or 0.0 for p in state.probes)
    deviated = phase == "after" and e.deviated
    if state.met is not False and not deviated:
        return _Case(name, seconds)
    views = [m for m in e.matrices if m.phase == phase]
    cells = list(dict.fromkeys(c for m in views for c in m.fail_open))
    if not cells and deviated:
        cells = list(e.fail_open_cells)
    problems = []
    if cells:
        problems.append("fail-open: " + ", ".join(cells))
    if state.out_of_tolerance:
        problems.append("out of tolerance: " + ", ".join(state.out_of_tolerance))
    message = "; ".join(problems) or ("the experiment deviated" if deviated else "not met")
    details = "\n".join(
        f"{p.name} ({p.func}): {p.status}, tolerance {p.tolerance or '?'} "
        f"{'met' if p.tolerance_met else 'NOT met'}: {p.error if p.failed else p.what}"
        for p in state.probes
    )
    kind = FAIL_OPEN_ERROR if cells else "Deviated"
    return _Case(name, seconds, "failure", message, kind, details)


def _matrix_case(view: MatrixView) -> _Case:
    name = f"during: {view.probe}" + (f" (matrix {view.matrix})" if view.matrix else "")
    seconds = view.duration or view.seconds or 0.0
    details = "\n".join(
        f"{c.id}: {c.verdict} (expected {c.expected}){' FAIL-OPEN' if c.fail_open else ''}"
        f"{f' layer change {c.layer_change}' if c.layer_change else ''}"
        for c in view.cells
    )
    if view.fail_open:
        message = "fail-open: " + ", ".join(view.fail_open)
        return _Case(name, seconds, "failure", message, FAIL_OPEN_ERROR, details or view.error)
    not_ok = view.not_ok
    if view.holds is False or not_ok:
        message = "not as expected: " + ", ".join(
            f"{c.id} {c.verdict} (expected {c.expected})" for c in not_ok
        )
        return _Case(name, seconds, "failure", message, "MatrixDoesNotHold", details)
    if view.status == "failed":
        return _Case(name, seconds, "error", view.error or "failed", _kind(view.error), view.error)
    return _Case(name, seconds)


def _timeline_case(m: MatrixTimeline, step: Step) -> _Case:
    name = f"during: {m.probe}" + (f" (matrix {m.matrix} over time)" if m.matrix else "")
    details = "\n".join(
        f"{cell.id} at {describe.at(ch.t)}: {ch.text}"
        + (f" ({m.beside_faults(ch.t)})" if m.windows else "")
        for cell, ch in m.changes
    )
    if m.fail_open:
        message = f"fail-open: {m.fail_open_text}"
        return _Case(name, step.duration or 0.0, "failure", message, FAIL_OPEN_ERROR, details)
    return _Case(name, step.duration or 0.0)


def _step_case(prefix: str, step: Step) -> _Case:
    message = step.error or f"{step.name} failed"
    return _Case(
        f"{prefix}: {step.name}",
        step.duration or 0.0,
        "error",
        message,
        _kind(step.error),
        step.traceback or message,
    )


def _kind(error: str) -> str:
    """The exception's class in its last line (``chaoslib.exceptions.ActivityFailed: ...``)."""
    head, sep, _ = error.partition(":")
    return head.strip() if sep and " " not in head.strip() else "ActivityFailed"
