"""The node <-> API server partition against the lab: real rules in the node's namespace."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from chaosmesh_sec import _run
from chaosmesh_sec._pack_pods import NODE_LOSS_TAINTS
from chaosmesh_sec._run import FAULT_NAMESPACE
from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.faults._ledger import OWNER_LABEL, RUN_LABEL
from chaosmesh_sec.faults.apiserver_partition import (
    FAULT_LABEL,
    heal_apiserver_partition,
    partition_node_from_apiserver,
)
from chaosmesh_sec.lab import inspect
from chaosmesh_sec.lab.topology import DEFAULT
from tests.lab_fixtures import eventually, wait_lease_renewed

NODE1, NODE2 = DEFAULT.nodes[0], DEFAULT.nodes[1]


def reaches_apiserver(netns: str) -> bool:
    """A real TCP+TLS connection from inside ``netns`` to the API server (health endpoint)."""
    return inspect.http_status_from(netns, f"{DEFAULT.apiserver_url}/healthz") != "000"


def fault_pods(core: client.CoreV1Api) -> list[Any]:
    return core.list_pod_for_all_namespaces(label_selector=FAULT_LABEL).items


@pytest.fixture
def cfg(lab: Path) -> dict[str, str]:
    return {"kubeconfig_path": str(lab)}


FAULTS = FAULT_NAMESPACE  # the experiments' default; the lab makes it as deploy/ does


def _entry(done: dict[str, Any], node: str) -> dict[str, Any]:
    """What a heal reports of the partition ``done``: its id, its run's, its node."""
    return {"run_id": done["run_id"], "owner_run": done["owner_run"], "node": node}


def test_partition_cuts_only_its_node_and_the_rollback_restores_iptables(
    core: client.CoreV1Api, cfg: dict[str, str]
) -> None:
    before = inspect.iptables_save(NODE2.netns)
    assert reaches_apiserver(NODE2.netns) and reaches_apiserver(NODE1.netns)

    done = partition_node_from_apiserver(
        node=NODE2.name, duration_seconds=120, fault_namespace=FAULTS, configuration=cfg
    )
    try:
        assert done["node"] == NODE2.name
        assert {"ip": DEFAULT.apiserver_ip, "port": DEFAULT.apiserver_port} in done["endpoints"]
        assert {"ip": DEFAULT.kubernetes_service_ip, "port": 443} in done["endpoints"]
        assert f"CMS-{done['run_id']}" in inspect.iptables_save(NODE2.netns)
        assert not reaches_apiserver(NODE2.netns)
        assert reaches_apiserver(NODE1.netns)
        # the pod as the API server holds it (after admission): no token, and it
        # tolerates only its node's loss (not the control plane: it was not asked)
        pod = core.read_namespaced_pod(done["fault_pod"]["name"], FAULTS)
        assert pod.spec.automount_service_account_token is False
        assert not pod.spec.volumes, [v.name for v in pod.spec.volumes or []]
        assert not any(m for c in pod.spec.containers for m in c.volume_mounts or [])
        tolerated = {(t.key, t.operator, t.effect) for t in pod.spec.tolerations}
        assert tolerated == {(k, "Exists", "NoExecute") for k in NODE_LOSS_TAINTS}
    finally:
        healed = heal_apiserver_partition(
            node=NODE2.name, fault_namespace=FAULTS, configuration=cfg
        )
    assert healed["healed"] == [_entry(done, NODE2.name)]
    assert reaches_apiserver(NODE2.netns)
    assert inspect.iptables_save(NODE2.netns) == before
    eventually(lambda: not fault_pods(core), 30, "the fault pod to be gone")


def test_partition_removes_itself_when_its_time_is_up(
    core: client.CoreV1Api, cfg: dict[str, str]
) -> None:
    istiod = sorted(
        (
            p
            for p in core.list_namespaced_pod("istio-system", label_selector="app=istiod").items
            if p.status.phase == "Running"
        ),
        key=lambda p: p.metadata.name,
    )
    before = {n.name: inspect.iptables_save(n.netns) for n in DEFAULT.nodes}
    done = partition_node_from_apiserver(
        target_pods_selector="app=istiod",
        target_pods_namespace="istio-system",
        duration_seconds=4,
        fault_namespace=FAULTS,
        configuration=cfg,
    )
    node = DEFAULT.node(done["node"])
    assert done["node"] == istiod[0].spec.node_name  # the node of that istiod replica
    eventually(
        lambda: inspect.iptables_save(node.netns) == before[node.name],
        30,
        "the rules to remove themselves",
    )
    assert reaches_apiserver(node.netns)
    eventually(
        lambda: all(p.status.phase == "Succeeded" for p in fault_pods(core)),
        30,
        "the fault pod to report it is done",
    )
    # Nothing left to heal; the finished fault pod is reported expired and cleaned up.
    healed = heal_apiserver_partition(fault_namespace=FAULTS, configuration=cfg)
    assert healed["healed"] == [] and healed["failed"] == []
    assert healed["expired"] == [_entry(done, done["node"])]
    eventually(lambda: not fault_pods(core), 30, "the fault pod to be gone")


@pytest.mark.parametrize(
    ("arguments", "names"),
    [
        ({"node": "no-such-node"}, "node"),
        ({"target_pods_selector": "app=nothing-matches"}, "target_pods_selector"),
        ({"node": NODE2.name, "duration_seconds": 0}, "duration_seconds"),
        ({"node": NODE2.name, "duration_seconds": -5}, "duration_seconds"),
        ({"node": NODE2.name, "scope": "everywhere"}, "scope"),
        ({"node": NODE2.name, "fault_namespace": "no-such-namespace"}, "fault_namespace"),
        ({"node": NODE2.name, "extra_hosts": "not-an-ip"}, "extra_hosts"),
        ({}, "node"),
    ],
)
def test_bad_inputs_are_refused_before_anything_changes(
    core: client.CoreV1Api, cfg: dict[str, str], arguments: dict[str, Any], names: str
) -> None:
    before = inspect.iptables_save(NODE2.netns)
    with pytest.raises(InvalidInput, match=names):
        partition_node_from_apiserver(configuration=cfg, **{"fault_namespace": FAULTS, **arguments})
    assert fault_pods(core) == []
    assert inspect.iptables_save(NODE2.netns) == before


def _spoof(name: str, labels: dict[str, str], marker: Path, node: str) -> client.V1Pod:
    """A pod anyone allowed to create pods could make: the fault's label, and in the
    annotation the old heal ran with ``sh -c``, a command that writes ``marker``."""
    return client.V1Pod(
        metadata=client.V1ObjectMeta(
            name=name,
            labels=labels,
            annotations={"chaosmesh-sec.io/partition-plan": f"touch {marker}"},
        ),
        spec=client.V1PodSpec(
            node_name=node,
            host_network=True,
            restart_policy="Never",
            containers=[
                client.V1Container(
                    name="partition",
                    image="docker.io/nicolaka/netshoot:v0.13",
                    command=["sleep", "300"],
                )
            ],
        ),
    )


def test_the_heal_runs_nothing_read_from_the_cluster_and_leaves_strangers_alone(
    core: client.CoreV1Api, api: client.ApiClient, cfg: dict[str, str], namespace: str
) -> None:
    """Spoofed fault pods with a hostile annotation, in another namespace and in the fault
    namespace (one of the pack's shape and of this run, one without a run id): the heal
    runs none of their commands, heals the real fault, lists the stranger and leaves it
    there (the stranger is not of any run: it is listed all the same)."""
    faults, other = namespace, "default"
    markers = {k: Path(f"/tmp/cms-spoof-{uuid.uuid4().hex}") for k in ("other", "shape", "odd")}
    shaped = uuid.uuid4().hex[:8]
    outside = uuid.uuid4().hex[:8]
    fault = {FAULT_LABEL: "apiserver-partition", "app.kubernetes.io/name": "chaosmesh-sec"}
    spoofs = [
        (
            other,
            _spoof(
                f"cms-partition-{outside}",
                {**fault, RUN_LABEL: outside},
                markers["other"],
                NODE2.name,
            ),
        ),
        (
            faults,
            _spoof(
                f"cms-partition-{shaped}",
                {**fault, RUN_LABEL: shaped, OWNER_LABEL: _run.run_id()},  # this run's
                markers["shape"],
                NODE2.name,
            ),
        ),
        (faults, _spoof("cms-partition-odd", fault, markers["odd"], NODE2.name)),
    ]
    for ns, pod in spoofs:
        core.create_namespaced_pod(ns, pod)
    try:
        eventually(
            lambda: all(
                core.read_namespaced_pod(p.metadata.name, ns).status.phase == "Running"
                for ns, p in spoofs
            ),
            60,
            "the spoofed pods to run",
        )
        done = partition_node_from_apiserver(
            node=NODE2.name, duration_seconds=120, fault_namespace=faults, configuration=cfg
        )
        try:
            assert not reaches_apiserver(NODE2.netns)
        finally:
            healed = heal_apiserver_partition(
                node=NODE2.name, fault_namespace=faults, configuration=cfg
            )
            wait_lease_renewed(api, NODE2.name)
        assert reaches_apiserver(NODE2.netns)
        assert f"CMS-{done['run_id']}" not in inspect.iptables_save(NODE2.netns)
        assert {
            "run_id": done["run_id"],
            "owner_run": done["owner_run"],
            "node": NODE2.name,
        } in healed["healed"]
        assert healed["failed"] == []
        assert [s["pod"] for s in healed["strangers"]] == [f"{faults}/cms-partition-odd"]
        assert RUN_LABEL in healed["strangers"][0]["why"]
        assert not [m for m in markers.values() if m.exists()], "a spoofed command ran"
        # The stranger and the pod outside the fault namespace are left alone.
        assert (
            core.read_namespaced_pod("cms-partition-odd", faults).metadata.deletion_timestamp
            is None
        )
        assert (
            core.read_namespaced_pod(f"cms-partition-{outside}", other).metadata.deletion_timestamp
            is None
        )
    finally:
        for ns, pod in spoofs:
            try:
                core.delete_namespaced_pod(pod.metadata.name, ns, grace_period_seconds=0)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
        for marker in markers.values():
            marker.unlink(missing_ok=True)
