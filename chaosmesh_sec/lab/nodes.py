"""The lab's nodes and what runs on them: kwok and the node agent, per node namespace;
then the cluster add-ons the lab deploys (kwok's and Istio's CRDs, the pack's fault
namespace, istiod)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from chaosmesh_sec import _run, kit
from chaosmesh_sec._shipped import shipped
from chaosmesh_sec.errors import LabError
from chaosmesh_sec.lab import images, injection, procs
from chaosmesh_sec.lab.build import Binaries, locate
from chaosmesh_sec.lab.components import component, module_source
from chaosmesh_sec.lab.kubectl import Kubectl
from chaosmesh_sec.lab.paths import LabPaths
from chaosmesh_sec.lab.pki import LabPKI
from chaosmesh_sec.lab.topology import Node, Topology

__all__ = ["fault_namespace_manifest", "node_manifest", "ready_states", "start"]

MANIFESTS = Path(__file__).resolve().parent / "manifests"
KWOK_CRDS = ("execs", "portforwards", "logs")
KWOK_POD_STAGES = ("pod-delete",)  # pod-ready is ours; no pod-complete: the agent reports exits
KITS = ("wrong-identity", "team-isolation", "cni-canary")
STANDARD_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")

Progress = Callable[[str], None]


def node_manifest(node: Node) -> dict[str, Any]:
    """The Node object the lab creates; kwok initialises its status (pure)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": {
                "kubernetes.io/hostname": node.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": node.pod_cidr, "podCIDRs": [node.pod_cidr]},
        "status": {"addresses": [{"type": "InternalIP", "address": node.ip}]},
    }


def _exec_shims(paths: LabPaths, image_commands: set[str]) -> Path:
    """A directory first on kwok's PATH: every host command name, and every command the
    lab's images hold (``pilot-agent``), linked to a dispatcher that runs the command
    inside the target container's namespaces (see kwokres), where the image's files are."""
    shims = paths.state / "shims"
    shims.mkdir(parents=True, exist_ok=True)
    dispatcher = shims / ".dispatch"
    dispatcher.write_text(
        "#!/bin/sh\n"
        "# chaosmesh-sec lab: `kubectl exec` lands here; enter the container's namespaces.\n"
        "name=${0##*/}\n"
        f"PATH={':'.join(STANDARD_PATH)}; export PATH\n"
        "t=$CMSLAB_EXEC_TARGET\n"
        # a container still setting up its mounts has no pid file yet: wait for it
        'n=0; while [ -n "$t" ] && [ ! -f "$t/pid" ] && [ ! -e "$t/simulated" ] '
        '&& [ "$n" -lt 150 ]; do sleep 0.1; n=$((n+1)); done\n'
        'if [ -n "$t" ] && [ -f "$t/pid" ]; then\n'
        '  pid=$(cat "$t/pid")\n'
        '  if kill -0 "$pid" 2>/dev/null; then exec nsenter -t "$pid" -n -m -- "$name" "$@"; fi\n'
        "fi\n"
        'if [ -n "$CMSLAB_POD_NETNS" ]; then\n'
        '  exec nsenter --net=/run/netns/"$CMSLAB_POD_NETNS" -- "$name" "$@"\n'
        "fi\n"
        'exec "$name" "$@"\n'
    )
    dispatcher.chmod(0o755)
    for name in sorted(image_commands):
        link = shims / name
        if not link.is_symlink():
            link.symlink_to(".dispatch")
    for d in STANDARD_PATH:
        if not os.path.isdir(d):
            continue
        for entry in os.scandir(d):
            link = shims / entry.name
            if entry.name.startswith(".") or link.exists() or link.is_symlink():
                continue
            if entry.is_file() and os.access(entry.path, os.X_OK):
                link.symlink_to(".dispatch")
    return shims


# Our pod-ready Stage (kwok's own marks every pod Ready at once). It gives a pod its
# IP as kwok's does; a pod without init containers is Running, and starts not Ready
# when it has a readiness probe. A pod with init containers is Pending in
# PodInitializing, as a kubelet reports it: the node agent reports its init
# containers' runs, then Running, and Ready when its probe passes.
POD_READY_STATUS = """\
{{ $now := Now }}
{{ $ready := "True" }}
{{ $init := false }}
{{ range .spec.containers }}{{ if .readinessProbe }}{{ $ready = "False" }}{{ end }}{{ end }}
{{ range .spec.initContainers }}{{ $ready = "False" }}{{ $init = true }}{{ end }}
phase: {{ if $init }}Pending{{ else }}Running{{ end }}
startTime: {{ $now | Quote }}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) \
( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
conditions:
- {type: Initialized, status: {{ if $init }}"False"{{ else }}"True"{{ end }}, \
lastTransitionTime: {{ $now | Quote }}}
- {type: Ready, status: {{ $ready | Quote }}, lastTransitionTime: {{ $now | Quote }}}
- {type: ContainersReady, status: {{ $ready | Quote }}, lastTransitionTime: {{ $now | Quote }}}
{{ if $init }}
initContainerStatuses:
{{ range .spec.initContainers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: false
  restartCount: 0
  state: {waiting: {reason: PodInitializing}}
{{ end }}
{{ end }}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: {{ if or .readinessProbe $init }}false{{ else }}true{{ end }}
  restartCount: 0
  {{ if $init }}state: {waiting: {reason: PodInitializing}}\
{{ else }}state: {running: {startedAt: {{ $now | Quote }}}}{{ end }}
{{ end }}
"""


def pod_ready_stage() -> dict[str, Any]:
    """The lab's pod-ready Stage for kwok (pure)."""
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": "pod-ready"},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {
                "matchExpressions": [
                    {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                    {"key": ".status.podIP", "operator": "DoesNotExist"},
                ]
            },
            "next": {"statusTemplate": POD_READY_STATUS},
        },
    }


def _kwok_config(paths: LabPaths, node: Node) -> Path:
    stages_dir = module_source(component("kwok"), "sigs.k8s.io/kwok") / "kustomize/stage/pod/fast"
    docs = [yaml.safe_dump(pod_ready_stage())]
    docs += [(stages_dir / f"{name}.yaml").read_text() for name in KWOK_POD_STAGES]
    path = paths.state / "kwok" / node.name / "kwok.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n---\n".join(docs))
    return path


def _start_node(
    bins: Binaries, paths: LabPaths, lab_pki: LabPKI, topo: Topology, node: Node, shims: Path
) -> None:
    marker = str(paths.state)
    home = paths.state / "kwok" / node.name
    serving = lab_pki.pair(f"{node.name}-kubelet")
    kubeconfig = paths.kubeconfig(node.name)
    kwok_cmd = (
        str(bins["kwok"]),
        f"--kubeconfig={kubeconfig}",
        f"--config={_kwok_config(paths, node)}",
        f"--manage-single-node={node.name}",
        f"--node-ip={node.ip}",
        f"--node-port={topo.kubelet_port}",
        f"--server-address={node.ip}:{topo.kubelet_port}",
        f"--tls-cert-file={serving.cert}",
        f"--tls-private-key-file={serving.key}",
        "--node-lease-duration-seconds=40",
        "--enable-crds=Exec,PortForward,Logs",
    )
    env = {"HOME": str(home), "PATH": f"{shims}:{':'.join(STANDARD_PATH)}"}
    procs.start(
        f"kwok-{node.name}",
        kwok_cmd,
        log=paths.component_log(f"kwok-{node.name}"),
        pidfile=paths.run / f"kwok-{node.name}.pid",
        marker=marker,
        netns=node.netns,
        env=env,
    )
    agent_cmd = (
        sys.executable,
        "-m",
        "chaosmesh_sec.lab.agent",
        f"--node={node.name}",
        f"--kubeconfig={kubeconfig}",
        f"--pods-dir={paths.pods}",
        f"--images={paths.images}",
        f"--cni-bin-dir={bins['ptp'].parent}",
        f"--node-root={paths.node_root(node.name)}",
    )
    procs.start(
        f"agent-{node.name}",
        agent_cmd,
        log=paths.component_log(f"agent-{node.name}"),
        pidfile=paths.run / f"agent-{node.name}.pid",
        marker=marker,
        netns=node.netns,
    )


def _wait(what: str, check: Callable[[], bool], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except LabError:
            pass
        time.sleep(1)
    raise LabError(f"timed out after {timeout:.0f}s waiting for {what}", log_path=log)


def _nodes_ready(kubectl: Kubectl, topo: Topology) -> bool:
    states = _ready_map(kubectl("get", "nodes", "-o", "json"))
    return all(states.get(n.name) == "True" for n in topo.nodes)


def _ready_map(nodes_json: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in json.loads(nodes_json)["items"]:
        conds = {c["type"]: c["status"] for c in item.get("status", {}).get("conditions", [])}
        out[item["metadata"]["name"]] = conds.get("Ready", "Unknown")
    return out


def ready_states(paths: LabPaths) -> dict[str, str]:
    """Node name -> Ready condition, read with the lab's kubectl (for ``lab status``)."""
    try:
        return _ready_map(Kubectl(paths, locate(paths))("get", "nodes", "-o", "json"))
    except LabError:
        return {}


def _istiod_ready(kubectl: Kubectl) -> bool:
    dep = json.loads(kubectl("-n", "istio-system", "get", "deployment", "istiod", "-o", "json"))
    ready = dep.get("status", {}).get("readyReplicas", 0)
    if ready < dep["spec"]["replicas"]:
        return False
    kubectl("-n", "default", "get", "configmap", "istio-ca-root-cert")
    return True


def _daemonset_ready(kubectl: Kubectl, namespace: str, name: str, nodes: int) -> bool:
    ds = json.loads(kubectl("-n", namespace, "get", "daemonset", name, "-o", "json"))
    status = ds.get("status", {})
    return bool(status.get("numberReady", 0) == status.get("desiredNumberScheduled", -1) == nodes)


def fault_namespace_manifest() -> dict[str, Any]:
    """The pack's fault namespace, as ``deploy/namespace.yaml`` makes it (Pod Security
    ``privileged``, out of the mesh): the lab's fault pods, inspection pods and run Lease
    go there, as in a cluster with ``deploy/`` applied."""
    docs = yaml.safe_load_all((shipped("deploy") / "namespace.yaml").read_text())
    found = [d for d in docs if d and d["metadata"]["name"] == _run.FAULT_NAMESPACE]
    if len(found) != 1:
        raise LabError(f"deploy/namespace.yaml does not define {_run.FAULT_NAMESPACE}")
    doc: dict[str, Any] = found[0]
    return doc


def start(
    bins: Binaries,
    paths: LabPaths,
    lab_pki: LabPKI,
    topo: Topology,
    progress: Progress,
) -> None:
    """Install CRDs, start kwok and an agent per node, register the nodes, deploy istiod
    and istio-cni."""
    kubectl = Kubectl(paths, bins)
    progress("installing kwok's and Istio's CRDs and the node RBAC")
    kwok_src = module_source(component("kwok"), "sigs.k8s.io/kwok")
    istio_src = module_source(component("istiod"), "istio.io/istio")
    kubectl("apply", "-f", str(MANIFESTS / "node-rbac.yaml"))
    for crd in KWOK_CRDS:
        kubectl("apply", "-f", str(kwok_src / f"kustomize/crd/bases/kwok.x-k8s.io_{crd}.yaml"))
    kubectl(
        "apply",
        "--server-side",
        "-f",
        str(istio_src / "manifests/charts/base/files/crd-all.gen.yaml"),
    )
    table = images.lab_images(bins, istio_src)
    images.write(table, paths.images)
    commands = {Path(t).name for image in table.values() for t in image.files if "/bin/" in t}
    shims = _exec_shims(paths, commands)
    for node in topo.nodes:
        progress(f"starting kwok and the node agent on {node.name} ({node.ip})")
        _start_node(bins, paths, lab_pki, topo, node, shims)
    nodes_doc = "\n---\n".join(yaml.safe_dump(node_manifest(n)) for n in topo.nodes)
    kubectl("apply", "-f", "-", stdin=nodes_doc)
    _wait(
        "the nodes to be Ready",
        lambda: _nodes_ready(kubectl, topo),
        90,
        paths.component_log(f"kwok-{topo.nodes[0].name}"),
    )
    progress(
        f"nodes Ready; creating {_run.FAULT_NAMESPACE}; deploying istiod (3 replicas) and "
        "its sidecar injector"
    )
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}
    injector = injection.injector_configmap(istio_src)
    docs = [fault_namespace_manifest(), namespace, injector]
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    kubectl("apply", "-f", str(MANIFESTS / "istiod.yaml"))
    _wait(
        "istiod to be Ready and to publish istio-ca-root-cert",
        lambda: _istiod_ready(kubectl),
        180,
        paths.logs,
    )
    progress("istiod Ready; istio-ca-root-cert published; deploying istio-cni-node")
    kubectl("apply", "-f", str(MANIFESTS / "istio-cni.yaml"))
    _wait(
        "the istio-cni-node DaemonSet to be Ready on every node",
        lambda: _daemonset_ready(kubectl, "istio-system", "istio-cni-node", len(topo.nodes)),
        90,
        paths.logs,
    )
    progress("istio-cni-node Ready on every node; deploying the data plane (cilium stand-in)")
    kubectl("apply", "-f", str(MANIFESTS / "mesh-dataplane.yaml"))
    _wait(
        "the cilium DaemonSet to be Ready on every node",
        lambda: _daemonset_ready(kubectl, "kube-system", "cilium", len(topo.nodes)),
        90,
        paths.logs,
    )
    client, server = topo.nodes[0].name, topo.nodes[1].name
    for name in KITS:
        progress(f"deploying the probe kit {name} (clients on {client}, servers on {server})")
        kit.apply(
            name,
            client_node=client,
            server_node=server,
            configuration={"kubeconfig_path": str(paths.admin_kubeconfig)},
        )
    progress(f"probe kits available: {', '.join(KITS)}")
