"""Every experiment in ``experiments/`` passes ``chaos validate`` (no cluster needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.chaos_runs import EXPERIMENTS


@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS.glob("*.json")), ids=lambda p: p.stem)
def test_experiment_is_valid(experiment: Path) -> None:
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "chaos"),
            "--no-version-check",
            "validate",
            str(experiment),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "experiment syntax and semantic look valid" in done.stdout + done.stderr
