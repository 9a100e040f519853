"""A short-lived inspection pod on one node: read the node's CNI files and pods' nat rules.

Private to :mod:`chaosmesh_sec.probes`. Some facts are only on the node: the CNI
config the runtime reads, the plugin binaries, each pod's ``nat`` table. A probe
that needs them starts one pod per node, pinned there, with ``hostNetwork`` (so the
pod needs no CNI set-up: the chain it inspects may be broken) and the CNI
directories mounted read-only, with no ServiceAccount token. What else it gets
depends on what it reads (:data:`ACCESS`): the CNI chain probe nothing more; the
redirection probe ``hostPID`` (to find pods' network namespaces through ``/proc``)
and the capabilities ``nsenter`` and ``iptables-save`` need there (SYS_ADMIN,
SYS_PTRACE, NET_ADMIN, NET_RAW), never ``privileged``. It only reads. It ends by
itself after :data:`LIFETIME_SECONDS` even if the runner dies (its command is a
bounded ``sleep``), and the probe deletes it when done. The image must have ``sh``,
``nsenter``, ``ip`` and ``iptables-save``. ``deploy/admission-policy.yaml`` admits
exactly these shapes for the runner.
"""

from __future__ import annotations

import contextlib
import logging
import secrets as pysecrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s

from chaosmesh_sec import _kube, _pack_pods
from chaosmesh_sec.errors import ChaosMeshSecError

__all__ = [
    "ACCESS",
    "CNI_BIN_DIR",
    "CNI_NET_DIR",
    "DEFAULT_IMAGE",
    "NODE_PROBE_LABEL",
    "NodePod",
    "node_pod",
]

logger = logging.getLogger("chaostoolkit")

DEFAULT_IMAGE = _pack_pods.DEFAULT_IMAGE
NODE_PROBE_LABEL = "chaosmesh-sec.io/node-probe"
LIFETIME_SECONDS = 300
READY_TIMEOUT = 60
CNI_NET_DIR = "/run/host/etc/cni/net.d"
CNI_BIN_DIR = "/run/host/opt/cni/bin"


@dataclass(frozen=True)
class Access:
    """What an inspection pod may see and do on its node, beyond the CNI directories."""

    host_pid: bool
    capabilities: tuple[str, ...]


ACCESS = {
    "cni-chain": Access(host_pid=False, capabilities=()),
    "redirection": Access(
        host_pid=True, capabilities=("NET_ADMIN", "NET_RAW", "SYS_ADMIN", "SYS_PTRACE")
    ),
}
"""Per purpose: the redirection probe enters each pod's network namespace found in
``/proc`` (setns needs SYS_ADMIN, reading another user's ``/proc/<pid>/ns`` SYS_PTRACE)
and reads its nat table (NET_ADMIN; NET_RAW for iptables-legacy's raw socket)."""


@dataclass
class NodePod:
    """A Running inspection pod; :meth:`run` executes a shell script in it."""

    node: str
    pod: Any
    config: Any

    def run(self, script: str, timeout: float = 60) -> str:
        """``script``'s output; an exec the pod cannot take yet is tried again.

        "Running" can be reported a moment before the node can exec into the
        container (kwok's ``no exec found``): that is an ``ExecFailed``, retried until
        :data:`READY_TIMEOUT`.
        """
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                out, err = _kube.exec_in_pod(
                    self.config, self.pod, None, ["sh", "-c", script], timeout
                )
            except _kube.ExecFailed:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
                continue
            if err.strip():
                logger.debug("node probe on %s: stderr: %s", self.node, err.strip()[:500])
            return out


def _manifest(
    node: str, namespace: str, image: str, purpose: str, tolerate_control_plane: bool = False
) -> k8s.V1Pod:
    access = ACCESS[purpose]
    host_dirs = {"cni-net-dir": ("/etc/cni/net.d", CNI_NET_DIR)}
    host_dirs["cni-bin-dir"] = ("/opt/cni/bin", CNI_BIN_DIR)
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(
            name=f"cms-{purpose}-{pysecrets.token_hex(3)}",
            namespace=namespace,
            labels={NODE_PROBE_LABEL: purpose, "app.kubernetes.io/name": "chaosmesh-sec"},
            annotations={"sidecar.istio.io/inject": "false"},
        ),
        spec=k8s.V1PodSpec(
            node_name=node,
            host_network=True,
            host_pid=access.host_pid,
            restart_policy="Never",
            termination_grace_period_seconds=1,
            active_deadline_seconds=LIFETIME_SECONDS + 30,
            automount_service_account_token=False,
            tolerations=_pack_pods.tolerations(tolerate_control_plane),
            containers=[
                k8s.V1Container(
                    name="inspect",
                    image=image,
                    command=["sleep", str(LIFETIME_SECONDS)],
                    security_context=k8s.V1SecurityContext(
                        privileged=False,
                        capabilities=k8s.V1Capabilities(add=list(access.capabilities)),
                    ),
                    volume_mounts=[
                        k8s.V1VolumeMount(name=name, mount_path=inside, read_only=True)
                        for name, (_host, inside) in host_dirs.items()
                    ],
                )
            ],
            volumes=[
                k8s.V1Volume(
                    name=name,
                    host_path=k8s.V1HostPathVolumeSource(path=host, type="DirectoryOrCreate"),
                )
                for name, (host, _inside) in host_dirs.items()
            ],
        ),
    )


def _running(core: Any, name: str, namespace: str) -> Any:
    def running(objects: Mapping[str, Any]) -> bool:
        for pod in objects.values():
            if pod.status.phase in ("Failed", "Succeeded"):
                raise ChaosMeshSecError(f"the node probe pod {namespace}/{name} ended before use")
        return any(p.status.phase == "Running" for p in objects.values())

    held, objects = _kube.watch_until(
        core.list_namespaced_pod,
        running,
        time.monotonic() + READY_TIMEOUT,
        f"node probe pod {namespace}/{name}",
        namespace,
        field_selector=f"metadata.name={name}",
    )
    if not held:
        raise ChaosMeshSecError(
            f"the node probe pod {namespace}/{name} was not Running after {READY_TIMEOUT} s"
        )
    return next(iter(objects.values()))


@contextlib.contextmanager
def node_pod(
    core: Any,
    config: Any,
    node: str,
    namespace: str,
    image: str,
    purpose: str,
    tolerate_control_plane: bool = False,
) -> Iterator[NodePod]:
    """Start an inspection pod on ``node``, yield it Running, delete it afterwards."""
    body = _manifest(node, namespace, image, purpose, tolerate_control_plane)
    created: Any = core.create_namespaced_pod(namespace, body)
    try:
        yield NodePod(node, _running(core, created.metadata.name, namespace), config)
    finally:
        with contextlib.suppress(k8s.ApiException):
            core.delete_namespaced_pod(created.metadata.name, namespace, grace_period_seconds=0)
