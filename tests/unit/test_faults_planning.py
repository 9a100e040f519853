"""The pure parts of the workload faults: how many pods, which ones, and when a rollout is done.

Pods and Deployments here are the Kubernetes client's own model objects, built in
memory; no API is involved.
"""

from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client as k8s

from chaosmesh_sec import _kube, _validate
from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.faults import _workloads as wl
from chaosmesh_sec.faults import istiod

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _pod(
    name: str,
    node: str = "lab-node-1",
    ready: bool = True,
    age: int = 0,
    owned: bool = True,
    ip: str = "10.78.1.9",
) -> k8s.V1Pod:
    owner = k8s.V1OwnerReference(
        api_version="apps/v1", kind="ReplicaSet", name="istiod-1", uid="rs", controller=True
    )
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(
            name=name,
            uid=f"uid-{name}",
            creation_timestamp=T0 - timedelta(minutes=age),
            owner_references=[owner] if owned else None,
        ),
        spec=k8s.V1PodSpec(containers=[], node_name=node),
        status=k8s.V1PodStatus(
            phase="Running",
            pod_ip=ip,
            conditions=[
                k8s.V1PodCondition(
                    type="Ready", status="True" if ready else "False", last_transition_time=T0
                )
            ],
        ),
    )


@pytest.mark.parametrize(
    ("count", "fraction", "candidates", "expected"),
    [
        (1, 0.0, 3, 1),
        (2, 0.0, 3, 2),
        (0, 1.0, 3, 3),
        (1, 1.0, 3, 3),  # count at its default: fraction decides
        (1, 0.34, 3, 2),  # 1.02 rounds up
        (1, 0.33, 3, 1),  # 0.99 rounds up
        (1, 0.5, 3, 2),
        (1, 0.5, 1, 1),
        (1, 0.01, 3, 1),  # any fraction kills at least one
        (1, 0.1, 30, 3),  # 3.0000000000000004 in floating point is 3
        (1, 0.7, 10, 7),  # 7.000000000000001
    ],
)
def test_kill_count(count: int, fraction: float, candidates: int, expected: int) -> None:
    assert istiod._kill_count(count, fraction, candidates) == expected


def test_deciding_input() -> None:
    assert istiod._deciding_input(2, 0.0) == "count"
    assert istiod._deciding_input(1, 0.5) == "fraction"
    assert istiod._deciding_input(0, 0.5) == "fraction"
    with pytest.raises(InvalidInput) as info:
        istiod._deciding_input(3, 0.5)
    assert info.value.name == "fraction"
    with pytest.raises(InvalidInput) as info:
        istiod._deciding_input(0, 0.0)
    assert info.value.name == "count"


def test_plan_kill_prefers_ready_then_oldest() -> None:
    pods = [
        _pod("a", age=1),
        _pod("b", age=9),
        _pod("c", ready=False, age=20),
        _pod("d", age=5),
    ]
    victims, ready_before = istiod._plan_kill(pods, 2, 0.0, "", False)
    assert [p.metadata.name for p in victims] == ["b", "d"]
    assert ready_before == 3


def test_plan_kill_refuses_to_kill_every_ready_replica() -> None:
    pods = [_pod("a"), _pod("b"), _pod("c")]
    with pytest.raises(InvalidInput) as info:
        istiod._plan_kill(pods, 3, 0.0, "", False)
    assert info.value.name == "count"
    assert "allow_all" in info.value.problem
    with pytest.raises(InvalidInput) as info:
        istiod._plan_kill(pods, 1, 1.0, "", False)
    assert info.value.name == "fraction"
    victims, _ = istiod._plan_kill(pods, 3, 0.0, "", True)
    assert len(victims) == 3


def test_plan_kill_counts_ready_pods_off_the_node_too() -> None:
    """Killing every pod on one node is fine while Ready replicas run elsewhere."""
    pods = [_pod("a", node="n1"), _pod("b", node="n1"), _pod("c", node="n2")]
    victims, ready_before = istiod._plan_kill(pods, 1, 1.0, "n1", False)
    assert {p.metadata.name for p in victims} == {"a", "b"}
    assert ready_before == 3
    with pytest.raises(InvalidInput):
        istiod._plan_kill([_pod("a", node="n1")], 1, 1.0, "n1", False)


def test_plan_kill_only_ready_replica_left_unready_elsewhere() -> None:
    """If the only Ready pod is the one chosen, refuse even though other pods exist."""
    pods = [_pod("a"), _pod("b", ready=False), _pod("c", ready=False)]
    with pytest.raises(InvalidInput):
        istiod._plan_kill(pods, 1, 0.0, "", False)


@pytest.mark.parametrize(
    ("pods", "count", "node", "bad_input"),
    [
        ([], 1, "", "label_selector"),
        ([_pod("a", node="n1")], 1, "n2", "node"),
        ([_pod("a"), _pod("b")], 3, "", "count"),
        ([_pod("a", node="n1"), _pod("b", node="n2"), _pod("c", node="n2")], 2, "n1", "count"),
        ([_pod("a", owned=False), _pod("b")], 1, "", "label_selector"),
    ],
)
def test_plan_kill_rejects(pods: list[k8s.V1Pod], count: int, node: str, bad_input: str) -> None:
    with pytest.raises(InvalidInput) as info:
        istiod._plan_kill(pods, count, 0.0, node, allow_all=True)
    assert info.value.name == bad_input


def test_pod_facts() -> None:
    pod = _pod("a", ip="10.78.1.4")
    assert _kube.pod_ready(pod)
    assert _kube.pod_ready_at(pod) == T0.isoformat()
    assert _kube.pod_brief(pod) == {
        "name": "a",
        "uid": "uid-a",
        "node": "lab-node-1",
        "pod_ip": "10.78.1.4",
    }
    pod.metadata.deletion_timestamp = T0
    assert _kube.pod_terminating(pod)
    assert not _kube.pod_ready(pod)
    assert _kube.pod_ready_at(pod) is None
    pending = _pod("b")
    pending.status.phase = "Pending"
    assert not _kube.pod_ready(pending)


def test_deployment_selector() -> None:
    selector = k8s.V1LabelSelector(
        match_labels={"app": "web", "tier": "front"},
        match_expressions=[
            k8s.V1LabelSelectorRequirement(key="env", operator="In", values=["prod", "dev"]),
            k8s.V1LabelSelectorRequirement(key="canary", operator="DoesNotExist"),
            k8s.V1LabelSelectorRequirement(key="zone", operator="NotIn", values=["b"]),
            k8s.V1LabelSelectorRequirement(key="team", operator="Exists"),
        ],
    )
    assert wl.deployment_selector(selector) == (
        "app=web,tier=front,env in (dev,prod),!canary,zone notin (b),team"
    )


def _deployment(
    spec: int, generation: int, observed: int, replicas: int, updated: int, ready: int
) -> k8s.V1Deployment:
    return k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name="web", generation=generation),
        spec=k8s.V1DeploymentSpec(
            replicas=spec, selector=k8s.V1LabelSelector(), template=k8s.V1PodTemplateSpec()
        ),
        status=k8s.V1DeploymentStatus(
            observed_generation=observed,
            replicas=replicas or None,
            updated_replicas=updated or None,
            ready_replicas=ready or None,
            available_replicas=ready or None,
        ),
    )


@pytest.mark.parametrize(
    ("dep", "want", "done"),
    [
        (_deployment(3, 2, 2, 3, 3, 3), 3, True),
        (_deployment(3, 3, 2, 3, 3, 3), 3, False),  # status not yet for the new spec
        (_deployment(3, 2, 2, 4, 3, 3), 3, False),  # an old pod still counted
        (_deployment(3, 2, 2, 3, 2, 3), 3, False),  # not all updated
        (_deployment(3, 2, 2, 3, 3, 2), 3, False),  # not all ready
        (_deployment(2, 2, 2, 2, 2, 2), 3, False),  # spec asks for another count
        (_deployment(0, 4, 4, 0, 0, 0), 0, True),  # scaled to zero: fields are omitted
    ],
)
def test_rollout_complete(dep: k8s.V1Deployment, want: int, done: bool) -> None:
    assert wl.rollout_complete(dep, want) is done


@pytest.mark.parametrize(
    ("check", "value", "ok"),
    [
        (_validate.positive_int, 1, True),
        (_validate.positive_int, 0, False),
        (_validate.positive_int, True, False),
        (_validate.boolean, False, True),
        (_validate.boolean, "false", True),
        (_validate.boolean, "yes", False),
        (_validate.boolean, 0, False),
        (_validate.fraction, 0, True),
        (_validate.fraction, 1, True),
        (_validate.fraction, 0.25, True),
        (_validate.fraction, 1.0001, False),
        (_validate.fraction, float("inf"), False),
    ],
)
def test_validators(check: object, value: object, ok: bool) -> None:
    assert callable(check)
    if ok:
        check("x", value)
    else:
        with pytest.raises(InvalidInput) as info:
            check("x", value)
        assert info.value.name == "x"
