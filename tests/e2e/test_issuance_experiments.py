"""The issuance experiments with ``chaos run`` against the lab's real istiod.

(a) One istiod's node is cut off the API server: that replica stops issuing (its
TokenReview hangs: the CSR runs into the deadline, or is refused as unauthenticated
once client-go gives the connection up), the other two keep issuing, and the
hypothesis, checked again while the partition is still in effect, holds.
(b) Two of three replicas are killed: the Service path keeps issuing.
Both journals are scanned for tokens and keys by :func:`tests.chaos_runs.chaos_run`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.chaos_runs import EXPERIMENTS, chaos_run, outputs
from tests.lab_fixtures import wait_lease_renewed

REFUSED = ("DEADLINE_EXCEEDED", "UNAUTHENTICATED")


def _completed(run: dict[str, Any]) -> None:
    assert run["_exit_code"] == 0, str(run["_stderr"])[-3000:]
    assert run["status"] == "completed" and run["deviated"] is False


def _after(run: dict[str, Any], name: str) -> Any:
    probes = run["steady_states"]["after"]["probes"]
    return next(p["output"] for p in probes if p["activity"]["name"] == name)


def test_partitioned_replica_stops_issuing_and_the_others_carry_on(
    lab: Path, api: Any, tmp_path: Path, three_ready: list[Any]
) -> None:
    run = chaos_run(
        EXPERIMENTS / "issuance-partition.json",
        lab,
        tmp_path / "journal.json",
        {"partition_seconds": 40, "hold_seconds": 8, "sample_seconds": 20},
        timeout=240,
    )
    _completed(run)
    out = outputs(run)
    cut = out["partition-istiod-node-from-apiserver"]["node"]

    during = out["issuance-during-partition"]
    for replica in during["replicas"]:
        if replica["node"] == cut:
            assert replica["code"] in REFUSED and replica["issued"] is False, replica
        else:
            assert replica["code"] == "OK" and replica["identity_ok"] is True, replica
    assert during["ok"] is True and during["issuing_replicas"] == 2

    after = _after(run, "certificates-issued")  # still inside the partition window
    assert after["ok"] is True and after["issuing_replicas"] == 2, after

    timeline = out["issuance-timeline"]
    cut_pod = next(r["pod"] for r in during["replicas"] if r["node"] == cut)
    for target, stats in timeline["summary"].items():
        if target == cut_pod:
            assert stats["success_rate"] < 1 and stats["first_failure_s"] is not None
        elif target != "service":
            assert stats["success_rate"] == 1.0, (target, stats)
    print(f"cut {cut}: timeline {timeline['summary']}")

    [heal] = run["rollbacks"]
    assert heal["status"] == "succeeded" and heal["output"]["healed"], heal
    wait_lease_renewed(api, cut)  # before three_ready's check: no late NotReady after us


def test_service_path_issues_through_a_two_replica_kill(
    lab: Path, tmp_path: Path, three_issuing: list[Any]
) -> None:
    run = chaos_run(
        EXPERIMENTS / "issuance-istiod-kill.json",
        lab,
        tmp_path / "journal.json",
        {"istiod_kill_count": 2, "sample_seconds": 10, "recovery_timeout_seconds": 90},
        timeout=240,
    )
    _completed(run)
    out = outputs(run)
    kill = out["kill-istiod-replicas"]
    assert len(kill["killed"]) == 2 and kill["recovered"] is True
    service = out["issuance-timeline"]["summary"]["service"]
    # A CSR can race a killed replica's endpoint removal (kube-proxy has the same lag):
    # a rare miss, never an outage.
    assert service["attempts"] >= 5 and service["success_rate"] >= 0.8, service
    assert service["longest_outage_s"] <= 1.0, service
    print(f"2 of 3 killed: recovery {kill['recovery_seconds']}s, service {service}")
