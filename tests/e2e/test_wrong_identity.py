"""The seeds' wrong-identity scenario with ``chaos run``: the journal tells the story.

Before the fault sleep-v2 -> helloworld-v1 is denied by the network (the L4 policy).
During it, from the sleep-v2 pod that got sleep-v1's old IP while helloworld-v1's node
could not hear from the API server, the L4 layer lets it through (stale IP cache) and
the mesh denies it: ``denied_by_mesh``, recorded as a layer change. After the heal the
matrix holds again. ``make reference-journals`` keeps such a journal in
``journals/reference/``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from chaosmesh_sec import gameday
from chaosmesh_sec.gameday.verdict import journal_status
from chaosmesh_sec.report import write_reports
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
    # the precondition of the story: the pod got the IP after the server's node was cut off
    assert hunt["reproduced"] is True and hunt["scenario"].startswith("reproduced: "), hunt
    [cut] = hunt["precondition"]["cuts"]
    assert cut["node"] == out["cut-helloworld-v1-node-from-apiserver"]["node"]
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


def test_a_permissive_mesh_is_caught_fail_open(
    lab: Path, tmp_path: Path, custom: Any, kit_holds: None, kit_restored: None
) -> None:
    """The probe can fail: allow-nothing removed and helloworld-v1's ALLOW widened to the
    whole namespace. The stale L4 layer lets the recycled IP through and the mesh no
    longer stops it: the check during the fault names the fail-open cell, the game
    day's exit code says deviated, and JUnit carries a failure naming the cell."""
    custom.delete_namespaced_custom_object(
        "security.istio.io", "v1", "default", "authorizationpolicies", "allow-nothing"
    )
    wide = {"spec": {"rules": [{"from": [{"source": {"namespaces": ["default"]}}]}]}}
    custom.patch_namespaced_custom_object(
        "security.istio.io", "v1", "default", "authorizationpolicies", "helloworld-v1", wide
    )
    journal = tmp_path / "journal.json"
    run = chaos_run(
        EXPERIMENTS / "wrong-identity.json",
        lab,
        journal,
        {"partition_seconds": 90, "settle_seconds": 10},
        timeout=400,
    )
    assert run["_exit_code"] == 1, "chaos run must exit non-zero on a fail-open"
    assert run["deviated"] is True and journal_status(run) == "deviated"
    [during] = [r for r in run["run"] if r["activity"]["name"].startswith("matrix-from")]
    assert during["status"] == "failed"
    assert "fail-open cells in wrong-identity: sleep-v2 -> helloworld-v1" in "".join(
        during["exception"]
    )
    assert gameday.journal_exit_code(run) == gameday.EXIT_DEVIATED
    junit = ET.parse(write_reports([journal], tmp_path / "report")["junit"]).getroot()
    failures = [f.get("message", "") for f in junit.iter("failure")]
    assert any("sleep-v2 -> helloworld-v1" in message for message in failures), failures
