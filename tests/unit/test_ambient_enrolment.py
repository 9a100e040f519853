"""The ambient enrolment stand-in's decision: which pods of its node to enrol.

Pods are ``kubernetes.client`` models, as the watch hands them over. ``make_pod`` is
the pod model the lab's unit tests share.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from kubernetes import client as k8s

from chaosmesh_sec.lab.standins.ambient_enrolment import (
    AMBIENT_ANNOTATION,
    DATAPLANE_MODE,
    needs_enrolment,
)

pytestmark = pytest.mark.unit


def make_pod(
    *containers: str,
    namespace: str = "shop",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    init_containers: tuple[str, ...] = (),
    host_network: bool | None = None,
    phase: str = "Running",
    deleting: bool = False,
    init_statuses: list[k8s.V1ContainerStatus] | None = None,
    probed: tuple[str, ...] = (),
) -> k8s.V1Pod:
    """A pod of ``containers`` (default one ``app``); ``probed`` ones have a readiness probe."""

    def container(name: str) -> k8s.V1Container:
        probe = k8s.V1Probe(tcp_socket=k8s.V1TCPSocketAction(port=8080))
        return k8s.V1Container(
            name=name, image=f"example/{name}:1", readiness_probe=probe if name in probed else None
        )

    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(
            name="my-app-0",
            namespace=namespace,
            uid="0f1e2d3c-4b5a-6978-8a9b-acbdcedfe0f1",
            labels=labels,
            annotations=annotations,
            deletion_timestamp=datetime(2026, 1, 2, tzinfo=UTC) if deleting else None,
        ),
        spec=k8s.V1PodSpec(
            containers=[container(c) for c in containers or ("app",)],
            init_containers=[container(c) for c in init_containers] or None,
            host_network=host_network,
        ),
        status=k8s.V1PodStatus(
            phase=phase, pod_ip="10.244.1.7", init_container_statuses=init_statuses
        ),
    )


# ---------------------------------------------------------------- ambient enrolment

AMBIENT = {DATAPLANE_MODE: "ambient"}


@pytest.mark.parametrize(
    ("namespace_mode", "pod", "expected"),
    [
        ("ambient", make_pod(), True),
        ("ambient", make_pod(phase="Pending"), True),
        ("", make_pod(), False),
        ("", make_pod(labels=AMBIENT), True),  # the pod's own label enrols it
        ("ambient", make_pod(labels={DATAPLANE_MODE: "none"}), False),  # opted out
        ("ambient", make_pod("app", "istio-proxy"), False),  # a sidecar pod
        ("ambient", make_pod(host_network=True), False),
        ("ambient", make_pod(host_network=False), True),
        ("ambient", make_pod(annotations={AMBIENT_ANNOTATION: "enabled"}), False),
        ("ambient", make_pod(annotations={"other": "x"}), True),
        ("ambient", make_pod(deleting=True), False),
        ("ambient", make_pod(phase="Succeeded"), False),
        ("ambient", make_pod(phase="Failed"), False),
    ],
    ids=[
        "ambient-namespace",
        "pending",
        "no-mode",
        "pod-label",
        "pod-opts-out",
        "sidecar",
        "host-network",
        "pod-network",
        "already-enrolled",
        "other-annotation",
        "terminating",
        "succeeded",
        "failed",
    ],
)
def test_only_ambient_pods_not_yet_enrolled_are_enrolled(
    namespace_mode: str, pod: k8s.V1Pod, expected: bool
) -> None:
    assert needs_enrolment(pod, namespace_mode) is expected
