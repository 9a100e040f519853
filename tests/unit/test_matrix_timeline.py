"""The identity matrix over time (pure): rounds of outcomes as a per-cell timeline."""

from __future__ import annotations

from chaosmesh_sec.probes._matrix_evidence import Evidence
from chaosmesh_sec.probes._matrix_judgement import compare
from chaosmesh_sec.probes._matrix_spec import parse_matrix
from chaosmesh_sec.probes._matrix_timeline import Round, timeline

MATRIX = parse_matrix(
    """\
name: two
sources:
  a: {namespace: default, selector: "app=a"}
destinations:
  allowed: {url: "http://x.default:5000/"}
  denied: {url: "http://y.default:5000/"}
expect:
  a: {allowed: allowed, denied: denied}
"""
)
OK = {("a", "allowed"): "allowed", ("a", "denied"): "denied_by_network"}


POD = {"name": "a-1", "node": "n1", "pod_ip": "10.0.0.1"}


def _round(t: float, **verdicts: str) -> Round:
    results = dict(OK)
    results.update({("a", k): v for k, v in verdicts.items()})
    return Round(t, compare(MATRIX, results), {"a": POD})


def test_a_steady_matrix_holds_with_a_sample_per_round() -> None:
    out = timeline([_round(0), _round(5), _round(10)])
    assert out["holds"] is True and out["rounds"] == 3
    assert out["fail_open"] == [] and out["deviating_cells"] == []
    [allowed, denied] = out["cells"]
    assert allowed["cell"] == "a -> allowed" and denied["expected"] == "denied"
    assert [s["t"] for s in denied["samples"]] == [0, 5, 10]
    assert denied["verdicts"] == {"denied_by_network": 3}
    assert denied["first_deviation_s"] is None and denied["first_deviation"] is None


def test_deviations_and_fail_open_moments_are_timed() -> None:
    out = timeline(
        [
            _round(0),
            _round(5, denied="allowed"),  # fail-open
            _round(10, denied="denied_by_mesh"),  # another layer: still ok
            _round(15, allowed="error", denied="allowed"),
            _round(20),
        ]
    )
    assert out["holds"] is False
    assert out["fail_open"] == [{"t": 5, "cell": "a -> denied"}, {"t": 15, "cell": "a -> denied"}]
    assert out["deviating_cells"] == ["a -> allowed", "a -> denied"]
    allowed, denied = out["cells"]
    assert (denied["deviations"], denied["first_deviation_s"], denied["last_deviation_s"]) == (
        2,
        5,
        15,
    )
    assert denied["fail_open_s"] == [5, 15]
    assert denied["verdicts"] == {"denied_by_network": 2, "allowed": 2, "denied_by_mesh": 1}
    assert denied["first_deviation"] == {"t": 5, "verdict": "allowed", "evidence": None}
    assert (allowed["deviations"], allowed["first_deviation_s"], allowed["fail_open_s"]) == (
        1,
        15,
        [],
    )


def test_no_rounds_hold_nothing_against_it() -> None:
    assert timeline([]) == {
        "holds": True,
        "rounds": 0,
        "fail_open": [],
        "deviating_cells": [],
        "cells": [],
    }


def test_each_change_of_verdict_is_timed_with_the_pod_and_its_evidence() -> None:
    """The moment a cell changed layer (L4 -> L7) and the moment it came back."""
    mesh = Evidence(0, "403", "RBAC: access denied", "")
    recycled = {"name": "a-2", "node": "n1", "pod_ip": "10.0.0.9"}
    rounds = [
        _round(0),
        Round(4, compare(MATRIX, {**OK, ("a", "denied"): mesh}), {"a": recycled}),
        Round(8, compare(MATRIX, {**OK, ("a", "denied"): mesh}), {"a": recycled}),
        _round(12),
    ]
    out = timeline(rounds)
    assert out["holds"] is True  # another layer denied: still as expected
    allowed, denied = out["cells"]
    assert allowed["changes"] == []
    assert [(c["t"], c["from"], c["to"], c["pod"]) for c in denied["changes"]] == [
        (4, "denied_by_network", "denied_by_mesh", "a-2"),
        (12, "denied_by_mesh", "denied_by_network", "a-1"),
    ]
    assert denied["changes"][0]["evidence"]["body"] == "RBAC: access denied"
    assert denied["changes"][1]["evidence"] is None  # given as a verdict alone
    assert [(s["pod"], s["pod_ip"]) for s in denied["samples"]][1] == ("a-2", "10.0.0.9")


def test_a_source_without_a_pod_in_a_round_has_no_pod_on_its_samples() -> None:
    skipped = Evidence.exec_failed("not asked in this round: no Ready pod")
    rounds = [_round(0), Round(4, compare(MATRIX, {k: skipped for k in OK}), {}), _round(8)]
    denied = timeline(rounds)["cells"][1]
    assert [s["pod"] for s in denied["samples"]] == ["a-1", None, "a-1"]
    assert [(c["t"], c["to"]) for c in denied["changes"]] == [
        (4, "error"),
        (8, "denied_by_network"),
    ]
    assert denied["deviations"] == 1
