"""Benchmark the node-reading posture probes and the race window they watch.

    KUBECONFIG=/var/lib/chaosmesh-sec-lab/kubeconfig .venv/bin/python bench/posture_probes.py

Times, over ROUNDS rounds against a running lab (3 nodes, the kits deployed):

- `cni_chain_intact` on every node (an inspection pod per node, in parallel: create,
  Running, two execs, delete);
- `redirection_in_place` over every namespace (the same per node, one `/proc` scan
  and an `iptables-save` per pod namespace);
- `ambient_posture` (API reads only), for scale;
- the race window on every node: its istio-cni-node pod (the real install-cni)
  deleted, from the delete call to its plugin leaving the node's chain, to the
  replacement's plugin being back (read on the lab's disk, every 5 ms), and to the
  replacement pod being Ready (its /readyz, through the API).

Prints JSON; asserts nothing.
"""

import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client, config

from chaosmesh_sec.lab.paths import LabPaths
from chaosmesh_sec.probes.ambient import ambient_posture
from chaosmesh_sec.probes.cni_chain import cni_chain_intact
from chaosmesh_sec.probes.redirection import redirection_in_place

ROUNDS = int(os.environ.get("ROUNDS", "5"))
NODES = ("lab-node-1", "lab-node-2", "lab-node-3")


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(samples), 3),
        "min_s": round(min(samples), 3),
        "max_s": round(max(samples), 3),
    }


def _agent(core: client.CoreV1Api, node: str) -> Any:
    pods = core.list_namespaced_pod(
        "istio-system",
        label_selector="k8s-app=istio-cni-node",
        field_selector=f"spec.nodeName={node}",
    ).items
    return next((p for p in pods if p.metadata.deletion_timestamp is None), None)


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def race_window(core: client.CoreV1Api, node: str) -> dict[str, float]:
    conflist = LabPaths.default().node_root(node) / "etc/cni/net.d/10-cmslab.conflist"
    old = _agent(core, node)
    start = time.perf_counter()
    core.delete_namespaced_pod(old.metadata.name, "istio-system")
    while "istio-cni" in conflist.read_text():
        time.sleep(0.005)
    gone = time.perf_counter() - start
    while "istio-cni" not in conflist.read_text():
        time.sleep(0.005)
    back = time.perf_counter() - start
    while True:
        new = _agent(core, node)
        if new is not None and new.metadata.uid != old.metadata.uid and _ready(new):
            break
        time.sleep(0.05)
    ready = time.perf_counter() - start
    return {
        "plugin_out_after_s": round(gone, 3),
        "plugin_back_after_s": round(back, 3),
        "agent_ready_after_s": round(ready, 3),
    }


def main() -> None:
    config.load_kube_config()
    core = client.CoreV1Api()
    probes: dict[str, Callable[[], Any]] = {
        "cni_chain_intact (3 nodes)": cni_chain_intact,
        "redirection_in_place (all namespaces)": redirection_in_place,
        "ambient_posture (all namespaces)": ambient_posture,
    }
    results: dict[str, Any] = {}
    for name, probe in probes.items():
        probe()  # warm up: images, connections
        samples = []
        for _ in range(ROUNDS):
            seconds, out = timed(probe)
            assert out["holds"], out
            samples.append(seconds)
        results[name] = summary(samples)
    for node in NODES:
        windows = []
        for _ in range(ROUNDS):
            windows.append(race_window(core, node))
            time.sleep(2)
        results[f"istio-cni restart window, {node}"] = {
            key: summary([w[key] for w in windows]) for key in windows[0]
        }
    pods = redirection_in_place()["counts"]
    print(json.dumps({"rounds": ROUNDS, "sidecar_pods": pods, "results": results}, indent=2))


if __name__ == "__main__":
    main()
