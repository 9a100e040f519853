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
