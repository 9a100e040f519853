"""The Markdown report: the HTML report's content as text (GitHub / GitLab flavoured).

Same sections as :mod:`chaosmesh_sec.report.html`. Each identity-matrix check is a
table (rows are sources, columns destinations) with the verdict in each cell, the
expectation, a layer change, and **FAIL-OPEN** in bold; the identity matrix over
time is a strip per cell (``4`` an L4 deny, ``7`` an L7 deny, ``a`` allowed, ``!``
FAIL-OPEN ...) and a table of each change of verdict against the faults; the
issuance timeline is a strip per target (``#`` issued, ``x`` failed). Under each
strip the fault windows are drawn with ``~``. Every text is scrubbed and escaped for
a table cell (no ``|``, no line break, no HTML tag).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from datetime import datetime

from chaosmesh_sec.report import describe
from chaosmesh_sec.report.model import (
    REDIRECTION_VERDICTS,
    Experiment,
    Hypothesis,
    IssuanceCheck,
    MatrixCell,
    MatrixTimeline,
    MatrixView,
    RedirectionView,
    Report,
    Sampled,
    Step,
    Timeline,
    Window,
)
from chaosmesh_sec.report.scrub import scrub

__all__ = ["render_markdown"]

STRIP_CHARS = 100
VERDICT_CHARS = {
    "allowed": "a",
    "denied_by_network": "4",
    "denied_by_mesh": "7",
    "mtls_failure": "t",
    "error": "e",
}
"""A round of a cell in its strip (``-``: no pod to ask from, ``!``: FAIL-OPEN)."""
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def _t(value: object) -> str:
    """Scrubbed text, safe in a table cell: one line, ``|`` escaped, no HTML tag."""
    text = " ".join(scrub(str(value)).split())
    return _TAG_START.sub("&lt;", text.replace("\\", "\\\\").replace("|", "\\|"))


def _fenced(value: object) -> str:
    """Scrubbed text for a line inside a code fence: one line, no backtick (so it can
    neither end the fence nor open a new one)."""
    return " ".join(scrub(str(value)).split()).replace("`", "'")


def _code(value: object) -> str:
    text = _t(value).replace("`", "'")
    return f"`{text}`" if text else ""


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A table, then a blank line (cells are escaped already)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines.extend("| " + " | ".join(cell or " " for cell in row) + " |" for row in rows)
    return [*lines, ""]


def _time(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment else "—"


def _yes_no(value: bool | None, yes: str = "yes", no: str = "**no**") -> str:
    return "—" if value is None else (yes if value else no)


def _verdict(word: str) -> str:
    return f"**{word.upper()}**" if word != "held" else word.upper()


# ---------------------------------------------------------------- the document


def render_markdown(report: Report) -> str:
    """The whole report as one Markdown document."""
    lines = [f"# {_t(report.title)}", ""]
    counts = ", ".join(f"{n} {v}" for v, n in report.verdict_counts().items()) or "none"
    n = len(report.experiments)
    span = f"{_time(report.start)} to {_time(report.end)}" if report.start else "times unknown"
    lines += [f"{n} experiment{'s' if n != 1 else ''} · {span} · {counts}", ""]
    lines += _summary(report)
    for e in report.experiments:
        lines += _experiment(e)
    lines += [
        "---",
        "",
        "Verdicts: HELD (completed, the hypothesis held after the method), DEVIATED (it did "
        "not), FAILED / INTERRUPTED / ABORTED (the run did not complete). A fail-open cell "
        "is a request the identity matrix expected to be denied that got through: the worst "
        "result. Tokens and private keys found in the journals are replaced by "
        "[redacted token] / [redacted key].",
        "",
    ]
    return "\n".join(lines)


def _summary(report: Report) -> list[str]:
    lines = ["## Summary", ""]
    total = report.fail_open_count
    if total:
        cells = sorted({c for e in report.experiments for c in e.fail_open_cells})
        listed = _t(", ".join(cells))
        lines += [f"**FAIL-OPEN: {total} cell check(s) let a request through: {listed}**", ""]
    else:
        lines += [
            "No fail-open cell: every request the identity matrices expected to be denied "
            "was denied.",
            "",
        ]
    rows = [
        [
            f"**{e.fail_open_count}**" if e.fail_open_count else "0",
            _verdict(e.verdict),
            _t(e.title),
            _time(e.start),
            describe.seconds(e.duration),
            _t(_checks(e)),
        ]
        for e in report.experiments
    ]
    headers = ["Fail-open cells", "Verdict", "Experiment", "Started", "Duration", "Checked"]
    return lines + _table(headers, rows)


def _checks(e: Experiment) -> str:
    parts = []
    if e.matrices:
        parts.append(f"{len(e.matrices)} matrix check(s)")
    parts.extend(m.headline for m in e.matrix_timelines)
    for t in e.timelines:
        rates = [f"{s.target} {describe.percent(s.success_rate)}" for s in t.summary]
        parts.append("issuance " + ", ".join(rates))
    faults = [s.name for s in e.method if s.is_fault]
    if faults:
        parts.append("faults: " + ", ".join(faults))
    if e.failed_steps:
        parts.append(f"{len(e.failed_steps)} failed activity(ies)")
    return "; ".join(parts) or f"{len(e.method)} activit{'y' if len(e.method) == 1 else 'ies'}"


# ---------------------------------------------------------------- one experiment


def _experiment(e: Experiment) -> list[str]:
    lines = [f"## {_verdict(e.verdict)}: {_t(e.title)}", ""]
    status = f"{e.status}, " + ("deviated" if e.deviated else "not deviated")
    lines += [
        f"- Journal: {_code(e.journal)}",
        f"- Started: {_time(e.start)}; duration {describe.seconds(e.duration) or '—'}",
        f"- Status: {_t(status)}",
        f"- Fail-open cells: {e.fail_open_count}",
    ]
    if e.tags:
        lines.append(f"- Tags: {_t(', '.join(e.tags))}")
    lines.append("")
    if e.description:
        lines += [f"> {_t(e.description)}", ""]
    if e.fail_open_count:
        lines += [f"**FAIL-OPEN: {_t(', '.join(e.fail_open_cells))}**", ""]
    lines += _hypothesis(e)
    if e.matrices:
        lines += ["### Identity matrix", ""]
        for view in e.matrices:
            lines += _matrix(view)
    if e.matrix_timelines:
        lines += ["### Identity matrix over time", ""]
        for m in e.matrix_timelines:
            lines += _matrix_timeline(m)
    if e.timelines or e.issuance_checks:
        lines += ["### Certificate issuance", ""]
        for t in e.timelines:
            lines += _timeline(t)
        for c in e.issuance_checks:
            lines += _issuance_check(c)
    if e.redirections:
        lines += ["### Traffic redirection (sidecar pods)", ""]
        for check in e.redirections:
            lines += _redirection(check)
    lines += _faults(e)
    return lines


def _redirection(view: RedirectionView) -> list[str]:
    counts = ", ".join(f"{view.count(v)} {v}" for v in REDIRECTION_VERDICTS)
    head = f"**{_t(view.phase)}** {_t(view.probe)}: {counts}"
    if view.count("unredirected"):
        head += " (**a pod runs around its proxy**)"
    rows = [
        [
            _t(p.pod),
            _t(p.node),
            f"**{p.verdict}**" if p.verdict == "unredirected" else p.verdict,
            _t(p.detail),
        ]
        for p in view.pods
    ]
    if not rows:
        return [head, ""]
    return [head, "", *_table(["Pod", "Node", "Verdict", "Why"], rows)]


def _hypothesis(e: Experiment) -> list[str]:
    title = f": {_t(e.hypothesis_title)}" if e.hypothesis_title else ""
    rows: list[list[str]] = []
    for phase, state in (("before", e.before), ("after", e.after)):
        rows += _hypothesis_rows(phase, state)
    lines = [f"### Hypothesis{title}", ""]
    if not rows:
        return [*lines, "No steady-state hypothesis.", ""]
    headers = ["Phase", "Probe", "Function", "Status", "Tolerance", "Met", "Result"]
    return lines + _table(headers, rows)


def _hypothesis_rows(phase: str, state: Hypothesis | None) -> list[list[str]]:
    if state is None:
        return [[phase, "not checked", "", "", "", "", ""]]
    if not state.probes:
        return [[phase, "no probe", "", "", "", _yes_no(state.met), ""]]
    return [
        [
            phase,
            _t(p.name),
            _code(p.func),
            _t(p.status),
            _code(p.tolerance),
            _yes_no(p.tolerance_met),
            f"**{_t(p.error)}**" if p.failed else _t(p.what),
        ]
        for p in state.probes
    ]


def _cell_text(cell: MatrixCell | None) -> str:
    if cell is None:
        return "not checked"
    text = f"{cell.verdict} (expected {cell.expected}"
    if cell.layer_change:
        text += f"; Δ was {cell.baseline}" if cell.baseline else f"; Δ {cell.layer_change}"
    text += ")"
    if cell.fail_open:
        return f"**FAIL-OPEN** {_t(text)}"
    if not cell.ok:
        return f"**NOT AS EXPECTED** {_t(text)}"
    return _t(text)


def _matrix(v: MatrixView) -> list[str]:
    holds = "holds" if v.holds else "**does NOT hold**" if v.holds is False else _t(v.status)
    title = f"#### {v.phase}: {_t(v.probe)} (matrix {_t(v.matrix)}): {holds}"
    lines = [title, ""]
    if v.checked_at:
        lines += [f"Checked {_t(v.checked_at)} in {describe.seconds(v.seconds) or '?'}.", ""]
    if v.cells:
        headers = ["source \\ destination", *(_t(d) for d in v.destinations)]
        rows = [
            [f"**{_t(s)}**", *(_cell_text(v.cell(s, d)) for d in v.destinations)] for s in v.sources
        ]
        lines += _table(headers, rows)
    elif v.error:
        lines += [f"No cells in the journal: {_t(v.error)}", ""]
    notes = []
    if v.fail_open:
        notes.append(f"- **FAIL-OPEN: {_t(', '.join(v.fail_open))}**")
    notes += [f"- layer change {_t(change)}" for change in v.layer_changes]
    return lines + ([*notes, ""] if notes else [])


def _timeline(t: Timeline) -> list[str]:
    lines = [f"#### {t.phase}: {_t(t.probe)} (issuance timeline)", ""]
    every = describe.seconds(t.interval_seconds) or "?"
    head = f"A certificate asked of each target every {every}"
    lines += _sampling_head(t, head + (f" as {_code(t.identity)}" if t.identity else ""))
    if t.samples:
        lines += ["```text", *_strips(t), "```", ""]
    rows = [
        [
            _t(s.target),
            _int(s.attempts),
            _int(s.issued),
            describe.percent(s.success_rate),
            *(describe.millis(ms) for ms in (s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms)),
            *(_at(sec) for sec in (s.first_failure_s, s.last_failure_s)),
            describe.seconds(s.longest_outage_s),
        ]
        for s in t.summary
    ]
    headers = ["Target", "Attempts", "Issued", "Success", "p50", "p90", "p99", "max"]
    headers += ["First failure", "Last failure", "Longest outage"]
    return lines + (_table(headers, rows) if rows else [])


def _sampling_head(v: Sampled, head: str, alarm: str = "") -> list[str]:
    """`head` (Markdown), when and for how long; `alarm` in bold, why the sampling
    stopped short, its error; then the fault windows over it."""
    lines = [f"{head}, from {_time(v.started_at)} for {describe.seconds(v.span_s)}.", ""]
    for line, shown in ((alarm, f"**{_t(alarm)}**"), (v.reason, f"Reason: {_t(v.reason)}")):
        lines += [shown, ""] if line else []
    if v.error:
        lines += [f"**{_t(v.error)}**", ""]
    return lines + _fault_list(v.windows)


def _fault_list(windows: Sequence[Window]) -> list[str]:
    """Each fault window of a sampling, in seconds since it started, then a blank line."""
    lines = [
        f"- Fault {_t(w.name)} ({_code(w.func)}): in effect from "
        f"{describe.seconds(w.start_s)} to {describe.seconds(w.end_s)} after the sampling "
        f"started, {_t(w.ended_by)}"
        for w in windows
    ]
    return [*(lines or ["- No fault in effect during the sampling."]), ""]


def _slots(span: float, step: float | None) -> tuple[int, float]:
    """How many characters a strip has for `span` seconds, and the seconds of each."""
    slots = max(1, min(STRIP_CHARS, math.ceil(span / (step or 1.0))))
    return slots, span / slots


def _slot(t: float, slots: int, width: float) -> int:
    return min(slots - 1, max(0, int(t / width)))


def _strip_lines(
    rows: Sequence[tuple[str, str]], windows: Sequence[Window], span: float, width: float
) -> list[str]:
    """Labelled strips, the faults' strip (``~``) under them, the time axis."""
    slots = len(rows[0][1]) if rows else 1
    pad = max((len(label) for label in [*(r[0] for r in rows), "faults"]), default=6)
    lines = [f"{label:<{pad}} |{strip}|" for label, strip in rows]
    if windows:
        strip = [" "] * slots
        for w in windows:
            for k in range(
                max(0, int(w.start_s / width)), min(slots - 1, int(w.end_s / width)) + 1
            ):
                strip[k] = "~"
        lines.append(f"{'faults':<{pad}} |{''.join(strip)}|")
    start, end = "0 s", f"{span:.0f} s"
    lines.append(" " * (pad + 2) + start + " " * max(1, slots - len(start) - len(end)) + end)
    return lines


def _strips(t: Timeline) -> list[str]:
    """A text strip per target: ``#`` issued, ``x`` failed, ``.`` no sample; ``~`` faults."""
    span = t.span_s or 1.0
    slots, width = _slots(span, t.interval_seconds)
    rows = []
    for target in t.targets:
        strip = ["."] * slots
        for s in t.samples:
            if s.target != target:
                continue
            k = _slot(s.t, slots, width)
            strip[k] = "x" if not s.issued or strip[k] == "x" else "#"
        rows.append((_fenced(target), "".join(strip)))
    return _strip_lines(rows, t.windows, span, width)


def _matrix_strips(m: MatrixTimeline) -> list[str]:
    """A strip per cell: each character the verdict of the latest round by then
    (:data:`VERDICT_CHARS`; ``!`` a fail-open in that slot, ``-`` no pod to ask from)."""
    span = m.span_s or 1.0
    slots, width = _slots(span, m.interval_seconds)
    rows = []
    for cell in m.cells:
        strip = [" "] * slots
        for i, s in enumerate(cell.samples):
            following = i + 1 < len(cell.samples)
            end = _slot(cell.samples[i + 1].t, slots, width) - 1 if following else slots - 1
            char = "-" if s.not_asked else VERDICT_CHARS.get(s.verdict, "?")
            first = _slot(s.t, slots, width)
            for k in range(first, max(first, end) + 1):
                if strip[k] != "!":  # a fail-open in a slot stays shown
                    strip[k] = "!" if s.fail_open and k == first else char
        label = f"{_fenced(cell.id)} (expected {_fenced(cell.expected)})"
        rows.append((label, "".join(strip)))
    return _strip_lines(rows, m.windows, span, width)


def _matrix_timeline(m: MatrixTimeline) -> list[str]:
    holds = (
        "?"
        if m.holds is None
        else "every cell as expected in every round"
        if m.holds
        else "**a cell NOT as expected in some round**"
    )
    lines = [f"#### {m.phase}: {_t(m.probe)} (matrix {_t(m.matrix)} over time): {holds}", ""]
    every = describe.seconds(m.interval_seconds) or "?"
    head = f"Every cell checked every {every} ({_int(m.rounds)} rounds)"
    lines += _sampling_head(m, head, f"FAIL-OPEN: {m.fail_open_text}" if m.fail_open else "")
    if m.cells:
        key = ", ".join(f"`{c}` {v}" for v, c in VERDICT_CHARS.items())
        lines += ["```text", *_matrix_strips(m), "```", ""]
        lines += [f"Key: {key}, `-` no pod to ask from, `!` FAIL-OPEN.", ""]
    rows = [
        [
            _t(cell.id),
            describe.at(ch.t),
            f"**{_t(ch.text)}**",
            _t(m.beside_faults(ch.t)),
            _code(ch.pod)
            + (f" {_t(ch.pod_ip)}" if ch.pod_ip else "")
            + (" (another pod than the round before)" if ch.new_pod else ""),
            _t(ch.evidence),
        ]
        for cell, ch in m.changes
    ]
    if not rows:
        return [*lines, "No cell changed verdict.", ""]
    headers = ["Cell", "At", "Verdict change", "Against the faults", "Pod asked", "Evidence"]
    return lines + _table(headers, rows)


def _at(value: float | None) -> str:
    return "—" if value is None else f"at {value:g} s"


def _int(value: int | None) -> str:
    return "—" if value is None else str(value)


def _issuance_check(c: IssuanceCheck) -> list[str]:
    verdict = _yes_no(c.ok, "ok", "**NOT ok**")
    lines = [f"#### {c.phase}: {_t(c.probe)} (certificate issuance): {verdict}", ""]
    facts = []
    if c.issuing_replicas is not None:
        facts.append(f"{c.issuing_replicas}/{_int(c.replica_count)} replicas issuing")
    if c.via:
        facts.append(f"via {_t(c.via)}")
    if c.reason:
        facts.append(_t(c.reason))
    if c.error:
        facts.append(f"**{_t(c.error)}**")
    if facts:
        lines += ["; ".join(facts) + ".", ""]
    rows = [
        [
            _t(r.target),
            _t(r.kind),
            _t(r.node),
            _yes_no(r.issued),
            _t(r.code) + (f" ({_t(r.message)})" if r.message else ""),
            describe.millis(r.latency_ms),
            _code(r.san),
            _t(r.not_after),
        ]
        for r in c.rows
    ]
    headers = ["Target", "Kind", "Node", "Issued", "Code", "Latency", "SAN", "Not after"]
    return lines + (_table(headers, rows) if rows else [])


def _faults(e: Experiment) -> list[str]:
    lines = ["### What ran, and how it was healed", ""]
    lines += _steps(e.method, e) if e.method else ["The method ran no activity.", ""]
    lines += ["#### Rollbacks", ""]
    lines += _steps(e.rollbacks, e) if e.rollbacks else ["No rollback ran.", ""]
    if e.safety_net is not None:
        net = e.safety_net
        text = _t(net.what) + (f" **{_t(net.error)}**" if net.error else "")
        if net.refused:
            text = f"**run not started: {_t(net.refused)}**"
        if net.run_id:
            text = f"run `{_t(net.run_id)}`: {text}"
        lines += ["#### Safety net", "", text or "—", ""]
    return lines


def _steps(steps: Sequence[Step], e: Experiment) -> list[str]:
    windows = {w.name: w for w in e.fault_windows}
    rows = []
    for i, s in enumerate(steps, 1):
        what = f"**{_t(s.error or 'failed')}**" if s.failed else _t(s.what)
        window = windows.get(s.name) if s.phase == "during" else None
        if window is not None and e.start is not None:
            a = (window.start - e.start).total_seconds()
            b = (window.end - e.start).total_seconds()
            what += f" (in effect +{a:.1f} s to +{b:.1f} s, {_t(window.ended_by)})"
        rows.append(
            [
                str(i),
                _t(s.name) + (" (background)" if s.background else ""),
                _code(s.func),
                _t(s.status),
                f"+{s.offset_s:.1f} s" if s.offset_s is not None else "—",
                describe.seconds(s.duration),
                what,
            ]
        )
    headers = ["#", "Activity", "Function", "Status", "Start", "Duration", "What it did"]
    return _table(headers, rows)
