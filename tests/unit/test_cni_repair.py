"""The istio-cni agent stand-in's two decisions: which pods to label for repair, which to enrol.

Pods are ``kubernetes.client`` models, as the watch hands them over.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from kubernetes import client as k8s

from chaosmesh_sec.lab.standins.cni_repair import (
    AMBIENT_ANNOTATION,
    DATAPLANE_MODE,
    UNINITIALIZED_LABEL,
    needs_enrolment,
    needs_repair_label,
)

pytestmark = pytest.mark.unit

VALIDATION = "istio-validation"


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


def ended(code: int) -> k8s.V1ContainerState:
    return k8s.V1ContainerState(
        terminated=k8s.V1ContainerStateTerminated(exit_code=code, reason="Error")
    )


WAITING = k8s.V1ContainerState(waiting=k8s.V1ContainerStateWaiting(reason="CrashLoopBackOff"))
RUNNING = k8s.V1ContainerState(running=k8s.V1ContainerStateRunning())


def init_status(
    name: str = VALIDATION,
    state: k8s.V1ContainerState | None = None,
    last: k8s.V1ContainerState | None = None,
) -> k8s.V1ContainerStatus:
    return k8s.V1ContainerStatus(
        name=name,
        image="istio/proxyv2:1.24",
        image_id="",
        ready=False,
        restart_count=0 if last is None else 1,
        state=state,
        last_state=last,
    )


# ---------------------------------------------------------------- repair


@pytest.mark.parametrize(
    ("statuses", "labels", "expected"),
    [
        ([init_status(state=ended(126))], None, True),
        ([init_status(state=WAITING, last=ended(126))], None, True),  # in CrashLoopBackOff
        ([init_status(state=RUNNING, last=ended(126))], {"app": "a"}, True),  # retried
        ([init_status("istio-init", ended(0)), init_status(state=ended(126))], None, True),
        ([init_status(state=ended(126))], {UNINITIALIZED_LABEL: "true"}, False),  # done
        ([init_status(state=ended(0))], None, False),
        ([init_status(state=WAITING, last=ended(1))], None, False),  # another failure
        ([init_status(state=RUNNING)], None, False),
        ([init_status()], None, False),  # no state reported yet
        ([init_status("istio-init", ended(126))], None, False),  # not the validation
        ([], None, False),
        (None, None, False),
    ],
)
def test_only_a_validation_that_found_no_redirection_gets_the_label(
    statuses: list[k8s.V1ContainerStatus] | None, labels: dict[str, str] | None, expected: bool
) -> None:
    pod = make_pod(init_containers=(VALIDATION,), labels=labels, init_statuses=statuses)
    assert needs_repair_label(pod) is expected


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
