"""Churn faults against the lab: scale and restore, rollout restart, and the IP hunt.

Each test works in a namespace of its own (the ``namespace`` fixture deletes it).
Workloads are pause pods; the IP hunt pins victim and hunter to one node so they
draw from the same pod CIDR, where kwok reuses freed IPs as a real IPAM does.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from kubernetes import client

from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.faults import _cut, churn, ip_recycle
from chaosmesh_sec.faults.apiserver_partition import (
    heal_apiserver_partition,
    partition_node_from_apiserver,
)
from chaosmesh_sec.lab.topology import DEFAULT
from tests.lab_fixtures import deploy_pause as _deploy
from tests.lab_fixtures import eventually, wait_lease_renewed

NODE = "lab-node-1"


def _live(core: client.CoreV1Api, namespace: str, name: str) -> list[client.V1Pod]:
    pods = core.list_namespaced_pod(namespace, label_selector=f"app={name}").items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def _rolled_out(api: client.ApiClient, namespace: str, name: str, replicas: int) -> bool:
    dep = client.AppsV1Api(api).read_namespaced_deployment(name, namespace)
    status = dep.status
    return bool(
        dep.spec.replicas == replicas
        and (status.observed_generation or 0) >= dep.metadata.generation
        and (status.ready_replicas or 0) == replicas
        and (status.replicas or 0) == replicas
    )


def _deploy_ready(
    api: client.ApiClient, namespace: str, name: str, replicas: int, node: str = ""
) -> None:
    _deploy(api, namespace, name, replicas, node)
    eventually(lambda: _rolled_out(api, namespace, name, replicas), 60, f"{name} rolled out")


def test_scale_then_restore_returns_the_replica_count(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    _deploy_ready(api, namespace, "web", 3)

    scaled = churn.scale_deployment("web", 1, namespace=namespace, timeout_seconds=60)
    print(f"scale 3 -> 1: {scaled['seconds']}s")
    assert scaled["previous_replicas"] == 3
    assert scaled["replicas"] == 1 and scaled["ready"] is True and scaled["ready_replicas"] == 1
    assert client.AppsV1Api(api).read_namespaced_deployment("web", namespace).spec.replicas == 1
    eventually(lambda: len(_live(core, namespace, "web")) == 1, 30, "one web pod left")

    restored = churn.restore_replicas(
        "web", scaled["previous_replicas"], namespace=namespace, timeout_seconds=60
    )
    print(f"restore 1 -> 3: {restored['seconds']}s")
    assert restored["previous_replicas"] == 1
    assert restored["replicas"] == 3 and restored["ready"] is True
    assert _rolled_out(api, namespace, "web", 3)
    assert len(_live(core, namespace, "web")) == 3


def test_scale_timeout_is_reported_not_raised(api: client.ApiClient, namespace: str) -> None:
    """A pod that cannot be scheduled (no such node label) never gets Ready."""
    _deploy(api, namespace, "stuck", 0, node="no-such-node")
    result = churn.scale_deployment("stuck", 1, namespace=namespace, timeout_seconds=2)
    assert result["ready"] is False
    assert result["previous_replicas"] == 0
    assert "0 of 1" in result["reason"]
    churn.restore_replicas("stuck", 0, namespace=namespace, timeout_seconds=30)


def test_rollout_restart_replaces_every_pod_each_cycle(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    _deploy_ready(api, namespace, "web", 2)

    result = churn.rollout_restart("web", namespace=namespace, cycles=2, timeout_seconds=60)
    print(f"rollout restart: {[h['seconds'] for h in result['history']]}s per cycle")
    assert result["completed"] is True and result["completed_cycles"] == 2
    assert [h["cycle"] for h in result["history"]] == [1, 2]
    for cycle in result["history"]:
        before = {p["uid"] for p in cycle["pods_before"]}
        after = {p["uid"] for p in cycle["pods_after"]}
        assert len(before) == 2 and len(after) == 2
        assert not before & after, "a pod survived its restart"
        assert len(cycle["ips_after"]) == 2
    # The second cycle started from the first cycle's pods.
    first, second = result["history"]
    assert {p["uid"] for p in second["pods_before"]} == {p["uid"] for p in first["pods_after"]}
    template = client.AppsV1Api(api).read_namespaced_deployment("web", namespace).spec.template
    assert template.metadata.annotations[churn.RESTARTED_AT] == second["restarted_at"]
    assert {p.metadata.uid for p in _live(core, namespace, "web")} == {
        p["uid"] for p in second["pods_after"]
    }


def test_ip_hunt_finds_a_recycled_ip_or_says_none_was_reused(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    _deploy_ready(api, namespace, "victim", 3, node=NODE)
    _deploy_ready(api, namespace, "hunter", 2, node=NODE)
    victim_ips = {p.status.pod_ip for p in _live(core, namespace, "victim")}

    result = ip_recycle.hunt_recycled_ip(
        "victim", "hunter", namespace=namespace, max_rounds=5, timeout_seconds=90
    )
    print(
        f"IP hunt: found={result['found']} ip={result['recycled_ip']} "
        f"rounds={result['rounds']} in {result['seconds']}s; reason={result['reason']}"
    )

    assert set(result["victim_ips"]) == victim_ips
    assert result["victim_previous_replicas"] == 3
    assert result["victim_nodes"] == [NODE]
    cidr = ipaddress.ip_network(DEFAULT.node(NODE).pod_cidr)
    assert all(ipaddress.ip_address(ip) in cidr for ip in victim_ips)
    # The victim is scaled to zero and its pods are gone.
    assert client.AppsV1Api(api).read_namespaced_deployment("victim", namespace).spec.replicas == 0
    assert not _live(core, namespace, "victim")
    if result["found"]:
        assert result["recycled_ip"] in victim_ips
        pod = core.read_namespaced_pod(result["pod"]["name"], namespace)
        assert pod.metadata.uid == result["pod"]["uid"]
        assert pod.status.pod_ip == result["recycled_ip"] == result["pod"]["pod_ip"]
        assert pod.metadata.labels["app"] == "hunter"
        assert pod.spec.node_name == result["pod"]["node"] == NODE
        assert 0 <= result["rounds"] <= 5
        assert result["reason"] is None
    else:
        assert result["recycled_ip"] is None and result["pod"] is None
        assert result["rounds"] == 5 or "timed out" in result["reason"]
        assert "victim" in result["reason"]
        hunter_ips = {p.status.pod_ip for p in _live(core, namespace, "hunter")}
        assert not hunter_ips & victim_ips

    restored = churn.restore_replicas(
        "victim", result["victim_previous_replicas"], namespace=namespace, timeout_seconds=60
    )
    assert restored["ready"] is True and restored["previous_replicas"] == 0


def test_ip_hunt_for_the_stale_cache_story_needs_the_cut(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    """With no partition in force on the server's node, the hunt says in words that the
    story cannot happen and changes nothing (no scale, no ledger entry)."""
    _deploy_ready(api, namespace, "server", 1, node="lab-node-2")
    _deploy_ready(api, namespace, "victim", 2, node=NODE)
    _deploy_ready(api, namespace, "hunter", 1, node=NODE)

    result = ip_recycle.hunt_recycled_ip(
        "victim",
        "hunter",
        namespace=namespace,
        max_rounds=2,
        timeout_seconds=30,
        cut_off_pods="app=server",
        fault_namespace=namespace,
    )

    assert result["found"] is False and result["reproduced"] is False
    assert result["scenario"].startswith("not reproduced: node(s) lab-node-2 of pods")
    assert result["precondition"]["nodes"] == ["lab-node-2"]
    assert result["precondition"]["cuts"] == []
    assert result["rounds"] == 0 and result["victim_previous_replicas"] is None
    victim = client.AppsV1Api(api).read_namespaced_deployment("victim", namespace)
    assert victim.spec.replicas == 2
    assert churn._ledger.REPLICAS_BEFORE not in (victim.metadata.annotations or {})


def test_ip_hunt_under_a_real_cut_counts_only_pods_created_after_it(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    """The server's node really cut off (the partition fault, stamped on its pod): a holder
    is reported only if created after the cut took effect, and the hunt says reproduced."""
    _deploy_ready(api, namespace, "server", 1, node="lab-node-2")
    _deploy_ready(api, namespace, "victim", 2, node=NODE)
    _deploy_ready(api, namespace, "hunter", 2, node=NODE)
    cut = partition_node_from_apiserver(
        node="lab-node-2", scope="node", duration_seconds=60, fault_namespace=namespace
    )
    try:
        fault = core.read_namespaced_pod(cut["fault_pod"]["name"], namespace)
        stamps = fault.metadata.annotations
        assert datetime.fromisoformat(stamps[_cut.EFFECTIVE_AT]).timestamp() == pytest.approx(
            cut["effective_at"], abs=1e-3
        )
        result = ip_recycle.hunt_recycled_ip(
            "victim",
            "hunter",
            namespace=namespace,
            max_rounds=8,
            timeout_seconds=60,
            cut_off_pods="app=server",
            fault_namespace=namespace,
        )
    finally:
        heal_apiserver_partition(node="lab-node-2", fault_namespace=namespace)
        wait_lease_renewed(api, "lab-node-2")
    print(f"hunt under a cut: {result['scenario']} ({result['seconds']}s)")
    [only] = result["precondition"]["cuts"]
    assert only["node"] == "lab-node-2" and only["run_id"] == cut["run_id"]
    if result["found"]:
        assert result["reproduced"] is True and result["scenario"].startswith("reproduced: ")
        created = datetime.fromisoformat(result["pod"]["created"])
        assert created.timestamp() >= cut["effective_at"]
        labelled = core.list_namespaced_pod(
            namespace, label_selector=ip_recycle.RECYCLED_FROM
        ).items
        assert [p.metadata.name for p in labelled] == [result["pod"]["name"]]
    else:  # kwok draws free IPs at random: a hunt may end without one, and says so
        assert result["reproduced"] is False and result["scenario"].startswith("not reproduced")
    churn.restore_replicas("victim", 2, namespace=namespace, timeout_seconds=60)


@pytest.fixture(scope="module")
def two_deployments(api: client.ApiClient, core: client.CoreV1Api) -> Iterator[str]:
    """A namespace with Deployments "web" and "other" (1 pod each), shared by read-only tests."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        _deploy_ready(api, name, "web", 1)
        _deploy_ready(api, name, "other", 1)
        yield name
    finally:
        core.delete_namespace(name)


def test_ip_hunt_on_another_node_reports_no_reuse(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    """Victim and hunter on different nodes draw from different pod CIDRs: nothing recycles."""
    _deploy_ready(api, namespace, "victim", 2, node="lab-node-1")
    _deploy_ready(api, namespace, "hunter", 2, node="lab-node-2")

    result = ip_recycle.hunt_recycled_ip(
        "victim", "hunter", namespace=namespace, max_rounds=2, timeout_seconds=60
    )

    assert result["found"] is False and result["recycled_ip"] is None and result["pod"] is None
    assert result["rounds"] == 2
    assert "no IP reused" in result["reason"]
    assert "lab-node-1" in result["reason"] and "lab-node-2" in result["reason"]
    assert result["victim_previous_replicas"] == 2
    hunter_ips = {p.status.pod_ip for p in _live(core, namespace, "hunter")}
    assert len(hunter_ips) == 2 and not hunter_ips & set(result["victim_ips"])
    churn.restore_replicas("victim", 2, namespace=namespace, timeout_seconds=60)


def _activity(name: str) -> Any:
    return getattr(ip_recycle if name == "hunt_recycled_ip" else churn, name)


def _snapshot(api: client.ApiClient, core: client.CoreV1Api, namespace: str) -> Any:
    deps = client.AppsV1Api(api).list_namespaced_deployment(namespace).items
    pods = core.list_namespaced_pod(namespace).items
    return (
        sorted((d.metadata.name, d.spec.replicas, d.metadata.generation) for d in deps),
        sorted((p.metadata.uid, p.metadata.deletion_timestamp is None) for p in pods),
    )


@pytest.mark.parametrize(
    ("action", "kwargs", "bad_input"),
    [
        ("scale_deployment", {"name": "nope", "replicas": 1}, "name"),
        ("scale_deployment", {"name": "web", "replicas": -2}, "replicas"),
        (
            "scale_deployment",
            {"name": "web", "replicas": 1, "timeout_seconds": 0},
            "timeout_seconds",
        ),
        (
            "scale_deployment",
            {"name": "web", "replicas": 1, "timeout_seconds": -1},
            "timeout_seconds",
        ),
        ("restore_replicas", {"name": "nope", "replicas": 1}, "name"),
        ("rollout_restart", {"name": "nope"}, "name"),
        ("rollout_restart", {"name": "web", "cycles": 0}, "cycles"),
        ("rollout_restart", {"name": "web", "timeout_seconds": 0}, "timeout_seconds"),
        ("hunt_recycled_ip", {"victim": "web", "hunter": "web"}, "hunter"),
        ("hunt_recycled_ip", {"victim": "nope", "hunter": "web"}, "victim"),
        ("hunt_recycled_ip", {"victim": "web", "hunter": "nope"}, "hunter"),
        ("hunt_recycled_ip", {"victim": "web", "hunter": "other", "max_rounds": 0}, "max_rounds"),
        (
            "hunt_recycled_ip",
            {"victim": "web", "hunter": "other", "timeout_seconds": 0},
            "timeout_seconds",
        ),
    ],
)
def test_bad_input_is_refused_and_nothing_changes(
    api: client.ApiClient,
    core: client.CoreV1Api,
    two_deployments: str,
    action: str,
    kwargs: dict[str, Any],
    bad_input: str,
) -> None:
    namespace = two_deployments
    before = _snapshot(api, core, namespace)
    with pytest.raises(InvalidInput) as info:
        _activity(action)(namespace=namespace, **kwargs)
    assert info.value.name == bad_input
    assert _snapshot(api, core, namespace) == before


@pytest.mark.parametrize(
    "action", ["scale_deployment", "restore_replicas", "rollout_restart", "hunt_recycled_ip"]
)
def test_a_missing_namespace_is_named(api: client.ApiClient, action: str) -> None:
    kwargs: dict[str, Any] = {
        "scale_deployment": {"name": "web", "replicas": 1},
        "restore_replicas": {"name": "web", "replicas": 1},
        "rollout_restart": {"name": "web"},
        "hunt_recycled_ip": {"victim": "web", "hunter": "other"},
    }[action]
    with pytest.raises(InvalidInput) as info:
        _activity(action)(namespace="no-such-namespace", **kwargs)
    assert info.value.name == "namespace"
