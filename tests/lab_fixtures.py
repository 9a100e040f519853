"""Fixtures for tests that run against the lab: a real API server, real istiod, real netns.

The session fixture ``lab`` brings the lab up once (building what is missing) and down
at the end; with ``CHAOSMESH_LAB_REUSE=1`` it uses a lab that is already up and leaves
it running (for development). Nothing here is mocked: where a test needs to look below the API (a
process, a network namespace, an iptables rule) it reads this machine through
``chaosmesh_sec.lab.inspect``.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client, config

from chaosmesh_sec import _lease, kit
from chaosmesh_sec._kube import exec_in_pod
from chaosmesh_sec.lab import inspect, manager
from chaosmesh_sec.lab.paths import LabPaths
from chaosmesh_sec.lab.topology import DEFAULT
from chaosmesh_sec.probes import _ca_access as ca
from chaosmesh_sec.probes.issuance import certificate_issuance
from chaosmesh_sec.probes.matrix import identity_matrix

T = TypeVar("T")


@pytest.fixture(scope="session")
def lab() -> Iterator[Path]:
    """The lab's admin kubeconfig; the lab is up for the whole session."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    paths = LabPaths.default()
    reuse = os.environ.get("CHAOSMESH_LAB_REUSE") == "1" and manager.status(paths).running
    kubeconfig = paths.admin_kubeconfig if reuse else manager.up(progress=_say)
    os.environ["KUBECONFIG"] = str(kubeconfig)
    yield kubeconfig
    if not reuse and paths.admin_kubeconfig.exists():
        manager.down(progress=_say)


def _say(message: str) -> None:
    print(f"lab: {message}", flush=True)


@pytest.fixture(scope="session")
def api(lab: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(lab))


@pytest.fixture(scope="session")
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture
def namespace(core: client.CoreV1Api) -> Iterator[str]:
    """A fresh namespace, deleted after the test."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def eventually(check: Callable[[], T | None], timeout: float = 60, what: str = "") -> T:
    """Poll ``check`` until it returns a truthy value (lab state converges by watches)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last error
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}: {last!r}")


def kit_deployment(
    kit_name: str, name: str, namespace: str, service_account: str = "default"
) -> dict[str, Any]:
    """A copy of one of a kit's Deployments (sidecar and all, as the kit writes it out;
    the first of that name), moved to ``namespace``, running as ``service_account``,
    unpinned."""
    docs = kit.documents(kit_name)
    dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name)
    dep = copy.deepcopy(dep)
    old = dep["metadata"]["namespace"]
    dep["metadata"]["namespace"] = namespace
    spec = dep["spec"]["template"]["spec"]
    spec["serviceAccountName"] = service_account
    spec.pop("nodeSelector", None)
    for container in spec["containers"]:
        for var in container.get("env", []):
            if "value" in var:  # ISTIO_META_OWNER names the namespace
                var["value"] = var["value"].replace(
                    f"/namespaces/{old}/", f"/namespaces/{namespace}/"
                )
    return dep


PAUSE = "registry.k8s.io/pause:3.10"
CURL = "docker.io/curlimages/curl:8.11.1"


def curl_pod(
    name: str,
    node: str = "",
    labels: dict[str, str] | None = None,
    ports: list[client.V1ContainerPort] | None = None,
) -> client.V1Pod:
    """A pod whose one container (``app``) runs this machine's curl on demand (it sleeps)."""
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PodSpec(
            node_selector={"kubernetes.io/hostname": node} if node else None,
            termination_grace_period_seconds=1,
            containers=[
                client.V1Container(
                    name="app", image=CURL, command=["/bin/sleep", "infinity"], ports=ports
                )
            ],
        ),
    )


def deploy_pause(
    api: client.ApiClient, namespace: str, name: str, replicas: int, node: str = ""
) -> None:
    """A Deployment of pause pods labelled ``app: <name>``, optionally pinned to ``node``."""
    labels = {"app": name}
    client.AppsV1Api(api).create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1DeploymentSpec(
                replicas=replicas,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(
                        containers=[client.V1Container(name=name, image=PAUSE)],
                        node_selector={"kubernetes.io/hostname": node} if node else None,
                        termination_grace_period_seconds=1,
                    ),
                ),
            ),
        ),
    )


# ---------------------------------------------------------------- istiod, as the lab runs it

ISTIOD_NAMESPACE = "istio-system"


def istiod_pods(core: client.CoreV1Api) -> list[client.V1Pod]:
    """The live (not terminating) istiod pods."""
    pods = core.list_namespaced_pod(ISTIOD_NAMESPACE, label_selector="app=istiod").items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def istiod_serves_ready(node: str, pod_ip: str) -> bool:
    """pilot-discovery answers /ready on the pod IP, reached from the pod's node."""
    url = f"http://{pod_ip}:8080/ready"
    return inspect.http_status_from(DEFAULT.node(node).netns, url) == "200"


def _three_ready(core: client.CoreV1Api) -> list[client.V1Pod] | None:
    """3 Ready istiod pods that really serve /ready."""
    pods = istiod_pods(core)
    ok = len(pods) == 3 and all(
        p.status.phase == "Running"
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        for p in pods
    )
    ok = ok and all(istiod_serves_ready(p.spec.node_name, p.status.pod_ip) for p in pods)
    return pods if ok else None


@pytest.fixture
def three_ready(core: client.CoreV1Api) -> Iterator[list[client.V1Pod]]:
    """The 3 Ready istiod pods before the test; waits for 3 Ready again after it, so a
    test that disturbs istiod leaves the shared lab as it found it."""
    pods = eventually(lambda: _three_ready(core), 120, "3 Ready istiod pods before the test")
    yield pods
    eventually(lambda: _three_ready(core), 120, "3 Ready istiod pods after the test")


def _every_replica_issues() -> bool:
    return bool(certificate_issuance(min_issuing_replicas=3, require_service=True)["ok"])


@pytest.fixture
def three_issuing(three_ready: list[client.V1Pod]) -> list[client.V1Pod]:
    """3 Ready istiod pods that each issue a certificate now.

    After a partition heals, the istiod of the healed node can still fail TokenReviews
    for a while: its connection to the API server waits for TCP's retransmission
    back-off, or for client-go's HTTP/2 health check (about 45 s) to give up on it.
    """
    eventually(_every_replica_issues, 150, "every istiod replica to issue")
    return three_ready


@pytest.fixture(scope="session")
def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


MARKER = "chaosmesh-sec-test-freshness"  # an AuthorizationPolicy that selects no pod


def istiod_metrics(pod_ip: str) -> str:
    """istiod's Prometheus text, from its monitoring port (the host routes to pod IPs)."""
    with urllib.request.urlopen(f"http://{pod_ip}:15014/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def metric_sum(text: str, metric: str, label: str = "") -> float:
    """The sum of ``metric``'s samples in ``text`` (those whose labels hold ``label``)."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((f"{metric}{{", f"{metric} ")) and label in line
    )


def _policy_events(pod_ip: str) -> float:
    """How many AuthorizationPolicy events this istiod's informer has taken."""
    text = istiod_metrics(pod_ip)
    return metric_sum(text, "pilot_k8s_cfg_events", 'type="AuthorizationPolicy"')


def _touch_marker(custom: client.CustomObjectsApi) -> None:
    body = {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {
            "name": MARKER,
            "namespace": ISTIOD_NAMESPACE,
            "annotations": {"chaosmesh-sec.io/touched": uuid.uuid4().hex},
        },
        "spec": {"selector": {"matchLabels": {"chaosmesh-sec.io/no-such-pod": MARKER}}},
    }
    group = ("security.istio.io", "v1", ISTIOD_NAMESPACE, "authorizationpolicies")
    try:
        custom.patch_namespaced_custom_object(*group, MARKER, body)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        custom.create_namespaced_custom_object(*group, body)


def wait_istiod_current(timeout: float = 150) -> None:
    """Until every istiod replica's config watch is live: it issues certificates again
    (its connection to the API server is back) and it has taken the event of a marker
    policy touched now. A replica whose node was cut off keeps serving the config it
    last saw to the proxies connected to it after the heal: until client-go's HTTP/2
    health check drops the dead connection (about 45 s), then its informers' back-off
    (up to 30 s more). A policy changed meanwhile does not reach those proxies."""
    eventually(_every_replica_issues, timeout, "every istiod replica to issue")
    api = config.new_client_from_config(config_file=os.environ["KUBECONFIG"])
    pods = istiod_pods(client.CoreV1Api(api))
    before = {p.status.pod_ip: _policy_events(p.status.pod_ip) for p in pods}
    _touch_marker(client.CustomObjectsApi(api))
    eventually(
        lambda: all(_policy_events(ip) > seen for ip, seen in before.items()),
        timeout,
        "every istiod replica to see a policy change",
    )


DRAINING = (
    "listener_manager.total_filter_chains_draining",
    "listener_manager.total_listeners_draining",
)


def _draining(api: client.ApiClient, pod: client.V1Pod) -> int:
    """How many of ``pod``'s Envoy listeners and filter chains are still draining."""
    out, _ = exec_in_pod(
        api.configuration, pod, "istio-proxy", ["pilot-agent", "request", "GET", "stats"], 15
    )
    stats = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    return sum(int(stats.get(name, "1")) for name in DRAINING)


def wait_drained(namespace: str, selector: str, timeout: float = 90) -> None:
    """Until the Envoys of the pods matching ``selector`` serve no connection on an old
    filter chain. A policy change reaches Envoy as a new filter chain; connections
    opened before it (the client sidecars keep theirs pooled) are served by the old
    one, with the old decision, until they are drained (at their next response, or
    after Envoy's drain time, 45 s). A check right after a change can hit one."""
    api = config.new_client_from_config(config_file=os.environ["KUBECONFIG"])
    core = client.CoreV1Api(api)

    def drained() -> bool:
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        live = [p for p in pods if p.metadata.deletion_timestamp is None]
        return bool(live) and all(_draining(api, p) == 0 for p in live)

    eventually(drained, timeout, f"the Envoys of {namespace}/{selector} to drain")


def matrix_holding(matrix: str, timeout: float, what: str) -> dict[str, Any]:
    """The identity matrix's result, once a check of every cell holds."""

    def holding() -> dict[str, Any] | None:
        result = identity_matrix(matrix=matrix, wait_seconds=60)
        return result if result["holds"] else None

    return eventually(holding, timeout, what)


def wait_kit_holds(timeout: float = 120) -> None:
    """Until istiod is current and the wrong-identity kit's matrix holds: istiod has
    pushed every policy and endpoint to the kit's Envoys."""
    wait_istiod_current()
    matrix_holding("wrong-identity", timeout, "the wrong-identity kit's matrix to hold")


@pytest.fixture
def istiod_current(lab: Path) -> None:
    """Every istiod replica serves current config before the test (see
    :func:`wait_istiod_current`)."""
    wait_istiod_current()


@pytest.fixture
def kit_holds(lab: Path) -> None:
    """The wrong-identity kit's matrix holds before the test (see :func:`wait_kit_holds`)."""
    wait_kit_holds()


@pytest.fixture
def kit_restored(lab: Path) -> Iterator[None]:
    """Re-apply the lab's wrong-identity kit after the test (policies it deleted or
    widened come back) and wait until its matrix holds again."""
    yield
    kit.apply(
        "wrong-identity",
        client_node="lab-node-1",
        server_node="lab-node-2",
        configuration={"kubeconfig_path": str(lab)},
    )
    wait_kit_holds()
    wait_drained("default", "app=helloworld")


def wait_lease_renewed(api: client.ApiClient, node: str, timeout: float = 90) -> None:
    """Wait until ``node``'s lease is renewed after now: once a partition is healed, the
    node lifecycle controller may still mark the node (and its pods) NotReady for the
    silence it saw; after a fresh renewal it no longer will."""
    since = datetime.now(UTC)

    def renewed() -> bool:
        lease: Any = client.CoordinationV1Api(api).read_namespaced_lease(node, "kube-node-lease")
        renew = lease.spec.renew_time
        return renew is not None and renew > since

    eventually(renewed, timeout, f"{node}'s lease to be renewed")


# ---------------------------------------------------------------- istio-cni on a node

CNI_CONFLIST = "10-cmslab.conflist"


def node_conflist(node: str) -> Path:
    """The node's primary CNI config, on the lab's disk."""
    return LabPaths.default().node_root(node) / "etc/cni/net.d" / CNI_CONFLIST


MODE_KEYS = ("LABEL", "DELETE", "REPAIR")
OFF_LABEL = "cmslab.io/istio-cni"  # the lab DaemonSet's affinity: "off" keeps it away
CNI_CONFIG = "istio-cni-config"
# The chart's repair values as the lab's ConfigMap holds them (repairPods wins over
# deletePods, which wins over labelPods: the repair controller's order).
REPAIR_MODES = {
    mode: {f"REPAIR_{key}_PODS": str(key == mode.upper()).lower() for key in MODE_KEYS}
    for mode in ("label", "delete", "repair")
}


def _cni_pod(core: client.CoreV1Api, node: str) -> Any:
    pods = core.list_namespaced_pod(
        "istio-system",
        label_selector="k8s-app=istio-cni-node",
        field_selector=f"spec.nodeName={node}",
    ).items
    return pods[0] if pods else None


def _agent_ready(core: client.CoreV1Api, node: str) -> bool:
    pod = _cni_pod(core, node)
    if pod is None or pod.metadata.deletion_timestamp is not None:
        return False
    ready = {c.type: c.status for c in pod.status.conditions or []}.get("Ready") == "True"
    return ready and "istio-cni" in node_conflist(node).read_text()


def _label_node(core: client.CoreV1Api, node: str, value: str | None) -> None:
    core.patch_node(node, {"metadata": {"labels": {OFF_LABEL: value}}})


@contextlib.contextmanager
def istio_cni_down(core: client.CoreV1Api, node: str) -> Iterator[Callable[[], None]]:
    """The real istio-cni agent kept off ``node`` until the yielded ``back()`` (or the
    end of the block) lets it back; both wait: for the plugin out of the node's chain
    (the agent takes it out as it shuts down), and back in with the agent Ready."""
    _label_node(core, node, "off")  # the DaemonSet controller deletes the node's pod
    let_back = False

    def back() -> None:
        nonlocal let_back
        if not let_back:
            let_back = True
            _label_node(core, node, None)
            eventually(lambda: _agent_ready(core, node), 60, f"istio-cni back on {node}")

    try:
        eventually(
            lambda: (
                _cni_pod(core, node) is None and "istio-cni" not in node_conflist(node).read_text()
            ),
            60,
            f"istio-cni off {node} and out of its chain",
        )
        yield back
    finally:
        back()


@contextlib.contextmanager
def repair_mode(core: client.CoreV1Api, node: str, mode: str) -> Iterator[None]:
    """istio-cni's repair controller in ``mode`` (label, delete, repair) for agents
    that start in the block; after it, the lab's default again and ``node``'s agent
    restarted into it."""
    before = core.read_namespaced_config_map(CNI_CONFIG, "istio-system").data
    core.patch_namespaced_config_map(CNI_CONFIG, "istio-system", {"data": REPAIR_MODES[mode]})
    try:
        yield
    finally:
        restore = {k: before[k] for k in REPAIR_MODES[mode]}
        core.patch_namespaced_config_map(CNI_CONFIG, "istio-system", {"data": restore})
        with istio_cni_down(core, node):
            pass


def drop_lease_of_killed_run(api: client.ApiClient, namespace: str, pid: int) -> None:
    """Delete the run Lease a SIGKILLed ``chaos run`` (process ``pid``, dead by now) left
    in ``namespace``: the cluster as the test found it, and the next test's run is not
    refused for the 30 s the Lease would live on. Another holder's Lease is left alone."""
    leases = client.CoordinationV1Api(api)
    try:
        left = leases.read_namespaced_lease(_lease.LEASE_NAME, namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return
        raise
    if (left.metadata.annotations or {}).get(_lease.PID) != str(pid):
        return
    version = client.V1Preconditions(resource_version=left.metadata.resource_version)
    leases.delete_namespaced_lease(
        _lease.LEASE_NAME, namespace, body=client.V1DeleteOptions(preconditions=version)
    )


def channels_made(monkeypatch: pytest.MonkeyPatch) -> list[ca.Channels]:
    """Every CA channel set (``probes._ca_access.Channels``) the code under test makes,
    in order: the class is patched for the test to count them."""
    made: list[ca.Channels] = []

    class Counted(ca.Channels):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(ca, "Channels", Counted)
    return made
