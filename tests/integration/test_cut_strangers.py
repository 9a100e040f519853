"""The IP hunt's precondition counts only the pack's own fault pods as cuts (the lab).

Anyone who may create pods in the fault namespace can make one that carries the fault
label, a run id and the "in force" stamps, Running on the server's node. It is not of the
pack's shape (the heal's own check, ``_partition_pod.run_id_of``), so the hunt must not
take it for a cut: the story is "not reproduced", and nothing is changed.
"""

from __future__ import annotations

import time
import uuid

from kubernetes import client

from chaosmesh_sec.faults import _cut, churn, ip_recycle
from chaosmesh_sec.faults._ledger import FAULT_LABEL, RUN_LABEL
from chaosmesh_sec.probes import workloads
from tests.lab_fixtures import PAUSE, deploy_pause, eventually

SERVER_NODE, NODE = "lab-node-2", "lab-node-1"


def _ready(api: client.ApiClient, namespace: str, name: str, replicas: int, node: str) -> None:
    deploy_pause(api, namespace, name, replicas, node)
    rolled_out = workloads.deployment_available(name, namespace, wait_seconds=60)
    assert rolled_out["available"], rolled_out


def test_a_stamped_stranger_on_the_servers_node_is_no_cut(
    api: client.ApiClient, core: client.CoreV1Api, namespace: str
) -> None:
    run_id = uuid.uuid4().hex[:8]
    now = time.time()
    stranger = client.V1Pod(
        metadata=client.V1ObjectMeta(
            name=f"cms-partition-{run_id}",
            labels={FAULT_LABEL: "apiserver-partition", RUN_LABEL: run_id},  # no name label
            annotations={
                _cut.EFFECTIVE_AT: _cut.stamp(now - 5),
                _cut.SELF_HEALS_AT: _cut.stamp(now + 600),
            },
        ),
        spec=client.V1PodSpec(
            node_name=SERVER_NODE,
            termination_grace_period_seconds=1,
            containers=[client.V1Container(name="partition", image=PAUSE)],
        ),
    )
    core.create_namespaced_pod(namespace, stranger)
    eventually(
        lambda: (
            core.read_namespaced_pod(stranger.metadata.name, namespace).status.phase == "Running"
        ),
        60,
        "the stranger to run",
    )
    _ready(api, namespace, "server", 1, SERVER_NODE)
    _ready(api, namespace, "victim", 2, NODE)
    _ready(api, namespace, "hunter", 1, NODE)

    result = ip_recycle.hunt_recycled_ip(
        "victim",
        "hunter",
        namespace=namespace,
        max_rounds=2,
        timeout_seconds=30,
        cut_off_pods="app=server",
        fault_namespace=namespace,
    )

    assert result["precondition"]["cuts"] == []
    assert result["reproduced"] is False
    assert result["scenario"].startswith(f"not reproduced: node(s) {SERVER_NODE} of pods")
    assert result["rounds"] == 0
    victim = client.AppsV1Api(api).read_namespaced_deployment("victim", namespace)
    assert victim.spec.replicas == 2
    assert churn._ledger.REPLICAS_BEFORE not in (victim.metadata.annotations or {})
