"""kwok's per-pod debugging resources: Exec, PortForward, Logs (``kwok.x-k8s.io/v1alpha1``).

They tell the node's kwok how ``kubectl exec``, ``port-forward`` and ``logs`` reach
this pod: exec through the lab's exec shims (``CMSLAB_EXEC_TARGET`` names the
container's directory, whose ``pid`` file the shim enters), port-forward to the pod
IP from the node's namespace, logs from the CRI-format file the agent keeps. Each is
owned by the pod, so the garbage collector removes it with the pod.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes import client

__all__ = ["ensure", "manifests"]

GROUP, VERSION = "kwok.x-k8s.io", "v1alpha1"


def manifests(pod: Any, pod_dir: Path) -> dict[str, dict[str, Any]]:
    """The three resources for ``pod``, by plural (pure)."""
    meta = {
        "name": pod.metadata.name,
        "namespace": pod.metadata.namespace,
        "ownerReferences": [
            {"apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name, "uid": pod.metadata.uid}
        ],
    }
    containers = list(pod.spec.containers)
    execs = [
        {
            "containers": [c.name],
            "local": {
                "workDir": "/",
                "envs": [
                    {"name": "CMSLAB_EXEC_TARGET", "value": str(pod_dir / "containers" / c.name)},
                    {"name": "CMSLAB_POD_NETNS", "value": _netns(pod_dir)},
                ],
            },
        }
        for c in containers
    ]
    ports = sorted({p.container_port for c in containers for p in c.ports or []})
    address = pod.status.pod_ip
    forwards = [{"ports": [p], "target": {"address": address, "port": p}} for p in ports]
    logs = [
        {"containers": [c.name], "logsFile": str(pod_dir / "logs" / f"{c.name}.cri.log")}
        for c in containers
    ]
    api = f"{GROUP}/{VERSION}"
    out: dict[str, dict[str, Any]] = {
        "execs": {"apiVersion": api, "kind": "Exec", "metadata": meta, "spec": {"execs": execs}},
        "logs": {"apiVersion": api, "kind": "Logs", "metadata": meta, "spec": {"logs": logs}},
    }
    if forwards:
        out["portforwards"] = {
            "apiVersion": api,
            "kind": "PortForward",
            "metadata": meta,
            "spec": {"forwards": forwards},
        }
    return out


def _netns(pod_dir: Path) -> str:
    marker = pod_dir / "netns"
    return marker.read_text().strip() if marker.exists() else ""


def ensure(custom: client.CustomObjectsApi, pod: Any, pod_dir: Path) -> None:
    for plural, body in manifests(pod, pod_dir).items():
        try:
            custom.create_namespaced_custom_object(
                GROUP, VERSION, pod.metadata.namespace, plural, body
            )
        except client.ApiException as exc:
            if exc.status != 409:
                raise
