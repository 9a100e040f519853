"""``chaos run experiments/smoke.json`` against the lab, read back from its journal."""

from __future__ import annotations

from pathlib import Path

from tests.chaos_runs import EXPERIMENTS, chaos_run


def test_smoke_experiment_holds_against_the_lab(lab: Path, tmp_path: Path) -> None:
    run = chaos_run(EXPERIMENTS / "smoke.json", lab, tmp_path / "journal.json")
    assert run["_exit_code"] == 0, run["_stderr"][-2000:]
    assert run["status"] == "completed"
    assert run["deviated"] is False
    before = {p["activity"]["name"]: p["output"] for p in run["steady_states"]["before"]["probes"]}
    assert before["istiod-replicas-ready"]["ready_replicas"] == 3
    assert before["root-cert-published"]["published"] is True
