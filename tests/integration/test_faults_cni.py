"""restart_cni_pods against the lab's istio-cni-node DaemonSet.

The lab runs istio-cni's real node agent (install-cni, built from istio.io/istio) as a
process per node: it chains the istio-cni plugin into the node's conflist and takes
it out again as it shuts down. So a restart is seen below the API: the old process
exits, the plugin leaves the conflist and comes back with the new pod.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from chaosmesh_sec.errors import InvalidInput
from chaosmesh_sec.faults import cni
from chaosmesh_sec.lab import inspect
from chaosmesh_sec.lab.paths import LabPaths
from chaosmesh_sec.lab.topology import DEFAULT
from tests.lab_fixtures import eventually

NS = "istio-system"
DS = "istio-cni-node"
NODES = [n.name for n in DEFAULT.nodes]


def _pods(core: client.CoreV1Api) -> dict[str, client.V1Pod]:
    pods = core.list_namespaced_pod(NS, label_selector="k8s-app=istio-cni-node").items
    return {p.spec.node_name: p for p in pods if p.metadata.deletion_timestamp is None}


def _all_ready(core: client.CoreV1Api) -> dict[str, client.V1Pod] | None:
    pods = _pods(core)
    ready = len(pods) == len(NODES) and all(
        any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        for p in pods.values()
    )
    return pods if ready else None


def _chained(node: str) -> bool:
    conflist = LabPaths.default().node_root(node) / "etc/cni/net.d/10-cmslab.conflist"
    plugins = json.loads(Path(conflist).read_text())["plugins"]
    return any(p["type"] == "istio-cni" for p in plugins)


@pytest.fixture
def cni_ready(core: client.CoreV1Api) -> Iterator[dict[str, client.V1Pod]]:
    pods = eventually(lambda: _all_ready(core), 90, "istio-cni-node Ready on every node")
    yield pods
    eventually(lambda: _all_ready(core), 90, "istio-cni-node Ready on every node after")


def test_delete_on_one_node_restarts_only_there_and_the_plugin_comes_back(
    core: client.CoreV1Api, cni_ready: dict[str, client.V1Pod]
) -> None:
    target = "lab-node-2"
    old = cni_ready[target]
    [old_proc] = [
        p for p in inspect.container_processes(old.metadata.uid) if p.container == "install-cni"
    ]
    assert _chained(target)

    result = cni.restart_cni_pods(nodes=target, timeout_seconds=60)
    print(f"CNI restart on {target}: {result['nodes']}")

    assert result["recovered"] is True, result
    [entry] = result["nodes"]
    assert entry["node"] == target and entry["old_pod"] == old.metadata.name
    assert entry["new_pod"] and entry["new_pod"] != old.metadata.name
    assert entry["seconds_to_ready"] > 0
    assert not inspect.pid_alive(old_proc.pid), "the old install-cni process still runs"
    new = _pods(core)[target]
    assert new.metadata.name == entry["new_pod"]
    assert inspect.container_processes(new.metadata.uid), "no process for the new pod"
    assert _chained(target), "istio-cni not chained back into the conflist"
    after = _pods(core)
    for node in NODES:
        if node != target:  # the other nodes' pods were left alone
            assert after[node].metadata.uid == cni_ready[node].metadata.uid


def test_rollout_restarts_every_node(
    core: client.CoreV1Api, cni_ready: dict[str, client.V1Pod]
) -> None:
    result = cni.restart_cni_pods(method="rollout", timeout_seconds=90)
    print(f"CNI rollout: {result['seconds']}s, {result['nodes']}")

    assert result["recovered"] is True, result
    assert sorted(e["node"] for e in result["nodes"]) == sorted(NODES)
    after = _pods(core)
    for node in NODES:
        assert after[node].metadata.uid != cni_ready[node].metadata.uid
        assert _chained(node)


def test_the_agent_takes_the_plugin_out_while_it_is_down(
    core: client.CoreV1Api, cni_ready: dict[str, client.V1Pod]
) -> None:
    """What opens the race window: stopping install-cni unchains the plugin."""
    target = "lab-node-3"
    result = cni.restart_cni_pods(nodes=target, wait_ready=False)
    assert result["recovered"] is None
    # The window is short (the replacement chains the plugin again within a second or
    # so): look often rather than through eventually()'s half-second polls.
    deadline = time.monotonic() + 20
    while _chained(target) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not _chained(target), "istio-cni never left the conflist"
    eventually(lambda: _chained(target), 60, "istio-cni back in the conflist")


@pytest.mark.parametrize(
    ("kwargs", "bad_input"),
    [
        ({"nodes": "lab-node-9"}, "nodes"),
        ({"daemonset": "cilium"}, "daemonset"),
        ({"namespace": "no-such-namespace"}, "namespace"),
        ({"nodes": "lab-node-1,lab-node-9"}, "nodes"),
    ],
)
def test_bad_input_restarts_nothing(
    core: client.CoreV1Api,
    cni_ready: dict[str, client.V1Pod],
    kwargs: dict[str, str],
    bad_input: str,
) -> None:
    with pytest.raises(InvalidInput) as info:
        cni.restart_cni_pods(**kwargs)
    assert info.value.name == bad_input
    assert {n: p.metadata.uid for n, p in _pods(core).items()} == {
        n: p.metadata.uid for n, p in cni_ready.items()
    }
