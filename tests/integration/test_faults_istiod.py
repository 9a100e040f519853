"""kill_istiod_replicas against the lab's real istiod: processes die, the ReplicaSet heals.

Every test starts and ends with 3 Ready istiod pods (the ``three_ready`` fixture), so
the shared lab is left as it was found.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.faults import istiod
from chaosmesh_sec.lab import inspect
from chaosmesh_sec.lab.topology import DEFAULT
from tests.lab_fixtures import eventually, istiod_pods, istiod_serves_ready

NS = "istio-system"
LAB_NODES = {n.name for n in DEFAULT.nodes}


def _uids(pods: list[client.V1Pod]) -> set[str]:
    return {p.metadata.uid for p in pods}


def test_killing_one_replica_stops_its_process_and_the_replacement_becomes_ready(
    core: client.CoreV1Api, three_ready: list[client.V1Pod]
) -> None:
    before = _uids(three_ready)
    for uid in before:
        assert inspect.container_processes(uid), f"no pilot-discovery for pod {uid}"

    result = istiod.kill_istiod_replicas(count=1, timeout_seconds=90)
    print(f"istiod recovery: {result['recovery_seconds']}s, killed {result['killed']}")

    assert result["recovered"] is True, result
    assert result["ready_before"] == 3
    assert result["ready_after"] >= 3
    assert result["decided_by"] == "count"
    assert isinstance(result["recovery_seconds"], float)
    assert 0 < result["recovery_seconds"] <= 90
    [killed] = result["killed"]
    assert killed["uid"] in before and killed["deleted"] is True
    assert killed["node"] in LAB_NODES and killed["pod_ip"]
    # The killed pod's real pilot-discovery process exits, and the pod goes away.
    eventually(
        lambda: not inspect.container_processes(killed["uid"]),
        30,
        f"pilot-discovery of {killed['name']} to exit",
    )
    eventually(
        lambda: killed["uid"] not in {p.metadata.uid for p in core.list_namespaced_pod(NS).items},
        60,
        f"{killed['name']} to be gone",
    )
    # The replacement is a new pod that runs its own pilot-discovery and serves /ready.
    assert result["replacements"], result
    new = result["replacements"][0]
    assert new["uid"] not in before
    assert new["ready_at"] and new["node"] in LAB_NODES and new["pod_ip"]
    procs = eventually(
        lambda: inspect.container_processes(new["uid"]), 30, "the replacement's pilot-discovery"
    )
    assert procs[0].argv0.endswith("pilot-discovery")
    eventually(
        lambda: istiod_serves_ready(new["node"], new["pod_ip"]),
        60,
        "the replacement to serve /ready",
    )
    # Two untouched replicas are still the same pods.
    assert len(before & _uids(istiod_pods(core))) == 2


def test_when_recovery_is_reported_the_replacement_really_runs(
    core: client.CoreV1Api, three_ready: list[client.V1Pod]
) -> None:
    result = istiod.kill_istiod_replicas(count=1, timeout_seconds=90)
    assert result["recovered"] is True, result
    for new in result["replacements"]:
        assert istiod_serves_ready(new["node"], new["pod_ip"]), (
            f"{new['name']} does not serve /ready"
        )


def test_fraction_on_a_node_kills_only_the_pods_on_that_node(
    core: client.CoreV1Api, three_ready: list[client.V1Pod]
) -> None:
    by_node: dict[str, list[client.V1Pod]] = {}
    for pod in three_ready:
        by_node.setdefault(pod.spec.node_name, []).append(pod)
    node, on_node = min(by_node.items(), key=lambda item: len(item[1]))

    result = istiod.kill_istiod_replicas(fraction=1.0, node=node, timeout_seconds=90)
    print(f"istiod recovery after killing {node}'s pods: {result['recovery_seconds']}s")

    assert result["decided_by"] == "fraction"
    assert {k["uid"] for k in result["killed"]} == _uids(on_node)
    assert {k["node"] for k in result["killed"]} == {node}
    assert result["recovered"] is True and result["ready_after"] >= 3
    survivors = _uids(three_ready) - _uids(on_node)
    assert survivors <= _uids(istiod_pods(core))


def _unchanged(core: client.CoreV1Api, before: list[client.V1Pod]) -> None:
    """The same pods are there and none is being deleted."""
    assert _uids(istiod_pods(core)) == _uids(before)
    assert all(
        p.metadata.deletion_timestamp is None
        for p in core.list_namespaced_pod(NS, label_selector="app=istiod").items
    )
    for pod in before:
        assert inspect.container_processes(pod.metadata.uid)


def test_killing_every_ready_replica_is_refused_before_anything_is_deleted(
    core: client.CoreV1Api, three_ready: list[client.V1Pod]
) -> None:
    with pytest.raises(InvalidInput) as info:
        istiod.kill_istiod_replicas(count=3, allow_all=False, timeout_seconds=30)
    assert info.value.name == "count"
    assert "allow_all" in str(info.value)
    _unchanged(core, three_ready)


@pytest.mark.parametrize(
    ("kwargs", "bad_input"),
    [
        ({"node": "no-such-node"}, "node"),
        ({"namespace": "no-such-namespace"}, "namespace"),
        ({"label_selector": "app=no-such-istiod"}, "label_selector"),
        ({"count": 4}, "count"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": -5}, "timeout_seconds"),
    ],
)
def test_bad_input_changes_nothing(
    core: client.CoreV1Api,
    three_ready: list[client.V1Pod],
    kwargs: dict[str, Any],
    bad_input: str,
) -> None:
    with pytest.raises(InvalidInput) as info:
        istiod.kill_istiod_replicas(**kwargs)
    assert info.value.name == bad_input
    _unchanged(core, three_ready)
