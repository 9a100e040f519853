"""The floor's judgement of a DaemonSet's and a Deployment's availability (pure)."""

from __future__ import annotations

import pytest
from kubernetes import client as k8s

from chaosmesh_sec import _kube

pytestmark = pytest.mark.unit


_DS_SPEC = k8s.V1DaemonSetSpec(selector=k8s.V1LabelSelector(), template=k8s.V1PodTemplateSpec())


def _ds(generation: int = 1, observed: int = 1, **status: int) -> k8s.V1DaemonSet:
    counts = {
        "desired_number_scheduled": 3,
        "current_number_scheduled": 3,
        "number_misscheduled": 0,
        "number_ready": 3,
        "updated_number_scheduled": 3,
        "number_available": 3,
    }
    counts.update(status)
    return k8s.V1DaemonSet(
        metadata=k8s.V1ObjectMeta(name="cni", generation=generation),
        spec=_DS_SPEC,
        status=k8s.V1DaemonSetStatus(observed_generation=observed, **counts),
    )


@pytest.mark.parametrize(
    ("ds", "available"),
    [
        (_ds(), True),
        (_ds(number_ready=2), False),
        (_ds(updated_number_scheduled=2), False),
        (_ds(number_available=2, number_unavailable=1), False),
        (_ds(generation=2, observed=1), False),
        (
            k8s.V1DaemonSet(metadata=k8s.V1ObjectMeta(name="cni", generation=1), spec=_DS_SPEC),
            False,
        ),
    ],
    ids=["all", "one-not-ready", "one-old", "one-unavailable", "spec-not-seen", "no-status"],
)
def test_a_daemonset_is_available_when_every_node_has_an_updated_ready_pod(
    ds: k8s.V1DaemonSet, available: bool
) -> None:
    assert _kube.daemonset_rolled_out(ds) is available


def _dep(spec: int | None, **status: int) -> k8s.V1Deployment:
    return k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name="web", generation=1),
        spec=k8s.V1DeploymentSpec(
            replicas=spec, selector=k8s.V1LabelSelector(), template=k8s.V1PodTemplateSpec()
        ),
        status=k8s.V1DeploymentStatus(observed_generation=1, **status),
    )


def test_a_deployment_is_judged_against_its_own_spec_when_no_count_is_given() -> None:
    full = {"replicas": 2, "updated_replicas": 2, "ready_replicas": 2, "available_replicas": 2}
    assert _kube.deployment_rolled_out(_dep(2, **full)) is True
    assert _kube.deployment_rolled_out(_dep(3, **full)) is False
    one = {"replicas": 1, "updated_replicas": 1, "ready_replicas": 1, "available_replicas": 1}
    assert _kube.deployment_rolled_out(_dep(None, **one)) is True  # the API's default: 1
