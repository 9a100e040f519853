"""The identity matrix over time, pure: rounds of verdicts as a per-cell timeline.

Private to :mod:`chaosmesh_sec.probes` (not an activity module). ``sample_matrix``
checks a matrix every few seconds across a fault; :func:`timeline` turns its rounds
(each a :class:`~._matrix_judgement.MatrixOutcome`, at ``t`` seconds from the start,
with the pod each source was asked from) into what the journal keeps: for each cell
its verdict at each round, every change of verdict (the moment a cell changed layer,
and the moment it came back), when it first and last deviated from what was
expected, and the moments it was fail-open.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from chaosmesh_sec.probes._matrix_judgement import CellOutcome, MatrixOutcome

__all__ = ["Round", "timeline"]


@dataclass(frozen=True)
class Round:
    """One check of the matrix: seconds since the sampling started, its outcome, and the
    pod each source was asked from (``{"name", "node", "pod_ip"}``; a source missing
    here had no pod to ask from in this round)."""

    t: float
    outcome: MatrixOutcome
    pods: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def timeline(rounds: Sequence[Round]) -> dict[str, Any]:
    """``{"holds", "rounds", "fail_open": [{"t", "cell"}], "deviating_cells", "cells":
    [{"cell", "source", "destination", "expected", "samples": [{"t", "verdict", "ok",
    "fail_open", "pod", "pod_ip"}], "verdicts": {verdict: count}, "changes": [{"t",
    "from", "to", "pod", "evidence"}], "deviations", "first_deviation_s",
    "last_deviation_s", "fail_open_s", "first_deviation": {"t", "verdict",
    "evidence"}}]}``.

    `holds`: every cell as expected in every round. Cells are in the matrix's order
    (that of the first round; a cell missing from a round has no sample there). A
    sample's `pod` is None when its source had no pod to ask from. `changes`: each
    sample whose verdict differs from the cell's previous one, with its evidence.
    """
    per_cell: dict[str, list[tuple[float, CellOutcome, Mapping[str, Any]]]] = {}
    for r in rounds:
        for cell in r.outcome.cells:
            per_cell.setdefault(cell.id, []).append((r.t, cell, r.pods.get(cell.source) or {}))
    cells = [_cell(samples) for samples in per_cell.values()]
    fail_open = sorted(
        ({"t": t, "cell": c["cell"]} for c in cells for t in c["fail_open_s"]),
        key=lambda x: (x["t"], x["cell"]),
    )
    return {
        "holds": all(c["deviations"] == 0 for c in cells),
        "rounds": len(rounds),
        "fail_open": fail_open,
        "deviating_cells": [c["cell"] for c in cells if c["deviations"]],
        "cells": cells,
    }


def _cell(samples: list[tuple[float, CellOutcome, Mapping[str, Any]]]) -> dict[str, Any]:
    first = samples[0][1]
    off = [(t, c) for t, c, _pod in samples if not c.ok]
    return {
        "cell": first.id,
        "source": first.source,
        "destination": first.destination,
        "expected": first.expected,
        "samples": [
            {
                "t": t,
                "verdict": c.verdict,
                "ok": c.ok,
                "fail_open": c.fail_open,
                "pod": pod.get("name"),
                "pod_ip": pod.get("pod_ip"),
            }
            for t, c, pod in samples
        ],
        "verdicts": dict(Counter(c.verdict for _, c, _pod in samples)),
        "changes": [
            {
                "t": t,
                "from": before.verdict,
                "to": c.verdict,
                "pod": pod.get("name"),
                "evidence": c.evidence.to_json() if c.evidence else None,
            }
            for (_, before, _), (t, c, pod) in pairwise(samples)
            if c.verdict != before.verdict
        ],
        "deviations": len(off),
        "first_deviation_s": off[0][0] if off else None,
        "last_deviation_s": off[-1][0] if off else None,
        "fail_open_s": [t for t, c, _pod in samples if c.fail_open],
        "first_deviation": (
            {
                "t": off[0][0],
                "verdict": off[0][1].verdict,
                "evidence": off[0][1].evidence.to_json() if off[0][1].evidence else None,
            }
            if off
            else None
        ),
    }
