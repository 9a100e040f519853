"""The CNI posture probes against the lab: each bad state made for real, and the clean one.

What is real here: the node's conflist on disk, the CNI plugins' own ``VERSION``
answers (``ptp`` and ``host-local`` from containernetworking/plugins, ``istio-cni``
from istio.io/istio), pods' network namespaces and the ``nat`` rules the real
istio-cni plugin writes in them, istio-cni's real node agent stopping and starting
(it takes its plugin out of the chain as it shuts down; the tests keep it off a node
with the lab DaemonSet's node affinity), the istio-validation container's exit code,
and istio-cni's real repair controller in each of its modes. The probes read all of
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
from chaosmesh_sec.probes._nat_rules import CHAINS
from chaosmesh_sec.probes.cni_chain import cni_chain_intact
from chaosmesh_sec.probes.redirection import redirection_in_place
from tests.lab_fixtures import (
    CNI_CONFLIST,
    curl_pod,
    eventually,
    istio_cni_down,
    node_conflist,
    repair_mode,
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
def pods_gone_after(api: client.ApiClient, core: client.CoreV1Api, namespace: str) -> Iterator[str]:
    """The test namespace, whose pods are gone before the test ends.

    A pod left running around its proxy would fail the next experiment whose
    hypothesis checks redirection in every namespace (the namespace itself is
    deleted in the background).
    """
    yield namespace
    client.AppsV1Api(api).delete_collection_namespaced_deployment(
        namespace, propagation_policy="Foreground"
    )
    core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
    eventually(lambda: not core.list_namespaced_pod(namespace).items, 60, "the test's pods gone")


def _by_pod(namespace: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    got = redirection_in_place(namespace=namespace)
    return got, {p["pod"]: p for p in got["pods"]}


def _policy_and_client(core: client.CoreV1Api, custom: client.CustomObjectsApi, ns: str) -> None:
    """The canaries' account, a deny-all policy over the namespace, and a client pod."""
    core.create_namespaced_service_account(
        ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="canary"))
    )
    custom.create_namespaced_custom_object(
        "security.istio.io", "v1", ns, "authorizationpolicies", ALLOW_NOTHING
    )
    core.create_namespaced_pod(ns, curl_pod("client", SERVER_NODE))


def _caught_in_the_window(namespace: str, name: str) -> dict[str, Any]:
    """The pod's row once its istio-validation has exited 126 (the agent still down)."""

    def caught() -> dict[str, Any] | None:
        row = _by_pod(namespace)[1].get(name, {})
        return row if row.get("validation_exit_code") == 126 else None

    row = eventually(caught, 60, f"{name}'s istio-validation to exit 126")
    assert row["verdict"] == "caught" and row["phase"] == "Pending", row
    assert row["nat"]["chains"] == [] and not row["uninitialized_label"], row
    return row


def test_pods_started_while_istio_cni_was_down_are_repaired_or_flagged(
    api: client.ApiClient,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    pods_gone_after: str,
) -> None:
    """The restart race of seed 003, made on purpose and seen by the probes, with the
    real istio-cni in the chart's default repair mode (in place).

    While the node's agent is down, two sidecar pods start there: one with the
    istio-validation init container (as injection writes it for istio-cni), one
    without. The first is caught (exit 126, held in Init) and, once the agent is back,
    its repair controller writes the rules into the running pod: the validation
    passes on its next run. The second runs with no ISTIO_* rules, and a deny-all
    policy no longer stops a client: the fail-open the probe reports. A pod started
    after the agent is back is redirected.
    """
    namespace = pods_gone_after
    _policy_and_client(core, custom, namespace)
    with istio_cni_down(core, SERVER_NODE) as back:
        window = cni_chain_intact(nodes=SERVER_NODE)  # the probe sees the window open
        assert [f["kind"] for f in window["findings"]] == ["plugin_missing"], window
        core.create_namespaced_pod(namespace, _canary("guarded", validation=True))
        core.create_namespaced_pod(namespace, _canary("unguarded", validation=False))
        _caught_in_the_window(namespace, "guarded")
        back()
    core.create_namespaced_pod(namespace, _canary("later", validation=True))

    def settled() -> dict[str, Any] | None:
        got, by_pod = _by_pod(namespace)
        if not by_pod.get("guarded", {}).get("app_running"):
            return None
        ran = all(by_pod.get(n, {}).get("app_running") for n in ("later", "unguarded"))
        return got if ran else None

    result = eventually(settled, 120, "the repaired, the unguarded and the later pod running")
    by_pod = {p["pod"]: p for p in result["pods"]}
    guarded = by_pod["guarded"]
    assert (guarded["verdict"], guarded["repaired"], guarded["validation_exit_code"]) == (
        "redirected",
        True,
        0,
    ), guarded
    assert "repaired in place" in guarded["detail"]
    assert by_pod["unguarded"]["verdict"] == "unredirected"
    assert by_pod["later"]["verdict"] == "redirected" and not by_pod["later"]["repaired"]
    assert result["holds"] is False and result["unredirected"] == [f"{namespace}/unguarded"]
    # what it means: the deny-all policy stops the client at the redirected pods only
    client_pod = eventually(
        lambda: _running(core, namespace, "client"), 30, "the client pod running"
    )
    assert _http_status(api, client_pod, by_pod["later"]["ip"]) == "403"
    assert _http_status(api, client_pod, guarded["ip"]) == "403"
    assert _http_status(api, client_pod, by_pod["unguarded"]["ip"]) == "200"


def test_a_pod_gets_istios_rules_only_from_a_node_whose_agent_is_up(
    core: client.CoreV1Api, pods_gone_after: str
) -> None:
    """The real istio-cni plugin writes the rules: a sidecar pod (no validation, so
    nothing holds it back) set up while the node's agent is down has none in its
    network namespace; one set up after it is back has Istio's."""
    namespace = pods_gone_after
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="canary"))
    )
    with istio_cni_down(core, SERVER_NODE):
        core.create_namespaced_pod(namespace, _canary("while-down", validation=False))
        eventually(lambda: _running(core, namespace, "while-down"), 60, "while-down running")
    core.create_namespaced_pod(namespace, _canary("after", validation=False))
    eventually(lambda: _running(core, namespace, "after"), 60, "after running")
    by_pod = _by_pod(namespace)[1]
    assert by_pod["while-down"]["nat"]["chains"] == []
    assert not by_pod["while-down"]["nat"]["redirected"]
    after = by_pod["after"]["nat"]
    assert after["chains"] == list(CHAINS) and after["redirected"]
    assert after["redirect_ports"] == [15001, 15006]


@pytest.mark.parametrize("mode", ["label", "delete"])
def test_the_repair_controller_handles_a_caught_pod_in_the_mode_it_is_set_to(
    api: client.ApiClient, core: client.CoreV1Api, pods_gone_after: str, mode: str
) -> None:
    """The chart's other repair modes: ``labelPods`` labels the caught pod (it stays
    held in Init, caught), ``deletePods`` deletes it and its Deployment's replacement,
    set up with the agent back, is redirected. Each writes its Event on the pod."""
    namespace = pods_gone_after
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="canary"))
    )
    with repair_mode(core, SERVER_NODE, mode):
        with istio_cni_down(core, SERVER_NODE) as back:
            client.AppsV1Api(api).create_namespaced_deployment(namespace, _canary_deployment())
            first = eventually(
                lambda: next(iter(core.list_namespaced_pod(namespace).items), None),
                30,
                "the canary's pod",
            ).metadata.name
            _caught_in_the_window(namespace, first)
            back()
        reason = {"label": "LabelBrokenPod", "delete": "DeleteBrokenPod"}[mode]
        event = eventually(lambda: _repair_event(core, namespace, first, reason), 60, reason)
        print(f"{mode}: {event.message}")
        if mode == "label":
            got, by_pod = _by_pod(namespace)
            row = by_pod[first]
            assert (row["verdict"], row["uninitialized_label"]) == ("caught", True), row
            assert row["validation_exit_code"] == 126 and row["nat"]["chains"] == []
            assert got["holds"] is True and got["caught"] == [f"{namespace}/{first}"]
        else:

            def replaced() -> dict[str, Any] | None:
                got, by_pod = _by_pod(namespace)
                rows = list(by_pod.values())
                done = first not in by_pod and rows and all(r["app_running"] for r in rows)
                return got if done else None

            got = eventually(replaced, 90, "the caught pod deleted and replaced")
            [row] = got["pods"]
            assert row["verdict"] == "redirected" and row["validation_exit_code"] == 0, row
            assert got["holds"] is True and got["counts"]["caught"] == 0


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


def _canary_deployment() -> dict[str, Any]:
    """The cni-canary kit's Deployment, one replica, pinned to the server node."""
    [deployment] = [
        d for d in kit.documents("cni-canary", server_node=SERVER_NODE) if d["kind"] == "Deployment"
    ]
    deployment = copy.deepcopy(deployment)
    deployment["metadata"].pop("namespace", None)
    deployment["spec"]["replicas"] = 1
    return deployment


def _repair_event(core: client.CoreV1Api, namespace: str, pod: str, reason: str) -> Any:
    """The repair controller's Event on ``pod`` (source cni-repair), if written."""
    for event in core.list_namespaced_event(namespace).items:
        if event.reason == reason and event.involved_object.name == pod:
            return event
    return None


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
