"""istiod in the lab is the real pilot-discovery, one process per pod, in the pod's node."""

from __future__ import annotations

from cryptography import x509
from kubernetes import client

from chaosmesh_sec.lab import inspect
from chaosmesh_sec.lab.network import pod_netns_name
from chaosmesh_sec.lab.topology import DEFAULT
from tests.lab_fixtures import eventually, istiod_metrics, metric_sum


def _istiod_pods(core: client.CoreV1Api) -> list[client.V1Pod]:
    pods = core.list_namespaced_pod("istio-system", label_selector="app=istiod").items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def test_istiod_published_its_root_certificate(core: client.CoreV1Api) -> None:
    cm = core.read_namespaced_config_map("istio-ca-root-cert", "default")
    root = x509.load_pem_x509_certificate(cm.data["root-cert.pem"].encode())
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # The self-signed CA of istiod: its subject is the trust domain's organisation.
    assert "cluster.local" in root.subject.rfc4514_string()
    # It is the CA held in istiod's own secret, shared by the three replicas.
    secret = core.read_namespaced_secret("istio-ca-secret", "istio-system")
    assert secret.data["ca-cert.pem"]


def _serves_ready(node: str, pod_ip: str) -> bool:
    """pilot-discovery answers /ready on the pod IP, reached from the pod's node."""
    return (
        inspect.http_status_from(DEFAULT.node(node).netns, f"http://{pod_ip}:8080/ready") == "200"
    )


def test_deleting_an_istiod_pod_stops_its_process_and_the_replacement_starts_one(
    core: client.CoreV1Api,
) -> None:
    before = _istiod_pods(core)
    assert len(before) == 3
    for pod in before:
        procs = inspect.container_processes(pod.metadata.uid)
        assert len(procs) == 1, procs
        assert procs[0].argv0.endswith("pilot-discovery")
        # The process runs in the pod's own namespace, behind the node the pod is on.
        assert procs[0].netns_inode == inspect.netns_of(pod_netns_name(pod.metadata.uid))

    victim = before[0]
    victim_pid = inspect.container_processes(victim.metadata.uid)[0].pid
    core.delete_namespaced_pod(victim.metadata.name, "istio-system")

    eventually(
        lambda: not inspect.container_processes(victim.metadata.uid),
        30,
        f"pilot-discovery pid {victim_pid} to exit",
    )
    old_uids = {p.metadata.uid for p in before}

    def replacement() -> client.V1Pod | None:
        fresh = [p for p in _istiod_pods(core) if p.metadata.uid not in old_uids]
        return fresh[0] if fresh and fresh[0].status.pod_ip else None

    new = eventually(replacement, 60, "the ReplicaSet's replacement pod")
    procs = eventually(
        # until the container's mount-setup shell has exec'd into pilot-discovery
        lambda: [
            p
            for p in inspect.container_processes(new.metadata.uid)
            if p.argv0.endswith("pilot-discovery")
        ],
        30,
        "a pilot-discovery process for the new pod",
    )
    assert procs[0].netns_inode == inspect.netns_of(pod_netns_name(new.metadata.uid))
    eventually(
        lambda: _serves_ready(new.spec.node_name, new.status.pod_ip),
        60,
        "the new istiod to serve /ready from its node",
    )
    eventually(
        lambda: (
            len(
                [
                    p
                    for p in _istiod_pods(core)
                    if any(
                        c.type == "Ready" and c.status == "True" for c in p.status.conditions or []
                    )
                ]
            )
            == 3
        ),
        60,
        "3 Ready istiod pods again",
    )


def test_the_upstream_envoys_accept_everything_istiod_sends(core: client.CoreV1Api) -> None:
    """No NACK: with the ALPN filter, metadata exchange and the Prometheus stats filter
    off, upstream Envoy takes every listener, cluster and route istiod pushes (with
    istiod's defaults it rejects them and no sidecar becomes Ready)."""
    pods = _istiod_pods(core)
    texts = [istiod_metrics(p.status.pod_ip) for p in pods]
    assert sum(metric_sum(t, "pilot_xds_pushes") for t in texts) > 0  # they did push
    assert [metric_sum(t, "pilot_total_xds_rejects") for t in texts] == [0.0] * len(pods)
