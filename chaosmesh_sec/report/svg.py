"""Inline SVG figures: the identity-matrix heatmap, its legend, the identity matrix over
time (a lane per cell) and its legend, the issuance timeline, the sidecar pods' traffic
redirection.

Each function returns one ``<svg>`` element as text, for an HTML page (no script, no
external reference; sized in pixels with a viewBox, so it scales and prints). Every
text is escaped, and scrubbed once more. The figures carry their numbers in ``data-``
attributes (a cell's verdict, a sample's time, a fault window's bounds), so what is
drawn can be checked against the journal. The two timelines share their frame (time
axis, lanes, the fault windows shaded over every lane).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from html import escape
from itertools import pairwise

from chaosmesh_sec.report import describe
from chaosmesh_sec.report.model import (
    REDIRECTION_VERDICTS,
    CellSample,
    CellTimeline,
    MatrixCell,
    MatrixTimeline,
    MatrixView,
    RedirectionView,
    Sample,
    Timeline,
    Window,
)
from chaosmesh_sec.report.scrub import scrub

__all__ = [
    "FAIL_OPEN_COLOUR",
    "VERDICT_COLOURS",
    "heatmap",
    "matrix_legend",
    "matrix_timeline",
    "matrix_timeline_legend",
    "redirection",
    "timeline",
]

VERDICT_COLOURS = {
    "allowed": "#bfe3c0",
    "denied_by_mesh": "#b9d3f2",
    "denied_by_network": "#d9c9ee",
    "mtls_failure": "#f9d9a6",
    "error": "#d4d4d4",
}
"""A light fill per cell verdict (dark text stays readable on each, in print too)."""
VERDICT_WORDS = {
    "allowed": "allowed",
    "denied_by_mesh": "L7 deny",
    "denied_by_network": "L4 deny",
    "mtls_failure": "mTLS fail",
    "error": "error",
}
"""A verdict in a timeline's band: the layer that decided (L4: the network policy, L7:
the mesh's AuthorizationPolicy)."""
LAYERS = {
    "allowed": "allowed",
    "denied_by_mesh": "denied_by_mesh (the mesh's AuthorizationPolicy)",
    "denied_by_network": "denied_by_network (the network policy)",
    "mtls_failure": "mtls_failure",
    "error": "error",
}
REDIRECTION_COLOURS = {
    "redirected": "#bfe3c0",
    "caught": "#f9d9a6",
    "unredirected": "#c00018",
    "unknown": "#d4d4d4",
}
"""A pod's capture: through its proxy, held back (caught), around it (fail-open), unknown."""
FAIL_OPEN_COLOUR = "#c00018"
NOT_OK_COLOUR = "#8a4b00"
CHANGE_COLOUR = "#5b2a86"
OK_MARK = "#1a7f37"
FAILED_MARK = "#c62828"
WINDOW_FILL = "#f2a33a"
WINDOW_STROKE = "#b86e00"
INK = "#1b1f24"
MUTED = "#57606a"
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
CHAR_W = 7.0  # px per character at 12 px (a generous average, so labels fit)
BOLD_CHAR_W = 7.8

CELL_W, CELL_H = 156, 68
LANE_H, TIMELINE_W = 46, 920
CELL_LANE_H, BAND_TOP, BAND_H = 46, 14, 22  # a cell's lane, its band of verdicts in it
_XOf = Callable[[float], float]


def _e(value: object) -> str:
    """Escaped (and scrubbed) text for SVG content or a quoted attribute."""
    return escape(scrub(str(value)), quote=True)


def _n(value: float) -> str:
    """A coordinate: at most two decimals."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _svg(width: float, height: float, label: str, body: Iterable[str], cls: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{cls}" width="{_n(width)}" '
        f'height="{_n(height)}" viewBox="0 0 {_n(width)} {_n(height)}" role="img" '
        f'aria-label="{_e(label)}" font-family="{FONT}" fill="{INK}">'
        f"<title>{_e(label)}</title>{''.join(body)}</svg>"
    )


def _text(x: float, y: float, text: str, size: int = 12, **attrs: str) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{_e(v)}"' for k, v in attrs.items())
    return f'<text x="{_n(x)}" y="{_n(y)}" font-size="{size}"{extra}>{_e(text)}</text>'


# ---------------------------------------------------------------- heatmap


def heatmap(view: MatrixView) -> str:
    """The matrix check as a grid: rows are sources, columns destinations, colour the verdict.

    Each cell shows its verdict, the expectation (small), a layer change (``was ...``)
    and, for a fail-open, a thick red border and ``FAIL-OPEN``. A check that returned
    no cells (it raised) draws a note instead.
    """
    label = f"{view.phase}: {view.probe} ({view.matrix})"
    if not view.cells:
        note = "no cells in the journal" + (f": {view.error}" if view.error else "")
        width = max(320.0, CHAR_W * 0.85 * len(note) + 24)
        body = [_text(12, 24, describe.clip(note, 120), 12, fill=MUTED)]
        return _svg(width, 40, label, body, "heatmap")
    col_w = max(CELL_W, BOLD_CHAR_W * max(len(d) for d in view.destinations) + 20)
    left = max(90.0, BOLD_CHAR_W * max(len(s) for s in view.sources) + 24)
    top = 40
    width = left + col_w * len(view.destinations) + 4
    height = top + CELL_H * len(view.sources) + 4
    body = [
        _text(left - 10, 14, "source ↓", 10, fill=MUTED, text_anchor="end"),
        _text(left + 4, 14, "destination →", 10, fill=MUTED),
    ]
    for j, dest in enumerate(view.destinations):
        x = left + j * col_w + col_w / 2
        body.append(_text(x, top - 10, dest, 12, font_weight="600", text_anchor="middle"))
    for i, source in enumerate(view.sources):
        y = top + i * CELL_H
        body.append(
            _text(left - 10, y + CELL_H / 2 + 4, source, 12, font_weight="600", text_anchor="end")
        )
        for j, dest in enumerate(view.destinations):
            x = left + j * col_w
            body.append(_cell(view, view.cell(source, dest), source, dest, x, y, col_w))
    return _svg(width, height, label, body, "heatmap")


def _cell(
    view: MatrixView,
    cell: MatrixCell | None,
    source: str,
    dest: str,
    x: float,
    y: float,
    w: float,
) -> str:
    cid = f"{source} -> {dest}"
    cx, inner_w, inner_h = x + w / 2, w - 6, CELL_H - 6
    if cell is None:
        return (
            f'<g class="cell" data-cell="{_e(cid)}" data-verdict="" data-phase="{_e(view.phase)}">'
            f"<title>{_e(cid)}: not checked</title>"
            f'<rect x="{_n(x + 3)}" y="{_n(y + 3)}" width="{_n(inner_w)}" height="{inner_h}" '
            f'fill="#ffffff" stroke="#c8c8c8" stroke-dasharray="4 3"/>'
            f"{_text(cx, y + CELL_H / 2 + 4, 'not checked', 10, fill=MUTED, text_anchor='middle')}"
            "</g>"
        )
    fill = VERDICT_COLOURS.get(cell.verdict, "#ffffff")
    if cell.fail_open:
        stroke = f'stroke="{FAIL_OPEN_COLOUR}" stroke-width="5"'
    elif not cell.ok:
        stroke = f'stroke="{NOT_OK_COLOUR}" stroke-width="3" stroke-dasharray="6 3"'
    else:
        stroke = 'stroke="#ffffff" stroke-width="1"'
    tip = [cid, f"verdict: {cell.verdict} (expected {cell.expected})"]
    if cell.layer_change:
        tip.append(f"layer change: {cell.layer_change}")
    if cell.layer_mismatch:
        tip.append("denied by another layer than the one expected")
    if cell.evidence:
        tip.append(cell.evidence)
    parts = [
        f'<g class="cell" data-cell="{_e(cid)}" data-verdict="{_e(cell.verdict)}" '
        f'data-expected="{_e(cell.expected)}" data-ok="{str(cell.ok).lower()}" '
        f'data-fail-open="{str(cell.fail_open).lower()}" '
        f'data-layer-change="{_e(cell.layer_change or "")}" data-phase="{_e(view.phase)}">',
        f"<title>{_e(chr(10).join(tip))}</title>",
        f'<rect x="{_n(x + 3)}" y="{_n(y + 3)}" width="{_n(inner_w)}" height="{inner_h}" '
        f'rx="3" fill="{fill}" {stroke}/>',
    ]
    if cell.fail_open:
        parts.append(
            _text(
                cx,
                y + 18,
                "FAIL-OPEN",
                12,
                font_weight="800",
                fill=FAIL_OPEN_COLOUR,
                text_anchor="middle",
            )
        )
    elif not cell.ok:
        flag = "UNEXPECTED DENY" if cell.unexpected_deny else "NOT AS EXPECTED"
        parts.append(
            _text(cx, y + 17, flag, 9, font_weight="700", fill=NOT_OK_COLOUR, text_anchor="middle")
        )
    parts.append(_text(cx, y + 33, cell.verdict, 12, font_weight="700", text_anchor="middle"))
    expected = f"expected {cell.expected}" + (" (other layer)" if cell.layer_mismatch else "")
    parts.append(_text(cx, y + 47, expected, 10, fill=MUTED, text_anchor="middle"))
    if cell.layer_change:
        was = f"Δ was {cell.baseline}" if cell.baseline else f"Δ {cell.layer_change}"
        parts.append(
            _text(
                cx, y + 60, was, 10, font_style="italic", fill=CHANGE_COLOUR, text_anchor="middle"
            )
        )
    parts.append("</g>")
    return "".join(parts)


_Swatch = Callable[[float, float], str]
"""Draws a legend item's swatch with its top left corner at (x, y)."""


def _box(style: str) -> _Swatch:
    return lambda x, y: f'<rect x="{_n(x + 2)}" y="{_n(y + 2)}" width="20" height="14" {style}/>'


_FAIL_OPEN_ITEM = (
    "FAIL-OPEN (a deny expected, it got through)",
    _box(f'fill="#ffffff" stroke="{FAIL_OPEN_COLOUR}" stroke-width="4"'),
)
_NOT_OK_ITEM = (
    "not as expected",
    _box(f'fill="#ffffff" stroke="{NOT_OK_COLOUR}" stroke-width="2" stroke-dasharray="4 2"'),
)


def _legend(items: Sequence[tuple[str, _Swatch]], note: str, label: str, max_width: float) -> str:
    """A key: each item's swatch and label, flowed into rows, then `note` in italics."""
    body, x, y = [], 4.0, 6.0
    for text, swatch in items:
        advance = 30 + CHAR_W * 0.9 * len(text) + 14
        if x + advance > max_width and x > 4:
            x, y = 4.0, y + 24
        body.append(swatch(x, y))
        body.append(_text(x + 30, y + 14, text, 12))
        x += advance
    if x + 30 + CHAR_W * 0.9 * len(note) > max_width:
        x, y = 4.0, y + 24
    body.append(_text(x + 2, y + 14, note, 12, font_style="italic", fill=CHANGE_COLOUR))
    return _svg(max_width, y + 26, label, body, "legend")


def matrix_legend(max_width: float = 760) -> str:
    """The heatmap's key: a swatch per verdict, the fail-open mark, the layer-change mark."""
    items = [(v, _box(f'fill="{c}"')) for v, c in VERDICT_COLOURS.items()]
    items += [_FAIL_OPEN_ITEM, _NOT_OK_ITEM]
    change = "Δ was …: the verdict changed since the baseline (a layer change)"
    return _legend(items, change, "legend of the identity-matrix heatmaps", max_width)


def matrix_timeline_legend(max_width: float = 920) -> str:
    """The key of the matrix over time: a band colour per verdict (with the layer), no
    pod to ask from, fail-open, not as expected, a fault window; the change mark."""
    items = [
        (f"{VERDICT_WORDS[v]}: {LAYERS[v]}" if VERDICT_WORDS[v] != v else v, _box(f'fill="{c}"'))
        for v, c in VERDICT_COLOURS.items()
    ]
    items += [
        ("no pod to ask from", _box('fill="#ffffff" stroke="#8c959f" stroke-dasharray="3 2"')),
        (
            "FAIL-OPEN",
            _box(f'fill="{FAIL_OPEN_COLOUR}" stroke="{FAIL_OPEN_COLOUR}" stroke-width="2"'),
        ),
        _NOT_OK_ITEM,
        (
            "a fault in effect",
            _box(
                f'fill="{WINDOW_FILL}" fill-opacity="0.22" stroke="{WINDOW_STROKE}" '
                'stroke-dasharray="5 3"'
            ),
        ),
    ]
    note = "┃ 12 s: the verdict changed in the round at 12 s (a layer change, or the way back)"
    return _legend(items, note, "legend of the identity matrix over time", max_width)


# ---------------------------------------------------------------- timeline


def _ticks(span: float, most: int = 10) -> list[float]:
    steps = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
    step = next((s for s in steps if span / s <= most), steps[-1])
    return [i * step for i in range(int(span / step) + 1)]


def _latency_scale(values: Sequence[float]) -> tuple[float, float]:
    """log10 bounds of the latencies (whole decades)."""
    positive = [v for v in values if v > 0]
    if not positive:
        return 0.0, 1.0
    lo, hi = math.floor(math.log10(min(positive))), math.ceil(math.log10(max(positive)))
    return float(lo), float(hi if hi > lo else lo + 1)


@dataclass(frozen=True)
class _Frame:
    """A timeline's frame: the plot's left edge, its top, its lanes, its time scale."""

    span: float
    left: float
    top: float
    lane_h: float
    lanes: int
    plot_w: float

    @property
    def lanes_h(self) -> float:
        return self.lane_h * max(1, self.lanes)

    def x_of(self, t: float) -> float:
        return self.left + self.plot_w * min(max(t / self.span, 0.0), 1.0)


def _frame(span: float, labels: Sequence[str], windows: Sequence[Window], lane_h: float) -> _Frame:
    """Room for the lane labels at the left, a label row per fault window at the top."""
    longest = max((len(t) for t in labels), default=8)
    left = min(320.0, max(150.0, BOLD_CHAR_W * longest + 24))
    plot_w = TIMELINE_W - left - 24.0
    return _Frame(span or 1.0, left, 16.0 + 16 * len(windows), lane_h, len(labels), plot_w)


def _frame_body(f: _Frame, windows: Sequence[Window]) -> Iterator[str]:
    """The lanes' shading, the time axis and its grid, the fault windows over every lane."""
    for i in range(f.lanes):
        shade = "#f4f6f8" if i % 2 == 0 else "#ffffff"
        yield (
            f'<rect x="{_n(f.left)}" y="{_n(f.top + i * f.lane_h)}" width="{_n(f.plot_w)}" '
            f'height="{_n(f.lane_h)}" fill="{shade}"/>'
        )
    for t in _ticks(f.span):
        x = f.x_of(t)
        yield (
            f'<line x1="{_n(x)}" y1="{_n(f.top)}" x2="{_n(x)}" y2="{_n(f.top + f.lanes_h)}" '
            'stroke="#d0d7de" stroke-width="1"/>'
        )
        yield _text(x, f.top + f.lanes_h + 16, f"{t:g} s", 11, fill=MUTED, text_anchor="middle")
    for i, w in enumerate(windows):
        yield _window(w, i, f.x_of, f.span, f.top, f.lanes_h)


def timeline(view: Timeline) -> str:
    """The issuance timeline: a lane per target, a mark per sample, the faults shaded.

    x is seconds since the sampling started; a green dot is a certificate issued, a
    red square a failure (its gRPC code in the hover title); the mark's height in its
    lane is the request's latency (log scale, shared by the lanes). Each fault window
    is a shaded band over every lane, labelled above them.
    """
    f = _frame(view.span_s, view.targets, view.windows, LANE_H)
    left, top, lanes_h, x_of = f.left, f.top, f.lanes_h, f.x_of
    height = top + lanes_h + 40
    lo, hi = _latency_scale([s.latency_ms for s in view.samples if s.latency_ms is not None])

    def y_of(lane: int, latency: float | None) -> float:
        bottom = top + (lane + 1) * LANE_H - 8
        if latency is None or latency <= 0:
            return bottom
        share = (math.log10(latency) - lo) / (hi - lo)
        return bottom - (LANE_H - 16) * min(max(share, 0.0), 1.0)

    body = list(_frame_body(f, view.windows))
    summaries = {s.target: s for s in view.summary}
    for lane, target in enumerate(view.targets):
        y = top + lane * LANE_H
        body.append(_text(left - 10, y + 19, target, 12, font_weight="600", text_anchor="end"))
        s = summaries.get(target)
        if s is not None:
            rate = f"{describe.number(s.issued) or 0:g}/{describe.number(s.attempts) or 0:g} issued"
            rate += f" · {describe.percent(s.success_rate)}" if s.success_rate is not None else ""
            colour = FAILED_MARK if (s.success_rate or 0.0) < 1.0 else MUTED
            body.append(_text(left - 10, y + 35, rate, 11, fill=colour, text_anchor="end"))
        samples = sorted((s for s in view.samples if s.target == target), key=lambda s: s.t)
        points = " ".join(f"{_n(x_of(s.t))},{_n(y_of(lane, s.latency_ms))}" for s in samples)
        if len(samples) > 1:
            body.append(
                f'<polyline points="{points}" fill="none" stroke="#8c959f" stroke-width="1"/>'
            )
        body.extend(_mark(s, x_of(s.t), y_of(lane, s.latency_ms)) for s in samples)
    axis = (
        "seconds since sampling started · mark height: latency, log scale "
        f"{describe.millis(10**lo)} to {describe.millis(10**hi)}"
    )
    body.append(_text(left, top + lanes_h + 34, axis, 11, fill=MUTED))
    label = f"issuance timeline: {view.probe}"
    return _svg(TIMELINE_W, height, label, body, "timeline")


def matrix_timeline(view: MatrixTimeline) -> str:
    """The identity matrix over time: a lane per cell, its verdict round after round.

    x is seconds since the sampling started. In each lane a band runs from one round to
    the next, coloured by the round's verdict and named by the layer that decided
    (``L4 deny``, ``L7 deny``); a fail-open round is solid red, a round that was not
    as expected is outlined, a round whose source had no pod is left blank. A purple
    line with its time marks each change of verdict (the moment a cell changed layer,
    and the moment it came back); the fault windows are shaded over every lane, as in
    the issuance timeline. Hover titles give each round's pod and each change's
    evidence.
    """
    f = _frame(view.span_s, [c.id for c in view.cells], view.windows, CELL_LANE_H)
    body = list(_frame_body(f, view.windows))
    for lane, cell in enumerate(view.cells):
        body.extend(_cell_lane(view, cell, f, f.top + lane * CELL_LANE_H))
    for w in view.windows:  # the fault's bounds over the bands too
        for t in (w.start_s, w.end_s):
            if 0 <= t <= f.span:
                x = _n(f.x_of(t))
                body.append(
                    f'<line x1="{x}" y1="{_n(f.top)}" x2="{x}" y2="{_n(f.top + f.lanes_h)}" '
                    f'stroke="{WINDOW_STROKE}" stroke-width="1" stroke-dasharray="5 3" '
                    'pointer-events="none"/>'
                )
    axis = (
        "seconds since sampling started · a band per round (a tick where it began), to the "
        "next round, coloured by its verdict"
    )
    body.append(_text(f.left, f.top + f.lanes_h + 34, axis, 11, fill=MUTED))
    label = f"identity matrix over time: {view.probe} ({view.matrix})"
    return _svg(TIMELINE_W, f.top + f.lanes_h + 40, label, body, "matrix-timeline")


def _cell_lane(view: MatrixTimeline, cell: CellTimeline, f: _Frame, y: float) -> Iterator[str]:
    """One cell's lane (a group): its label, a band per round, a line per change."""
    yield f'<g class="lane" data-cell="{_e(cell.id)}" data-expected="{_e(cell.expected)}">'
    yield '<g class="lane-label">'
    yield _text(f.left - 10, y + 19, cell.id, 12, font_weight="600", text_anchor="end")
    moments = cell.fail_open_s
    if moments:
        flag = f"FAIL-OPEN at {', '.join(describe.at(t) for t in moments)}"
        yield _text(f.left - 10, y + 35, describe.clip(flag, 40), 11, font_weight="800",
                    fill=FAIL_OPEN_COLOUR, text_anchor="end")  # fmt: skip
    else:
        yield _text(f.left - 10, y + 35, f"expected {cell.expected}", 11, fill=MUTED,
                    text_anchor="end")  # fmt: skip
    yield "</g>"
    ends = _band_ends(cell.samples, f.span, view.interval_seconds)
    band_y = y + BAND_TOP
    for sample, end in zip(cell.samples, ends, strict=True):
        yield _band(cell, sample, f.x_of(sample.t), f.x_of(end), band_y)
    for first, last in _runs(cell.samples):
        x0, x1 = f.x_of(cell.samples[first].t), f.x_of(ends[last])
        yield from _run_marks(cell.samples[first], x0, x1, band_y)
    for sample in cell.samples:  # a tick where each round began
        tick = _n(f.x_of(sample.t))
        yield (
            f'<line x1="{tick}" y1="{_n(band_y + BAND_H)}" x2="{tick}" '
            f'y2="{_n(band_y + BAND_H + 4)}" '
            f'stroke="{MUTED}" stroke-width="1" pointer-events="none"/>'
        )
    shown_at = -1e9
    for change in cell.changes:
        x = f.x_of(change.t)
        tip = f"{cell.id} at {describe.at(change.t)}: {change.text}"
        if change.pod:
            tip += f" · from {change.pod}" + (f" ({change.pod_ip})" if change.pod_ip else "")
            tip += ", another pod than the round before" if change.new_pod else ""
        tip += f"\n{change.evidence}" if change.evidence else ""
        time_label = ""
        if x - shown_at >= 26:  # the time beside the line, unless the last one is too close
            time_label = _text(x + 3, y + 10, describe.at(change.t), 9, font_weight="700",
                               fill=CHANGE_COLOUR)  # fmt: skip
            shown_at = x
        yield (
            f'<g class="change" data-cell="{_e(cell.id)}" data-t="{change.t:g}" '
            f'data-from="{_e(change.before)}" data-to="{_e(change.after)}">'
            f"<title>{_e(tip)}</title>"
            f'<line x1="{_n(x)}" y1="{_n(y + 3)}" x2="{_n(x)}" y2="{_n(band_y + BAND_H + 4)}" '
            f'stroke="{CHANGE_COLOUR}" stroke-width="2.5"/>{time_label}</g>'
        )
    yield "</g>"


def _band_ends(samples: Sequence[CellSample], span: float, interval: float | None) -> list[float]:
    """Where each round's band ends: at the next round; the last one a typical gap on."""
    starts = [s.t for s in samples]
    gaps = sorted(b - a for a, b in pairwise(starts) if b > a)
    gap = gaps[len(gaps) // 2] if gaps else (interval or 1.0)
    return [*starts[1:], min(span, starts[-1] + gap)] if starts else []


def _runs(samples: Sequence[CellSample]) -> list[tuple[int, int]]:
    """Consecutive rounds drawn alike (same verdict, judgement, pod or not): first, last."""

    def look(s: CellSample) -> tuple[str, bool, bool, bool]:
        return (s.verdict, s.ok, s.fail_open, s.not_asked)

    runs: list[tuple[int, int]] = []
    for i, s in enumerate(samples):
        if runs and look(samples[runs[-1][1]]) == look(s):
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _band(cell: CellTimeline, s: CellSample, x0: float, x1: float, y: float) -> str:
    """One round's band: its fill, its data, its hover title (its pod, its verdict)."""
    tip = f"t={s.t:g} s · {cell.id} · {s.verdict} (expected {cell.expected})"
    if s.fail_open:
        tip += " · FAIL-OPEN"
    elif not s.ok:
        tip += " · not as expected"
    if s.not_asked:
        tip += " · no pod to ask from"
    elif s.pod:
        tip += f" · from {s.pod}" + (f" ({s.pod_ip})" if s.pod_ip else "")
    if s.not_asked:
        fill = 'fill="#ffffff"'
    elif s.fail_open:
        fill = f'fill="{FAIL_OPEN_COLOUR}"'
    else:
        fill = f'fill="{VERDICT_COLOURS.get(s.verdict, "#ffffff")}"'
    return (
        f'<g class="sample" data-cell="{_e(cell.id)}" data-t="{s.t:g}" '
        f'data-verdict="{_e(s.verdict)}" data-ok="{str(s.ok).lower()}" '
        f'data-fail-open="{str(s.fail_open).lower()}" data-pod="{_e(s.pod)}" '
        f'data-not-asked="{str(s.not_asked).lower()}"><title>{_e(tip)}</title>'
        f'<rect x="{_n(x0)}" y="{_n(y)}" width="{_n(max(x1 - x0, 1.5))}" height="{BAND_H}" '
        f"{fill}/></g>"
    )


def _run_marks(s: CellSample, x0: float, x1: float, y: float) -> Iterator[str]:
    """A run of rounds drawn alike: its outline (fail-open, not as expected, no pod) and
    its word, when it fits."""
    w = max(x1 - x0, 1.5)
    box = f'x="{_n(x0)}" y="{_n(y)}" width="{_n(w)}" height="{BAND_H}" fill="none"'
    if s.fail_open:
        yield f'<rect {box} stroke="{FAIL_OPEN_COLOUR}" stroke-width="3"/>'
    elif s.not_asked:
        yield f'<rect {box} stroke="#8c959f" stroke-dasharray="3 2"/>'
    elif not s.ok:
        yield f'<rect {box} stroke="{NOT_OK_COLOUR}" stroke-width="2" stroke-dasharray="5 2"/>'
    if s.fail_open:
        words = ["FAIL-OPEN", "OPEN", "!"]  # the shortest still marks a narrow band
    else:
        words = ["no pod" if s.not_asked else VERDICT_WORDS.get(s.verdict, s.verdict)]
    word = next((x for x in words if CHAR_W * 0.95 * len(x) + 6 <= w), "")
    if word:
        ink = "#ffffff" if s.fail_open else MUTED if s.not_asked else INK
        weight = "800" if s.fail_open else "600"
        yield _text(x0 + w / 2, y + BAND_H / 2 + 4, word, 11, font_weight=weight, fill=ink,
                    text_anchor="middle", pointer_events="none")  # fmt: skip


def _window(w: Window, row: int, x_of: _XOf, span: float, top: float, lanes_h: float) -> str:
    visible = w.end_s >= 0 and w.start_s <= span
    x0, x1 = x_of(w.start_s), x_of(w.end_s)
    width = max(x1 - x0, 2.0) if visible else 0.0
    what = f"{w.name}: {describe.seconds(w.start_s)} to {describe.seconds(w.end_s)} ({w.ended_by})"
    if not visible:
        what += ", outside the sampling"
    label_y = 12 + 16 * row
    return (
        f'<g class="fault-window" data-fault="{_e(w.name)}" data-func="{_e(w.func)}" '
        f'data-start-s="{w.start_s:.3f}" data-end-s="{w.end_s:.3f}" '
        f'data-ended-by="{_e(w.ended_by)}"><title>{_e(what)}</title>'
        f'<rect x="{_n(x0)}" y="{_n(top)}" width="{_n(width)}" height="{_n(lanes_h)}" '
        f'fill="{WINDOW_FILL}" fill-opacity="0.22" stroke="{WINDOW_STROKE}" '
        'stroke-dasharray="5 3"/>'
        f'<line x1="{_n(x0)}" y1="{_n(label_y + 2)}" x2="{_n(x0)}" y2="{_n(top)}" '
        f'stroke="{WINDOW_STROKE}" stroke-width="1"/>'
        f"{_text(x0 + 4, label_y, '⚡ ' + describe.clip(what, 110), 11, fill=WINDOW_STROKE)}</g>"
    )


def _mark(sample: Sample, x: float, y: float) -> str:
    tip = f"t={sample.t:g} s · {sample.target} · {sample.code or '?'}"
    if sample.latency_ms is not None:
        tip += f" · {describe.millis(sample.latency_ms)}"
    if sample.pod:
        tip += f" · pod {sample.pod}"
    attrs = (
        f'class="sample" data-t="{sample.t:g}" data-target="{_e(sample.target)}" '
        f'data-issued="{str(sample.issued).lower()}" data-code="{_e(sample.code)}"'
    )
    if sample.issued:
        shape = f'<circle cx="{_n(x)}" cy="{_n(y)}" r="3.5" fill="{OK_MARK}"/>'
    else:
        shape = f'<rect x="{_n(x - 4)}" y="{_n(y - 4)}" width="8" height="8" fill="{FAILED_MARK}"/>'
    return f"<g {attrs}><title>{_e(tip)}</title>{shape}</g>"


# ---------------------------------------------------------------- redirection

POD_ROW_H = 22


def redirection(view: RedirectionView) -> str:
    """One row per sidecar pod: a swatch coloured by its verdict, its name, node and why.

    A pod running without capture (its app reachable around the proxy) is drawn red
    with white text, as a fail-open cell is; the counts head the figure.
    """
    label = f"{view.phase}: {view.probe} (traffic redirection)"
    counts = " · ".join(f"{view.count(v)} {v}" for v in REDIRECTION_VERDICTS)
    rows = [_text(4, 14, counts or "no sidecar pod", 12, fill=MUTED)]
    longest = max([len(counts), *(len(p.pod) * 1.15 + 95 for p in view.pods)])
    for i, pod in enumerate(view.pods):
        y = 24 + i * POD_ROW_H
        colour = REDIRECTION_COLOURS.get(pod.verdict, REDIRECTION_COLOURS["unknown"])
        ink = "#ffffff" if pod.verdict == "unredirected" else INK
        why = describe.clip(f"{pod.node}: {pod.detail}", 90)
        where = _text(124 + BOLD_CHAR_W * len(pod.pod), y + 13, why, 11)
        rows.append(
            f'<g class="pod" data-pod="{_e(pod.pod)}" data-verdict="{_e(pod.verdict)}">'
            f'<rect x="4" y="{_n(y)}" width="108" height="18" rx="3" fill="{colour}"/>'
            f"{_text(58, y + 13, pod.verdict, 11, fill=ink, text_anchor='middle')}"
            f"{_text(120, y + 13, pod.pod, 12, font_weight='600')}"
            f"{where}"
            "</g>"
        )
    width = max(360.0, 130 + CHAR_W * longest)
    return _svg(width, 30 + POD_ROW_H * len(view.pods), label, rows, "redirection")
