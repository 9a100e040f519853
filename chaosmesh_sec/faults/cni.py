"""Restart a CNI DaemonSet's pods (istio-cni-node, cilium) on chosen nodes, and time it.

While a CNI agent restarts on a node, pods created there may come up without what
the agent installs (istio-cni's traffic redirection, Cilium's identities): the
window this fault opens on purpose. It is measured per node, from the old pod's
deletion to the replacement being Ready.

No rollback: the DaemonSet controller replaces the pods. No ``from __future__
import annotations`` here: chaoslib's ``discover()`` reads these signatures.
"""

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from chaosmesh_sec import _kube, _validate
from chaosmesh_sec._types import Configuration, JSONObject, Secrets
from chaosmesh_sec.client import api_errors, apps_v1, core_v1
from chaosmesh_sec.errors import FaultNotApplied, InvalidInput
from chaosmesh_sec.faults import _workloads as wl

__all__ = ["restart_cni_pods"]

logger = logging.getLogger("chaostoolkit")

METHODS = ("delete", "rollout")
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def _restart_inputs(
    daemonset: Any, namespace: Any, nodes: Any, method: Any, wait_ready: Any, timeout_seconds: Any
) -> tuple[str, str, list[str], str, bool, int]:
    """:func:`restart_cni_pods`' input check (pure); `nodes` comes back as a list."""
    daemonset = _validate.dns_subdomain("daemonset", daemonset)
    namespace = _validate.dns_label("namespace", namespace)
    chosen = _node_list(nodes)
    if method not in METHODS:
        raise InvalidInput("method", f"must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "rollout" and chosen:
        raise InvalidInput(
            "nodes", "a rollout restarts the pods on every node: leave nodes empty, or use delete"
        )
    wait_ready = _validate.boolean("wait_ready", wait_ready)
    timeout_seconds = _validate.duration("timeout_seconds", timeout_seconds)
    return daemonset, namespace, chosen, str(method), wait_ready, timeout_seconds


@_validate.checks(_restart_inputs)
def restart_cni_pods(
    daemonset: str = "istio-cni-node",
    namespace: str = "istio-system",
    nodes: str = "",
    method: str = "delete",
    wait_ready: bool = True,
    timeout_seconds: int = 120,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> JSONObject:
    """Restart the pods of DaemonSet `daemonset` in `namespace` on `nodes`, by delete or rollout.

    `nodes` is a comma-separated list of node names (each must exist and run a pod
    of the DaemonSet); empty means every node that runs one. `method` `delete`
    deletes those pods (the DaemonSet recreates them); `rollout` stamps the pod
    template as `kubectl rollout restart` does, which restarts the pods on every
    node in the DaemonSet's update order (so `nodes` must be empty with it; use
    cilium's `k8s-app=cilium` DaemonSet `cilium` in `kube-system` likewise).

    With `wait_ready`, watches until every chosen node has a new Ready pod (at most
    `timeout_seconds`); a timeout is `recovered: false` with a `reason`, not an
    error. Returns `{"daemonset", "namespace", "method", "restarted_at",
    "nodes": [{"node", "old_pod", "new_pod", "ready_at", "seconds_to_ready"}],
    "recovered", "seconds", "reason"}`; `seconds_to_ready` (from the restart to
    the new pod Ready) is the window in which that node had no CNI agent.
    """
    daemonset, namespace, chosen, method, wait_ready, timeout_seconds = _restart_inputs(
        daemonset, namespace, nodes, method, wait_ready, timeout_seconds
    )

    core, apps = core_v1(configuration, secrets), apps_v1(configuration, secrets)
    _kube.require_namespace(core, namespace)
    ds = _kube.read_named(
        apps.read_namespaced_daemon_set, "DaemonSet", daemonset, namespace, "daemonset"
    )
    for node in chosen:
        _kube.require_node(core, node, "nodes")
    selector = wl.deployment_selector(ds.spec.selector)
    old = _pods_by_node(core, namespace, selector, ds.metadata.uid)
    for node in chosen:
        if node not in old:
            raise InvalidInput(
                "nodes", f"no running pod of DaemonSet {namespace}/{daemonset} on node {node!r}"
            )
    targets = chosen or sorted(old)
    if not targets:
        raise InvalidInput("daemonset", f"DaemonSet {namespace}/{daemonset} runs no pod")

    started = time.monotonic()
    stamp = datetime.now(UTC).isoformat()
    if method == "delete":
        _delete_on(core, old, targets)
    else:
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        with api_errors(f"restart DaemonSet {namespace}/{daemonset}"):
            apps.patch_namespaced_daemon_set(daemonset, namespace, patch)
        logger.info("Rollout restart of DaemonSet %s/%s", namespace, daemonset)

    per_node: dict[str, JSONObject] = {
        node: {
            "node": node,
            "old_pod": old[node].metadata.name,
            "new_pod": None,
            "ready_at": None,
            "seconds_to_ready": None,
        }
        for node in targets
    }
    result: JSONObject = {
        "daemonset": daemonset,
        "namespace": namespace,
        "method": method,
        "restarted_at": stamp,
        "nodes": list(per_node.values()),
        "recovered": None,
        "seconds": None,
        "reason": None,
    }
    if not wait_ready:
        return result
    old_uids = {pod.metadata.uid for pod in old.values()}

    def replaced(objects: Mapping[str, Any]) -> bool:
        for pod in objects.values():
            entry = per_node.get(pod.spec.node_name or "")
            if entry is None or entry["new_pod"] or pod.metadata.uid in old_uids:
                continue
            if _owned_by(pod, ds.metadata.uid) and _kube.pod_ready(pod):
                entry["new_pod"] = pod.metadata.name
                entry["ready_at"] = _kube.pod_ready_at(pod)
                entry["seconds_to_ready"] = round(time.monotonic() - started, 3)
        return all(entry["new_pod"] for entry in per_node.values())

    held, _ = _kube.watch_until(
        core.list_namespaced_pod,
        replaced,
        started + timeout_seconds,
        f"pods of DaemonSet {namespace}/{daemonset}",
        namespace,
        label_selector=selector,
    )
    result["recovered"] = held
    result["seconds"] = round(time.monotonic() - started, 3)
    if not held:
        waiting = sorted(n for n, e in per_node.items() if not e["new_pod"])
        result["reason"] = f"no new Ready pod after {timeout_seconds}s on {', '.join(waiting)}"
        logger.warning("CNI pods did not recover: %s", result["reason"])
    return result


def _node_list(nodes: Any) -> list[str]:
    if not isinstance(nodes, str):
        raise InvalidInput("nodes", f"must be a comma-separated string, got {type(nodes).__name__}")
    names = [n.strip() for n in nodes.split(",") if n.strip()]
    if len(set(names)) != len(names):
        raise InvalidInput("nodes", f"names a node twice: {nodes!r}")
    return [_validate.dns_subdomain("nodes", n) for n in names]


def _owned_by(pod: Any, uid: str) -> bool:
    return any(ref.uid == uid for ref in pod.metadata.owner_references or [])


def _pods_by_node(core: Any, namespace: str, selector: str, ds_uid: str) -> dict[str, Any]:
    """The DaemonSet's live pods, by node (one per node)."""
    with api_errors(f"list pods {selector!r} in namespace {namespace!r}"):
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    return {
        p.spec.node_name: p
        for p in pods
        if p.spec.node_name and _owned_by(p, ds_uid) and not _kube.pod_terminating(p)
    }


def _delete_on(core: Any, old: Mapping[str, Any], targets: list[str]) -> None:
    done: list[str] = []
    for node in targets:
        pod = old[node]
        try:
            wl.delete_pod(core, pod)
        except Exception as exc:
            raise FaultNotApplied(
                f"could not delete pod {pod.metadata.name!r} on {node} ({exc}); already "
                f"restarted on: {done or 'none'} (the DaemonSet replaces them)"
            ) from exc
        logger.info("Deleted CNI pod %s on %s", pod.metadata.name, node)
        done.append(node)
