"""Each run heals only its own ledger entries; ``chaosmesh-sec rollback`` heals every run's.

Two runs are two run ids in this process (:func:`chaosmesh_sec._run.begin_run`), as two
``chaos run`` processes each have one: the entries they write side by side in the lab
(scaled Deployments, partitions on two nodes) are what the real cluster keeps.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from chaosmesh_sec import _run
from chaosmesh_sec.faults import _ledger, churn, leftovers
from chaosmesh_sec.faults.apiserver_partition import (
    heal_apiserver_partition,
    partition_node_from_apiserver,
)
from chaosmesh_sec.lab.topology import DEFAULT
from tests.lab_fixtures import deploy_pause, eventually

pytestmark = pytest.mark.integration

CLI = Path(sys.executable).parent / "chaosmesh-sec"
FAULTS = _run.FAULT_NAMESPACE  # the experiments' default fault_namespace (the lab makes it)
NODE2, NODE3 = DEFAULT.nodes[1], DEFAULT.nodes[2]


def _replicas(api: client.ApiClient, namespace: str, name: str) -> int:
    spec = client.AppsV1Api(api).read_namespaced_deployment(name, namespace).spec
    return int(spec.replicas)


def _rollback(lab: Path, *args: str) -> tuple[dict[str, Any], str]:
    done = subprocess.run(
        [str(CLI), "rollback", "--kubeconfig", str(lab), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=180,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result, done.stderr


def test_each_run_restores_only_its_own_deployments(
    lab: Path, api: client.ApiClient, namespace: str
) -> None:
    deploy_pause(api, namespace, "web-a", 2)
    deploy_pause(api, namespace, "web-b", 2)
    run_a = _run.begin_run()
    churn.scale_deployment(name="web-a", replicas=0, namespace=namespace, wait_ready=False)
    run_b = _run.begin_run()
    churn.scale_deployment(name="web-b", replicas=0, namespace=namespace, wait_ready=False)
    apps = client.AppsV1Api(api)
    whose = {e["name"]: e["run_id"] for e in _ledger.pending_replicas(apps, namespace)}
    assert whose == {"web-a": run_a, "web-b": run_b}

    # run b's rollback of a's Deployment leaves it alone, and says whose it is
    refused = churn.restore_replicas(name="web-a", namespace=namespace, wait_ready=False)
    assert refused["restored"] is False and run_a in refused["reason"]
    # run b's safety net (heal_leftovers of this run) restores b's only
    healed = leftovers.heal_leftovers(namespace=namespace, fault_namespace=FAULTS)
    assert [(r["name"], r["run_id"]) for r in healed["replicas"]] == [("web-b", run_b)]
    assert (_replicas(api, namespace, "web-a"), _replicas(api, namespace, "web-b")) == (0, 2)

    # a third run (a deploy) scales b again; `chaosmesh-sec rollback` heals both runs'
    run_c = _run.begin_run()
    churn.scale_deployment(name="web-b", replicas=1, namespace=namespace, wait_ready=False)
    result, said = _rollback(lab, "--namespace", namespace, "--fault-namespace", FAULTS)
    assert sorted((r["name"], r["run_id"]) for r in result["replicas"]) == [
        ("web-a", run_a),
        ("web-b", run_c),
    ]
    assert result["run_id"] is None  # every run's
    for name, run in (("web-a", run_a), ("web-b", run_c)):
        assert f"Deployment {namespace}/{name}: restored to 2 (run {run}" in said
        assert "changed by scale_deployment at" in said
    assert (_replicas(api, namespace, "web-a"), _replicas(api, namespace, "web-b")) == (2, 2)
    _run.end_run()


def _fault_pod(core: client.CoreV1Api, name: str) -> Any:
    try:
        return core.read_namespaced_pod(name, FAULTS)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_a_runs_partition_keeps_its_full_time_while_another_run_heals(
    lab: Path, core: client.CoreV1Api
) -> None:
    """The issue's "a shorter run cut a longer run's 60 s partition after 5.3 s"."""
    cfg = {"kubeconfig_path": str(lab)}
    run_long = _run.begin_run()
    long = partition_node_from_apiserver(
        node=NODE2.name, duration_seconds=12, fault_namespace=FAULTS, configuration=cfg
    )
    run_short = _run.begin_run()
    short = partition_node_from_apiserver(
        node=NODE3.name, duration_seconds=3, fault_namespace=FAULTS, configuration=cfg
    )
    assert (long["owner_run"], short["owner_run"]) == (run_long, run_short)
    try:
        # the short run's rollback and its safety net: only its own partition
        healed = heal_apiserver_partition(fault_namespace=FAULTS, configuration=cfg)
        assert [h["run_id"] for h in healed["healed"] + healed["expired"]] == [short["run_id"]]
        again = leftovers.heal_leftovers(fault_namespace=FAULTS, configuration=cfg)
        assert again["nothing_left"] is True
        name = long["fault_pod"]["name"]
        pod = _fault_pod(core, name)
        assert pod is not None and pod.metadata.deletion_timestamp is None
        # the long run's partition runs to its own end: its pod removes its rules and
        # Succeeds by itself (it was never deleted, nor its rules taken away by exec)
        finished = eventually(
            lambda: (
                (p := _fault_pod(core, name)) is not None and p.status.phase == "Succeeded" and p
            ),
            60,
            "the long run's fault pod to finish its time",
        )
        assert finished.metadata.deletion_timestamp is None
    finally:
        _run.begin_run()
        cleaned = heal_apiserver_partition(fault_namespace=FAULTS, all_runs=True, configuration=cfg)
        _run.end_run()
    assert {h["owner_run"] for h in cleaned["expired"] + cleaned["healed"]} == {run_long}
