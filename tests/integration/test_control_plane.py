"""The lab's control plane does what a cluster's does: schedule, run, authenticate."""

from __future__ import annotations

from kubernetes import client

from chaosmesh_sec.lab.topology import DEFAULT
from tests.lab_fixtures import eventually

LAB_NODES = {n.name for n in DEFAULT.nodes}


def test_deployment_pods_are_scheduled_on_lab_nodes_and_run(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    apps = client.AppsV1Api(api)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1DeploymentSpec(
                replicas=3,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        containers=[
                            client.V1Container(name="web", image="registry.k8s.io/pause:3.10")
                        ]
                    ),
                ),
            ),
        ),
    )

    def running() -> list[client.V1Pod] | None:
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        ok = [p for p in pods if p.status.phase == "Running" and p.status.pod_ip]
        return ok if len(ok) == 3 else None

    pods = eventually(running, 60, "3 Running web pods")
    assert {p.spec.node_name for p in pods} <= LAB_NODES
    assert len({p.status.pod_ip for p in pods}) == 3
    dep = eventually(
        lambda: (
            (d := apps.read_namespaced_deployment("web", namespace)).status.ready_replicas == 3
            and d
        ),
        60,
        "the Deployment to report 3 ready replicas",
    )
    assert dep.status.available_replicas == 3


def test_istio_ca_token_is_authenticated_by_token_review(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="sleep"))
    )
    token = core.create_namespaced_service_account_token(
        "sleep",
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=["istio-ca"], expiration_seconds=600)
        ),
    ).status.token
    review = client.AuthenticationV1Api(api).create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token, audiences=["istio-ca"]))
    )
    assert review.status.authenticated is True
    assert review.status.user.username == f"system:serviceaccount:{namespace}:sleep"
    assert review.status.audiences == ["istio-ca"]
    # The same token presented for another audience is refused.
    wrong = client.AuthenticationV1Api(api).create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token, audiences=["other"]))
    )
    assert not wrong.status.authenticated
