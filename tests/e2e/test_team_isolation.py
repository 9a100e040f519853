"""Seed 002's team isolation with ``chaos run``, through istiod kills and a CNI restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.chaos_runs import EXPERIMENTS, chaos_run, outputs


def _verdicts(matrix: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(c["source"], c["destination"]): c["verdict"] for c in matrix["cells"]}


def test_only_team_a_reaches_team_a_through_the_faults(
    lab: Path, tmp_path: Path, three_ready: list[Any]
) -> None:
    run = chaos_run(
        EXPERIMENTS / "team-isolation.json", lab, tmp_path / "journal.json", timeout=300
    )
    assert run["_exit_code"] == 0, str(run["_stderr"])[-3000:]
    assert run["status"] == "completed" and run["deviated"] is False
    expected = {
        ("curl-a", "httpbin-a"): "allowed",
        ("curl-b", "httpbin-a"): "denied_by_mesh",
        ("curl-a", "httpbin-b"): "allowed",
        ("curl-b", "httpbin-b"): "allowed",
    }
    [before, _] = run["steady_states"]["before"]["probes"]
    assert _verdicts(before["output"]) == expected
    out = outputs(run)
    assert len(out["kill-istiod-replicas"]["killed"]) == 2
    assert len(out["restart-cni-pods-everywhere"]["nodes"]) == 3
    for check in ("matrix-while-istiod-is-down", "matrix-while-the-cni-agents-restart"):
        assert _verdicts(out[check]) == expected, check
        assert out[check]["holds"] is True and out[check]["layer_changes"] == []
    [after, _] = run["steady_states"]["after"]["probes"]
    assert after["output"]["holds"] is True


def test_a_source_with_no_running_pod_stops_the_run_before_any_fault(
    lab: Path, tmp_path: Path, three_ready: list[Any]
) -> None:
    """A matrix naming a workload that has no pod: the steady-state check says so
    (InvalidInput naming the source) and no fault is injected."""
    bad = tmp_path / "ghost.matrix.yaml"
    bad.write_text(
        "name: ghost\nsources:\n  ghost: {namespace: team-a, selector: app=ghost}\n"
        "destinations:\n  httpbin-a: {url: 'http://httpbin.team-a:8000/ip'}\n"
        "expect: {ghost: {httpbin-a: allowed}}\n"
    )
    run = chaos_run(
        EXPERIMENTS / "team-isolation.json",
        lab,
        tmp_path / "journal.json",
        {"matrix": str(bad), "ready_wait_seconds": 0},
    )
    assert run["status"] == "failed" and run["run"] == []
    [probe, *_] = run["steady_states"]["before"]["probes"]
    assert probe["status"] == "failed"
    assert "'ghost': no Ready pod matches 'app=ghost'" in "".join(probe["exception"])
