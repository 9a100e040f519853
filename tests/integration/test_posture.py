"""The CNI posture probes against the lab: each bad state made for real, and the clean one.

What is real here: the node's conflist on disk, the CNI plugins' own ``VERSION``
answers (``ptp`` and ``host-local`` from containernetworking/plugins), pods' network
namespaces and their ``nat`` tables, istio-cni-node pods stopping and starting (the
install-cni stand-in takes its plugin out of the chain while it is down), the
istio-validation container's exit code and the repair label. The probes read all of
it through the API and an inspection pod per node, as on a cluster.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from chaosmesh_sec import kit
from chaosmesh_sec._kube import exec_in_pod
from chaosmesh_sec.probes.cni_chain import cni_chain_intact
from chaosmesh_sec.probes.redirection import redirection_in_place
from tests.lab_fixtures import (
    CNI_CONFLIST,
    curl_pod,
    eventually,
    istio_cni_back,
    node_conflist,
    stop_istio_cni,
)

SERVER_NODE = "lab-node-2"  # where the kit's servers and canaries run
ALLOW_NOTHING = {
    "apiVersion": "security.istio.io/v1",
    "kind": "AuthorizationPolicy",
    "metadata": {"name": "allow-nothing"},
    "spec": {},
}
OTHER_NODE = "lab-node-3"


@pytest.fixture
def conflist_restored() -> Iterator[Path]:
    """The node's conflist, put back as it was after the test."""
    path = node_conflist(OTHER_NODE)
    before = path.read_text()
    yield path
    path.write_text(before)


def test_an_intact_chain_and_redirected_pods_are_not_flagged(lab: Path) -> None:
    chain = cni_chain_intact()
    assert chain["holds"], chain["findings"]
    for node in chain["nodes"]:
        assert node["active_config"] == CNI_CONFLIST
        assert node["plugins"] == ["ptp", "istio-cni"]
        assert node["agent_ready"] is True
        assert "1.0.0" in node["supported_versions"]["ptp"]  # the real plugin's answer
    redirected = redirection_in_place(namespace="default")
    assert redirected["holds"] and redirected["counts"]["redirected"] == 4, redirected
    for pod in redirected["pods"]:
        assert pod["validation_exit_code"] == 0 and not pod["uninitialized_label"]
        assert pod["nat"]["redirected"] and pod["nat"]["redirect_ports"] == [15001, 15006]


def test_a_cni_version_the_plugin_does_not_support_is_flagged(
    lab: Path, core: client.CoreV1Api, namespace: str, conflist_restored: Path
) -> None:
    conf = json.loads(conflist_restored.read_text())
    conf["cniVersion"] = "1.1.0"  # what a newer installer writes; ptp v1.4.0 stops at 1.0.0
    conflist_restored.write_text(json.dumps(conf))
    chain = cni_chain_intact(nodes=OTHER_NODE)
    kinds = {(f["node"], f["kind"]) for f in chain["findings"]}
    assert kinds == {(OTHER_NODE, "unsupported_cni_version")}, chain["findings"]
    [ptp] = [f["detail"] for f in chain["findings"] if "'ptp'" in f["detail"]]
    assert "'1.1.0'" in ptp and "1.0.0" in ptp
    # and the node really cannot start a pod: the runtime's error, as an event
    core.create_namespaced_pod(namespace, curl_pod("victim", OTHER_NODE))

    def sandbox_failed() -> str | None:
        events = core.list_namespaced_event(namespace).items
        msgs = [e.message for e in events if e.reason == "FailedCreatePodSandBox"]
        return next((m for m in msgs if "incompatible CNI versions" in m), None)

    print(eventually(sandbox_failed, 30, "FailedCreatePodSandBox"))
    assert core.read_namespaced_pod("victim", namespace).status.phase == "Pending"
    conf["cniVersion"] = "1.0.0"
    conflist_restored.write_text(json.dumps(conf))
    assert cni_chain_intact(nodes=OTHER_NODE)["holds"]
    eventually(
        lambda: core.read_namespaced_pod("victim", namespace).status.phase == "Running",
        40,
        "the pod to start once the config is fixed",
    )


def test_a_leftover_config_of_the_same_network_is_flagged(lab: Path) -> None:
    leftover = node_conflist(OTHER_NODE).with_name("20-cmslab.conf")
    leftover.write_text(json.dumps({"cniVersion": "0.3.1", "name": "cmslab", "type": "ptp"}))
    try:
        chain = cni_chain_intact(nodes=OTHER_NODE)
    finally:
        leftover.unlink()
    assert [f["kind"] for f in chain["findings"]] == ["leftover_config"]
    assert "20-cmslab.conf" in chain["findings"][0]["detail"]


@pytest.fixture
def pods_gone_after(core: client.CoreV1Api, namespace: str) -> Iterator[str]:
    """The test namespace, whose pods are gone before the test ends.

    A pod left running around its proxy would fail the next experiment whose
    hypothesis checks redirection in every namespace (the namespace itself is
    deleted in the background).
    """
    yield namespace
    core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
    eventually(lambda: not core.list_namespaced_pod(namespace).items, 60, "the test's pods gone")


def test_pods_started_while_istio_cni_was_down_are_caught_or_flagged(
    api: client.ApiClient,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    pods_gone_after: str,
) -> None:
    """The restart race of seed 003, made on purpose and seen by the probes.

    While istio-cni-node restarts on the node, two sidecar pods start there: one with
    the istio-validation init container (as injection writes it for istio-cni), one
    without. The first is caught (exit 126, repair label, held in Init); the second
    runs with no ISTIO_* rules, and a deny-all policy no longer stops a client: the
    fail-open the probe reports. A pod started after the restart is redirected.
    """
    namespace = pods_gone_after
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="canary"))
    )
    custom.create_namespaced_custom_object(
        "security.istio.io", "v1", namespace, "authorizationpolicies", ALLOW_NOTHING
    )
    core.create_namespaced_pod(namespace, curl_pod("client", SERVER_NODE))
    stop_istio_cni(core, SERVER_NODE)
    window = cni_chain_intact(nodes=SERVER_NODE)  # the probe sees the window open
    assert [f["kind"] for f in window["findings"]] == ["plugin_missing"], window
    core.create_namespaced_pod(namespace, _canary("guarded", validation=True))
    core.create_namespaced_pod(namespace, _canary("unguarded", validation=False))
    istio_cni_back(SERVER_NODE)
    core.create_namespaced_pod(namespace, _canary("later", validation=True))

    def settled() -> dict[str, Any] | None:
        got = redirection_in_place(namespace=namespace)
        by_pod = {p["pod"]: p for p in got["pods"]}
        guarded = by_pod.get("guarded", {})
        if not (guarded.get("uninitialized_label") and by_pod.get("later", {}).get("app_running")):
            return None
        if not by_pod.get("unguarded", {}).get("app_running"):
            return None
        return got

    result = eventually(settled, 60, "the three pods to settle")
    by_pod = {p["pod"]: p for p in result["pods"]}
    assert by_pod["guarded"]["verdict"] == "caught"
    assert by_pod["guarded"]["validation_exit_code"] == 126
    assert by_pod["guarded"]["phase"] == "Pending"
    assert by_pod["unguarded"]["verdict"] == "unredirected"
    assert by_pod["unguarded"]["nat"]["chains"] == []
    assert by_pod["later"]["verdict"] == "redirected"
    assert result["holds"] is False and result["unredirected"] == [f"{namespace}/unguarded"]
    # what it means: the deny-all policy stops the client at "later", not at "unguarded"
    client_pod = eventually(
        lambda: _running(core, namespace, "client"), 30, "the client pod running"
    )
    assert _http_status(api, client_pod, by_pod["later"]["ip"]) == "403"
    assert _http_status(api, client_pod, by_pod["unguarded"]["ip"]) == "200"


# ---------------------------------------------------------------- helpers


def _canary(name: str, validation: bool) -> dict[str, Any]:
    """A sidecar pod as the cni-canary kit writes it, pinned to the server node."""
    [deployment] = [
        d for d in kit.documents("cni-canary", server_node=SERVER_NODE) if d["kind"] == "Deployment"
    ]
    template = copy.deepcopy(deployment["spec"]["template"])
    if not validation:
        del template["spec"]["initContainers"]
    template["metadata"]["name"] = name
    return {"apiVersion": "v1", "kind": "Pod", **template}


def _running(core: client.CoreV1Api, namespace: str, name: str) -> Any:
    pod = core.read_namespaced_pod(name, namespace)
    return pod if pod.status.phase == "Running" else None


def _http_status(api: client.ApiClient, pod: Any, ip: str) -> str:
    argv = [
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-m",
        "5",
        "-w",
        "%{http_code}",
        f"http://{ip}:5000/hello",
    ]
    deadline = time.monotonic() + 20
    while True:  # the pod's sidecar may still be getting its policies
        out, _err = exec_in_pod(api.configuration, pod, None, argv, 15)
        if out.strip() in ("200", "403") or time.monotonic() > deadline:
            return out.strip()
        time.sleep(1)
