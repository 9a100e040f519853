"""A game day of every experiment against the lab: one run, one report, read in a browser.

``chaosmesh-sec gameday gamedays/lab.yaml`` runs each experiment of the pack in its own
``chaos run``, as a team would on the day; the tests below read what it left: the
exit code, every journal, ``metrics.prom``, and ``report.html`` rendered by headless
Chromium, whose figures must be the journals' numbers (tests/report_figures.py).
Per-experiment checks that need a run of their own (other variables, a workload made
for the test) stay in the other e2e modules.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chaos_runs import BIN, ROOT, SECRET_SHAPES, assert_caught_or_redirected, outputs
from tests.report_figures import check_report_in_browser

PLAN = ROOT / "gamedays" / "lab.yaml"
EXPERIMENTS = [Path(e["path"]).stem for e in yaml.safe_load(PLAN.read_text())["experiments"]]


@pytest.fixture(scope="module")
def gameday(lab: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path, str]:
    """Run the plan once: (exit code, the run's directory, its terminal output)."""
    out = tmp_path_factory.mktemp("gameday")
    done = subprocess.run(
        [str(BIN / "chaosmesh-sec"), "gameday", "--yes", "--quiet", "--out", str(out), str(PLAN)],
        env={**os.environ, "KUBECONFIG": str(lab)},
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    print(done.stdout[-4000:])
    [run_dir] = [d for d in out.iterdir() if d.is_dir()]
    return done.returncode, run_dir, done.stdout + done.stderr


def _journals(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("[0-9][0-9]-*.json"))


def _journal(run_dir: Path, experiment: str) -> dict[str, Any]:
    [path] = [p for p in _journals(run_dir) if p.stem.split("-", 1)[1] == experiment]
    run: dict[str, Any] = json.loads(path.read_text())
    return run


def test_every_experiment_ran_and_held(gameday: tuple[int, Path, str]) -> None:
    code, run_dir, output = gameday
    assert code == 0, output[-3000:]
    assert [p.stem.split("-", 1)[1] for p in _journals(run_dir)] == EXPERIMENTS
    for experiment in EXPERIMENTS:
        run = _journal(run_dir, experiment)
        assert (run["status"], run["deviated"]) == ("completed", False), experiment
    metrics = (run_dir / "metrics.prom").read_text()
    for experiment in EXPERIMENTS:
        assert f'experiment="{experiment}"' in metrics, experiment


def test_one_report_shows_the_journals_numbers_in_a_browser(
    gameday: tuple[int, Path, str],
) -> None:
    _code, run_dir, _output = gameday
    journals = _journals(run_dir)
    check_report_in_browser(journals, run_dir)
    assert (run_dir / "report.png").stat().st_size > 10_000
    junit = (run_dir / "junit.xml").read_text()
    assert junit.count("<testcase") >= len(EXPERIMENTS) and "<failure" not in junit


def test_no_token_or_key_anywhere_in_what_it_wrote(gameday: tuple[int, Path, str]) -> None:
    _code, run_dir, output = gameday
    assert not SECRET_SHAPES.search(output)
    for path in run_dir.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".out", ".log", ".html", ".md", ".xml"):
            assert not SECRET_SHAPES.search(path.read_text(errors="replace")), path


def test_the_cni_restart_was_seen_by_the_posture_probes(gameday: tuple[int, Path, str]) -> None:
    """The restart opened the race on the canaries' node; no canary ran around its proxy
    (each missed the window, or was caught in it and repaired)."""
    run = _journal(gameday[1], "cni-restart")
    out = outputs(run)
    during = out["canaries-redirected-or-caught"]
    assert during["counts"]["unredirected"] == 0 and len(during["pods"]) == 2, during
    for pod in during["pods"]:
        assert_caught_or_redirected(pod)
    assert out["identity-matrix-during-the-restart"]["holds"] is True
