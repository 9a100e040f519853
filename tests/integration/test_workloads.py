"""The pack's availability probes against the lab: a real Deployment and DaemonSet, a
workload that cannot become available, and "not found" naming the namespace.

Each test works in a namespace of its own (the ``namespace`` fixture deletes it, and
with it what the test made); the lab's istio-cni-node DaemonSet is only read.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.lab.topology import DEFAULT
from chaosmesh_sec.probes.workloads import daemonset_available, deployment_available
from tests.lab_fixtures import PAUSE, deploy_pause


def test_a_deployment_is_available_once_rolled_out_and_a_stuck_one_is_not(
    api: client.ApiClient, namespace: str
) -> None:
    deploy_pause(api, namespace, "web", 2)
    waited = deployment_available("web", namespace, wait_seconds=120)
    assert waited["available"] is True, waited
    assert waited["namespace"] == namespace and waited["name"] == "web"
    assert waited["replicas"] == waited["available_replicas"] == waited["updated_replicas"] == 2
    now = deployment_available("web", namespace)
    assert now["available"] is True and "reason" not in now

    deploy_pause(api, namespace, "stuck", 1, node="no-such-node")  # never scheduled
    stuck = deployment_available("stuck", namespace)
    assert stuck["available"] is False
    assert stuck["available_replicas"] == 0
    assert f"Deployment {namespace}/stuck is not available" in stuck["reason"]
    waited_stuck = deployment_available("stuck", namespace, wait_seconds=2)
    assert waited_stuck["available"] is False and "after 2 s" in waited_stuck["reason"]


def test_a_daemonset_is_available_on_every_node(api: client.ApiClient, namespace: str) -> None:
    labels = {"app": "agent"}
    client.AppsV1Api(api).create_namespaced_daemon_set(
        namespace,
        client.V1DaemonSet(
            metadata=client.V1ObjectMeta(name="agent"),
            spec=client.V1DaemonSetSpec(
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        containers=[client.V1Container(name="agent", image=PAUSE)],
                        termination_grace_period_seconds=1,
                    ),
                ),
            ),
        ),
    )
    result = daemonset_available("agent", namespace, wait_seconds=120)
    assert result["available"] is True, result
    assert result["desired"] == result["ready"] == result["updated"] == len(DEFAULT.nodes)
    cni = daemonset_available("istio-cni-node", "istio-system", wait_seconds=120)
    assert cni["available"] is True, cni


@pytest.mark.parametrize("probe", [deployment_available, daemonset_available])
def test_a_missing_workload_is_invalid_input_naming_its_namespace(
    namespace: str, probe: object
) -> None:
    assert callable(probe)
    with pytest.raises(InvalidInput) as err:
        probe("nope", namespace)
    assert err.value.name == "name"
    assert repr(namespace) in str(err.value) and "'nope' not found" in str(err.value)
    with pytest.raises(InvalidInput) as gone:
        probe("nope", "no-such-namespace-cms", wait_seconds=5)
    assert "'no-such-namespace-cms'" in str(gone.value)
