"""The ledger in the cluster: a crashed churn fault is undone by ``chaosmesh-sec rollback``.

A "crash" here is simply not calling the rollback: what is left is what a killed
runner leaves (the replica count changed, the ledger entry on the Deployment).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kubernetes import client

from chaosmesh_sec import _run
from chaosmesh_sec.faults import _ledger, churn
from tests.lab_fixtures import deploy_pause, eventually

CLI = Path(sys.executable).parent / "chaosmesh-sec"


def _rollback(lab: Path, namespace: str) -> dict[str, object]:
    out = subprocess.run(
        [str(CLI), "rollback", "--kubeconfig", str(lab), "--namespace", namespace],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def _ready_count(api: client.ApiClient, namespace: str, name: str) -> int:
    return (
        client.AppsV1Api(api).read_namespaced_deployment(name, namespace).status.ready_replicas or 0
    )


def test_rollback_restores_the_count_before_the_first_change(
    lab: Path, api: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(api)
    deploy_pause(api, namespace, "web", 3)
    eventually(lambda: _ready_count(api, namespace, "web") == 3, 60, "web Ready")

    first = churn.scale_deployment(name="web", replicas=1, namespace=namespace)
    second = churn.scale_deployment(name="web", replicas=0, namespace=namespace)
    assert (first["restore_to"], second["restore_to"]) == (3, 3)
    assert second["previous_replicas"] == 1
    [entry] = _ledger.pending_replicas(apps, namespace)
    assert (entry["name"], entry["replicas_before"], entry["replicas_now"]) == ("web", 3, 0)

    healed = _rollback(lab, namespace)  # the runner "crashed": no rollback ran
    [restored] = healed["replicas"]  # type: ignore[misc]
    assert {k: restored[k] for k in ("name", "namespace", "replicas", "previous_replicas")} == {
        "name": "web",
        "namespace": namespace,
        "replicas": 3,
        "previous_replicas": 0,
    }
    assert restored["run_id"] == _run.run_id() and restored["changed_by"] == "scale_deployment"
    dep = apps.read_namespaced_deployment("web", namespace)
    assert dep.spec.replicas == 3
    assert _ledger.FAULT_LABEL not in (dep.metadata.labels or {})
    assert _ledger.REPLICAS_BEFORE not in (dep.metadata.annotations or {})
    eventually(lambda: _ready_count(api, namespace, "web") == 3, 60, "web Ready again")

    again = _rollback(lab, namespace)
    assert again["replicas"] == [] and again["nothing_left"] is True


def test_restore_replicas_reads_the_ledger_and_is_safe_to_repeat(
    api: client.ApiClient, namespace: str
) -> None:
    deploy_pause(api, namespace, "api", 2)
    churn.scale_deployment(name="api", replicas=0, namespace=namespace)

    restored = churn.restore_replicas(name="api", namespace=namespace, timeout_seconds=60)
    assert restored["restored"] is True and restored["replicas"] == 2, restored
    assert restored["ready"] is True
    repeated = churn.restore_replicas(name="api", namespace=namespace)
    assert repeated["restored"] is False and repeated["replicas"] == 2
