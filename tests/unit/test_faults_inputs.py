"""istiod and churn faults refuse bad input before any API call.

The ``no_cluster`` fixture makes building a client or sending a request fail the
test, so each case proves the fault stopped before touching Kubernetes.
"""

from typing import Any

import pytest

from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.faults import churn, cni, ip_recycle, istiod, leftovers


@pytest.mark.parametrize(
    ("kwargs", "bad_input"),
    [
        ({"count": -1}, "count"),
        ({"count": "1"}, "count"),
        ({"count": True}, "count"),
        ({"count": 0}, "count"),  # neither count nor fraction
        ({"count": 0, "fraction": 0.0}, "count"),
        ({"count": 2, "fraction": 0.5}, "fraction"),  # both
        ({"fraction": -0.1}, "fraction"),
        ({"fraction": 1.5}, "fraction"),
        ({"fraction": float("nan")}, "fraction"),
        ({"fraction": "0.5"}, "fraction"),
        ({"fraction": True}, "fraction"),
        ({"node": "Lab_Node"}, "node"),
        ({"node": 3}, "node"),
        ({"allow_all": "False "}, "allow_all"),
        ({"wait_ready": 1}, "wait_ready"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": -5}, "timeout_seconds"),
        ({"timeout_seconds": 1.5}, "timeout_seconds"),
        ({"namespace": "Istio-System"}, "namespace"),
        ({"label_selector": ""}, "label_selector"),
        ({"label_selector": "app in (istiod"}, "label_selector"),
    ],
)
def test_kill_istiod_replicas_rejects_bad_input(
    no_cluster: None, kwargs: dict[str, Any], bad_input: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        istiod.kill_istiod_replicas(**kwargs)
    assert info.value.name == bad_input
    assert bad_input in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"count": 2},
        {"fraction": 0.5},
        {"count": 0, "fraction": 1},
        {"fraction": 0.5, "node": "lab-node-1", "allow_all": True, "wait_ready": False},
    ],
)
def test_kill_istiod_replicas_valid_input_reaches_the_api(
    no_cluster: None, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(pytest.fail.Exception, match="Kubernetes API was reached"):
        istiod.kill_istiod_replicas(**kwargs)


SCALE_CASES: list[tuple[dict[str, Any], str]] = [
    ({"replicas": 1}, "name"),  # name is required
    ({"name": "Web", "replicas": 1}, "name"),
    ({"name": "web"}, "replicas"),  # replicas is required
    ({"name": "web", "replicas": -2}, "replicas"),
    ({"name": "web", "replicas": "3"}, "replicas"),
    ({"name": "web", "replicas": True}, "replicas"),
    ({"name": "web", "replicas": 1, "namespace": "No"}, "namespace"),
    ({"name": "web", "replicas": 1, "wait_ready": "yes"}, "wait_ready"),
    ({"name": "web", "replicas": 1, "timeout_seconds": 0}, "timeout_seconds"),
    ({"name": "web", "replicas": 1, "timeout_seconds": -1}, "timeout_seconds"),
]


@pytest.mark.parametrize(
    ("action", "kwargs", "bad_input"),
    [(churn.scale_deployment, kwargs, bad) for kwargs, bad in SCALE_CASES]
    + [  # restore_replicas without replicas reads them from the ledger
        (churn.restore_replicas, kwargs, bad)
        for kwargs, bad in SCALE_CASES
        if kwargs != {"name": "web"}
    ],
)
def test_scale_and_restore_reject_bad_input(
    no_cluster: None, action: Any, kwargs: dict[str, Any], bad_input: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        action(**kwargs)
    assert info.value.name == bad_input


def test_replicas_required_message_says_what_to_give(no_cluster: None) -> None:
    with pytest.raises(InvalidInput, match="required"):
        churn.scale_deployment("web")


@pytest.mark.parametrize(
    ("kwargs", "bad_input"),
    [
        ({}, "name"),
        ({"name": "web_1"}, "name"),
        ({"name": "web", "cycles": 0}, "cycles"),
        ({"name": "web", "cycles": 2, "wait_ready": False}, "cycles"),
        ({"name": "web", "timeout_seconds": 0}, "timeout_seconds"),
        ({"name": "web", "namespace": ""}, "namespace"),
    ],
)
def test_rollout_restart_rejects_bad_input(
    no_cluster: None, kwargs: dict[str, Any], bad_input: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        churn.rollout_restart(**kwargs)
    assert info.value.name == bad_input


@pytest.mark.parametrize(
    ("kwargs", "bad_input"),
    [
        ({"hunter": "b"}, "victim"),
        ({"victim": "a"}, "hunter"),
        ({"victim": "a", "hunter": "a"}, "hunter"),
        ({"victim": "A", "hunter": "b"}, "victim"),
        ({"victim": "a", "hunter": "b", "max_rounds": 0}, "max_rounds"),
        ({"victim": "a", "hunter": "b", "max_rounds": -3}, "max_rounds"),
        ({"victim": "a", "hunter": "b", "timeout_seconds": 0}, "timeout_seconds"),
        ({"victim": "a", "hunter": "b", "namespace": "Default"}, "namespace"),
    ],
)
def test_hunt_recycled_ip_rejects_bad_input(
    no_cluster: None, kwargs: dict[str, Any], bad_input: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        ip_recycle.hunt_recycled_ip(**kwargs)
    assert info.value.name == bad_input


@pytest.mark.parametrize(
    ("action", "kwargs"),
    [
        (churn.scale_deployment, {"name": "web", "replicas": 0}),
        (churn.restore_replicas, {"name": "web", "replicas": 3, "wait_ready": False}),
        (churn.restore_replicas, {"name": "web"}),
        (churn.rollout_restart, {"name": "web", "cycles": 3}),
        (ip_recycle.hunt_recycled_ip, {"victim": "a", "hunter": "b", "max_rounds": 1}),
    ],
)
def test_churn_valid_input_reaches_the_api(
    no_cluster: None, action: Any, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(pytest.fail.Exception, match="Kubernetes API was reached"):
        action(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "bad_input"),
    [
        ({"daemonset": ""}, "daemonset"),
        ({"daemonset": "Cilium"}, "daemonset"),
        ({"namespace": "kube_system"}, "namespace"),
        ({"nodes": "a,,a"}, "nodes"),
        ({"nodes": "Node-1"}, "nodes"),
        ({"nodes": ["lab-node-1"]}, "nodes"),
        ({"method": "kill"}, "method"),
        ({"method": "rollout", "nodes": "lab-node-1"}, "nodes"),
        ({"wait_ready": "yes"}, "wait_ready"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
    ],
)
def test_restart_cni_pods_rejects_bad_input(
    no_cluster: None, kwargs: dict[str, Any], bad_input: str
) -> None:
    with pytest.raises(InvalidInput) as info:
        cni.restart_cni_pods(**kwargs)
    assert info.value.name == bad_input


def test_heal_leftovers_rejects_bad_input(no_cluster: None) -> None:
    with pytest.raises(InvalidInput) as info:
        leftovers.heal_leftovers(namespace="Bad")
    assert info.value.name == "namespace"
