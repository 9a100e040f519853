"""The probe kit: canary workloads, their policies and identity matrices, deployed with one command.

The kit is the top-level ``probes/`` folder (shipped in the wheel, found by
:func:`chaosmesh_sec._shipped.shipped`): one folder per kit, its manifests listed in
its ``kustomization.yaml`` (only ``resources``, so ``kubectl apply -k probes/<kit>``
deploys the same objects without the pack) and, for the kits an identity matrix
checks, its ``matrix.yaml`` (read by :mod:`chaosmesh_sec.probes.matrix` by the kit's
name). ``chaosmesh-sec kit apply wrong-identity`` applies the kit's objects
(server-side apply, field manager ``chaosmesh-sec``) and waits until its Deployments
are available; ``kit delete`` removes them. Options:

- ``--client-node`` / ``--server-node`` pin the kit's clients (``app`` sleep or curl)
  and servers to nodes: the recycled-IP hunt needs both client workloads on one node
  (pod IPs are reused within a node's range) and the server elsewhere;
- ``--auto-inject`` drops the written-out ``istio-proxy`` containers, their
  ``istio-validation`` init containers (the kit is written for istio-cni) and volumes
  and labels the namespaces ``istio-injection=enabled``, for a cluster whose istiod
  injects sidecars itself (the lab's istiod does too; ``lab up`` applies the kits in
  their written-out form, which also serves clusters without injection).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import dynamic

from chaosmesh_sec import _kube
from chaosmesh_sec._shipped import shipped
from chaosmesh_sec.client import api_client, api_errors
from chaosmesh_sec.errors import ChaosMeshSecError, InvalidInput

__all__ = [
    "KIT_DIR",
    "apply",
    "delete",
    "documents",
    "kits",
    "manifests",
    "matrices",
    "matrix_file",
]

logger = logging.getLogger("chaostoolkit")

KIT_DIR = shipped("probes")
KUSTOMIZATION = "kustomization.yaml"
MATRIX = "matrix.yaml"
CLIENT_APPS = ("sleep", "curl")
SIDECAR = "istio-proxy"
SIDECAR_INIT = ("istio-validation", "istio-init")
# What injection writes on a pod it injected, and istio-cni's plugin and repair
# controller look for: the kit's written-out sidecars carry it as injection would.
SIDECAR_STATUS = "sidecar.istio.io/status"
SIDECAR_VOLUMES = (  # the injection template's, as the kit writes them out
    "workload-socket",
    "credential-socket",
    "workload-certs",
    "istio-envoy",
    "istio-data",
    "istio-podinfo",
    "istio-token",
    "istiod-ca-cert",
)
FIELD_MANAGER = "chaosmesh-sec"
INJECTION_LABEL = {"istio-injection": "enabled"}


def kits() -> list[str]:
    """The kits shipped with the pack (their names): the folders with a kustomization."""
    return sorted(p.parent.name for p in KIT_DIR.glob(f"*/{KUSTOMIZATION}"))


def matrices() -> list[str]:
    """The kits that come with an identity matrix (their names)."""
    return sorted(p.parent.name for p in KIT_DIR.glob(f"*/{MATRIX}"))


def matrix_file(name: str) -> Path:
    """Where kit ``name``'s identity matrix is (see :func:`matrices` for the kits that have one)."""
    return KIT_DIR / name / MATRIX


def manifests(name: str) -> list[Path]:
    """The files kit ``name``'s kustomization lists under ``resources``, in its order."""
    folder = KIT_DIR / name
    spec = yaml.safe_load((folder / KUSTOMIZATION).read_text()) or {}
    return [folder / str(resource) for resource in spec.get("resources") or []]


def documents(
    name: str, client_node: str = "", server_node: str = "", auto_inject: bool = False
) -> list[dict[str, Any]]:
    """The kit's objects, adjusted as the options say (pure, apart from reading its files)."""
    if name not in kits():
        raise InvalidInput("kit", f"no kit {name!r}; the kits are: {', '.join(kits())}")
    texts = [path.read_text() for path in manifests(name)]
    out = [copy.deepcopy(d) for text in texts for d in yaml.safe_load_all(text) if d]
    for doc in out:
        if doc.get("kind") == "Deployment":
            pod = doc["spec"]["template"]
            client = pod["metadata"].get("labels", {}).get("app") in CLIENT_APPS
            node = client_node if client else server_node
            if node:
                pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node}
            if auto_inject:
                _drop_sidecar(pod)
    if auto_inject:
        # the kit's own Namespaces are labelled; the others it uses are declared first
        # (one document per namespace: a second one, applied by the same field manager,
        # would take the label off again)
        declared = {d["metadata"]["name"]: d for d in out if d.get("kind") == "Namespace"}
        for doc in declared.values():
            doc["metadata"].setdefault("labels", {}).update(INJECTION_LABEL)
        used = {d["metadata"]["namespace"] for d in out if "namespace" in d["metadata"]}
        out = [_namespace(ns) for ns in sorted(used - set(declared))] + out
    return out


def _drop_sidecar(pod: dict[str, Any]) -> None:
    """Take the written-out sidecar off a pod template: its containers, volumes and the
    injector's status annotation (the cluster's injector writes its own)."""
    pod["metadata"].get("annotations", {}).pop(SIDECAR_STATUS, None)
    spec = pod["spec"]
    spec["containers"] = [c for c in spec["containers"] if c["name"] != SIDECAR]
    inits = [c for c in spec.get("initContainers", []) if c["name"] not in SIDECAR_INIT]
    if inits:
        spec["initContainers"] = inits
    else:
        spec.pop("initContainers", None)
    spec["volumes"] = [v for v in spec.get("volumes", []) if v["name"] not in SIDECAR_VOLUMES]


def _namespace(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": dict(INJECTION_LABEL)},
    }


def _resources(configuration: Any) -> dynamic.DynamicClient:
    return dynamic.DynamicClient(api_client(configuration, None))


def apply(
    name: str,
    client_node: str = "",
    server_node: str = "",
    auto_inject: bool = False,
    wait_seconds: int = 120,
    configuration: Any = None,
) -> list[str]:
    """Apply the kit, wait for its Deployments; return what was applied (``Kind ns/name``)."""
    docs = documents(name, client_node, server_node, auto_inject)
    dyn = _resources(configuration)
    applied = []
    for doc in docs:
        what = _describe(doc)
        with api_errors(f"apply {what}"):
            resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
            resource.server_side_apply(
                body=doc,
                name=doc["metadata"]["name"],
                namespace=doc["metadata"].get("namespace"),
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
            )
        applied.append(what)
    logger.info("kit %s: applied %d objects; waiting for its Deployments", name, len(applied))
    _wait_available(k8s.AppsV1Api(dyn.client), list(_deployments(docs)), wait_seconds)
    return applied


def delete(name: str, configuration: Any = None) -> list[str]:
    """Delete the kit's objects (those that exist); return what was deleted."""
    dyn = _resources(configuration)
    deleted = []
    for doc in reversed(documents(name)):
        with api_errors(f"delete {_describe(doc)}"):
            resource = dyn.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
            try:
                resource.delete(
                    name=doc["metadata"]["name"], namespace=doc["metadata"].get("namespace")
                )
            except dynamic.exceptions.NotFoundError:
                continue
        deleted.append(_describe(doc))
    return deleted


def _describe(doc: dict[str, Any]) -> str:
    meta = doc["metadata"]
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{doc['kind']} {where}{meta['name']}"


def _deployments(docs: list[dict[str, Any]]) -> Iterator[tuple[str, str, int]]:
    for doc in docs:
        if doc["kind"] == "Deployment":
            yield doc["metadata"]["namespace"], doc["metadata"]["name"], doc["spec"]["replicas"]


def _wait_available(
    apps: k8s.AppsV1Api, deployments: list[tuple[str, str, int]], seconds: int
) -> None:
    """Watch each Deployment until it has its replicas available (at most ``seconds`` in all)."""
    deadline = time.monotonic() + seconds
    waiting = []
    for namespace, name, replicas in deployments:

        def available(objects: Mapping[str, Any], want: int = replicas) -> bool:
            return any((d.status.available_replicas or 0) >= want for d in objects.values())

        held, _ = _kube.watch_until(
            apps.list_namespaced_deployment,
            available,
            deadline,
            f"Deployment {namespace}/{name}",
            namespace,
            field_selector=f"metadata.name={name}",
        )
        if not held:
            waiting.append(f"{namespace}/{name}")
    if waiting:
        names = ", ".join(waiting)
        raise ChaosMeshSecError(f"kit Deployments not available after {seconds}s: {names}")
