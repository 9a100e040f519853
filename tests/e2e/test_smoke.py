"""``chaos run experiments/smoke.json`` against the lab, read back from its journal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECRET_SHAPES = re.compile(r"BEGIN (?:[A-Z]+ )?PRIVATE KEY|eyJhbGciOi[A-Za-z0-9_-]{10,}")


def test_smoke_experiment_holds_against_the_lab(lab: Path, tmp_path: Path) -> None:
    journal = tmp_path / "journal.json"
    chaos = Path(sys.executable).parent / "chaos"
    done = subprocess.run(
        [
            str(chaos),
            "--no-version-check",
            "run",
            "--journal-path",
            str(journal),
            str(ROOT / "experiments" / "smoke.json"),
        ],
        env={**os.environ, "KUBECONFIG": str(lab)},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    run = json.loads(journal.read_text())
    assert run["status"] == "completed"
    assert run["deviated"] is False
    before = {p["activity"]["name"]: p["output"] for p in run["steady_states"]["before"]["probes"]}
    assert before["istiod-replicas-ready"]["ready_replicas"] == 3
    assert before["root-cert-published"]["published"] is True
    assert not SECRET_SHAPES.search(journal.read_text())
