"""``chaos run`` of the partition experiment, killed with SIGKILL mid-fault: the node heals
itself when the duration ends, and ``chaosmesh-sec rollback`` then finds nothing to do."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from kubernetes import client

from chaosmesh_sec import _run
from chaosmesh_sec.faults._ledger import FAULT_LABEL, RUN_LABEL
from chaosmesh_sec.lab import inspect
from chaosmesh_sec.lab.topology import DEFAULT
from tests.lab_fixtures import drop_lease_of_killed_run, eventually

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _fault_pods(core: client.CoreV1Api, node: str) -> dict[str, Any]:
    """The partition fault pods on ``node``, by name."""
    pods = core.list_namespaced_pod(_run.FAULT_NAMESPACE, label_selector=FAULT_LABEL).items
    return {p.metadata.name: p for p in pods if p.spec.node_name == node}


def test_killed_run_heals_by_itself_and_rollback_finds_nothing(
    lab: Path, api: client.ApiClient, core: client.CoreV1Api, tmp_path: Path
) -> None:
    node = DEFAULT.nodes[1]
    before = inspect.iptables_save(node.netns)
    earlier = set(_fault_pods(core, node.name))
    env = {
        **os.environ,
        "KUBECONFIG": str(lab),
        "CMS_TARGET_NODE": node.name,
        "CMS_PARTITION_SECONDS": "8",
        "CMS_HOLD_SECONDS": "60",
    }
    run = subprocess.Popen(
        [
            str(BIN / "chaos"),
            "--no-version-check",
            "run",
            "--journal-path",
            str(tmp_path / "journal.json"),
            str(ROOT / "experiments" / "apiserver-partition.json"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually(lambda: "CMS-" in inspect.iptables_save(node.netns), 60, "the partition")
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)
        eventually(
            lambda: inspect.iptables_save(node.netns) == before, 60, "the node to heal itself"
        )
        # by its own timer: the fault pod ran to its end (no heal ran: the runner is dead)
        [ended] = eventually(
            lambda: [
                p
                for name, p in _fault_pods(core, node.name).items()
                if name not in earlier and p.status.phase == "Succeeded"
            ],
            60,
            "the fault pod to end on its own",
        )
        partition_run = ended.metadata.labels[RUN_LABEL]
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        drop_lease_of_killed_run(api, _run.FAULT_NAMESPACE, run.pid)
    out = subprocess.run(
        [
            str(BIN / "chaosmesh-sec"),
            "rollback",
            "--kubeconfig",
            str(lab),
            "--fault-namespace",
            _run.FAULT_NAMESPACE,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    partition = json.loads(out.stdout)["apiserver_partition"]
    assert partition["healed"] == []
    assert partition_run in [e["run_id"] for e in partition["expired"]]  # cleaned, not counted
