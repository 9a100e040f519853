"""The node <-> API server partition against the lab: real rules in the node's namespace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.faults.apiserver_partition import (
    FAULT_LABEL,
    heal_apiserver_partition,
    partition_node_from_apiserver,
)
from chaosmesh_sec.lab import inspect
from chaosmesh_sec.lab.topology import DEFAULT
from tests.lab_fixtures import eventually

NODE1, NODE2 = DEFAULT.nodes[0], DEFAULT.nodes[1]


def reaches_apiserver(netns: str) -> bool:
    """A real TCP+TLS connection from inside ``netns`` to the API server (health endpoint)."""
    return inspect.http_status_from(netns, f"{DEFAULT.apiserver_url}/healthz") != "000"


def fault_pods(core: client.CoreV1Api) -> list[Any]:
    return core.list_pod_for_all_namespaces(label_selector=FAULT_LABEL).items


@pytest.fixture
def cfg(lab: Path) -> dict[str, str]:
    return {"kubeconfig_path": str(lab)}


def test_partition_cuts_only_its_node_and_the_rollback_restores_iptables(
    core: client.CoreV1Api, cfg: dict[str, str]
) -> None:
    before = inspect.iptables_save(NODE2.netns)
    assert reaches_apiserver(NODE2.netns) and reaches_apiserver(NODE1.netns)

    done = partition_node_from_apiserver(node=NODE2.name, duration_seconds=120, configuration=cfg)
    try:
        assert done["node"] == NODE2.name
        assert {"ip": DEFAULT.apiserver_ip, "port": DEFAULT.apiserver_port} in done["endpoints"]
        assert {"ip": DEFAULT.kubernetes_service_ip, "port": 443} in done["endpoints"]
        assert f"CMS-{done['run_id']}" in inspect.iptables_save(NODE2.netns)
        assert not reaches_apiserver(NODE2.netns)
        assert reaches_apiserver(NODE1.netns)
    finally:
        healed = heal_apiserver_partition(node=NODE2.name, configuration=cfg)
    assert healed["healed"] == [{"run_id": done["run_id"], "node": NODE2.name}]
    assert reaches_apiserver(NODE2.netns)
    assert inspect.iptables_save(NODE2.netns) == before
    eventually(lambda: not fault_pods(core), 30, "the fault pod to be gone")


def test_partition_removes_itself_when_its_time_is_up(
    core: client.CoreV1Api, cfg: dict[str, str]
) -> None:
    istiod = sorted(
        (
            p
            for p in core.list_namespaced_pod("istio-system", label_selector="app=istiod").items
            if p.status.phase == "Running"
        ),
        key=lambda p: p.metadata.name,
    )
    before = {n.name: inspect.iptables_save(n.netns) for n in DEFAULT.nodes}
    done = partition_node_from_apiserver(
        target_pods_selector="app=istiod",
        target_pods_namespace="istio-system",
        duration_seconds=4,
        configuration=cfg,
    )
    node = DEFAULT.node(done["node"])
    assert done["node"] == istiod[0].spec.node_name  # the node of that istiod replica
    eventually(
        lambda: inspect.iptables_save(node.netns) == before[node.name],
        30,
        "the rules to remove themselves",
    )
    assert reaches_apiserver(node.netns)
    # Nothing left to heal; the finished fault pod is cleaned up.
    assert heal_apiserver_partition(configuration=cfg)["healed"] == []
    eventually(lambda: not fault_pods(core), 30, "the fault pod to be gone")


@pytest.mark.parametrize(
    ("arguments", "names"),
    [
        ({"node": "no-such-node"}, "node"),
        ({"target_pods_selector": "app=nothing-matches"}, "target_pods_selector"),
        ({"node": NODE2.name, "duration_seconds": 0}, "duration_seconds"),
        ({"node": NODE2.name, "duration_seconds": -5}, "duration_seconds"),
        ({"node": NODE2.name, "scope": "everywhere"}, "scope"),
        ({"node": NODE2.name, "fault_namespace": "no-such-namespace"}, "fault_namespace"),
        ({"node": NODE2.name, "extra_hosts": "not-an-ip"}, "extra_hosts"),
        ({}, "node"),
    ],
)
def test_bad_inputs_are_refused_before_anything_changes(
    core: client.CoreV1Api, cfg: dict[str, str], arguments: dict[str, Any], names: str
) -> None:
    before = inspect.iptables_save(NODE2.netns)
    with pytest.raises(InvalidInput, match=names):
        partition_node_from_apiserver(configuration=cfg, **arguments)
    assert fault_pods(core) == []
    assert inspect.iptables_save(NODE2.netns) == before
