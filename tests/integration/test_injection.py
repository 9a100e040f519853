"""Sidecars injected by the real istiod: ``kit apply --auto-inject`` in the lab.

The API server calls istiod's injection webhook for every pod created in a namespace
labelled ``istio-injection=enabled``; istiod renders the chart's injection template
(lab/injection.py). The team-isolation kit applied that way must come up with
injected sidecars and its matrix must hold, decided by the injected Envoys. The kit
is put back in its written-out form afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from chaosmesh_sec import kit
from tests.lab_fixtures import eventually, matrix_holding

pytestmark = pytest.mark.usefixtures("istiod_current")  # see its docstring

KIT = "team-isolation"
NAMESPACES = ("team-a", "team-b")
# What the injection template writes on every pod it injected, and the kit's
# written-out pods do not carry (they do carry sidecar.istio.io/status, as the
# istio-cni plugin and its repair controller look for it).
STATUS = "kubectl.kubernetes.io/default-container"


def _apply(lab: Path, auto_inject: bool) -> None:
    kit.apply(
        KIT,
        client_node="lab-node-1",
        server_node="lab-node-2",
        auto_inject=auto_inject,
        configuration={"kubeconfig_path": str(lab)},
    )


def _pods(core: client.CoreV1Api) -> list[Any]:
    return [
        p
        for ns in NAMESPACES
        for p in core.list_namespaced_pod(ns).items
        if p.metadata.deletion_timestamp is None
    ]


def _all(core: client.CoreV1Api, injected: bool) -> list[Any]:
    """The kit's pods, once every one is Ready and (not) injected; AssertionError naming
    each pod's state until then (what a timeout reports)."""
    pods = _pods(core)
    states = {
        p.metadata.name: (
            any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or []),
            STATUS in (p.metadata.annotations or {}),
        )
        for p in pods
    }
    assert states and all(r and i is injected for r, i in states.values()), (
        f"(ready, injected) by pod: {states}; namespace labels: "
        + str({ns: core.read_namespace(ns).metadata.labels for ns in NAMESPACES})
    )
    return pods


def test_auto_inject_gives_each_pod_an_injected_sidecar_that_enforces(
    lab: Path, core: client.CoreV1Api
) -> None:
    try:
        _apply(lab, auto_inject=True)
        pods = eventually(lambda: _all(core, injected=True), 150, "injected, Ready pods")
        for pod in pods:
            proxy = next(c for c in pod.spec.containers if c.name == "istio-proxy")
            assert proxy.image == "docker.io/istio/proxyv2:1.28.3"
            assert proxy.security_context.run_as_user == 1337
            inits = [c.name for c in pod.spec.init_containers or []]
            assert inits == ["istio-validation"], inits  # the chart's istio-cni form
        result = matrix_holding(KIT, 60, "the team-isolation matrix to hold with injected sidecars")
        [denied] = [c for c in result["cells"] if c["verdict"] == "denied_by_mesh"]
        assert denied["cell"] == "curl-b -> httpbin-a"
        assert denied["evidence"]["answered_by"] == "envoy", denied
    finally:
        for ns in NAMESPACES:
            core.patch_namespace(ns, {"metadata": {"labels": {"istio-injection": None}}})
        _apply(lab, auto_inject=False)
        eventually(lambda: _all(core, injected=False), 150, "the written-out kit back")
