"""The seeds' wrong-identity scenario with ``chaos run``: the journal tells the story.

Before the fault sleep-v2 -> helloworld-v1 is denied by the network (the L4 policy).
During it, from the sleep-v2 pod that got sleep-v1's old IP while helloworld-v1's node
could not hear from the API server, the L4 layer lets it through (stale IP cache) and
the mesh denies it: ``denied_by_mesh``, recorded as a layer change. After the heal the
matrix holds again. ``make reference-journals`` keeps such a journal in
``journals/reference/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.chaos_runs import EXPERIMENTS, chaos_run, outputs

CELL = ("sleep-v2", "helloworld-v1")


def _cell(matrix: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in matrix["cells"] if (c["source"], c["destination"]) == CELL)


def test_the_l4_layer_is_fooled_and_the_mesh_holds(lab: Path, tmp_path: Path) -> None:
    run = chaos_run(
        EXPERIMENTS / "wrong-identity.json",
        lab,
        tmp_path / "journal.json",
        {"partition_seconds": 90, "settle_seconds": 10},
        timeout=400,
    )
    assert run["_exit_code"] == 0, str(run["_stderr"])[-3000:]
    assert run["status"] == "completed" and run["deviated"] is False

    [before] = run["steady_states"]["before"]["probes"]
    assert before["output"]["holds"] is True
    assert _cell(before["output"])["verdict"] == "denied_by_network"

    out = outputs(run)
    hunt = out["hunt-recycled-ip"]
    assert hunt["found"] is True, hunt["reason"]
    during = out["matrix-from-the-recycled-ip-during-the-fault"]
    assert during["pods"]["sleep-v2"]["pod_ip"] == hunt["recycled_ip"]
    cell = _cell(during)
    assert cell["verdict"] == "denied_by_mesh", cell
    assert cell["evidence"]["http_code"] == "403"
    assert cell["evidence"]["body"] == "RBAC: access denied"
    assert cell["layer_change"] == "denied_by_network -> denied_by_mesh"
    assert during["holds"] is True and during["fail_open"] == []

    [after] = run["steady_states"]["after"]["probes"]
    assert after["output"]["holds"] is True
    assert all(r["status"] == "succeeded" for r in run["rollbacks"])
    [net] = [e for e in run["extensions"] if e["name"] == "chaosmesh-sec-safety-net"]
    assert net["healed"]["nothing_left"] is True
