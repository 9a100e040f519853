"""The HTML report: one self-contained page (inline CSS and SVG, no script, no link out).

Sections, in order: the day's summary (one row per experiment: fail-open cells first,
its verdict, its checks), then per experiment its facts, hypothesis, identity-matrix
heatmaps (before, during, after), the identity matrix over time (a lane per cell, the
fault windows shaded, each change of verdict listed against them), certificate
issuance (timeline, summary, checks) and what the faults did and how they were healed
(method, rollbacks, safety net).

Every text is escaped (:func:`html.escape`) and scrubbed. The numbers a reader acts
on carry ``data-`` attributes (``data-experiment``, ``data-verdict``,
``data-fail-open-count``, ``data-cell``, ``data-success-rate``, ``data-start-s`` ...),
so a test can hold the page against the journals. Dark text on a light page; prints
one experiment per page.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape

from chaosmesh_sec.report import describe, svg
from chaosmesh_sec.report.model import (
    Experiment,
    FaultWindow,
    Hypothesis,
    IssuanceCheck,
    MatrixTimeline,
    MatrixView,
    RedirectionView,
    Report,
    Sampled,
    Step,
    Timeline,
    VerdictChange,
    Window,
)
from chaosmesh_sec.report.scrub import scrub

__all__ = ["render_html"]

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial,
  sans-serif; color: #1b1f24; background: #fff; margin: 0 auto; max-width: 1180px;
  padding: 24px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 36px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #d0d7de; }
h3 { font-size: 16px; margin: 22px 0 6px; }
h4 { font-size: 14px; margin: 14px 0 4px; }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: 12px; }
.meta, .muted { color: #57606a; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 10px; border: 1px solid;
  font-size: 12px; font-weight: 700; letter-spacing: .04em; text-transform: uppercase; }
.v-held { color: #0f5323; background: #dcf3e1; border-color: #1a7f37; }
.v-deviated, .v-failed { color: #fff; background: #c00018; border-color: #8e0012; }
.v-interrupted, .v-aborted, .v-unknown { color: #5c3b00; background: #fff0c2;
  border-color: #9a6700; }
td.fo-bad { color: #fff; background: #c00018; font-weight: 800; }
td.fo-zero { color: #1a7f37; font-weight: 600; }
.alarm { border: 3px solid #c00018; color: #c00018; font-weight: 700; padding: 6px 10px; }
span.alarm { display: inline-block; margin: 4px 0; }
.ok { color: #1a7f37; }
.bad { color: #c00018; font-weight: 600; }
.warn { color: #8a4b00; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; border: 1px solid #d0d7de; border-radius: 4px; padding: 8px;
  break-inside: avoid; max-width: 100%; }
figcaption { font-size: 13px; margin-bottom: 6px; }
.phase { font-weight: 800; text-transform: uppercase; letter-spacing: .05em; }
svg { max-width: 100%; height: auto; }
svg.legend { display: block; margin: 4px 0 8px; }
pre { white-space: pre-wrap; word-break: break-word; font-size: 12px; background: #f6f8fa;
  padding: 6px 8px; margin: 4px 0; }
ul.compact { margin: 4px 0 10px; padding-left: 20px; }
@media print {
  body { padding: 0; max-width: none; font-size: 11px; }
  section.experiment { break-before: page; }
  figure, tr { break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def _e(value: object) -> str:
    """Escaped and scrubbed text (content or a quoted attribute)."""
    return escape(scrub(str(value)), quote=True)


def _attrs(**values: object) -> str:
    """``data-`` attributes (``fail_open_count`` -> ``data-fail-open-count``); None skipped."""
    out = []
    for key, value in values.items():
        if value is None:
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        out.append(f' data-{key.replace("_", "-")}="{_e(text)}"')
    return "".join(out)


def _badge(verdict: str) -> str:
    return f'<span class="badge v-{_e(verdict)}"{_attrs(verdict=verdict)}>{_e(verdict)}</span>'


def _yes_no(value: bool | None, yes: str = "yes", no: str = "no") -> str:
    if value is None:
        return '<span class="muted">—</span>'
    return f'<span class="ok">{yes}</span>' if value else f'<span class="bad">{no}</span>'


def _status(status: str) -> str:
    cls = "ok" if status == "succeeded" else "bad" if status == "failed" else "warn"
    return f'<span class="{cls}">{_e(status)}</span>'


def _time(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment else "—"


def _table(
    headers: Sequence[str], rows: Iterable[str], cls: str, caption: str = "", **data: object
) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    cap = f"<caption>{caption}</caption>" if caption else ""
    body = "".join(rows)
    return (
        f'<table class="{cls}"{_attrs(**data)}>{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


# ---------------------------------------------------------------- the page


def render_html(report: Report) -> str:
    """The whole report as one HTML document."""
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="chaosmesh-sec report">',
        f"<title>{_e(report.title)}</title><style>{CSS}</style></head><body>",
        _header(report),
        _summary(report),
        *(_experiment(e) for e in report.experiments),
        '<footer class="meta"><p>Verdicts: <b>held</b> (completed, the hypothesis held '
        "after the method), <b>deviated</b> (it did not), <b>failed</b> / "
        "<b>interrupted</b> / <b>aborted</b> (the run did not complete). A fail-open cell "
        "is a request the identity matrix expected to be denied that got through: the "
        "worst result. Tokens and private keys found in the journals are replaced by "
        "[redacted token] / [redacted key].</p></footer>",
        "</body></html>\n",
    ]
    return "".join(parts)


def _header(report: Report) -> str:
    counts = ", ".join(f"{n} {v}" for v, n in report.verdict_counts().items()) or "none"
    span = f"{_time(report.start)} to {_time(report.end)}" if report.start else "times unknown"
    n = len(report.experiments)
    return (
        f'<header><h1>{_e(report.title)}</h1><p class="meta">{n} experiment'
        f"{'s' if n != 1 else ''} · {_e(span)} · {_e(counts)}</p></header>"
    )


def _summary(report: Report) -> str:
    total = report.fail_open_count
    if total:
        cells = sorted({c for e in report.experiments for c in e.fail_open_cells})
        line = (
            f'<p class="alarm" data-total-fail-open="{total}">FAIL-OPEN: {total} cell check'
            f"{'s' if total != 1 else ''} let through a request that should have been denied"
            f" ({_e(', '.join(cells))}).</p>"
        )
    else:
        line = (
            '<p class="ok" data-total-fail-open="0">No fail-open cell: every request the '
            "identity matrices expected to be denied was denied.</p>"
        )
    rows = []
    for e in report.experiments:
        fo_cls = "fo-bad" if e.fail_open_count else "fo-zero"
        rows.append(
            f"<tr{_attrs(experiment=e.key, verdict=e.verdict, fail_open_count=e.fail_open_count)}>"
            f'<td class="num {fo_cls}">{e.fail_open_count}</td>'
            f"<td>{_badge(e.verdict)}</td>"
            f'<td><a href="#exp-{_e(e.key)}">{_e(e.title)}</a></td>'
            f"<td>{_e(_time(e.start))}</td>"
            f'<td class="num">{_e(describe.seconds(e.duration))}</td>'
            f"<td>{_checks(e)}</td></tr>"
        )
    table = _table(
        ["Fail-open cells", "Verdict", "Experiment", "Started", "Duration", "What was checked"],
        rows,
        "summary",
    )
    return (
        f'<section id="summary"{_attrs(experiments=len(report.experiments))}>'
        f"<h2>Summary</h2>{line}{table}</section>"
    )


def _checks(e: Experiment) -> str:
    """What the experiment checked and broke, as escaped HTML (failures in red)."""
    parts = []
    if e.matrices:
        parts.append(_e(f"{len(e.matrices)} matrix check{'s' if len(e.matrices) != 1 else ''}"))
    for m in e.matrix_timelines:
        line = _e(m.headline)
        parts.append(f'<span class="bad">{line}</span>' if m.fail_open else line)
    for t in e.timelines:
        rates = [f"{s.target} {describe.percent(s.success_rate)}" for s in t.summary]
        parts.append(_e("issuance " + ", ".join(rates)))
    faults = [s.name for s in e.method if s.is_fault]
    if faults:
        parts.append(_e("faults: " + ", ".join(faults)))
    failed = [s.name for s in (*e.method, *e.rollbacks) if s.failed]
    if failed:
        parts.append(f'<span class="bad">failed: {_e(", ".join(failed))}</span>')
    n = len(e.method)
    return "; ".join(parts) or _e(f"{n} activit{'y' if n == 1 else 'ies'}")


# ---------------------------------------------------------------- one experiment


def _experiment(e: Experiment) -> str:
    status = f"{e.status}, " + ("deviated" if e.deviated else "not deviated")
    facts = [
        ("Journal", f"<code>{_e(e.journal)}</code>"),
        ("Started", _e(_time(e.start))),
        ("Duration", _e(describe.seconds(e.duration)) or "—"),
        ("Status", _e(status)),
    ]
    if e.tags:
        facts.append(("Tags", _e(", ".join(e.tags))))
    if e.chaoslib_version:
        facts.append(("chaoslib", _e(e.chaoslib_version)))
    rows = "".join(f'<tr><th scope="row">{k}</th><td>{v}</td></tr>' for k, v in facts)
    parts = [
        f'<section class="experiment" id="exp-{_e(e.key)}"'
        f"{_attrs(experiment=e.key, verdict=e.verdict, status=e.status, deviated=e.deviated)}"
        f"{_attrs(fail_open_count=e.fail_open_count)}>",
        f"<h2>{_badge(e.verdict)} {_e(e.title)}</h2>",
        f'<table class="facts">{rows}</table>',
    ]
    if e.description:
        parts.append(f'<p class="description">{_e(e.description)}</p>')
    if e.fail_open_count:
        parts.append(
            f'<p class="alarm">FAIL-OPEN: {_e(", ".join(e.fail_open_cells))} '
            f"({e.fail_open_count} cell check{'s' if e.fail_open_count != 1 else ''}).</p>"
        )
    parts.append(_hypothesis(e))
    if e.matrices:
        parts.append(_matrices(e.matrices))
    if e.matrix_timelines:
        parts.append("<h3>Identity matrix over time</h3>" + svg.matrix_timeline_legend())
        parts.extend(_matrix_timeline(m) for m in e.matrix_timelines)
    if e.timelines or e.issuance_checks:
        parts.append("<h3>Certificate issuance</h3>")
        parts.extend(_timeline(t) for t in e.timelines)
        parts.extend(_issuance_check(c) for c in e.issuance_checks)
    if e.redirections:
        parts.append(_redirections(e.redirections))
    parts.append(_faults(e))
    parts.append("</section>")
    return "".join(parts)


def _hypothesis(e: Experiment) -> str:
    title = f": {_e(e.hypothesis_title)}" if e.hypothesis_title else ""
    rows = []
    for phase, state in (("before", e.before), ("after", e.after)):
        rows.extend(_hypothesis_rows(phase, state))
    if not rows:
        return f'<h3>Hypothesis{title}</h3><p class="muted">No steady-state hypothesis.</p>'
    headers = ["Phase", "Probe", "Function", "Status", "Tolerance", "Met", "Result"]
    return f"<h3>Hypothesis{title}</h3>" + _table(headers, rows, "hypothesis")


def _hypothesis_rows(phase: str, state: Hypothesis | None) -> list[str]:
    if state is None:
        return [
            f'<tr{_attrs(phase=phase)}><td class="phase">{phase}</td>'
            '<td colspan="6" class="muted">not checked</td></tr>'
        ]
    if not state.probes:
        met = _yes_no(state.met, "met", "NOT met")
        return [
            f'<tr{_attrs(phase=phase, met=state.met)}><td class="phase">{phase}</td>'
            f'<td colspan="6">no probe; {met}</td></tr>'
        ]
    rows = []
    for p in state.probes:
        result = f'<span class="bad">{_e(p.error)}</span>' if p.failed else _e(p.what)
        rows.append(
            f"<tr{_attrs(phase=phase, probe=p.name, tolerance_met=p.tolerance_met)}>"
            f'<td class="phase">{phase}</td><td>{_e(p.name)}</td>'
            f"<td><code>{_e(p.func)}</code></td><td>{_status(p.status)}</td>"
            f"<td><code>{_e(p.tolerance)}</code></td>"
            f"<td>{_yes_no(p.tolerance_met)}</td><td>{result}</td></tr>"
        )
    return rows


def _matrices(views: Sequence[MatrixView]) -> str:
    figures = "".join(_matrix(v) for v in views)
    return f'<h3>Identity matrix</h3>{svg.matrix_legend()}<div class="figures">{figures}</div>'


def _matrix(v: MatrixView) -> str:
    if v.holds is None:
        holds = f'<span class="bad">{_e(v.status)}</span>'
    else:
        holds = _yes_no(v.holds, "holds", "does NOT hold")
    caption = [
        f'<span class="phase">{_e(v.phase)}</span> {_e(v.probe)}',
        f'<br><span class="muted">matrix {_e(v.matrix)}</span> · {holds}',
    ]
    if v.tolerance_met is not None:
        caption.append(f" · tolerance {_yes_no(v.tolerance_met, 'met', 'NOT met')}")
    if v.checked_at:
        caption.append(f'<br><span class="muted">checked {_e(v.checked_at)}')
        caption.append(f" in {_e(describe.seconds(v.seconds))}</span>" if v.seconds else "</span>")
    notes = []
    if v.fail_open:
        notes.append(f'<li class="bad">FAIL-OPEN: {_e(", ".join(v.fail_open))}</li>')
    notes.extend(f"<li>layer change {_e(change)}</li>" for change in v.layer_changes)
    for c in v.not_ok:
        if not c.fail_open:
            notes.append(
                f'<li class="warn">{_e(c.id)}: {_e(c.verdict)}, expected {_e(c.expected)}</li>'
            )
    if v.error:
        notes.append(f'<li class="bad">{_e(v.error)}</li>')
    listed = f'<ul class="compact">{"".join(notes)}</ul>' if notes else ""
    data = _attrs(
        phase=v.phase,
        probe=v.probe,
        matrix=v.matrix,
        holds=v.holds,
        fail_open_count=len(v.fail_open),
    )
    return (
        f'<figure class="matrix"{data}><figcaption>{"".join(caption)}</figcaption>'
        f"{svg.heatmap(v)}{listed}</figure>"
    )


def _redirections(views: Sequence[RedirectionView]) -> str:
    figures = []
    for v in views:
        holds = _yes_no(v.holds, "no pod runs around its proxy", "a pod RUNS AROUND ITS PROXY")
        if v.holds is None:
            holds = f'<span class="bad">{_e(v.error or "no result")}</span>'
        data = _attrs(
            phase=v.phase,
            probe=v.probe,
            holds=v.holds,
            caught=v.count("caught"),
            unredirected=v.count("unredirected"),
        )
        figures.append(
            f'<figure class="redirection"{data}><figcaption><span class="phase">'
            f"{_e(v.phase)}</span> {_e(v.probe)} · {holds}</figcaption>"
            f"{svg.redirection(v)}</figure>"
        )
    return f"<h3>Traffic redirection (sidecar pods)</h3>{''.join(figures)}"


def _timeline(t: Timeline) -> str:
    every = _e(describe.seconds(t.interval_seconds)) or "?"
    head = f"a certificate asked of each target every {every}"
    if t.identity:
        head += f", as <code>{_e(t.identity)}</code>"
    caption = _sampling_caption(t, head)
    fault_list = _fault_list(t.windows)
    rows = []
    for s in t.summary:
        rate_cls = "ok" if s.success_rate == 1.0 else "bad"
        rows.append(
            f"<tr{_attrs(target=s.target, success_rate=s.success_rate)}"
            f"{_attrs(attempts=s.attempts, issued=s.issued)}>"
            f'<td>{_e(s.target)}</td><td class="num">{_e(_int(s.attempts))}</td>'
            f'<td class="num">{_e(_int(s.issued))}</td>'
            f'<td class="num {rate_cls}">{_e(describe.percent(s.success_rate))}</td>'
            + "".join(
                f'<td class="num">{_e(describe.millis(ms))}</td>'
                for ms in (s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms)
            )
            + "".join(
                f'<td class="num">{_e(_at(sec))}</td>'
                for sec in (s.first_failure_s, s.last_failure_s)
            )
            + f'<td class="num">{_e(describe.seconds(s.longest_outage_s))}</td></tr>'
        )
    headers = ["Target", "Attempts", "Issued", "Success", "p50", "p90", "p99", "max"]
    headers += ["First failure", "Last failure", "Longest outage"]
    table = _table(headers, rows, "issuance-summary", probe=t.probe)
    return (
        f'<figure class="timeline"{_attrs(phase=t.phase, probe=t.probe)}>'
        f"<figcaption>{caption}</figcaption>{svg.timeline(t)}{fault_list}{table}</figure>"
    )


def _sampling_caption(v: Sampled, head: str, alarm: str = "") -> str:
    """A sampling's caption: phase and probe, `head` (HTML), when and for how long, then
    `alarm` (text, in red), why it stopped short and its error."""
    caption = (
        f'<span class="phase">{_e(v.phase)}</span> {_e(v.probe)}: {head}'
        f'<br><span class="muted">from {_e(_time(v.started_at))} for '
        f"{_e(describe.seconds(v.span_s))}</span>"
    )
    if alarm:
        caption += f'<br><span class="alarm">{_e(alarm)}</span>'
    if v.reason:
        caption += f'<br><span class="warn">{_e(v.reason)}</span>'
    if v.error:
        caption += f'<br><span class="bad">{_e(v.error)}</span>'
    return caption


def _fault_list(windows: Sequence[Window]) -> str:
    """Each fault window of a sampling, in seconds since it started."""
    items = "".join(
        f"<li{_attrs(fault=w.name, start_s=f'{w.start_s:.3f}', end_s=f'{w.end_s:.3f}')}>"
        f"<b>{_e(w.name)}</b> (<code>{_e(w.func)}</code>): in effect from "
        f"{_e(describe.seconds(w.start_s))} to {_e(describe.seconds(w.end_s))} "
        f"after the sampling started, {_e(w.ended_by)}</li>"
        for w in windows
    )
    if not items:
        return '<p class="muted">No fault in effect during the sampling.</p>'
    return f'<ul class="compact">{items}</ul>'


def _matrix_timeline(m: MatrixTimeline) -> str:
    every = _e(describe.seconds(m.interval_seconds)) or "?"
    holds = _yes_no(
        m.holds, "every cell as expected in every round", "a cell NOT as expected in some round"
    )
    head = f"matrix {_e(m.matrix)} checked every {every} ({_e(_int(m.rounds))} rounds) · {holds}"
    alarm = f"FAIL-OPEN: {m.fail_open_text}" if m.fail_open else ""
    caption = _sampling_caption(m, head, alarm)
    rows = [
        f"<tr{_attrs(cell=cell.id, t=f'{ch.t:g}', **{'from': ch.before}, to=ch.after)}>"
        f'<td>{_e(cell.id)}</td><td class="num">{_e(describe.at(ch.t))}</td>'
        f"<td><b>{_e(ch.text)}</b></td><td>{_e(m.beside_faults(ch.t))}</td>"
        f"<td>{_pod_asked(ch)}</td><td>{_e(ch.evidence)}</td></tr>"
        for cell, ch in m.changes
    ]
    headers = ["Cell", "At", "Verdict change", "Against the faults", "Pod asked", "Evidence"]
    changes = (
        _table(headers, rows, "matrix-changes", "Each change of verdict", probe=m.probe)
        if rows
        else '<p class="muted">No cell changed verdict.</p>'
    )
    data = _attrs(phase=m.phase, probe=m.probe, matrix=m.matrix, holds=m.holds)
    data += _attrs(fail_open_count=len(m.fail_open))
    return (
        f'<figure class="matrix-timeline"{data}><figcaption>{caption}</figcaption>'
        f"{svg.matrix_timeline(m)}{_fault_list(m.windows)}{changes}</figure>"
    )


def _pod_asked(ch: VerdictChange) -> str:
    if not ch.pod:
        return '<span class="muted">none (no Ready pod)</span>'
    ip = f" {_e(ch.pod_ip)}" if ch.pod_ip else ""
    new = '<br><span class="warn">another pod than the round before</span>' if ch.new_pod else ""
    return f"<code>{_e(ch.pod)}</code>{ip}{new}"


def _at(value: float | None) -> str:
    return "—" if value is None else f"at {value:g} s"


def _int(value: int | None) -> str:
    return "—" if value is None else str(value)


def _issuance_check(c: IssuanceCheck) -> str:
    verdict = _yes_no(c.ok, "ok", "NOT ok")
    caption = f'<span class="phase">{_e(c.phase)}</span> {_e(c.probe)}: {verdict}'
    if c.issuing_replicas is not None:
        caption += f" · {c.issuing_replicas}/{_int(c.replica_count)} replicas issuing"
    if c.via:
        caption += f" · via {_e(c.via)}"
    if c.reason:
        caption += f' · <span class="warn">{_e(c.reason)}</span>'
    if c.error:
        caption += f' · <span class="bad">{_e(c.error)}</span>'
    rows = []
    for r in c.rows:
        code = f'<span title="{_e(r.message)}">{_e(r.code)}</span>' if r.message else _e(r.code)
        rows.append(
            f"<tr{_attrs(target=r.target, issued=r.issued, code=r.code)}>"
            f"<td>{_e(r.target)}</td><td>{_e(r.kind)}</td><td>{_e(r.node)}</td>"
            f"<td>{_yes_no(r.issued)}</td><td>{code}</td>"
            f'<td class="num">{_e(describe.millis(r.latency_ms))}</td>'
            f"<td><code>{_e(r.san)}</code></td><td>{_e(r.not_after)}</td></tr>"
        )
    headers = ["Target", "Kind", "Node", "Issued", "Code", "Latency", "SAN", "Not after"]
    return _table(headers, rows, "issuance-check", caption, phase=c.phase, probe=c.probe, ok=c.ok)


def _faults(e: Experiment) -> str:
    windows = {w.name: w for w in e.fault_windows}
    parts = ["<h3>What ran, and how it was healed</h3>"]
    parts.append(_steps(e.method, windows, e.start, "method") if e.method else "")
    if not e.method:
        parts.append('<p class="muted">The method ran no activity.</p>')
    parts.append("<h4>Rollbacks</h4>")
    if e.rollbacks:
        parts.append(_steps(e.rollbacks, {}, e.start, "rollbacks"))
    else:
        parts.append('<p class="muted">No rollback ran.</p>')
    if e.safety_net is not None:
        net = e.safety_net
        text = _e(net.what) + (f' <span class="bad">{_e(net.error)}</span>' if net.error else "")
        if net.refused:
            text = f'<span class="bad">run not started: {_e(net.refused)}</span>'
        if net.run_id:
            text = f'<span class="run-id">run {_e(net.run_id)}</span>: {text}'

        cls = "ok" if net.nothing_left else "warn"
        parts.append(
            f'<h4>Safety net</h4><p class="safety-net {cls}"'
            f"{_attrs(nothing_left=net.nothing_left)}>{text}</p>"
        )
    return "".join(parts)


def _steps(
    steps: Sequence[Step], windows: dict[str, FaultWindow], start: datetime | None, cls: str
) -> str:
    rows = []
    for i, s in enumerate(steps, 1):
        kind = s.type + (" (background)" if s.background else "")
        if s.failed:
            what = f'<span class="bad">{_e(s.error or "failed")}</span>'
            if s.traceback:
                what += (
                    f"<details><summary>traceback</summary><pre>{_e(s.traceback)}</pre></details>"
                )
        else:
            what = _e(s.what)
        window = windows.get(s.name)
        if window is not None and start is not None:
            a = (window.start - start).total_seconds()
            b = (window.end - start).total_seconds()
            what += (
                f'<br><span class="muted">in effect +{a:.1f} s to +{b:.1f} s, '
                f"{_e(window.ended_by)}</span>"
            )
        offset = f"+{s.offset_s:.1f} s" if s.offset_s is not None else "—"
        rows.append(
            f"<tr{_attrs(step=s.name, status=s.status, func=s.func)}>"
            f'<td class="num">{i}</td>'
            f'<td>{_e(s.name)}<br><span class="muted">{_e(kind)}</span></td>'
            f"<td><code>{_e(s.func)}</code></td><td>{_status(s.status)}</td>"
            f'<td class="num">{_e(offset)}</td>'
            f'<td class="num">{_e(describe.seconds(s.duration))}</td>'
            f"<td>{what}</td></tr>"
        )
    headers = ["#", "Activity", "Function", "Status", "Start", "Duration", "What it did"]
    return _table(headers, rows, f"steps {cls}")
