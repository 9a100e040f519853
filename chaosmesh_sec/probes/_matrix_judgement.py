"""The identity matrix's judgement, pure: each cell's verdict against its expectation.

Private to :mod:`chaosmesh_sec.probes` (not an activity module). :func:`compare` holds
the verdicts (or the evidence, classified by :mod:`~chaosmesh_sec.probes._matrix_evidence`)
against a parsed matrix (:mod:`~chaosmesh_sec.probes._matrix_spec`). How a
deny-expected cell is judged: any deny holds (``ok``); ``allowed`` is a fail-open, the
worst result; a deny by another layer than the one written holds but is listed as a
layer mismatch. An ``error`` is never ok. Against a baseline taken earlier in the run,
every verdict that changed is listed as a layer change (``denied_by_network ->
denied_by_mesh``: L4 was bypassed and the mesh held).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chaosmesh_sec.probes._matrix_evidence import DENIALS, VERDICTS, Evidence, classify
from chaosmesh_sec.probes._matrix_spec import Cell, CellKey, Matrix, cell_id

__all__ = ["CellOutcome", "MatrixOutcome", "compare", "verdicts_from_json"]


@dataclass(frozen=True)
class CellOutcome:
    """One cell's verdict against its expectation (and against the baseline's, if any).

    `ok`: the expectation held. `fail_open`: a deny was expected, it got through.
    `unexpected_deny`: ``allowed`` was expected, it was denied. `layer_mismatch`: a
    specific deny was expected, another layer denied it (still ok). `layer_change`:
    ``"baseline -> verdict"`` when the verdict differs from the baseline's, else None.
    `evidence`: None when the result was given as a verdict alone.
    """

    source: str
    destination: str
    expected: str
    verdict: str
    ok: bool
    evidence: Evidence | None
    fail_open: bool
    unexpected_deny: bool
    layer_mismatch: bool
    baseline: str | None
    layer_change: str | None

    @property
    def key(self) -> CellKey:
        return (self.source, self.destination)

    @property
    def id(self) -> str:
        return cell_id(self.key)

    def to_json(self) -> dict[str, Any]:
        return {
            "cell": self.id,
            "source": self.source,
            "destination": self.destination,
            "expected": self.expected,
            "verdict": self.verdict,
            "ok": self.ok,
            "fail_open": self.fail_open,
            "unexpected_deny": self.unexpected_deny,
            "layer_mismatch": self.layer_mismatch,
            "baseline": self.baseline,
            "layer_change": self.layer_change,
            "evidence": self.evidence.to_json() if self.evidence else None,
        }


@dataclass(frozen=True)
class MatrixOutcome:
    """Every cell's outcome, in the matrix's order, and what they add up to."""

    matrix: str
    cells: tuple[CellOutcome, ...]

    @property
    def holds(self) -> bool:
        """Every cell is ok (fail-opens, unexpected denies and errors break it)."""
        return all(c.ok for c in self.cells)

    @property
    def failures(self) -> tuple[CellOutcome, ...]:
        return tuple(c for c in self.cells if not c.ok)

    @property
    def fail_open(self) -> tuple[CellOutcome, ...]:
        return tuple(c for c in self.cells if c.fail_open)

    @property
    def unexpected_denies(self) -> tuple[CellOutcome, ...]:
        return tuple(c for c in self.cells if c.unexpected_deny)

    @property
    def layer_mismatches(self) -> tuple[CellOutcome, ...]:
        return tuple(c for c in self.cells if c.layer_mismatch)

    @property
    def layer_changes(self) -> tuple[CellOutcome, ...]:
        return tuple(c for c in self.cells if c.layer_change)

    @property
    def errors(self) -> tuple[CellOutcome, ...]:
        return tuple(c for c in self.cells if c.verdict == "error")

    def counts(self) -> dict[str, int]:
        """How many cells got each verdict (every verdict named, 0 included)."""
        counts = dict.fromkeys(VERDICTS, 0)
        for c in self.cells:
            counts[c.verdict] += 1
        return counts

    def verdicts(self) -> dict[CellKey, str]:
        """Each cell's verdict: the baseline for a later :func:`compare`."""
        return {c.key: c.verdict for c in self.cells}

    def to_json(self) -> dict[str, Any]:
        """JSON-ready; the lists name cells as ``source -> destination``."""
        return {
            "matrix": self.matrix,
            "holds": self.holds,
            "total": len(self.cells),
            "counts": self.counts(),
            "failures": [c.id for c in self.failures],
            "fail_open": [c.id for c in self.fail_open],
            "unexpected_denies": [c.id for c in self.unexpected_denies],
            "layer_mismatches": [c.id for c in self.layer_mismatches],
            "errors": [c.id for c in self.errors],
            "layer_changes": [
                {"cell": c.id, "baseline": c.baseline, "verdict": c.verdict}
                for c in self.layer_changes
            ],
            "cells": [c.to_json() for c in self.cells],
        }


def compare(
    matrix: Matrix,
    results: Mapping[CellKey, Evidence | str],
    baseline: Mapping[CellKey, str] | MatrixOutcome | None = None,
) -> MatrixOutcome:
    """Hold each cell's result against its expectation, and against `baseline`.

    `results` maps a cell's key to its evidence (classified here) or to a verdict. A
    cell without a result is an ``error`` (it was not checked, so it cannot hold).
    `baseline`: verdicts from earlier in the run (:meth:`MatrixOutcome.verdicts`, or
    the outcome itself); a cell it lacks has no layer change. ValueError on a result
    for a cell the matrix does not have, or on a word that is not a verdict.
    """
    cells = matrix.cells()
    known = {cell.key for cell in cells}
    stray = [cell_id(key) for key in results if key not in known]
    if stray:
        raise ValueError(f"results for cells not in matrix {matrix.name!r}: {', '.join(stray)}")
    before = baseline.verdicts() if isinstance(baseline, MatrixOutcome) else (baseline or {})
    outcomes = []
    for cell in cells:
        result = results.get(cell.key)
        evidence: Evidence | None
        if result is None:
            evidence = Evidence(None, "000", "", "no result for this cell")
            verdict = "error"
        elif isinstance(result, Evidence):
            evidence, verdict = result, classify(result)
        else:
            evidence, verdict = None, _verdict(f"result of {cell.id}", result)
        previous = before.get(cell.key)
        if previous is not None:
            previous = _verdict(f"baseline of {cell.id}", previous)
        outcomes.append(_judge(cell, verdict, evidence, previous))
    return MatrixOutcome(matrix.name, tuple(outcomes))


def _verdict(what: str, value: object) -> str:
    if not isinstance(value, str) or value not in VERDICTS:
        raise ValueError(f"{what}: {value!r} is not a verdict ({', '.join(VERDICTS)})")
    return value


def _judge(
    cell: Cell, verdict: str, evidence: Evidence | None, previous: str | None
) -> CellOutcome:
    denied = verdict in DENIALS
    if cell.expected == "allowed":
        ok, fail_open, unexpected_deny, mismatch = verdict == "allowed", False, denied, False
    else:
        ok, fail_open, unexpected_deny = denied, verdict == "allowed", False
        mismatch = denied and cell.expected != "denied" and verdict != cell.expected
    change = f"{previous} -> {verdict}" if previous is not None and previous != verdict else None
    return CellOutcome(
        source=cell.source.name,
        destination=cell.destination.name,
        expected=cell.expected,
        verdict=verdict,
        ok=ok,
        evidence=evidence,
        fail_open=fail_open,
        unexpected_deny=unexpected_deny,
        layer_mismatch=mismatch,
        baseline=previous,
        layer_change=change,
    )


def verdicts_from_json(data: Mapping[str, Any]) -> dict[CellKey, str]:
    """The verdicts in a :meth:`MatrixOutcome.to_json` (a baseline kept in the journal).

    ValueError when `data` does not have that shape.
    """
    cells = data.get("cells")
    if not isinstance(cells, list):
        raise ValueError("not a matrix outcome: no `cells` list")
    verdicts: dict[CellKey, str] = {}
    for i, cell in enumerate(cells):
        if not isinstance(cell, Mapping):
            raise ValueError(f"cells[{i}] is not a mapping")
        source, destination = cell.get("source"), cell.get("destination")
        if not isinstance(source, str) or not isinstance(destination, str):
            raise ValueError(f"cells[{i}] has no source and destination names")
        verdicts[(source, destination)] = _verdict(f"cells[{i}]", cell.get("verdict"))
    return verdicts
