"""The identity matrix against the lab's data plane: the probe kit, real requests, real layers.

``lab up`` deploys the wrong-identity kit (sleep v1/v2 on lab-node-1, helloworld v1/v2
on lab-node-2), with the real sidecar (pilot-agent and Envoy, configured by istiod) in
every pod and the Cilium stand-in on every node. Each test starts from a kit whose
matrix holds (istiod has pushed everything to the Envoys: after a policy change or a
partition that takes a push) and a test that changes a policy puts the kit back.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from chaosmesh_sec import _run
from chaosmesh_sec.client import core_v1
from chaosmesh_sec.errors import FailOpen
from chaosmesh_sec.faults import churn, ip_recycle
from chaosmesh_sec.faults.apiserver_partition import (
    heal_apiserver_partition,
    partition_node_from_apiserver,
)
from chaosmesh_sec.kit import matrix_file
from chaosmesh_sec.probes import _matrix_evidence, _matrix_spec, matrix
from tests.lab_fixtures import curl_pod, eventually, wait_drained, wait_lease_renewed

NS = "default"
FAULTS = _run.FAULT_NAMESPACE  # the experiments' default fault_namespace (the lab makes it)

pytestmark = pytest.mark.usefixtures("kit_holds")


def _digitless(text: str) -> str:
    return re.sub(r"\d+", "N", text)


def _cells(result: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(c["source"], c["destination"]): c for c in result["cells"]}


def test_the_kit_holds_and_each_deny_names_its_layer(lab: Path) -> None:
    result = matrix.identity_matrix(matrix="wrong-identity", wait_seconds=60)
    cells = _cells(result)
    assert result["holds"] is True, result["cells"]
    assert cells[("sleep-v1", "helloworld-v1")]["verdict"] == "allowed"
    assert cells[("sleep-v2", "helloworld-v2")]["verdict"] == "allowed"
    # the L4 policy (CiliumNetworkPolicy) decides first: the connection times out
    assert cells[("sleep-v2", "helloworld-v1")]["verdict"] == "denied_by_network"
    assert cells[("sleep-v1", "helloworld-v2")]["verdict"] == "denied_by_network"
    assert "Hello version: v1" in cells[("sleep-v1", "helloworld-v1")]["evidence"]["body"]
    assert set(result["pods"]) == {"sleep-v1", "sleep-v2"}


@pytest.mark.parametrize("kit", ["wrong-identity", "team-isolation"])
def test_one_exec_per_source_gives_the_verdicts_of_one_exec_per_cell(lab: Path, kit: str) -> None:
    """The batched probe (one exec per source pod) against the path it replaced (one
    exec per cell), the same pods, the same cells: the same verdicts, and the same
    evidence but for what differs from one request to the next (timings, and the
    port Envoy's inbound side connects to the app from, which go-httpbin's /ip echoes)."""
    result = matrix.identity_matrix(matrix=kit, wait_seconds=60)
    assert result["holds"] is True, result["cells"]
    parsed = matrix._load(kit)
    core = core_v1()
    by_cell = _cells(result)
    for cell in parsed.cells():
        pod = core.read_namespaced_pod(result["pods"][cell.source.name]["name"],
                                       cell.source.namespace)  # fmt: skip
        one = matrix._exec(core.api_client.configuration, pod, cell.source.container,
                           cell.command(), cell)  # fmt: skip
        batched = by_cell[cell.key]
        assert _matrix_evidence.classify(one) == batched["verdict"], (cell.id, one, batched)
        assert one.exit_code == batched["evidence"]["exit_code"]
        assert one.http_code == batched["evidence"]["http_code"]
        if one.exit_code == 0:
            assert _digitless(one.body) == _digitless(batched["evidence"]["body"])
            assert sorted(one.responder or {}) == sorted(batched["evidence"]["responder"])
            assert _matrix_evidence.answered_by(one) == batched["evidence"]["answered_by"]


def test_a_request_that_times_out_keeps_its_verdict_while_the_others_answer(
    lab: Path, tmp_path: Path
) -> None:
    """One source, four cells in one exec: one to an unused ClusterIP-range address
    (nothing answers; 1 s timeout), one the L4 policy drops, two that answer."""
    doc = {
        "name": "one-drops",
        "timeout_seconds": 3,
        "sources": {
            "sleep-v1": {"namespace": NS, "selector": "app=sleep,version=v1", "container": "sleep"}
        },
        "destinations": {
            "nowhere": {"url": "http://10.96.255.254:5000/hello", "timeout_seconds": 1},
            "helloworld-v1": {"url": "http://helloworld-v1.default:5000/hello"},
            "helloworld-v2": {"url": "http://helloworld-v2.default:5000/hello"},
            "helloworld-v1-again": {"url": "http://helloworld-v1.default:5000/hello?again"},
        },
        "expect": {
            "sleep-v1": {
                "nowhere": "denied",
                "helloworld-v1": "allowed",
                "helloworld-v2": "denied",
                "helloworld-v1-again": "allowed",
            }
        },
    }
    path = tmp_path / "one-drops.yaml"
    path.write_text(yaml.safe_dump(doc))
    _matrix_spec.parse_matrix(path.read_text())  # a valid matrix
    result = matrix.identity_matrix(matrix=str(path), wait_seconds=60)
    cells = _cells(result)
    nowhere = cells[("sleep-v1", "nowhere")]
    assert nowhere["verdict"] == "denied_by_network", nowhere
    assert nowhere["evidence"]["exit_code"] == 28 and "timed out" in nowhere["evidence"]["error"]
    assert cells[("sleep-v1", "helloworld-v2")]["verdict"] == "denied_by_network"
    for name in ("helloworld-v1", "helloworld-v1-again"):
        cell = cells[("sleep-v1", name)]
        assert cell["verdict"] == "allowed", cell
        assert "Hello version: v1" in cell["evidence"]["body"]
    assert result["holds"] is True


def test_without_the_l4_policy_the_mesh_denies(
    custom: client.CustomObjectsApi, kit_restored: None
) -> None:
    matrix.identity_matrix(matrix="wrong-identity", record_as="with-l4", wait_seconds=60)
    custom.delete_namespaced_custom_object(
        "cilium.io", "v2", NS, "ciliumnetworkpolicies", "helloworld-v1"
    )

    def mesh_decides() -> dict[str, Any] | None:
        result = matrix.identity_matrix(
            matrix="wrong-identity", destinations="helloworld-v1", compare_to="with-l4"
        )
        cell = _cells(result)[("sleep-v2", "helloworld-v1")]
        return result if cell["verdict"] == "denied_by_mesh" else None

    result = eventually(mesh_decides, 30, "the mesh to be the layer that denies")
    cell = _cells(result)[("sleep-v2", "helloworld-v1")]
    assert cell["evidence"]["http_code"] == "403"
    assert "RBAC: access denied" in cell["evidence"]["body"]
    assert result["holds"] is True
    assert {"cell": "sleep-v2 -> helloworld-v1", "baseline": "denied_by_network",
            "verdict": "denied_by_mesh"} in result["layer_changes"]  # fmt: skip


def test_a_permissive_mesh_without_l4_is_reported_fail_open(
    custom: client.CustomObjectsApi, kit_restored: None
) -> None:
    """The probe can fail: allow-nothing removed, the ALLOW widened, the L4 policy gone."""
    custom.delete_namespaced_custom_object(
        "cilium.io", "v2", NS, "ciliumnetworkpolicies", "helloworld-v1"
    )
    custom.delete_namespaced_custom_object(
        "security.istio.io", "v1", NS, "authorizationpolicies", "allow-nothing"
    )
    wide = {"spec": {"rules": [{"from": [{"source": {"namespaces": [NS]}}]}]}}
    custom.patch_namespaced_custom_object(
        "security.istio.io", "v1", NS, "authorizationpolicies", "helloworld-v1", wide
    )

    def opened() -> dict[str, Any] | None:
        result = matrix.identity_matrix(matrix="wrong-identity", destinations="helloworld-v1")
        return result if result["fail_open"] else None

    eventually(opened, 30, "the fail-open to show")
    # the connections sleep-v2's sidecar opened before the change still carry the old
    # decision until helloworld-v1's Envoy has drained them (seen in CI: the check
    # after the first fail-open was denied again)
    wait_drained(NS, "app=helloworld,version=v1")
    result = opened()
    assert result is not None
    assert result["holds"] is False
    assert result["fail_open"] == ["sleep-v2 -> helloworld-v1"]
    assert _cells(result)[("sleep-v2", "helloworld-v1")]["verdict"] == "allowed"
    with pytest.raises(FailOpen, match="sleep-v2 -> helloworld-v1"):
        matrix.identity_matrix(
            matrix="wrong-identity", destinations="helloworld-v1", fail_on_fail_open=True
        )


def test_without_a_partition_a_recycled_ip_gets_no_old_rights(lab: Path) -> None:
    """The control case: the L4 agent hears about the new pod, its cache stays right,
    and the pod holding sleep-v1's old IP is denied by the network, as sleep-v2."""

    def holding_baseline() -> str | None:
        # a baseline is kept only from a round in which the matrix holds (a connection
        # pooled before the kit's policies came back once gave the old decision; the
        # kit_restored fixture now waits for the drain too)
        name = f"fresh-{uuid.uuid4().hex[:8]}"
        recorded = matrix.identity_matrix(matrix="wrong-identity", record_as=name, wait_seconds=60)
        return name if recorded["holds"] else None

    fresh = eventually(holding_baseline, 60, "a baseline in which the kit's matrix holds")
    # more hunter pods, more draws of a free IP per round (the lab's IPAM picks at random)
    churn.scale_deployment(name="sleep-v2", replicas=6, namespace=NS, wait_ready=False)
    try:
        hunt = ip_recycle.hunt_recycled_ip(
            victim="sleep-v1", hunter="sleep-v2", namespace=NS, max_rounds=20
        )
        assert hunt["found"] is True, hunt["reason"]
        result = matrix.identity_matrix(
            matrix="wrong-identity",
            sources="sleep-v2",
            destinations="helloworld-v1",
            narrow_sources="sleep-v2=chaosmesh-sec.io/recycled-from",
            compare_to=fresh,
            wait_seconds=60,
        )
        assert result["pods"]["sleep-v2"]["pod_ip"] == hunt["recycled_ip"]
        [cell] = result["cells"]
        assert cell["verdict"] == "denied_by_network" and cell["layer_change"] is None
    finally:
        churn.restore_replicas(name="sleep-v1", namespace=NS, timeout_seconds=60)
        churn.restore_replicas(name="sleep-v2", namespace=NS, timeout_seconds=60)


def test_a_service_left_without_endpoints_is_no_deny(
    api: client.ApiClient, core: client.CoreV1Api, tmp_path: Path
) -> None:
    """Once a cut-off node is NotReady (the node monitor's grace period), its pods leave
    their Services' endpoints. That is nobody's deny, whatever the client:

    - through its sidecar (sleep-v1), Envoy has no endpoint left to send to and answers
      ``503 no healthy upstream`` itself: an ``error``;
    - without a sidecar (a plain pod, which the kit's L4 policy drops while the Service
      is served), nothing DNATs the ClusterIP any more and the request times out as
      the L4 drop did: the probe names the unserved Service and makes it an ``error``,
      never ``denied_by_network`` (how the flagship once "held" for the wrong reason).

    The cut is the host's (kubelet, hostNetwork agents): the pods on the node, istiod's
    among them, keep the API server, so every istiod sees the endpoints go."""
    discovery = client.DiscoveryV1Api(api)

    def endpoint_ready() -> bool:
        slices = discovery.list_namespaced_endpoint_slice(
            NS, label_selector="kubernetes.io/service-name=helloworld-v1"
        ).items
        return any(e.conditions.ready for s in slices for e in s.endpoints or [])

    core.create_namespaced_pod(NS, curl_pod("plain-client", "lab-node-1", {"app": "plain"}))
    doc = yaml.safe_load(matrix_file("wrong-identity").read_text())
    doc["sources"] = {
        "sleep-v1": doc["sources"]["sleep-v1"],
        "plain": {"namespace": NS, "selector": "app=plain", "container": "app"},
    }
    doc["destinations"] = {"helloworld-v1": doc["destinations"]["helloworld-v1"]}
    # the kit's L4 policy admits sleep-v1 only: the plain client is dropped while served
    doc["expect"] = {
        "sleep-v1": {"helloworld-v1": "allowed"},
        "plain": {"helloworld-v1": "denied_by_network"},
    }
    path = tmp_path / "unserved.matrix.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        eventually(  # the new pod can be exec'd into a moment after it is Ready
            lambda: matrix.identity_matrix(matrix=str(path), wait_seconds=60)["holds"],
            30,
            "both cells as expected while helloworld-v1 is served",
        )
        cut = partition_node_from_apiserver(
            node="lab-node-2", scope="host", duration_seconds=120, fault_namespace=FAULTS
        )
        try:
            eventually(lambda: not endpoint_ready(), 90, "helloworld-v1 to leave its endpoints")

            def both_unserved() -> dict[str, Any] | None:
                result = matrix.identity_matrix(matrix=str(path))
                verdicts = {c["verdict"] for c in result["cells"]}
                return result if verdicts == {"error"} else None

            result = eventually(both_unserved, 30, "both cells to see helloworld-v1 unserved")
        finally:
            heal_apiserver_partition(
                node="lab-node-2", run_id=cut["run_id"], fault_namespace=FAULTS
            )
            wait_lease_renewed(api, "lab-node-2")
    finally:
        core.delete_namespaced_pod("plain-client", NS, grace_period_seconds=0)
    meshed = _cells(result)[("sleep-v1", "helloworld-v1")]
    assert (meshed["evidence"]["http_code"], meshed["evidence"]["body"].strip()) == (
        "503",
        "no healthy upstream",
    ), meshed
    assert meshed["evidence"]["answered_by"] == "envoy"
    plain = _cells(result)[("plain", "helloworld-v1")]
    assert plain["evidence"]["unserved"] == "default/helloworld-v1", plain
    assert all(c["verdict"] == "error" and not c["fail_open"] for c in result["cells"])
    assert result["holds"] is False
    eventually(endpoint_ready, 90, "helloworld-v1 back in its endpoints")


SETTLE = 10.0
"""Seconds after the heal in which the stale L4 cache may still decide: the L4 agent
hears from the API server again within its watch's idle timeout (5 s) and a retry."""


def test_sampling_across_a_partition_records_each_cell_over_time(api: client.ApiClient) -> None:
    """``sample_matrix`` in the background, as the flagship runs it, across the seeds'
    story: lab-node-2 (the helloworld pods' node) cut off from the API server (scope
    host: its L4 agent stops hearing about pods), sleep-v1 scaled to zero and sleep-v2
    rotated until one pod holds sleep-v1's old IP (the hunt labels it; with
    ``prefer_sources`` the sampler asks sleep-v2's cells from that pod as soon as it
    exists), the cut held a few seconds, then healed.

    Every round is on the timeline with its time and the pod it asked from; while
    sleep-v1 has no pod only its cells go unasked; no deny ever fails open; and
    sleep-v2 -> helloworld-v1 changes layer, from ``denied_by_network`` to
    ``denied_by_mesh`` (through ``error`` rounds while the hunt deletes its pods), from
    the pod with the recycled IP, in a round that began inside the fault window (from
    the cut to the heal, plus the settle of :data:`SETTLE`)."""
    box: dict[str, Any] = {}

    def sample() -> None:
        box["result"] = matrix.sample_matrix(
            matrix="wrong-identity",
            prefer_sources="sleep-v2=chaosmesh-sec.io/recycled-from",
            duration_seconds=45,
            interval_seconds=1,
            wait_seconds=60,
        )

    sampler = threading.Thread(target=sample)
    sampler.start()
    time.sleep(4)
    cut_at = datetime.now(UTC)
    cut = partition_node_from_apiserver(
        node="lab-node-2", scope="host", duration_seconds=120, fault_namespace=FAULTS
    )
    try:
        churn.scale_deployment(name="sleep-v2", replicas=6, namespace=NS, wait_ready=False)
        hunt = ip_recycle.hunt_recycled_ip(
            victim="sleep-v1",
            hunter="sleep-v2",
            namespace=NS,
            max_rounds=20,
            cut_off_pods="app=helloworld,version=v1",
            fault_namespace=FAULTS,
        )
        time.sleep(8)  # the cut held: the sampler asks from the recycled pod meanwhile
    finally:
        heal_apiserver_partition(node="lab-node-2", run_id=cut["run_id"], fault_namespace=FAULTS)
        healed_at = datetime.now(UTC)
        churn.restore_replicas(name="sleep-v1", namespace=NS, timeout_seconds=60)
        churn.restore_replicas(name="sleep-v2", namespace=NS, timeout_seconds=60)
        sampler.join(timeout=120)
        wait_lease_renewed(api, "lab-node-2")
    assert hunt["found"] is True and hunt["reproduced"] is True, hunt
    result = box["result"]
    assert result["matrix"] == "wrong-identity" and result["interval_seconds"] == 1
    started = datetime.fromisoformat(result["started_at"])
    cut_s = (cut_at - started).total_seconds()
    healed_s = (healed_at - started).total_seconds()
    assert result["fail_open"] == []
    cells = {c["cell"]: c for c in result["cells"]}
    assert set(cells) == {f"sleep-v{i} -> helloworld-v{j}" for i in (1, 2) for j in (1, 2)}
    for cell in cells.values():
        times = [s["t"] for s in cell["samples"]]
        assert len(times) == result["rounds"] and times == sorted(times) and times[0] < 3
        assert all(s["verdict"] in _matrix_evidence.VERDICTS for s in cell["samples"])
        assert cell["samples"][0]["ok"] is True and cell["samples"][0]["t"] < cut_s, cell
    for denied in ("sleep-v2 -> helloworld-v1", "sleep-v1 -> helloworld-v2"):
        assert "allowed" not in cells[denied]["verdicts"], cells[denied]

    # sleep-v1 at zero: its cells not asked in those rounds, sleep-v2's still asked
    v1, v2 = cells["sleep-v1 -> helloworld-v1"]["samples"], cells["sleep-v2 -> helloworld-v1"]
    unasked = [i for i, s in enumerate(v1) if s["pod"] is None]
    assert unasked, v1
    assert any(v2["samples"][i]["pod"] is not None for i in unasked), (v1, v2["samples"])

    # the layer change, from the pod with the recycled IP, inside the fault window
    to_mesh = [c for c in v2["changes"] if c["to"] == "denied_by_mesh"]
    assert to_mesh, v2["changes"]
    first = to_mesh[0]
    assert cut_s <= first["t"] <= healed_s + SETTLE, (first, cut_s, healed_s)
    assert v2["samples"][0]["verdict"] == "denied_by_network"
    assert first["pod"] == hunt["pod"]["name"]
    [asked] = [s for s in v2["samples"] if s["t"] == first["t"]]
    assert asked["pod_ip"] == hunt["recycled_ip"]
    assert first["evidence"]["http_code"] == "403", first
    assert first["evidence"]["body"] == "RBAC: access denied"
