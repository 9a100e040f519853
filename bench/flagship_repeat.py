"""Run the flagship (experiments/wrong-identity.json) N times against one lab and count
how often the seeds' story happened.

    KUBECONFIG=/var/lib/chaosmesh-sec-lab/kubeconfig .venv/bin/python bench/flagship_repeat.py 10

Each run is a real ``chaos run`` (journal under ``journals/flagship-repeat/``) and is
counted as one of:

- ``reproduced``: the hunt's precondition held (a pod created after the cut got the
  victim's IP) and, from that pod, sleep-v2 -> helloworld-v1 went
  ``denied_by_network -> denied_by_mesh``: the L4 layer was fooled, the mesh held;
- ``held_without_layer_change``: the run held, the precondition held, yet the cell did
  not change layer (the lab's L4 agent was not stale: a defect to chase);
- ``not_reproduced``: the hunt says so (no such pod within its bounds, or no cut);
- ``deviated``: the run deviated or failed (a fail-open is one).

Prints a line per run as it ends, then a JSON summary. Asserts nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "experiments" / "wrong-identity.json"
CELL = ("sleep-v2", "helloworld-v1")
STORY = "denied_by_network -> denied_by_mesh"
VARIABLES = {"partition_seconds": 90, "settle_seconds": 10}


def outputs(journal: dict[str, Any]) -> dict[str, Any]:
    return {r["activity"]["name"]: r.get("output") for r in journal.get("run", [])}


def classify(journal: dict[str, Any]) -> tuple[str, str]:
    """The run's class and a few words of evidence."""
    out = outputs(journal)
    hunt = out.get("hunt-recycled-ip") or {}
    during = out.get("matrix-from-the-recycled-ip-during-the-fault") or {}
    cell = next(
        (c for c in during.get("cells", []) if (c["source"], c["destination"]) == CELL), None
    )
    if journal.get("deviated") or journal.get("status") != "completed" or during.get("fail_open"):
        return "deviated", f"status {journal.get('status')}, deviated {journal.get('deviated')}"
    if hunt.get("reproduced") is not True:
        return "not_reproduced", str(hunt.get("scenario") or hunt.get("reason"))
    if cell is None:
        return "not_reproduced", "no during-fault check of the cell"
    seen = f"{cell['verdict']} ({cell['evidence'].get('http_code')}) from {hunt['recycled_ip']}"
    if cell.get("layer_change") == STORY:
        return "reproduced", seen
    return "held_without_layer_change", seen


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    kubeconfig = os.environ["KUBECONFIG"]
    out_dir = ROOT / "journals" / "flagship-repeat"
    out_dir.mkdir(parents=True, exist_ok=True)
    var_file = out_dir / "vars.json"
    var_file.write_text(json.dumps({"configuration": VARIABLES}))
    chaos = Path(sys.executable).parent / "chaos"
    counts: Counter[str] = Counter()
    seconds: list[float] = []
    for i in range(1, runs + 1):
        journal_path = out_dir / f"run-{i:02d}.json"
        started = time.monotonic()
        done = subprocess.run(
            [
                chaos,
                "--no-version-check",
                "run",
                "--journal-path",
                journal_path,
                "--var-file",
                var_file,
                EXPERIMENT,
            ],
            env={**os.environ, "KUBECONFIG": kubeconfig},
            capture_output=True,
            text=True,
            check=False,
        )
        seconds.append(round(time.monotonic() - started, 1))
        if journal_path.exists():
            kind, evidence = classify(json.loads(journal_path.read_text()))
        else:
            kind, evidence = "deviated", f"no journal (exit {done.returncode})"
        counts[kind] += 1
        print(
            f"run {i:2d}/{runs}: {kind:26s} exit {done.returncode}  {seconds[-1]:5.1f} s  "
            f"{evidence}",
            flush=True,
        )
    print(
        json.dumps(
            {
                "runs": runs,
                **{
                    k: counts[k]
                    for k in (
                        "reproduced",
                        "held_without_layer_change",
                        "not_reproduced",
                        "deviated",
                    )
                },
                "seconds_per_run": seconds,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
