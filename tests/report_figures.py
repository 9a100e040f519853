"""What an HTML report shows, held against the journals it was written from.

Two readers build the same shapes (:class:`Experiment` and what it holds):

- :func:`expected` walks a journal's raw JSON. It uses no code of
  :mod:`chaosmesh_sec.report`: the verdict, the fail-open cells, the grid of each
  identity-matrix check, the issuance figures are worked out here, from the rules the
  report documents (:mod:`chaosmesh_sec.report.reading`'s docstring);
- :func:`shown` reads the page (the DOM Chromium built, :func:`tests.browser.rendered_dom`)
  with :mod:`html.parser`: the ``data-`` attributes and the visible text beside them.

:func:`compare` lists every difference as a sentence; :func:`check_report_in_browser`
renders a report in Chromium (a screenshot and the DOM) and fails on any. What is
compared, per experiment (matched by the journal's file name, in the facts table):

- title, verdict (``data-verdict`` and the badge), status and deviated (``data-`` and the
  "Status" fact), fail-open count (``data-`` of the section and its summary row, and the
  row's visible number), the summary row's title;
- hypothesis rows (phase, probe, tolerance met); method and rollback rows (name,
  status, function), in the order they started;
- each identity-matrix figure in run order (before, method, after, rollbacks): phase,
  probe, matrix, holds, the fail-open cells (its ``data-`` count and the "FAIL-OPEN:"
  note), the per-verdict counts of its cells (against the journal's ``counts``), and
  every grid cell, sources x destinations in order of first appearance: verdict,
  expected, ok, fail-open, layer change (``data-``), and the verdict, the expectation
  and the FAIL-OPEN mark drawn in it; a grid cell the check did not return shows
  "not checked";
- each issuance timeline: per target of the journal's summary, attempts, issued and
  success rate (``data-`` exactly; the visible "Success" as the page rounds it,
  ``62.5%``), the lane's label (``5/8 issued · 62.5%``); every sample mark (target,
  time as ``%g``, issued, code); attempts and issued also against the samples
  themselves, and the journal's rate against issued / attempts (to its 4 decimals);
- each identity matrix over time (``sample_matrix``): phase, probe, matrix, holds, the
  fail-open moments (its ``data-`` count; each counts as a fail-open cell of the
  experiment and the page), and per cell (its lane, in the journal's order) the label
  beside it (the cell, then ``expected ...`` or, after a fail-open round,
  ``FAIL-OPEN ...``), every round drawn (time as ``%g``, verdict, ok, fail-open, the
  pod asked), every change of verdict drawn as a line (a round whose verdict differs
  from the round before it: worked out here from the samples), and the table of
  changes (the same changes, and the change as written, ``from → to``);
- each fault window: the faults that have one, their start to the millisecond; the
  end must be one of the moments that can end it (the end of a heal that ran after
  the fault, the fault's own ``duration_seconds``, the end of its action), and no later
  than its duration (the rule that picks among them is not re-implemented);
- each ``certificate_issuance`` table: phase, probe, ok, and per row target, issued, code.

And for the page: how many experiments, their order (by start), the verdict counts in
the header, the total of fail-open cells.

Texts are compared as the journal has them: the page scrubs tokens and private keys,
which no title, probe name, cell or code of this pack carries.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from tests import browser

__all__ = [
    "Experiment",
    "Page",
    "check_report_in_browser",
    "compare",
    "expected",
    "shown",
]

VERDICTS = ("held", "deviated", "failed", "interrupted", "aborted", "unknown")
MATRIX = ("chaosmesh_sec.probes.matrix", "identity_matrix")
SAMPLING = ("chaosmesh_sec.probes.issuance", "sample_issuance")
SAMPLED_MATRIX = ("chaosmesh_sec.probes.matrix", "sample_matrix")
ISSUANCE = ("chaosmesh_sec.probes.issuance", "certificate_issuance")
FAULTS = "chaosmesh_sec.faults."
RAISED_FAIL_OPEN = re.compile(r"fail-open cells in (?P<matrix>[^:]+): (?P<cells>.+)$")
CELL_FLAGS = ("FAIL-OPEN", "UNEXPECTED DENY", "NOT AS EXPECTED")
LANE_LABEL = re.compile(r"^\d+/\d+ issued")
VOID = frozenset(
    ("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr")
)
MS = 1e-3
RATE_DECIMALS = 4  # the sampler rounds success_rate to these


# ---------------------------------------------------------------- the shapes compared


@dataclass(frozen=True)
class Cell:
    """One square of a heatmap; `verdict` "" where the check returned no such cell."""

    id: str
    verdict: str
    expected: str
    ok: bool | None
    fail_open: bool | None
    layer_change: str
    verdict_text: str  # drawn in the square ("not checked" for a missing cell)
    expected_text: str
    fail_open_mark: bool


@dataclass(frozen=True)
class Figure:
    """What a figure of an experiment is known by: its phase and its probe."""

    phase: str
    probe: str


@dataclass(frozen=True)
class Matrix(Figure):
    matrix: str | None  # None: the journal does not name it (an inline matrix): not compared
    holds: bool | None
    fail_open_count: int
    fail_open: tuple[str, ...]
    counts: tuple[tuple[str, int], ...]  # verdict -> cells, non-zero, sorted
    cells: tuple[Cell, ...]


@dataclass(frozen=True)
class Lane:
    """A target's row of the issuance summary, and its label beside the lane."""

    target: str
    attempts: int | None
    issued: int | None
    success_rate: float | None
    attempts_text: str
    issued_text: str
    success_text: str


@dataclass(frozen=True)
class Window:
    """A fault window as shown; the journal's side is a :class:`WindowRule`."""

    fault: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class WindowRule:
    """What the journal says of a fault's window: its start, and what may end it."""

    fault: str
    start_s: float
    ends_s: tuple[float, ...]
    latest_s: float | None


@dataclass(frozen=True)
class Sampling(Figure):
    lanes: tuple[Lane, ...]  # by target
    lane_labels: tuple[str, ...]  # sorted
    samples: tuple[tuple[str, str, bool, str], ...]  # (target, t as %g, issued, code), sorted
    windows: tuple[Window | WindowRule, ...] = field(compare=False)
    drawn_windows: tuple[Window, ...] = field(compare=False, default=())


@dataclass(frozen=True)
class CellLane:
    """One cell's lane of an identity matrix over time."""

    id: str
    label: str  # the cell, beside its lane
    mark: str  # under it: "expected <x>", or "FAIL-OPEN" when a round failed open
    rounds: tuple[tuple[str, str, bool | None, bool | None, str], ...]
    # (t as %g, verdict, ok, fail-open, pod), in time order
    changes: tuple[tuple[str, str, str], ...]  # (t as %g, from, to), drawn as lines


@dataclass(frozen=True)
class MatrixOverTime(Figure):
    matrix: str | None
    holds: bool | None
    fail_open_count: int
    lanes: tuple[CellLane, ...]
    listed_changes: tuple[tuple[str, str, str, str, str], ...]
    # the table: (cell, t as %g, from, to, the change as written), sorted
    windows: tuple[Window | WindowRule, ...] = field(compare=False)
    drawn_windows: tuple[Window, ...] = field(compare=False, default=())


@dataclass(frozen=True)
class IssuanceRow:
    target: str
    issued: bool | None
    code: str


@dataclass(frozen=True)
class IssuanceTable(Figure):
    ok: bool | None
    rows: tuple[IssuanceRow, ...]


@dataclass(frozen=True)
class Experiment:
    journal: str
    title: str
    verdict: str
    verdict_text: str
    status: str
    deviated: bool
    status_text: str
    fail_open_count: int
    summary_row: tuple[str, str, int, str, str]  # verdict, badge, fail-open (data, text), title
    # (the row's texts with their whitespace folded)
    hypothesis: tuple[tuple[str, str | None, bool | None], ...]  # phase, probe, tolerance met
    method: tuple[tuple[str, str, str], ...]  # name, status, function
    rollbacks: tuple[tuple[str, str, str], ...]
    matrices: tuple[Matrix, ...]
    samplings: tuple[Sampling, ...]
    issuance: tuple[IssuanceTable, ...]
    start: datetime | None = field(compare=False, default=None)
    matrices_over_time: tuple[MatrixOverTime, ...] = ()


@dataclass(frozen=True)
class Page:
    """The page as a whole, and its experiments in the order shown."""

    experiments_count: int
    total_fail_open: int
    verdict_counts: dict[str, int]
    experiments: tuple[Experiment, ...]


# ---------------------------------------------------------------- from the journals


def expected(journal: Path) -> Experiment:
    """What the page should show for `journal`, from its raw JSON alone."""
    j = _map(json.loads(journal.read_text(encoding="utf-8")))
    spec = _map(j.get("experiment"))
    states = _map(j.get("steady_states"))
    before, after = states.get("before"), states.get("after")
    method = _by_start(_list(j.get("run")))
    rollbacks = _by_start(_list(j.get("rollbacks")))
    status = _text(j.get("status")) or "unknown"
    deviated = j.get("deviated") is True
    if deviated:
        verdict = "deviated"
    elif status == "completed":
        verdict = "failed" if _map(before).get("steady_state_met") is False else "held"
    else:
        verdict = status if status in VERDICTS else "unknown"
    phased = [("before", p) for p in _list(_map(before).get("probes"))]
    phased += [("during", r) for r in method]
    phased += [("after", p) for p in _list(_map(after).get("probes"))]
    phased += [("rollback", r) for r in rollbacks]
    matrices = tuple(_expected_matrix(ph, r) for ph, r in phased if _provider(r) == MATRIX)
    over_time = tuple(
        _expected_over_time(ph, r, method, rollbacks)
        for ph, r in phased
        if _provider(r) == SAMPLED_MATRIX
    )
    fail_open = sum(m.fail_open_count for m in matrices)
    fail_open += sum(m.fail_open_count for m in over_time)
    title = _text(spec.get("title")) or journal.name
    return Experiment(
        journal=journal.name,
        title=title,
        verdict=verdict,
        verdict_text=verdict,
        status=status,
        deviated=deviated,
        status_text=f"{status}, {'deviated' if deviated else 'not deviated'}",
        fail_open_count=fail_open,
        summary_row=(verdict, verdict, fail_open, str(fail_open), " ".join(title.split())),
        hypothesis=_expected_hypothesis(before, after),
        method=tuple(_step_row(r) for r in method),
        rollbacks=tuple(_step_row(r) for r in rollbacks),
        matrices=matrices,
        samplings=tuple(
            _expected_sampling(ph, r, method, rollbacks)
            for ph, r in phased
            if _provider(r) == SAMPLING
        ),
        issuance=tuple(_expected_issuance(ph, r) for ph, r in phased if _provider(r) == ISSUANCE),
        start=_when(j.get("start")),
        matrices_over_time=over_time,
    )


def _expected_hypothesis(*states: Any) -> tuple[tuple[str, str | None, bool | None], ...]:
    rows: list[tuple[str, str | None, bool | None]] = []
    for phase, state in zip(("before", "after"), states, strict=True):
        probes = _list(_map(state).get("probes"))
        if not isinstance(state, Mapping) or not probes:
            rows.append((phase, None, None))
        for p in probes:
            met = _map(p).get("tolerance_met")
            rows.append((phase, _activity_name(p), met if isinstance(met, bool) else None))
    return tuple(rows)


def _step_row(result: Any) -> tuple[str, str, str]:
    return _activity_name(result), _text(_map(result).get("status")) or "unknown", _func(result)


def _expected_matrix(phase: str, result: Any) -> Matrix:
    r = _map(result)
    out = _map(r.get("output"))
    changes = {
        _text(c.get("cell")): f"{_text(c.get('baseline'))} -> {_text(c.get('verdict'))}"
        for c in map(_map, _list(out.get("layer_changes")))
    }
    listed = [_text(c) for c in _list(out.get("fail_open"))]
    returned: dict[str, Cell] = {}
    rows: list[str] = []
    columns: list[str] = []
    for c in map(_map, _list(out.get("cells"))):
        source, dest = _text(c.get("source")), _text(c.get("destination"))
        cid = f"{source} -> {dest}"
        rows += [source] if source not in rows else []
        columns += [dest] if dest not in columns else []
        verdict = _text(c.get("verdict")) or "error"
        flagged = c.get("fail_open") is True or cid in listed
        returned.setdefault(
            cid,
            Cell(
                cid,
                verdict,
                _text(c.get("expected")),
                c.get("ok") is True,
                flagged,
                _text(c.get("layer_change")) or changes.get(cid, ""),
                verdict,
                _text(c.get("expected")),
                flagged,
            ),
        )
    argument = _map(_provider_map(r).get("arguments")).get("matrix")
    name: str | None = _text(out.get("matrix")) or None
    fail_open = [cid for cid, c in returned.items() if c.fail_open] + listed
    raised = RAISED_FAIL_OPEN.search(_last_line(r.get("exception")))
    if raised:  # the check raised on its fail-open cells: no output, they are named
        name = name or raised["matrix"].strip()
        named = [c.strip() for c in raised["cells"].split(",") if " -> " in c]
        fail_open += named
        for named_id in named if not returned else ():
            source, _, dest = (part.strip() for part in named_id.partition(" -> "))
            rows += [source] if source not in rows else []
            columns += [dest] if dest not in columns else []
            cid = f"{source} -> {dest}"
            cell = Cell(cid, "allowed", "denied", False, True, "", "allowed", "denied", True)
            returned.setdefault(cid, cell)
    if name is None and isinstance(argument, str):
        name = argument  # a failed check: the matrix file it was given
    unique = tuple(dict.fromkeys(fail_open))
    holds = out.get("holds")
    if not isinstance(holds, bool):
        holds = False if unique else None
    counts = {k: v for k, v in _map(out.get("counts")).items() if type(v) is int}
    if not counts:
        counts = Counter(c.verdict for c in returned.values())
    grid = [returned.get(f"{s} -> {d}", _not_checked(f"{s} -> {d}")) for s in rows for d in columns]
    return Matrix(
        phase=phase,
        probe=_activity_name(r),
        matrix=name,
        holds=holds,
        fail_open_count=len(unique),
        fail_open=unique,
        counts=tuple(sorted((k, v) for k, v in counts.items() if v)),
        cells=tuple(grid),
    )


def _expected_sampling(
    phase: str, result: Any, method: Sequence[Any], rollbacks: Sequence[Any]
) -> Sampling:
    r = _map(result)
    out = _map(r.get("output"))
    samples = [s for s in map(_map, _list(out.get("samples"))) if _number(s.get("t")) is not None]
    lanes = []
    for target, figures in _map(out.get("summary")).items():
        f = _map(figures)
        attempts, issued = _int(f.get("attempts")), _int(f.get("issued"))
        rate = _number(f.get("success_rate"))
        lanes.append(
            Lane(
                target,
                attempts,
                issued,
                rate,
                "—" if attempts is None else str(attempts),
                "—" if issued is None else str(issued),
                _percent(rate),
            )
        )
    labels = [
        f"{lane.issued or 0}/{lane.attempts or 0} issued"
        + (f" · {lane.success_text}" if lane.success_rate is not None else "")
        for lane in lanes
    ]
    started = _when(out.get("started_at"))
    return Sampling(
        phase=phase,
        probe=_activity_name(r),
        lanes=tuple(sorted(lanes, key=lambda lane: lane.target)),
        lane_labels=tuple(sorted(labels)),
        samples=tuple(
            sorted(
                (
                    _text(s.get("target")) or "?",
                    f"{_number(s.get('t')):g}",
                    s.get("issued") is True,
                    _text(s.get("code")),
                )
                for s in samples
            )
        ),
        windows=_window_rules(started, method, rollbacks) if started else (),
    )


def _expected_over_time(
    phase: str, result: Any, method: Sequence[Any], rollbacks: Sequence[Any]
) -> MatrixOverTime:
    r = _map(result)
    out = _map(r.get("output"))
    lanes = []
    for c in map(_map, _list(out.get("cells"))):
        cid = _text(c.get("cell")) or f"{_text(c.get('source'))} -> {_text(c.get('destination'))}"
        timed = [s for s in map(_map, _list(c.get("samples"))) if _number(s.get("t")) is not None]
        timed.sort(key=lambda s: _number(s.get("t")) or 0.0)
        rounds = tuple(
            (
                f"{_number(s.get('t')):g}",
                _text(s.get("verdict")) or "error",
                s.get("ok") is True,
                s.get("fail_open") is True,
                _text(s.get("pod")),
            )
            for s in timed
        )
        changes = tuple(
            (now[0], before[1], now[1])
            for before, now in itertools.pairwise(rounds)
            if now[1] != before[1]
        )
        failed_open = any(f for *_, f, _pod in rounds)
        mark = "FAIL-OPEN" if failed_open else f"expected {_text(c.get('expected'))}"
        lanes.append(CellLane(cid, cid, mark, rounds, changes))
    listed = sorted(
        (lane.id, t, was, now, f"{was} → {now}") for lane in lanes for t, was, now in lane.changes
    )
    holds = out.get("holds")
    started = _when(out.get("started_at"))
    return MatrixOverTime(
        phase=phase,
        probe=_activity_name(r),
        matrix=_text(out.get("matrix")) or None,
        holds=holds if isinstance(holds, bool) else None,
        fail_open_count=len(_list(out.get("fail_open"))),
        lanes=tuple(lanes),
        listed_changes=tuple(listed),
        windows=_window_rules(started, method, rollbacks) if started else (),
    )


def _window_rules(
    started: datetime, method: Sequence[Any], rollbacks: Sequence[Any]
) -> tuple[WindowRule, ...]:
    """Each fault that succeeded: its start, and the moments that may end its window."""
    heals = [
        h for h in (*method, *rollbacks) if _is_heal(h) and _map(h).get("status") == "succeeded"
    ]
    rules = []
    for fault in method:
        f = _map(fault)
        begun, ended = _when(f.get("start")), _when(f.get("end"))
        if _is_heal(f) or not _module(f).startswith(FAULTS) or f.get("status") != "succeeded":
            continue
        if begun is None:
            continue
        ends = [
            _when(_map(h).get("end"))
            for h in heals
            if (_when(_map(h).get("start")) or begun) >= begun
        ]
        lasts = _number(_map(f.get("output")).get("duration_seconds"))
        if lasts is None:
            lasts = _number(_map(_provider_map(f).get("arguments")).get("duration_seconds"))
        latest = begun + timedelta(seconds=lasts) if lasts is not None else None
        moments = [m for m in (*ends, latest, ended, begun) if m is not None]
        rules.append(
            WindowRule(
                _activity_name(f),
                (begun - started).total_seconds(),
                tuple(sorted({(max(m, begun) - started).total_seconds() for m in moments})),
                (latest - started).total_seconds() if latest else None,
            )
        )
    return tuple(rules)


def _expected_issuance(phase: str, result: Any) -> IssuanceTable:
    r = _map(result)
    out = _map(r.get("output"))
    targets = [_map(t) for t in _list(out.get("replicas"))]
    if isinstance(out.get("service"), Mapping):
        targets.append(_map(out.get("service")))
    ok = out.get("ok")
    return IssuanceTable(
        phase,
        _activity_name(r),
        ok if isinstance(ok, bool) else None,
        tuple(
            IssuanceRow(
                _text(t.get("target")) or _text(t.get("pod")),
                t.get("issued") if isinstance(t.get("issued"), bool) else None,
                _text(t.get("code")),
            )
            for t in targets
        ),
    )


# ---------------------------------------------------------------- from the page


@dataclass
class Node:
    """An element of the page: its tag, attributes, and children (elements and text)."""

    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def walk(self) -> Iterator[Node]:
        """This element and every element under it, in document order."""
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.walk()

    def all(self, tag: str, cls: str = "", *attrs: str) -> list[Node]:
        """Elements under this one of `tag`, of class `cls`, having each of `attrs`."""
        return [
            n
            for n in self.walk()
            if n.tag == tag
            and (not cls or cls in n.attrs.get("class", "").split())
            and all(a in n.attrs for a in attrs)
        ]

    def text(self, skip: tuple[str, ...] = ("title",)) -> str:
        """The visible text under this element (not what a ``<title>`` holds)."""
        parts = [
            c if isinstance(c, str) else c.text(skip)
            for c in self.children
            if isinstance(c, str) or c.tag not in skip
        ]
        return "".join(parts)

    def flag(self, name: str) -> bool | None:
        """A ``data-`` boolean (``true`` / ``false``); None when absent."""
        value = self.attrs.get(f"data-{name}")
        return None if value is None else value == "true"

    def cells(self) -> list[str]:
        """The visible text of each ``<td>`` directly in this row, whitespace folded."""
        return [" ".join(c.text().split()) for c in self.children if isinstance(c, Node)]


class _Builder(HTMLParser):
    """Builds the element tree; an end tag closes up to its element (browsers serialize whole)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.open = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.open[-1].children.append(node)
        if tag not in VOID:
            self.open.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if any(n.tag == tag for n in self.open[1:]):
            while self.open.pop().tag != tag:
                pass

    def handle_data(self, data: str) -> None:
        self.open[-1].children.append(data)


def parse(html: str) -> Node:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root


def shown(dom: str) -> Page:
    """What the page shows: its header and summary, and each experiment's section."""
    root = parse(dom)
    (summary,) = [s for s in root.all("section") if s.attrs.get("id") == "summary"]
    rows = {
        a.attrs["href"].removeprefix("#"): row
        for row in summary.all("tr", "", "data-verdict")
        for a in row.all("a", "", "href")
    }
    (total,) = summary.all("p", "", "data-total-fail-open")
    meta = " ".join(root.all("header")[0].all("p", "meta")[0].text().split())
    counts = {}
    for part in meta.rsplit(" · ", 1)[-1].split(", "):
        n, _, verdict = part.partition(" ")
        if n.isdigit():
            counts[verdict] = int(n)
    sections = root.all("section", "experiment")
    return Page(
        experiments_count=int(summary.attrs.get("data-experiments", "-1")),
        total_fail_open=int(total.attrs["data-total-fail-open"]),
        verdict_counts=counts,
        experiments=tuple(_shown_experiment(s, rows.get(s.attrs.get("id", ""))) for s in sections),
    )


def _shown_experiment(section: Node, row: Node | None) -> Experiment:
    facts = {
        tr.all("th")[0].text(): " ".join(tr.all("td")[0].text().split())
        for table in section.all("table", "facts")
        for tr in table.all("tr")
    }
    (h2,) = section.all("h2")
    badge = h2.all("span", "badge")[0]
    title = "".join(c if isinstance(c, str) else "" for c in h2.children).removeprefix(" ")
    summary_row: tuple[str, str, int, str, str] = ("", "", -1, "", "")
    if row is not None:
        tds = row.cells()
        summary_row = (
            row.attrs.get("data-verdict", ""),
            tds[1],
            int(row.attrs.get("data-fail-open-count", "-1")),
            tds[0],
            tds[2],
        )
    return Experiment(
        journal=facts.get("Journal", ""),
        title=title,
        verdict=section.attrs.get("data-verdict", ""),
        verdict_text=badge.text(),
        status=section.attrs.get("data-status", ""),
        deviated=section.flag("deviated") is True,
        status_text=facts.get("Status", ""),
        fail_open_count=int(section.attrs.get("data-fail-open-count", "-1")),
        summary_row=summary_row,
        hypothesis=tuple(
            (tr.attrs["data-phase"], tr.attrs.get("data-probe"), tr.flag("tolerance-met"))
            for table in section.all("table", "hypothesis")
            for tr in table.all("tr", "", "data-phase")
        ),
        method=_shown_steps(section, "method"),
        rollbacks=_shown_steps(section, "rollbacks"),
        matrices=tuple(_shown_matrix(f) for f in section.all("figure", "matrix")),
        samplings=tuple(_shown_sampling(f) for f in section.all("figure", "timeline")),
        matrices_over_time=tuple(
            _shown_over_time(f) for f in section.all("figure", "matrix-timeline")
        ),
        issuance=tuple(
            IssuanceTable(
                t.attrs.get("data-phase", ""),
                t.attrs.get("data-probe", ""),
                t.flag("ok"),
                tuple(
                    IssuanceRow(tr.attrs["data-target"], tr.flag("issued"), tr.attrs["data-code"])
                    for tr in t.all("tr", "", "data-target")
                ),
            )
            for t in section.all("table", "issuance-check")
        ),
    )


def _shown_steps(section: Node, cls: str) -> tuple[tuple[str, str, str], ...]:
    return tuple(
        (tr.attrs["data-step"], tr.attrs.get("data-status", ""), tr.attrs.get("data-func", ""))
        for table in section.all("table", cls)
        if "steps" in table.attrs.get("class", "").split()
        for tr in table.all("tr", "", "data-step")
    )


def _shown_matrix(figure: Node) -> Matrix:
    cells = []
    for g in figure.all("g", "cell", "data-cell"):
        texts = [t.text() for t in g.all("text")]
        body = [t for t in texts if t not in CELL_FLAGS and not t.startswith("Δ")]
        said = next((t for t in body if t.startswith("expected ")), "")
        cells.append(
            Cell(
                id=g.attrs["data-cell"],
                verdict=g.attrs.get("data-verdict", ""),
                expected=g.attrs.get("data-expected", ""),
                ok=g.flag("ok"),
                fail_open=g.flag("fail-open"),
                layer_change=g.attrs.get("data-layer-change", ""),
                verdict_text=next((t for t in body if not t.startswith("expected ")), ""),
                expected_text=said.removeprefix("expected ").removesuffix(" (other layer)"),
                fail_open_mark="FAIL-OPEN" in texts,
            )
        )
    note = next((li.text() for li in figure.all("li") if li.text().startswith("FAIL-OPEN: ")), "")
    counts = Counter(c.verdict for c in cells if c.verdict)
    return Matrix(
        **_matrix_head(figure),
        fail_open=tuple(note.removeprefix("FAIL-OPEN: ").split(", ")) if note else (),
        counts=tuple(sorted(counts.items())),
        cells=tuple(cells),
    )


def _matrix_head(figure: Node) -> dict[str, Any]:
    """A matrix figure's (a check's, or the matrix over time's) ``data-``: phase, probe,
    matrix, holds, fail-open count."""
    return {
        "phase": figure.attrs.get("data-phase", ""),
        "probe": figure.attrs.get("data-probe", ""),
        "matrix": figure.attrs.get("data-matrix"),
        "holds": figure.flag("holds"),
        "fail_open_count": int(figure.attrs.get("data-fail-open-count", "-1")),
    }


def _shown_sampling(figure: Node) -> Sampling:
    lanes = []
    for table in figure.all("table", "issuance-summary"):
        for tr in table.all("tr", "", "data-target"):
            tds = tr.cells()
            rate = tr.attrs.get("data-success-rate")
            lanes.append(
                Lane(
                    tr.attrs["data-target"],
                    _int_attr(tr, "attempts"),
                    _int_attr(tr, "issued"),
                    None if rate is None else float(rate),
                    tds[1],
                    tds[2],
                    tds[3],
                )
            )
    svg = next((s for s in figure.all("svg", "timeline")), Node("svg", {}))
    labels = [t.text() for t in svg.all("text") if LANE_LABEL.match(t.text())]
    samples = [
        (g.attrs["data-target"], g.attrs["data-t"], g.flag("issued") is True, g.attrs["data-code"])
        for g in svg.all("g", "sample", "data-t")
    ]

    return Sampling(
        phase=figure.attrs.get("data-phase", ""),
        probe=figure.attrs.get("data-probe", ""),
        lanes=tuple(sorted(lanes, key=lambda lane: lane.target)),
        lane_labels=tuple(sorted(labels)),
        samples=tuple(sorted(samples)),
        windows=_windows(figure.all("li", "", "data-fault")),
        drawn_windows=_windows(svg.all("g", "fault-window", "data-fault")),
    )


def _windows(nodes: list[Node]) -> tuple[Window, ...]:
    return tuple(
        Window(n.attrs["data-fault"], float(n.attrs["data-start-s"]), float(n.attrs["data-end-s"]))
        for n in nodes
    )


def _shown_over_time(figure: Node) -> MatrixOverTime:
    svg = next((s for s in figure.all("svg", "matrix-timeline")), Node("svg", {}))
    lanes = []
    for lane in svg.all("g", "lane", "data-cell"):
        texts = [t.text() for g in lane.all("g", "lane-label") for t in g.all("text")]
        label, mark = ([*texts, "", ""])[:2]
        lanes.append(
            CellLane(
                id=lane.attrs["data-cell"],
                label=label,
                mark="FAIL-OPEN" if mark.startswith("FAIL-OPEN") else mark,
                rounds=tuple(
                    (
                        g.attrs["data-t"],
                        g.attrs.get("data-verdict", ""),
                        g.flag("ok"),
                        g.flag("fail-open"),
                        g.attrs.get("data-pod", ""),
                    )
                    for g in lane.all("g", "sample", "data-t")
                ),
                changes=tuple(
                    (g.attrs["data-t"], g.attrs.get("data-from", ""), g.attrs.get("data-to", ""))
                    for g in lane.all("g", "change", "data-t")
                ),
            )
        )
    listed = sorted(
        (
            tr.attrs["data-cell"],
            tr.attrs.get("data-t", ""),
            tr.attrs.get("data-from", ""),
            tr.attrs.get("data-to", ""),
            tr.cells()[2],
        )
        for table in figure.all("table", "matrix-changes")
        for tr in table.all("tr", "", "data-cell")
    )
    return MatrixOverTime(
        **_matrix_head(figure),
        lanes=tuple(lanes),
        listed_changes=tuple(listed),
        windows=_windows(figure.all("li", "", "data-fault")),
        drawn_windows=_windows(svg.all("g", "fault-window", "data-fault")),
    )


def _int_attr(node: Node, name: str) -> int | None:
    value = node.attrs.get(f"data-{name}")
    return None if value is None else int(value)


# ---------------------------------------------------------------- comparing


def compare(journals: Sequence[Path], dom: str) -> list[str]:
    """Every difference between what `dom` shows and what `journals` say, as sentences."""
    names = [p.name for p in journals]
    dupes = sorted(n for n, k in Counter(names).items() if k > 1)
    if dupes:
        return [f"journals share a file name, the page cannot tell them apart: {dupes}"]
    want = [expected(p) for p in journals]
    page = shown(dom)
    problems: list[str] = []
    far = datetime.max.replace(tzinfo=UTC)
    order = [e.journal for e in sorted(want, key=lambda e: e.start or far)]
    if [e.journal for e in page.experiments] != order:
        problems.append(
            f"experiments shown {[e.journal for e in page.experiments]}, expected {order} "
            "(every journal, in the order they started)"
        )
    if page.experiments_count != len(want):
        problems.append(f"summary says {page.experiments_count} experiments, not {len(want)}")
    verdicts = dict(Counter(e.verdict for e in want))
    if page.verdict_counts != verdicts:
        problems.append(f"header counts {page.verdict_counts}, the journals {verdicts}")
    total = sum(e.fail_open_count for e in want)
    if page.total_fail_open != total:
        problems.append(f"summary total of fail-open cells {page.total_fail_open}, not {total}")
    by_name = {e.journal: e for e in page.experiments}
    for e in want:
        got = by_name.get(e.journal)
        if got is None:
            continue  # already reported by the order
        _diff(e.journal, e, got, problems)
        mine_all: list[Sampling | MatrixOverTime] = [*e.samplings, *e.matrices_over_time]
        theirs_all: list[Sampling | MatrixOverTime] = [*got.samplings, *got.matrices_over_time]
        for mine, theirs in zip(mine_all, theirs_all, strict=False):
            _check_windows(f"{e.journal}: {_key(mine)}", mine, theirs, problems)
        problems.extend(f"{e.journal}: {p}" for p in _journal_sanity(e))
    return problems


def _diff(where: str, want: Any, got: Any, problems: list[str]) -> None:
    """Recursively, field by field; a tuple of keyed things is matched by key."""
    if is_dataclass(want) and type(want) is type(got):
        for f in fields(want):
            mine = getattr(want, f.name)
            if f.compare and not (f.name == "matrix" and mine is None):
                _diff(f"{where}.{f.name}", mine, getattr(got, f.name), problems)
        return
    keys = [_key(x) for x in want] if isinstance(want, tuple) else []
    if keys and None not in keys:
        shown_keys = [_key(x) for x in got]
        if keys != shown_keys:
            problems.append(f"{where}: journal has {keys}, page shows {shown_keys}")
        for w, g in zip(want, got, strict=False):
            if _key(w) == _key(g):
                _diff(f"{where}[{_key(w)}]", w, g, problems)
        return
    if want == got:
        return
    if isinstance(want, tuple) and isinstance(got, tuple) and len(want) + len(got) > 8:
        lost, extra = Counter(want) - Counter(got), Counter(got) - Counter(want)
        problems.append(
            f"{where}: {len(want)} in the journal, {len(got)} on the page; not on the page: "
            f"{sorted(lost.elements())[:5]}, not in the journal: {sorted(extra.elements())[:5]}"
            + ("" if lost or extra else " (same items, another order)")
        )
        return
    problems.append(f"{where}: journal says {want!r}, page shows {got!r}")


def _key(item: object) -> str | None:
    """What an item of a compared tuple is matched by (None: compared in place)."""
    if isinstance(item, Figure):
        return f"{item.phase} {item.probe}"
    if isinstance(item, Cell | CellLane):
        return item.id
    if isinstance(item, Lane | IssuanceRow):
        return item.target
    return item.journal if isinstance(item, Experiment) else None


def _check_windows(
    where: str,
    want: Sampling | MatrixOverTime,
    got: Sampling | MatrixOverTime,
    problems: list[str],
) -> None:
    if got.windows != got.drawn_windows:
        problems.append(f"{where}: fault list {got.windows} and shaded bands {got.drawn_windows}")
    names = [w.fault for w in want.windows]
    if [w.fault for w in got.windows] != names:
        problems.append(f"{where}: windows of {[w.fault for w in got.windows]}, expected {names}")
        return
    for rule, w in zip(want.windows, got.windows, strict=True):
        assert isinstance(rule, WindowRule) and isinstance(w, Window)
        if abs(w.start_s - rule.start_s) > MS:
            problems.append(f"{where}: {w.fault} starts at {w.start_s}, not {rule.start_s:.3f}")
        if not any(abs(w.end_s - end) <= MS for end in rule.ends_s):
            problems.append(
                f"{where}: {w.fault} ends at {w.end_s}: none of the moments that may end it "
                f"({', '.join(f'{t:.3f}' for t in rule.ends_s)})"
            )
        if rule.latest_s is not None and w.end_s > rule.latest_s + MS:
            problems.append(f"{where}: {w.fault} ends after its duration ({rule.latest_s:.3f})")


def _journal_sanity(e: Experiment) -> list[str]:
    """The sampling's summary against its own samples (the page shows both); a sampled
    matrix's count of fail-open moments against its rounds that failed open."""
    problems = []
    for m in e.matrices_over_time:
        rounds = sum(1 for lane in m.lanes for *_, failed, _pod in lane.rounds if failed)
        if rounds != m.fail_open_count:
            problems.append(f"{_key(m)}: {m.fail_open_count} fail-open moments, {rounds} rounds")
    for s in e.samplings:
        attempts = Counter(target for target, *_ in s.samples)
        issued = Counter(target for target, _t, ok, _code in s.samples if ok)
        for lane in s.lanes:
            if lane.attempts != attempts[lane.target] or lane.issued != issued[lane.target]:
                problems.append(
                    f"{_key(s)}: {lane.target} summary {lane.issued}/{lane.attempts} issued, "
                    f"samples {issued[lane.target]}/{attempts[lane.target]}"
                )
            if lane.attempts and lane.success_rate is not None:
                exact = (lane.issued or 0) / lane.attempts
                if abs(exact - lane.success_rate) > 0.5 * 10**-RATE_DECIMALS + 1e-12:
                    problems.append(
                        f"{_key(s)}: {lane.target} rate {lane.success_rate} is not "
                        f"{lane.issued}/{lane.attempts}"
                    )
    return problems


# ---------------------------------------------------------------- in the browser


def check_report_in_browser(journals: list[Path], out_dir: Path) -> None:
    """Render ``out_dir/report.html`` in headless Chromium; fail unless it shows `journals`.

    Saves a screenshot, ``out_dir/report.png`` (checked: a PNG of the size asked,
    not blank), and prints its path; reads the DOM Chromium built and raises
    AssertionError listing every figure that differs from the journals (see the
    module's docstring). BrowserError when Chromium is missing or fails.
    """
    html = out_dir / "report.html"
    if not html.is_file():
        raise FileNotFoundError(f"no report to check: {html}")
    png = out_dir / "report.png"
    browser.screenshot(html, png)
    print(f"screenshot of {html}: {png}")
    problems = compare(journals, browser.rendered_dom(html))
    if problems:
        listed = "\n".join(f"- {p}" for p in problems)
        raise AssertionError(f"{html} differs from its journals:\n{listed}")


# ---------------------------------------------------------------- journal values


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    """A string as is; anything else as JSON writes it ("" for null)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok and abs(value) != float("inf") and value == value else None


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def _when(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return moment.replace(tzinfo=moment.tzinfo or UTC) if moment else None


def _percent(rate: float | None) -> str:
    """As the page rounds a rate: one decimal, none when it is zero (``62.5%``, ``100%``)."""
    if rate is None:
        return ""
    text = f"{rate * 100:.1f}"
    return (text[:-2] if text.endswith(".0") else text) + "%"


def _last_line(exception: Any) -> str:
    text = "".join(map(str, exception)) if isinstance(exception, list) else _text(exception)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _provider_map(result: Any) -> Mapping[str, Any]:
    return _map(_map(_map(result).get("activity")).get("provider"))


def _module(result: Any) -> str:
    return _text(_provider_map(result).get("module"))


def _func(result: Any) -> str:
    p = _provider_map(result)
    return _text(p.get("func")) or _text(p.get("path"))


def _provider(result: Any) -> tuple[str, str]:
    return _module(result), _func(result)


def _activity_name(result: Any) -> str:
    return _text(_map(_map(result).get("activity")).get("name")) or _func(result) or "unnamed"


def _is_heal(result: Any) -> bool:
    func = _func(result)
    return func.startswith("heal_") or (
        _module(result).startswith(FAULTS) and func.startswith(("heal_", "restore_"))
    )


def _by_start(results: list[Any]) -> list[Any]:
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(results, key=lambda r: _when(_map(r).get("start")) or far)


def _not_checked(cid: str) -> Cell:
    """A square of the grid the check returned no cell for."""
    return Cell(cid, "", "", None, None, "", "not checked", "", False)
