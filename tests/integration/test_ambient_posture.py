"""The ambient posture probe against the lab's API server: real pods, real NetworkPolicies.

The lab's istio-cni agent (the install-cni stand-in's pod watch) enrols the ambient
pods of its node, annotating them ``ambient.istio.io/redirection: enabled``, while it
runs; a pod started while it is down stays bare until it comes back. The probe only
reads the API, so each policy change shows at once.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.probes import ambient
from tests.lab_fixtures import curl_pod, eventually, istio_cni_down

NODE = "lab-node-3"
APP = {"app": "web"}


@pytest.fixture
def ambient_namespace(core: client.CoreV1Api, namespace: str) -> str:
    """A fresh namespace labelled for ambient mode, deleted after the test."""
    core.patch_namespace(namespace, {"metadata": {"labels": {ambient.DATAPLANE_MODE: "ambient"}}})
    return namespace


def _create_pod(
    core: client.CoreV1Api, namespace: str, name: str, labels: dict[str, str], node: str = ""
) -> None:
    port = client.V1ContainerPort(container_port=8080, name="http")
    core.create_namespaced_pod(namespace, curl_pod(name, node, labels, [port]))


def _ingress_policy(name: str, rules: list[dict[str, Any]] | None) -> client.V1NetworkPolicy:
    """A NetworkPolicy for the app=web pods: these ingress rules (None: deny all ingress)."""
    spec: dict[str, Any] = {"podSelector": {"matchLabels": APP}, "policyTypes": ["Ingress"]}
    if rules is not None:
        spec["ingress"] = rules
    policy = client.V1NetworkPolicy.from_dict(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name},
            "spec": spec,
        }
    )
    assert policy is not None
    return policy


def _ports(*ports: int) -> dict[str, Any]:
    return {"ports": [{"port": p, "protocol": "TCP"} for p in ports]}


KUBELET_RULE = {"from": [{"ipBlock": {"cidr": f"{ambient.KUBELET_SOURCE}/32"}}]}


def _findings(namespace: str) -> tuple[dict[str, Any], list[tuple[str, str, list[str]]]]:
    result = ambient.ambient_posture(namespaces=[namespace])
    assert result["checked_namespaces"] == [namespace]
    found = [(f["kind"], f["pod"], f["policies"]) for f in result["findings"]]
    return result, found


def test_ambient_posture_follows_policies_and_enrolment(
    api: client.ApiClient, core: client.CoreV1Api, ambient_namespace: str
) -> None:
    ns = ambient_namespace
    net = client.NetworkingV1Api(api)
    _create_pod(core, ns, "web", APP)
    eventually(lambda: _enrolled(core, ns, "web"), 30, "the node agent to enrol web")

    result, found = _findings(ns)
    assert result["holds"] is True, found
    assert result["ambient_pods"] == 1

    # a policy that lets only 9090 in drops HBONE (15008); without `from` the kubelet gets in
    net.create_namespaced_network_policy(ns, _ingress_policy("only-9090", [_ports(9090)]))
    result, found = _findings(ns)
    assert result["holds"] is False
    assert found == [("hbone_port_blocked", "web", ["only-9090"])]

    # deny all ingress instead: the kubelet's link-local source is shut out too
    net.delete_namespaced_network_policy("only-9090", ns)
    net.create_namespaced_network_policy(ns, _ingress_policy("deny-ingress", None))
    _, found = _findings(ns)
    assert found == [
        ("hbone_port_blocked", "web", ["deny-ingress"]),
        ("kubelet_probe_blocked", "web", ["deny-ingress"]),
    ]

    # a pod started while its node's istio-cni agent is down is not enrolled
    with istio_cni_down(core, NODE):
        _create_pod(core, ns, "stray", {"app": "stray"}, node=NODE)
        result, found = _findings(ns)
        assert ("not_redirected", "stray", []) in found
        assert result["ambient_pods"] == 1
    eventually(lambda: _enrolled(core, ns, "stray"), 30, "the agent, back, to enrol stray")
    core.delete_namespaced_pod("stray", ns, grace_period_seconds=0)
    eventually(lambda: not _pod_exists(core, ns, "stray"), 30, "stray gone")

    # mend: the kubelet's address, then HBONE (with the app's own port)
    net.patch_namespaced_network_policy("deny-ingress", ns, {"spec": {"ingress": [KUBELET_RULE]}})
    _, found = _findings(ns)
    assert found == [("hbone_port_blocked", "web", ["deny-ingress"])]
    net.create_namespaced_network_policy(ns, _ingress_policy("web-ports", [_ports(8080, 15008)]))
    result, found = _findings(ns)
    assert result["holds"] is True, found

    # a pod that opts out on purpose is neither enrolled nor reported
    _create_pod(core, ns, "outside", {"app": "outside", ambient.DATAPLANE_MODE: "none"})
    result, found = _findings(ns)
    assert result["holds"] is True, found


def _enrolled(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    pod = core.read_namespaced_pod(name, namespace)
    return (pod.metadata.annotations or {}).get(ambient.REDIRECTION) == "enabled"


def _pod_exists(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    return any(p.metadata.name == name for p in core.list_namespaced_pod(namespace).items)


def test_a_namespace_that_does_not_exist_is_invalid_input(lab: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        ambient.ambient_posture(namespaces=[f"t-{uuid.uuid4().hex[:8]}"])
