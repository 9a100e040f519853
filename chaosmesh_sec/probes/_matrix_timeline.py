"""The identity matrix over time, pure: rounds of verdicts as a per-cell timeline.

Private to :mod:`chaosmesh_sec.probes` (not an activity module). ``sample_matrix``
checks a matrix every few seconds across a fault; :func:`timeline` turns its rounds
(each a :class:`~._matrix_judgement.MatrixOutcome`, at ``t`` seconds from the start)
into what the journal keeps: for each cell its verdict at each round, when it first
and last deviated from what was expected, and the moments it was fail-open.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from chaosmesh_sec.probes._matrix_judgement import CellOutcome, MatrixOutcome

__all__ = ["Round", "timeline"]

Round = tuple[float, MatrixOutcome]
"""One check of the matrix: seconds since the sampling started, and its outcome."""


def timeline(rounds: Sequence[Round]) -> dict[str, Any]:
    """``{"holds", "rounds", "fail_open": [{"t", "cell"}], "deviating_cells", "cells":
    [{"cell", "source", "destination", "expected", "samples": [{"t", "verdict", "ok",
    "fail_open"}], "verdicts": {verdict: count}, "deviations", "first_deviation_s",
    "last_deviation_s", "fail_open_s", "first_deviation": {"t", "verdict", "evidence"}}]}``.

    `holds`: every cell as expected in every round. Cells are in the matrix's order
    (that of the first round; a cell missing from a round has no sample there).
    """
    per_cell: dict[str, list[tuple[float, CellOutcome]]] = {}
    for t, outcome in rounds:
        for cell in outcome.cells:
            per_cell.setdefault(cell.id, []).append((t, cell))
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


def _cell(samples: list[tuple[float, CellOutcome]]) -> dict[str, Any]:
    first = samples[0][1]
    off = [(t, c) for t, c in samples if not c.ok]
    return {
        "cell": first.id,
        "source": first.source,
        "destination": first.destination,
        "expected": first.expected,
        "samples": [
            {"t": t, "verdict": c.verdict, "ok": c.ok, "fail_open": c.fail_open} for t, c in samples
        ],
        "verdicts": dict(Counter(c.verdict for _, c in samples)),
        "deviations": len(off),
        "first_deviation_s": off[0][0] if off else None,
        "last_deviation_s": off[-1][0] if off else None,
        "fail_open_s": [t for t, c in samples if c.fail_open],
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
